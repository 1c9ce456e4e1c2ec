"""Trials that damage a run's latest checkpoint: the rerun must resume from the one before."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from scaling import records
from scaling.tools.faults.runner import (
    CKPT_EVERY,
    CORRUPT,
    FAULT_STEPS,
    Trial,
    differences,
    fault_run,
    finish,
    run_entry,
)
from scaling.train import rundir


def _largest_file(step_dir: Path) -> Path:
    return max((p for p in step_dir.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def truncate_largest_file(step_dir: Path) -> None:
    path = _largest_file(step_dir)
    os.truncate(path, path.stat().st_size // 2)


def _garble(step_dir: Path) -> None:
    path = _largest_file(step_dir)
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 3, len(data), 61):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _all_garbage(step_dir: Path) -> None:
    for path in step_dir.rglob("*"):
        if path.is_file():
            path.write_bytes(b"\0garbage")


def _empty_tree_metadata(step_dir: Path) -> None:
    for path in step_dir.rglob("_METADATA"):
        path.write_bytes(b"")


def _delete_arrays(step_dir: Path) -> None:
    for path in step_dir.rglob("ocdbt.process_*"):
        shutil.rmtree(path)


DAMAGE: dict[str, Callable[[Path], None]] = {
    "largest file truncated to half": truncate_largest_file,
    "largest file garbled (every 61st byte of its last two thirds)": _garble,
    "every file replaced by garbage": _all_garbage,
    "tree metadata emptied": _empty_tree_metadata,
    "array store deleted": _delete_arrays,
}


def corrupt_trials(
    out_dir: Path, reference: Path, modes: Sequence[str], rng: random.Random
) -> list[Trial]:
    """Stop one run at a random checkpoint, damage that step one way, rerun the same command up
    to the next stop, and so on through `modes`; then finish it.

    A damage survives when the rerun resumes from the previous checkpoint and sets the damaged
    step aside (ckpt_damaged/); all of them when the finished run is bit-identical to the
    reference.
    """
    seed = int(reference.name.rsplit("-s", 1)[1])
    name = f"damaged-{rng.randrange(1 << 30)}"
    run_dir = out_dir / name
    slots = range(2, FAULT_STEPS // CKPT_EVERY)  # checkpoints after the first, before the end
    stops = [CKPT_EVERY * k for k in sorted(rng.sample(slots, len(modes)))]
    found: list[tuple[str, int, list[str]]] = []  # (mode, stop, problems)
    for i, (mode, stop) in enumerate(zip(modes, stops, strict=True)):
        stop_at = [f"train.stop_at_step={stop}"]
        result = run_entry("pretrain", [*fault_run(out_dir, name, seed), *stop_at], out_dir)
        if found:  # this start resumed past the previous damage
            found[-1][2].extend(_resumed_past(run_dir, stops[i - 1], result))
        step_dir = run_dir / rundir.CKPT_DIR / str(stop)
        if result.returncode != 0 or not step_dir.is_dir():
            found.append((mode, stop, [f"no checkpoint at step {stop}: {result.stderr[-200:]}"]))
            continue
        DAMAGE[mode](step_dir)
        found.append((mode, stop, []))
    result = finish(out_dir, name, seed)
    found[-1][2].extend(_resumed_past(run_dir, stops[-1], result))
    diff = differences(run_dir, reference)
    trials = []
    for mode, stop, problems in found:
        detail = "; ".join(problems + diff) or (
            f"resumed from step {stop - CKPT_EVERY}, damaged step set aside"
        )
        trials.append(
            Trial(CORRUPT, f"{mode}, at step {stop} of {name}", not (problems or diff), detail)
        )
    trials[-1].lost = int(bool(diff))
    return trials


def _resumed_past(run_dir: Path, damaged: int, result: subprocess.CompletedProcess) -> list[str]:
    """What went wrong when a start met the damaged checkpoint at step `damaged`."""
    problems = [] if result.returncode == 0 else [f"exit {result.returncode}"]
    resumed = (records.read_record(run_dir) or {}).get("resumed_from_step")
    if resumed != damaged - CKPT_EVERY:
        problems.append(f"resumed from step {resumed}, not {damaged - CKPT_EVERY}")
    if not list((run_dir / "ckpt_damaged").glob(f"{damaged}*")):
        problems.append("the damaged step was not set aside")
    return problems
