"""A fault campaign: kill, preempt, damage and misfeed real tiny runs; count what survives.

Every trial drives the public entry points (`experiments/pretrain.py`, `experiments/finetune.py`)
in subprocesses, as a researcher or a cluster would: real JAX, real orbax checkpoints on disk,
real signals, real Hydra sweeps. A run that is killed, preempted or finds its latest checkpoint
damaged must end bit-identical (every logged loss, the final parameters) to the same run left
alone; a bad input must be refused with exit status 2 and one `error:` line naming the key or
file, before anything is written; sweeps writing into one directory at once must leave every
point with one valid completed record. `python experiments/reliability.py` runs the campaign
and writes the Markdown report; tests call the same functions at smaller counts.
"""

from __future__ import annotations

import random
import shutil
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scaling.tools.faults.bad_inputs import bad_input_trials, bad_inputs
from scaling.tools.faults.damage import DAMAGE, corrupt_trials
from scaling.tools.faults.runner import (
    BAD_INPUT,
    CONCURRENT,
    CORRUPT,
    FAULT_RUN,
    INTERRUPT,
    KILL,
    PREEMPT,
    Trial,
    reference_run,
)
from scaling.tools.faults.stops import interrupt_trials, kill_trials, preempt_trials
from scaling.tools.faults.sweeps import concurrent_trials


@dataclass
class Campaign:
    """What a campaign ran: its trials, its settings, when it started and how long it took."""

    trials: list[Trial]
    settings: dict[str, Any]
    started: datetime
    wall_s: float


def run_campaign(
    work: Path,
    kills: int = 5,
    preemptions: Sequence[signal.Signals] = (signal.SIGTERM, signal.SIGUSR1) * 2,
    interrupts: Sequence[int] = (1, 2, 1, 2),
    damage: Sequence[str] = tuple(DAMAGE),
    typed: int = 6,
    jobs: int = 2,
    seed: int = 0,
    say: Callable[[str], None] = print,
) -> Campaign:
    """Every fault once per setting, in `work` (emptied first); the trials and what was run."""
    started, t0 = datetime.now(UTC), time.perf_counter()
    shutil.rmtree(work, ignore_errors=True)
    runs = work / "runs"
    runs.mkdir(parents=True)
    rng = random.Random(seed)
    trials: list[Trial] = []

    def stage(title: str, make: Callable[[], list[Trial]]) -> None:
        t = time.perf_counter()
        found = make()
        trials.extend(found)
        ok = sum(x.ok for x in found)
        say(f"{title}: {ok}/{len(found)} ok in {time.perf_counter() - t:.0f} s")

    say("reference run ...")
    reference = reference_run(runs)
    stage(KILL, lambda: kill_trials(runs, reference, kills, rng))
    stage(PREEMPT, lambda: preempt_trials(runs, reference, preemptions, rng))
    stage(INTERRUPT, lambda: interrupt_trials(runs, reference, interrupts, rng))
    stage(CORRUPT, lambda: corrupt_trials(runs, reference, damage, rng))
    cases = bad_inputs(work / "bad", reference, typed, rng)
    stage(BAD_INPUT, lambda: bad_input_trials(cases, work / "bad", jobs))
    stage(CONCURRENT, lambda: concurrent_trials(work / "sweeps"))
    settings = {
        "kills": kills,
        "preemptions": [s.name for s in preemptions],
        "Ctrl-C presses per stop": list(interrupts),
        "damage modes": len(damage),
        "invalid inputs": len(cases),
        "seed": seed,
        "fault run": " ".join(FAULT_RUN),
    }
    return Campaign(trials, settings, started, time.perf_counter() - t0)
