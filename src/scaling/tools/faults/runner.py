"""The fault campaign's runs: the entry points driven in subprocesses, the tiny fault run,
and the comparison of a run with its uninterrupted twin.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scaling import records

ROOT = Path(__file__).resolve().parents[4]
ENTRIES = {
    "pretrain": ROOT / "experiments" / "pretrain.py",
    "finetune": ROOT / "experiments" / "finetune.py",
}
EXIT_BAD_INPUT = 2
EXIT_PREEMPTED = 75  # scaling.cli.EXIT_PREEMPTED
EXIT_INTERRUPTED = 130  # scaling.train.signals.EXIT_INTERRUPTED

# A tiny model on the synthetic corpus: 2 layers of width 32, batches of 4 x 32 tokens.
TINY = [
    "model=tiny",
    "data.seq_len=32",
    "data.synthetic.n_facts=512",
    "train.batch_size=4",
    "train.eval_batches=2",
    "train.progress=off",
]
# 120 steps with a checkpoint every 10, so kills land between and during saves.
FAULT_RUN = [
    *TINY,
    "train.tokens=15360",
    "train.ckpt_every=10",
    "train.eval_every=40",
    "train.log_every=2",
]
FAULT_STEPS = 120
CKPT_EVERY = 10

KILL, PREEMPT, INTERRUPT, CORRUPT, BAD_INPUT, CONCURRENT = (
    "kill (SIGKILL)",
    "preemption (SIGTERM/SIGUSR1)",
    "Ctrl-C (SIGINT, once or twice)",
    "damaged latest checkpoint",
    "invalid input",
    "concurrent sweep writers",
)


@dataclass
class Trial:
    """One fault and what became of it."""

    kind: str
    name: str
    ok: bool  # survived (recovered exactly), or for a bad input, rejected cleanly
    detail: str
    lost: int = 0  # runs left neither completed and exact nor resumable


# --- driving the entry points --------------------------------------------------------------------


def entry_env() -> dict[str, str]:
    """The entry points' environment: CPU unless told otherwise (the bit-identical checks need
    deterministic kernels)."""
    return {**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}


def command(entry: str, overrides: Sequence[str]) -> list[str]:
    return [sys.executable, str(ENTRIES[entry]), *overrides]


def run_entry(
    entry: str, overrides: Sequence[str], cwd: Path, timeout: float = 600
) -> subprocess.CompletedProcess:
    return subprocess.run(
        command(entry, overrides),
        cwd=cwd,
        env=entry_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_entry(
    entry: str, overrides: Sequence[str], cwd: Path, keep_stdout: bool = False
) -> subprocess.Popen:
    """The entry point started: stderr piped, stdout dropped, or with `keep_stdout` piped
    together with stderr."""
    return subprocess.Popen(
        command(entry, overrides),
        cwd=cwd,
        env=entry_env(),
        stdout=subprocess.PIPE if keep_stdout else subprocess.DEVNULL,
        stderr=subprocess.STDOUT if keep_stdout else subprocess.PIPE,
        text=True,
    )


def last_step(run_dir: Path) -> int:
    rows = records.read_metrics(run_dir)
    return rows[-1]["step"] if rows else 0


def wait_for_step(proc: subprocess.Popen, run_dir: Path, step: int, timeout: float = 300) -> bool:
    """True once `run_dir` has logged `step` while `proc` still runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if (run_dir / records.METRICS_FILE).exists() and last_step(run_dir) >= step:
            return True
        time.sleep(0.005)
    return False


def fault_run(out_dir: Path, run_name: str, seed: int = 0) -> list[str]:
    return [*FAULT_RUN, f"train.seed={seed}", f"out_dir={out_dir}", f"run_name={run_name}"]


def finish(out_dir: Path, run_name: str, seed: int) -> subprocess.CompletedProcess:
    """Run (or resume) the fault run to its end."""
    return run_entry("pretrain", fault_run(out_dir, run_name, seed), out_dir.parent)


# --- comparing a run with its uninterrupted twin -------------------------------------------------


def final_params(run_dir: Path) -> tuple[int, Any]:
    """(step, params) of the run's latest checkpoint, read through orbax only."""
    from scaling.train.source import load_source, restore_params

    return restore_params(load_source(str(run_dir)))


def differences(run_dir: Path, reference: Path) -> list[str]:
    """How `run_dir` differs from `reference`: status, logged losses, final parameters (bits)."""
    import jax

    record = records.read_record(run_dir) or {}
    if record.get("status") != records.STATUS_COMPLETED:
        return [f"status {record.get('status')!r}: {record.get('reason')}"]
    found = []
    strip = [{k: v for k, v in r.items() if k != "time"} for r in records.read_metrics(run_dir)]
    want = [{k: v for k, v in r.items() if k != "time"} for r in records.read_metrics(reference)]
    if strip != want:
        at = next((a.get("step") for a, b in zip(strip, want, strict=False) if a != b), None)
        found.append(f"metrics differ ({len(strip)} rows vs {len(want)}, first at step {at})")
    (step, params), (ref_step, ref_params) = final_params(run_dir), final_params(reference)
    if step != ref_step:
        found.append(f"final checkpoint at step {step}, reference {ref_step}")
    leaves, ref_leaves = jax.tree.leaves(params), jax.tree.leaves(ref_params)
    same = len(leaves) == len(ref_leaves) and all(
        np.asarray(a).tobytes() == np.asarray(b).tobytes()
        for a, b in zip(leaves, ref_leaves, strict=True)
    )
    if not same:
        found.append("final parameters differ")
    return found


def reference_run(out_dir: Path, seed: int = 0) -> Path:
    """The uninterrupted run every faulted run must match."""
    result = finish(out_dir, f"reference-s{seed}", seed)
    if result.returncode != 0:
        raise RuntimeError(f"the reference run failed: {result.stderr.strip()[-500:]}")
    return out_dir / f"reference-s{seed}"
