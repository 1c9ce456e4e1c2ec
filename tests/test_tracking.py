"""Tests for scaling.train.tracking: TensorBoard event files per run (read back as TensorBoard's
protobuf records), W&B in offline mode, the tracker's run id kept across a resume, and sweep
points grouped by the sweep's name."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from tensorboardX.proto.event_pb2 import Event

from conftest import ROOT
from scaling import records
from scaling.train import rundir
from scaling.train.pretrain import pretrain

# Every test trains tiny runs end to end, the last through a Hydra sweep in a subprocess.
pytestmark = pytest.mark.slow


def events(tb_dir: Path) -> list[list[Event]]:
    """Every event of every file in a TensorBoard log dir, one list per file (oldest first):
    TFRecord framing (length, its CRC, the bytes, their CRC) around Event protos."""
    out = []
    for path in sorted(tb_dir.glob("events.out.tfevents.*"), key=lambda p: p.stat().st_mtime):
        data, i, file_events = path.read_bytes(), 0, []
        while i < len(data):
            (n,) = struct.unpack("<Q", data[i : i + 8])
            file_events.append(Event.FromString(data[i + 12 : i + 12 + n]))
            i += 12 + n + 4
        out.append(file_events)
    return out


def scalars(file_events: list[Event]) -> dict[str, dict[int, float]]:
    out: dict[str, dict[int, float]] = {}
    for e in file_events:
        for v in e.summary.value:
            out.setdefault(v.tag, {})[e.step] = v.simple_value
    return out


def test_tensorboard_event_files_and_a_resume_that_continues_them(tiny_config):
    cfg = tiny_config("train.stop_at_step=12")
    first = pretrain(cfg)
    run_dir = Path(cfg.out_dir) / cfg.run_name
    assert first["status"] == "stopped" and first["tracker"]["backend"] == "tensorboard"
    record = pretrain(tiny_config())  # resumes from its checkpoint at step 12 and finishes
    assert record["resumed_from_step"] == 12
    assert record["tracker"] == first["tracker"]
    ids = json.loads((run_dir / rundir.CKPT_DIR / "tracker.json").read_text())
    assert ids["run_id"] == first["tracker"]["run_id"] == "tb"
    files = events(run_dir / "tb")
    assert len(files) == 2
    # The resumed session starts by purging anything logged at or after its start.
    assert any(e.session_log.status == 1 and e.step == 12 for e in files[1])  # START
    rows = records.read_metrics(run_dir)
    last = scalars(files[1])
    for row in rows:
        if row["step"] > 12:
            assert last["train/loss"][row["step"]] == pytest.approx(row["train_loss"], rel=1e-6)
            assert last["train/lr"][row["step"]] == pytest.approx(row["lr"], rel=1e-6)
            assert last["train/grad_norm"][row["step"]] == pytest.approx(row["grad_norm"], 1e-6)
    assert last["val/loss"][24] == pytest.approx(record["final_val_loss"], rel=1e-6)
    assert all(v > 0 for v in last["train/tokens_per_s"].values())


def test_wandb_offline_keeps_its_run_id_across_a_resume(tiny_config, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = tiny_config("tracking=wandb", "tracking.group=g", "train.stop_at_step=12")
    first = pretrain(cfg)
    record = pretrain(tiny_config("tracking=wandb", "tracking.group=g"))
    run_id = first["tracker"]["run_id"]
    assert record["tracker"] == {"backend": "wandb", "run_id": run_id, "group": "g"}
    offline = sorted((Path(cfg.out_dir) / cfg.run_name / "wandb").glob("offline-run-*"))
    assert len(offline) == 2 and all(p.name.endswith(f"-{run_id}") for p in offline)


def test_sweep_points_are_grouped_by_the_sweep_name(tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "JAX_PLATFORMS": "cpu"}
    cmd = [sys.executable, str(ROOT / "experiments" / "pretrain.py"), "-m", "experiment=tiny",
           "out_dir=out", "tracking=wandb", "train.progress=off"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = [json.loads(p.read_text()) for p in (tmp_path / "out").glob("*/record.json")]
    assert len(results) == 2
    assert {r["tracker"]["group"] for r in results} == {"tiny"}
    assert len({r["tracker"]["run_id"] for r in results}) == 2
