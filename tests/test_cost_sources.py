"""A study's bookkeeping from records: the task sources of a sweep and the study's cost."""

from __future__ import annotations

import pytest

from scaling import records
from scaling.reports import cost, sources


def write(root, run_dir, **fields):
    record = {
        "status": "completed",
        "task": None,
        "batch_size": 8,
        "seq_len": 64,
        "compile_time_s": 1.0,
        "mfu": 0.1,
        "device_kind": "H100",
        **fields,
    }
    record.setdefault("run_name", run_dir.rsplit("/", 1)[-1])
    (root / run_dir).mkdir(parents=True)
    records.write_record(root / run_dir, record)


def pretrain(root, run_dir, model, n, tokens, **fields):
    write(root, run_dir, model=model, n_params_nonembedding=n, tokens_seen=tokens, **fields)


def test_sources_are_each_models_longest_completed_run(tmp_path):
    sweep = tmp_path / "pretrain"
    pretrain(sweep, "b-D100", "b", 2e5, 100)
    pretrain(sweep, "b-D400", "b", 2e5, 400)
    pretrain(sweep, "b-D900", "b", 2e5, 900, status="failed")
    pretrain(sweep, "a-D300", "a", 1e5, 300)
    table = sources.source_runs(sweep)
    assert list(table["model"]) == ["a", "b"]  # smallest model first
    assert sources.hydra_values(table, "init_from") == f"{sweep}/a-D300,{sweep}/b-D400"
    assert sources.hydra_values(table, "model") == "a,b"
    assert sources.hydra_values(table, "seq_len") == "64"
    with pytest.raises(ValueError, match="--field 'lr'"):
        sources.hydra_values(table, "lr")


def test_sources_of_some_models_or_every_run(tmp_path, capsys):
    sweep = tmp_path / "pretrain"
    pretrain(sweep, "b-D100", "b", 2e5, 100)
    pretrain(sweep, "b-D400", "b", 2e5, 400)
    pretrain(sweep, "a-D300", "a", 1e5, 300)
    assert list(sources.source_runs(sweep, models=["b"])["run_name"]) == ["b-D400"]
    every = sources.source_runs(sweep, every_run=True)
    assert list(every["run_name"]) == ["a-D300", "b-D100", "b-D400"]
    sources.main([str(sweep), "--all", "--field", "model"])
    assert capsys.readouterr().out.strip() == "a,b,b"
    with pytest.raises(ValueError, match=r"no completed pre-training run of models \['c'\]"):
        sources.source_runs(sweep, models=["c"])


def test_sources_refuse_a_sweep_with_nothing_to_fine_tune(tmp_path, capsys):
    pretrain(tmp_path / "sweep", "a-D1", "a", 1e5, 1, status="failed")
    with pytest.raises(SystemExit) as exit_info:
        sources.main([str(tmp_path / "sweep")])
    assert exit_info.value.code == 2
    assert "no completed pre-training run" in capsys.readouterr().err
    with pytest.raises(ValueError, match="no such directory"):
        sources.source_runs(tmp_path / "missing")


def test_cost_counts_a_group_once_and_saves_against_the_solo_rate(tmp_path):
    # A group of 4 runs shares one clock (60 s, 50 s steady at 4 x 1000 tok/s); a solo run of
    # the same shape trains at 1000 tok/s, so the group's 200k tokens would take 200 s alone.
    for i in range(4):
        pretrain(
            tmp_path, f"synthetic/pretrain/g{i}", "a", 1e5, 50_000, wall_time_s=60.0 - i,
            tokens_per_s=1000.0, group_id="g", group_size=4,
        )  # fmt: skip
    pretrain(tmp_path, "synthetic/pretrain/solo", "a", 1e5, 20_000, wall_time_s=25.0,
             tokens_per_s=1000.0)  # fmt: skip
    write(tmp_path, "synthetic/finetune/ft", model="a", n_params_nonembedding=1e5,
          tokens_seen=1000, wall_time_s=5.0, tokens_per_s=500.0, task="copy")  # fmt: skip
    jobs = cost.jobs(records.collect(tmp_path))
    assert len(jobs) == 3 and jobs["wall_s"].sum() == 60.0 + 25.0 + 5.0
    group = cost.savings(jobs)
    assert len(group) == 1
    assert group["solo_s"].iloc[0] == pytest.approx(200.0)
    assert group["saved_s"].iloc[0] == pytest.approx(150.0)
    assert group["mfu"].iloc[0] == pytest.approx(0.4)  # four members' shares of one step
    cost.main([str(tmp_path), "--out", str(tmp_path / "COST.md"), "--command", "make x"])
    text = (tmp_path / "COST.md").read_text()
    assert "device time 90 s" in text and "| synthetic/finetune | 1 | 1 | 5 |" in text
    assert "| synthetic/pretrain | a | 8x64 | 4 | 4,000 | 1,000 | 4.00x | 150 |" in text
