"""Killed, preempted or interrupted runs resume from their checkpoints and end bit-identical;
Ctrl-C stops a sweep after saving its point, and the same command resumes it."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, compose_config
from scaling import records
from scaling.tools.faults import runner, stops
from scaling.train.pretrain import pretrain

# Every test kills, signals or interrupts real training processes.
pytestmark = pytest.mark.slow

PRETRAIN = str(ROOT / "experiments" / "pretrain.py")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The campaign's fault run (120 steps, checkpoints every 10) left alone, trained here."""
    out = tmp_path_factory.mktemp("runs")
    cfg = compose_config([*runner.fault_run(out, "reference-s0")])
    assert pretrain(cfg)["status"] == "completed"
    return out / "reference-s0"


def test_sigkill_then_restart_matches_an_uninterrupted_run(reference):
    (trial,) = stops.kill_trials(reference.parent, reference, 1, random.Random(1))
    assert trial.ok, trial.detail
    assert "landed after step" in trial.name


def test_signals_save_exit_with_their_status_and_resume_exactly(reference):
    # One run stopped three times, restarted after each: SIGTERM (preemption: exit 75, status
    # preempted; SIGUSR1 takes the same path, test_shard sends it), Ctrl-C once (exit 130,
    # interrupted, how to resume) and Ctrl-C twice (stopped at once); then finished,
    # bit-identical to the run left alone.
    sequence = [(signal.SIGTERM, 1), (signal.SIGINT, 1), (signal.SIGINT, 2)]
    trials = stops.signal_trials(reference.parent, reference, sequence, random.Random(2), "stopped")
    assert [t.kind for t in trials] == [runner.PREEMPT] + [runner.INTERRUPT] * 2
    assert all(t.ok for t in trials), [(t.name, t.detail) for t in trials if not t.ok]


def _sweep(out_dir) -> list[str]:
    grid = ["hydra.sweeper.grid.tokens=[25600,12800]", "hydra.sweeper.grid.group_models=1"]
    return [sys.executable, PRETRAIN, "-m", "experiment=tiny", f"out_dir={out_dir}", *grid]


def test_ctrl_c_stops_a_sweep_after_saving_its_point_and_a_rerun_resumes_it(tmp_path):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    out = tmp_path / "sweep"
    first = out / "tiny-D25600-lr0.00758-s0"  # the longest point runs first
    proc = subprocess.Popen(_sweep(out), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if (first / records.METRICS_FILE).exists() and records.read_metrics(first):
            proc.send_signal(signal.SIGINT)
            break
        time.sleep(0.01)
    _, stderr = proc.communicate(timeout=120)
    stderr = stderr.decode()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "sweep interrupted" in stderr and "rerun" in stderr
    record = records.read_record(first)
    assert record["status"] == "interrupted"
    assert (first / "ckpt" / str(record["steps"])).is_dir()  # saved where it stopped
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [first.name]

    rerun = subprocess.run(_sweep(out), env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    assert "job 1 of 2" in rerun.stdout and "job 2 of 2" in rerun.stdout  # says where it is
    results = [json.loads(p.read_text()) for p in sorted(out.glob("*/record.json"))]
    assert [r["status"] for r in results] == ["completed", "completed"]
    assert records.read_record(first)["resumed_from_step"] == record["steps"]
