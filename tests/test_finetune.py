"""Fine-tuning end to end at tiny size: from a real checkpoint, from scratch, evaluate only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from conftest import CONF_DIR, NOISE, ROOT, TINY, compose_config
from scaling import records
from scaling.config import ConfigError, FinetuneConfig, register_configs, to_dataclass
from scaling.tasks.finetune import finetune
from scaling.train import rundir
from scaling.train.pretrain import pretrain

# 48 steps of 8 addition1 problems (no shots) in 32-token rows; evaluate every 16 steps.
FT = [
    "task=addition1",
    "task.few_shot=0",
    "train.batch_size=8",
    "train.tokens=12288",
    "train.eval_every=16",
    "train.log_every=8",
    "train.ckpt_every=48",
    "train.progress=off",
]
PROPORTIONS = ("task_exact_match", "task_token_accuracy", "task_brier", "task_resolution")


def compose_finetune(overrides: list[str]) -> FinetuneConfig:
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return to_dataclass(compose("finetune", overrides=overrides), FinetuneConfig)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A real tiny pre-training run (synthetic corpus, byte vocabulary) to start from."""
    out = tmp_path_factory.mktemp("runs")
    cfg = compose_config([*TINY, f"out_dir={out}", "run_name=src"])
    assert pretrain(cfg)["status"] == "completed"
    return out / "src"


@pytest.fixture(scope="module")
def runs(source: Path) -> dict[str, dict]:
    """The three arms of a comparison: fine-tuned, from scratch, pre-train only."""
    out = f"out_dir={source.parent}"
    arms = {
        "finetuned": [*FT, out, f"init_from={source}"],
        "scratch": [*FT, out, "model=tiny", "data.seq_len=32"],
        "pretrain_only": [*FT, out, f"init_from={source}", "train.tokens=0"],
    }
    return {name: finetune(compose_finetune(o)) for name, o in arms.items()}


@pytest.mark.slow
def test_finetune_from_a_checkpoint_records_task_metrics(runs, source):
    record = runs["finetuned"]
    run_dir = source.parent / record["run_name"]
    assert record["run_name"] == "ft-addition1-D12288-from-src-s0"
    assert record["status"] == "completed" and record == records.read_record(run_dir)
    assert record["steps"] == 48 and record["tokens_seen"] == 12288
    assert record["init_from"] == str(source) and record["source_step"] == 24
    src = records.read_record(source)
    assert record["pretrain_final_val_loss"] == src["final_val_loss"]
    assert record["source_n_params_nonembedding"] == src["n_params_nonembedding"]
    assert record["source_tokens"] == src["tokens_seen"]
    assert record["task_n_eval"] == 18  # addition1's whole eval split
    for key in PROPORTIONS:
        assert 0.0 <= record[key] <= 1.0, key
    assert record["task_answer_logprob"] <= 0 and record["task_edit_distance"] >= 0
    # The model is the source's, read from its config.yaml.
    assert rundir.read_config(run_dir)["model"] == rundir.read_config(source)["model"]
    evals = [r for r in records.read_metrics(run_dir) if "val_loss" in r]
    assert [r["step"] for r in evals] == [0, 16, 32, 48]
    assert all("task_exact_match" in r for r in evals)
    # The answer-only loss falls with fine-tuning.
    assert evals[-1]["val_loss"] < evals[0]["val_loss"] == record["initial_val_loss"]


@pytest.mark.slow
def test_step_zero_is_the_source_and_differs_from_scratch(runs):
    finetuned, scratch, only = runs["finetuned"], runs["scratch"], runs["pretrain_only"]
    # The same eval of the same parameters: bit-identical to evaluating the source itself.
    assert finetuned["initial_val_loss"] == only["final_val_loss"]
    assert finetuned["initial_task_answer_logprob"] == only["task_answer_logprob"]
    assert scratch["initial_val_loss"] != finetuned["initial_val_loss"]
    assert scratch["init_from"] is None and scratch["run_name"].endswith("-from-scratch-tiny-s0")
    assert scratch["status"] == "completed" and scratch["steps"] == 48


@pytest.mark.slow
def test_pretrain_only_evaluates_without_training(runs, source):
    record = runs["pretrain_only"]
    assert record["status"] == "completed" and record["steps"] == 0
    assert record["tokens_seen"] == 0 and record["final_train_loss"] is None
    for key in PROPORTIONS:
        assert 0.0 <= record[key] <= 1.0, key
    rows = records.read_metrics(source.parent / record["run_name"])
    assert [r["step"] for r in rows] == [0]


def test_bad_init_from_names_the_path(tmp_path):
    missing = tmp_path / "no_such_run"
    with pytest.raises(ConfigError, match="no_such_run"):
        finetune(compose_finetune([*FT, f"out_dir={tmp_path}", f"init_from={missing}"]))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.yaml").write_text("model: {d_model: 32, n_layers: 2, n_heads: 2}\n")
    with pytest.raises(ConfigError, match="no checkpoint in .*empty"):
        finetune(compose_finetune([*FT, f"out_dir={tmp_path}", f"init_from={empty}"]))


@pytest.mark.slow
def test_a_different_explicit_model_is_refused(source, tmp_path):
    cfg = compose_finetune([*FT, f"out_dir={tmp_path}", f"init_from={source}", "model=n110k"])
    with pytest.raises(ConfigError, match="model.d_model"):
        finetune(cfg)


@pytest.mark.slow
def test_finetune_from_the_command_line(source, tmp_path):
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "JAX_PLATFORMS": "cpu"}
    overrides = [*FT, "train.tokens=2048", "out_dir=out", f"init_from={source}"]
    result = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "finetune.py"), *overrides],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "out" / "ft-addition1-D2048-from-src-s0"
    record = json.loads((run_dir / "record.json").read_text())
    assert record["status"] == "completed" and "task_exact_match" in record
    assert "completed" in result.stdout
    assert not NOISE.search(result.stdout + result.stderr), result.stdout + result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.slow
def test_masked_grad_accumulation_matches_one_big_batch(tmp_path):
    """Microbatches hold different numbers of answer tokens: the step must still be the mean
    over every answer token of the batch, not a mean of microbatch means."""
    base = [*FT, f"out_dir={tmp_path}", "model=tiny", "data.seq_len=32", "task=addition2"]
    base += ["train.tokens=4096", "train.log_every=1"]
    one = finetune(compose_finetune([*base, "run_name=one"]))
    two = finetune(compose_finetune([*base, "run_name=two", "train.grad_accum=4"]))
    a = [r["train_loss"] for r in records.read_metrics(tmp_path / "one") if "train_loss" in r]
    b = [r["train_loss"] for r in records.read_metrics(tmp_path / "two") if "train_loss" in r]
    assert len(a) == 16
    np.testing.assert_allclose(a, b, rtol=2e-4)
    assert one["final_val_loss"] == pytest.approx(two["final_val_loss"], rel=2e-4)
