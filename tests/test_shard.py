"""Data parallel and FSDP on simulated CPU devices match one device; checkpoints move meshes.

The pytest process has already started JAX on one CPU device, so the multi-device runs happen in
subprocesses that ask XLA for 8 (or 2 x 2, for two processes joined by jax.distributed). Losses
may differ from the single-device run only by float32 summation order: at most LOSS_ATOL nats.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import ROOT, TINY, compose_config
from scaling import records
from scaling.cli import EXIT_PREEMPTED
from scaling.config import ConfigError, run_dir_of
from scaling.train import shard
from scaling.train.pretrain import pretrain

LOSS_ATOL = 1e-4  # nats; measured differences are below 1e-6 (README, "Scaling out")
# 12 steps of 8 sequences (batch 8 splits over 8 devices), evaluated and saved every 4.
SHARD = [*TINY, "train.batch_size=8", "train.eval_batches=1", "train.eval_every=4"]
SHARD += ["train.ckpt_every=4", "train.tokens=3072"]

# Runs in a fresh interpreter with 8 CPU devices: a dp run over all 8, then a run that starts
# under fsdp on 8, resumes under dp on 4, and stops for the pytest process to finish on one
# device. Prints the bytes of train state one device holds under each strategy.
EIGHT_DEVICES = """
import json, sys
import jax
from conftest import compose_config
from scaling.config import ConfigError, ParallelConfig
from scaling.train.shard import make_layout
from scaling.train.pretrain import pretrain

assert jax.device_count() == 8
base = sys.argv[1:]
held = {"dp": pretrain(compose_config([*base, "parallel.strategy=dp", "run_name=dp"]))}
for strategy, devices, stop in (("fsdp", 8, 4), ("dp", 4, 8)):
    legs = [f"parallel.strategy={strategy}", f"parallel.devices={devices}"]
    cfg = compose_config([*base, *legs, "run_name=moved", f"train.stop_at_step={stop}"])
    held[f"{strategy}{devices}"] = pretrain(cfg)
out = {k: r["state_bytes_per_device"] for k, r in held.items()}
try:
    make_layout(ParallelConfig("dp"), batch_size=12, grad_accum=1)
except ConfigError as err:
    out["error"] = str(err)
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> list[tuple]:
    """(step, train loss, val loss) rows of the single-device run, in this 1-device process."""
    out_dir = tmp_path_factory.mktemp("single")
    record = pretrain(compose_config([*SHARD, f"out_dir={out_dir}", "run_name=single"]))
    assert record["n_devices"] == 1 and record["parallel"] == "single"
    return _losses(out_dir / "single")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "JAX_"))}
    return {**env, "JAX_PLATFORMS": "cpu", **extra}


def _losses(run_dir):
    return [(r["step"], r["train_loss"], r.get("val_loss")) for r in records.read_metrics(run_dir)]


def _assert_close(rows, reference):
    assert [r[0] for r in rows] == [r[0] for r in reference]
    for (_, train, val), (_, train_ref, val_ref) in zip(rows, reference, strict=True):
        assert train == pytest.approx(train_ref, abs=LOSS_ATOL)
        assert (val is None) == (val_ref is None)
        assert val is None or val == pytest.approx(val_ref, abs=LOSS_ATOL)


