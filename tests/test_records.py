"""The records table: one row per run dir, stable columns, CSV and Parquet round trips."""

from __future__ import annotations

import json

from scaling import records
from scaling.train.pretrain import pretrain


def test_records_table_from_real_runs(tiny_config, tmp_path):
    completed = tiny_config("run_name=a")
    pretrain(completed)
    pretrain(tiny_config("run_name=b", "train.stop_at_step=4"))
    # A dir with a half-started run (no record yet) and a stray file are not rows.
    (tmp_path / "runs" / "empty").mkdir()
    (tmp_path / "runs" / "notes.txt").write_text("x")

    table = records.collect(tmp_path / "runs")
    assert list(table.columns[: len(records.CORE_COLUMNS)]) == records.CORE_COLUMNS
    assert sorted(table["run_name"]) == ["a", "b"]
    by_name = table.set_index("run_name")
    assert by_name.loc["a", "status"] == "completed" and by_name.loc["b", "status"] == "stopped"
    assert by_name.loc["b", "steps"] == 4
    assert by_name.loc["a", "versions_jax"]  # nested fields flattened
    assert json.loads(by_name.loc["a", "data_key_entropy_nats"])  # lists kept as JSON

    paths = records.write(table, tmp_path / "runs" / "records")
    for path in paths:
        again = records.read(path)
        assert list(again.columns) == list(table.columns)
        assert (
            again.set_index("run_name").loc["a", "final_val_loss"]
            == records.read_record(tmp_path / "runs" / "a")["final_val_loss"]
        )
    # Collecting again ignores the tables it wrote.
    assert len(records.collect(tmp_path / "runs")) == 2


def test_records_cli_writes_both_tables(tiny_config, tmp_path, capsys):
    pretrain(tiny_config("run_name=a", "train.stop_at_step=4"))
    records.main([str(tmp_path / "runs")])
    assert "1 runs" in capsys.readouterr().out
    assert (tmp_path / "runs" / "records.csv").exists()
    assert (tmp_path / "runs" / "records.parquet").exists()
