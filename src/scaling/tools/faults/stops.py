"""Trials that stop a run and restart it: SIGKILL, preemption signals and Ctrl-C.

Each run is finished after its stops and must match the uninterrupted reference bit for bit.
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scaling import records
from scaling.tools.faults.runner import (
    CKPT_EVERY,
    EXIT_INTERRUPTED,
    EXIT_PREEMPTED,
    FAULT_STEPS,
    INTERRUPT,
    KILL,
    PREEMPT,
    Trial,
    differences,
    fault_run,
    finish,
    last_step,
    start_entry,
    wait_for_step,
)
from scaling.train import rundir


def next_target(rng: random.Random, after: int, left: int) -> int:
    """A random step past `after` (the last one logged, so a restart's old rows do not trigger
    the fault early), leaving room for `left` more faults before the end."""
    lo = after + 2
    return rng.randrange(lo, max(lo + 1, lo + (FAULT_STEPS - 3 - lo) // (left + 1)))


def kill_trials(out_dir: Path, reference: Path, n_kills: int, rng: random.Random) -> list[Trial]:
    """SIGKILL one run at `n_kills` random steps, restarting it each time; then finish it.

    Each kill survives when the next start resumes from a checkpoint at or before the step the
    run had reached, and the finished run matches the reference bit for bit.
    """
    seed = int(reference.name.rsplit("-s", 1)[1])
    name = f"killed-{rng.randrange(1 << 30)}"
    run_dir = out_dir / name
    kills: list[tuple[int, int, bool]] = []  # (aimed step, step logged when killed, killed?)
    resumes = []  # resumed_from_step of each later start
    for i in range(n_kills):
        target = next_target(rng, last_step(run_dir), n_kills - i - 1)
        proc = start_entry("pretrain", fault_run(out_dir, name, seed), out_dir.parent)
        if wait_for_step(proc, run_dir, target):
            proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=300)
        if kills:
            resumes.append((records.read_record(run_dir) or {}).get("resumed_from_step") or 0)
        kills.append((target, last_step(run_dir), proc.returncode == -signal.SIGKILL))
    result = finish(out_dir, name, seed)
    resumes.append((records.read_record(run_dir) or {}).get("resumed_from_step") or 0)
    diff = differences(run_dir, reference) if result.returncode == 0 else [result.stderr[-300:]]
    trials = []
    for i, ((target, at, killed), resumed) in enumerate(zip(kills, resumes, strict=True)):
        problems = [] if killed else ["the run ended before the kill landed"]
        if resumed > at or resumed % CKPT_EVERY:
            problems.append(f"the next start resumed from step {resumed}")
        what = f"kill {i + 1}/{n_kills} of {name} aimed at step {target}, landed after step {at}"
        detail = "; ".join(problems + diff) or f"next start resumed from step {resumed}"
        trials.append(Trial(KILL, what, not problems and not diff, detail))
    trials[-1].lost = int(bool(diff))
    return trials


def preempt_trials(
    out_dir: Path, reference: Path, signals: Sequence[signal.Signals], rng: random.Random
) -> list[Trial]:
    """Send each signal at a random step: exit 75, status preempted, a checkpoint where it
    stopped, and the next start resumes from exactly there; then finish the run and compare."""
    return signal_trials(out_dir, reference, [(sig, 1) for sig in signals], rng, "preempted")


def interrupt_trials(
    out_dir: Path, reference: Path, presses: Sequence[int], rng: random.Random
) -> list[Trial]:
    """Press Ctrl-C (SIGINT) `presses[i]` times in a row at a random step, as a user at a
    terminal: exit 130, no traceback, status interrupted, one line saying how to resume. Once: a
    checkpoint where it stopped, resumed from exactly there. Twice: stopped at once, resumed
    from a checkpoint at or before that step. Then finish the run and compare."""
    stops = [(signal.SIGINT, n) for n in presses]
    return signal_trials(out_dir, reference, stops, rng, "interrupted")


# What each signal must leave: (exit status, record status).
EXPECTED = {
    signal.SIGTERM: (EXIT_PREEMPTED, records.STATUS_PREEMPTED),
    signal.SIGUSR1: (EXIT_PREEMPTED, records.STATUS_PREEMPTED),
    signal.SIGINT: (EXIT_INTERRUPTED, records.STATUS_INTERRUPTED),
}


def signal_trials(
    out_dir: Path,
    reference: Path,
    stops: Sequence[tuple[signal.Signals, int]],
    rng: random.Random,
    prefix: str,
) -> list[Trial]:
    """One run stopped by each (signal, times sent) of `stops` in turn, at random steps,
    restarted after each; then finished and compared with the reference bit for bit."""
    seed = int(reference.name.rsplit("-s", 1)[1])
    name = f"{prefix}-{rng.randrange(1 << 30)}"
    run_dir = out_dir / name
    # Per stop: (signal, times sent, aimed step, stopped step, problems, how it stopped).
    found: list[tuple[Any, ...]] = []
    resumes = []  # resumed_from_step of each later start
    for i, (sig, times) in enumerate(stops):
        target = next_target(rng, last_step(run_dir), len(stops) - i - 1)
        proc = start_entry("pretrain", fault_run(out_dir, name, seed), out_dir.parent)
        if wait_for_step(proc, run_dir, target):
            for _ in range(times):
                proc.send_signal(sig)
                time.sleep(0.01)
        _, stderr = proc.communicate(timeout=300)
        record = records.read_record(run_dir) or {}
        if found:
            resumes.append(record.get("resumed_from_step"))
        stopped = record.get("steps")
        problems = _stop_problems(sig, proc.returncode, stderr, record)
        if times == 1 and not (run_dir / rundir.CKPT_DIR / str(stopped)).is_dir():
            problems.append(f"no checkpoint at step {stopped}, where it stopped")
        # A second press may land after the first stop's save has ended the process.
        how = "stopped at once" if "second SIGINT" in str(record.get("reason")) else "saved"
        found.append((sig, times, target, stopped, problems, how))
    result = finish(out_dir, name, seed)
    resumes.append((records.read_record(run_dir) or {}).get("resumed_from_step"))
    diff = differences(run_dir, reference) if result.returncode == 0 else [result.stderr[-300:]]
    trials = []
    for (sig, times, target, stopped, problems, how), resumed in zip(found, resumes, strict=True):
        resumed = resumed or 0
        # Stopped at once (a second SIGINT), it may resume from any checkpoint up to the stop
        # (the saves in flight are lost); the comparison with the reference checks the rest.
        at_once = times > 1 and resumed <= (stopped or 0)
        if resumed != stopped and not at_once:
            problems.append(f"the next start resumed from step {resumed}")
        sent = sig.name if times == 1 else f"{times} x {sig.name}"
        what = f"{sent} to {name} aimed at step {target}: stopped at step {stopped}"
        done = f"exit {EXPECTED[sig][0]}, {how}, resumed from step {resumed}"
        detail = "; ".join(problems + diff) or done
        kind = INTERRUPT if sig == signal.SIGINT else PREEMPT
        trials.append(Trial(kind, what, not problems and not diff, detail))
    trials[-1].lost = int(bool(diff))
    return trials


def _stop_problems(
    sig: signal.Signals, returncode: int, stderr: str, record: dict[str, Any]
) -> list[str]:
    """What is wrong with how a signal stopped a run: its exit, record and words to the user."""
    exit_status, status = EXPECTED[sig]
    problems = []
    if returncode != exit_status:
        problems.append(f"exit {returncode}: {stderr.strip()[-200:]}")
    if record.get("status") != status or sig.name not in str(record.get("reason")):
        problems.append(f"status {record.get('status')!r} ({record.get('reason')})")
    if "Traceback" in stderr or "terminate called" in stderr:
        problems.append(f"a traceback: {stderr.strip()[-200:]}")
    if sig == signal.SIGINT and "rerun" not in stderr:
        problems.append("no line saying how to resume")
    return problems
