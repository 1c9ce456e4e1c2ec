"""The records table: one row per run dir, stable columns, CSV and Parquet round trips."""

from __future__ import annotations

import json

import pytest

from scaling import records
from scaling.train.pretrain import pretrain


@pytest.mark.slow
def test_records_table_from_real_runs(tiny_config, tmp_path):
    completed = tiny_config("run_name=a")
    pretrain(completed)
    pretrain(tiny_config("run_name=b", "train.stop_at_step=4"))
    # A dir with a half-started run (no record yet) and a stray file are not rows.
    (tmp_path / "runs" / "empty").mkdir()
    (tmp_path / "runs" / "notes.txt").write_text("x")

    table = records.collect(tmp_path / "runs")
    assert list(table.columns[: len(records.TABLE_COLUMNS)]) == records.TABLE_COLUMNS
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


@pytest.mark.slow
def test_records_cli_writes_both_tables(tiny_config, tmp_path, capsys):
    pretrain(tiny_config("run_name=a", "train.stop_at_step=4"))
    records.main([str(tmp_path / "runs")])
    assert "1 runs" in capsys.readouterr().out
    assert (tmp_path / "runs" / "records.csv").exists()
    assert (tmp_path / "runs" / "records.parquet").exists()


def test_a_record_holds_only_its_declared_fields_and_its_schema_version(tmp_path):
    run_dir = tmp_path / "run"
    record = {"run_name": "run", "status": records.STATUS_COMPLETED, "final_val_loss": 2.5}
    records.write_record(run_dir, record)
    stored = json.loads((run_dir / records.RECORD_FILE).read_text())
    assert stored == {"schema_version": records.SCHEMA_VERSION, **record}
    assert records.read_record(run_dir) == record  # the version stays in the file

    # A field the schema lacks is refused on write (nothing written) and on read, named.
    with pytest.raises(records.RecordError, match="unknown record field final_val_los$"):
        records.write_record(run_dir, {**record, "final_val_los": 2.5})
    assert records.read_record(run_dir) == record
    (run_dir / records.RECORD_FILE).write_text(json.dumps({**stored, "n2": 1}))
    with pytest.raises(records.RecordError, match=f"{run_dir / 'record.json'}: .* n2"):
        records.collect(tmp_path)
    (run_dir / records.RECORD_FILE).write_text(json.dumps({"status": "failed"}))
    with pytest.raises(records.RecordError, match="lacks run_name"):
        records.read_record(run_dir)
    (run_dir / records.RECORD_FILE).write_text(json.dumps({**stored, "schema_version": 2}))
    with pytest.raises(records.RecordError, match="schema version 2, this code reads version 1"):
        records.read_record(run_dir)
    # A record from before the version was stored reads as version 1.
    (run_dir / records.RECORD_FILE).write_text(json.dumps(record))
    assert records.read_record(run_dir) == record