@pytest.mark.slow
def test_dp_and_fsdp_match_one_device_and_checkpoints_move_between_meshes(
    tmp_path, tiny_config, reference
):
    out_dir = tmp_path / "runs"
    proc = subprocess.run(
        [sys.executable, "-c", EIGHT_DEVICES, *SHARD, f"out_dir={out_dir}"],
        cwd=ROOT / "tests",
        env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=8"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    held = json.loads(proc.stdout.strip().splitlines()[-1])

    record = records.read_record(out_dir / "dp")
    assert record["status"] == "completed"
    assert (record["parallel"], record["n_devices"]) == ("dp", 8)
    _assert_close(_losses(out_dir / "dp"), reference)
    # dp replicates the whole state on each device; fsdp keeps about an eighth of it there.
    assert held["fsdp8"] < 0.2 * held["dp"]
    assert held["dp4"] == held["dp"]
    assert "train.batch_size=12" in held["error"] and "parallel.devices=8" in held["error"]

    # Saved under fsdp on 8 devices (steps 1-4), resumed under dp on 4 (5-8), finished here
    # on one device (9-12): every row as in the single-device run.
    moved = tiny_config(*SHARD, "run_name=moved")
    record = pretrain(moved)
    assert record["status"] == "completed" and record["resumed_from_step"] == 8
    assert record["n_devices"] == 1
    _assert_close(_losses(run_dir_of(moved)), reference)


@pytest.mark.slow
def test_two_processes_train_one_fsdp_run_and_stop_together(tmp_path, tiny_config):
    """Two processes of 2 CPU devices each, joined over localhost by jax.distributed.

    A preemption signal reaches one process only; both stop at the same logged step, save
    (orbax, from both processes) and exit 75. The run matches one device up to there.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out_dir = tmp_path / "runs"
    longer = ["train.tokens=25600", "train.ckpt_every=1000"]  # 100 steps, saved when stopped
    args = [*SHARD, *longer, f"out_dir={out_dir}", "run_name=multi", "parallel.strategy=fsdp"]
    procs = [
        subprocess.Popen(
            [sys.executable, str(ROOT / "experiments" / "pretrain.py"), *args],
            env=_env(
                XLA_FLAGS="--xla_force_host_platform_device_count=2",
                JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                JAX_NUM_PROCESSES="2",
                JAX_PROCESS_ID=str(i),
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    deadline = time.monotonic() + 240
    while not _losses(out_dir / "multi") and time.monotonic() < deadline:
        assert all(proc.poll() is None for proc in procs), procs[0].stderr.read()[-3000:]
        time.sleep(0.01)
    procs[1].send_signal(signal.SIGUSR1)  # the non-writing process
    for proc in procs:
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == EXIT_PREEMPTED, stderr[-3000:]
    record = records.read_record(out_dir / "multi")
    assert record["status"] == "preempted" and record["reason"].startswith("SIGUSR1")
    assert (record["n_processes"], record["n_devices"]) == (2, 4)
    steps = record["steps"]
    assert steps % 4 == 0 and 4 < steps < 100 and (out_dir / "multi" / "ckpt" / str(steps)).is_dir()
    # Only process 0 wrote the metrics: one row per logged step, not two.
    reference = tiny_config(*SHARD, *longer, "run_name=single", f"train.stop_at_step={steps}")
    pretrain(reference)
    _assert_close(_losses(out_dir / "multi"), _losses(run_dir_of(reference)))


def test_one_process_does_not_start_jax_distributed(monkeypatch):
    for key in list(os.environ):
        if key.startswith(("SLURM_", "JAX_COORDINATOR")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("SLURM_NTASKS", "1")
    assert shard.initialize_distributed() is False
    import jax

    assert not jax.distributed.is_initialized()


def test_impossible_layouts_are_config_errors(tiny_config):
    two = tiny_config("parallel.strategy=dp", "parallel.devices=2")
    with pytest.raises(ConfigError, match="parallel.devices=2 but only 1"):
        pretrain(two)
    assert not run_dir_of(two).exists()  # nothing written: the fixed command can still run
    with pytest.raises(ConfigError, match="parallel.strategy='tp'"):
        pretrain(tiny_config("parallel.strategy=tp"))
    with pytest.raises(ConfigError, match="parallel.devices=0"):
        pretrain(tiny_config("parallel.devices=0"))
    cfg = tiny_config()
    layout = shard.make_layout(cfg.parallel, cfg.train.batch_size, cfg.train.grad_accum)
    assert layout == shard.SINGLE and layout.n_devices == 1
    assert dataclasses.asdict(cfg)["parallel"] == {"strategy": "auto", "devices": -1}
