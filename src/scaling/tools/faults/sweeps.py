"""Trials of concurrent sweep writers: sweeps sharing one out_dir must leave every point
with one valid completed record, bit-identical to the point run alone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from scaling import records
from scaling.tools.faults.runner import (
    CONCURRENT,
    Trial,
    differences,
    run_entry,
    start_entry,
)
from scaling.train import rundir

# experiment=tiny (4 x 32 tokens a step); two grids that overlap, and their union.
GRID_A = [1024, 2048, 3072]
GRID_B = [2048, 3072, 4096]
SWEEP_NAME = "tiny"
# One run per job: a point's losses are then comparable bit for bit with the point run alone
# (trained in a group, they change in the last float bit with the group's size).
SINGLE_RUN_JOBS = ("hydra.sweeper.grid.group_models=1",)


def _sweep(out_dir: Path, tokens: Sequence[int], *extra: str) -> list[str]:
    grid = ",".join(str(t) for t in tokens)
    return [
        "-m",
        "experiment=tiny",
        f"out_dir={out_dir}",
        f"hydra.sweeper.grid.tokens=[{grid}]",
        *extra,
    ]


def _point_problems(run_dir: Path) -> list[str]:
    """What is wrong with a sweep point's run dir: its record, metrics log and checkpoints."""
    record = records.read_record(run_dir)
    if record is None:
        return ["no readable record.json"]
    if record.get("status") != records.STATUS_COMPLETED:
        return [f"status {record.get('status')!r}: {record.get('reason')}"]
    problems = []
    lines = (run_dir / records.METRICS_FILE).read_text(encoding="utf-8").splitlines()
    try:
        steps = [json.loads(line)["step"] for line in lines]
    except (ValueError, KeyError):
        steps = []
        problems.append("metrics.jsonl has a line that does not parse")
    if steps and (steps != sorted(set(steps)) or steps[-1] != record["total_steps"]):
        problems.append(f"metrics steps {steps[:3]}...{steps[-3:]} not once each up to the end")
    ckpt = run_dir / rundir.CKPT_DIR
    if any("tmp" in p.name for p in ckpt.iterdir()) or (run_dir / "ckpt_damaged").exists():
        problems.append(f"stray checkpoint dirs: {sorted(p.name for p in ckpt.iterdir())}")
    return problems


def concurrent_trials(
    work: Path,
    grid_a: Sequence[int] = GRID_A,
    grid_b: Sequence[int] = GRID_B,
    n_jobs: int = 2,
    extra: Sequence[str] = SINGLE_RUN_JOBS,
) -> list[Trial]:
    """Two sweeps of overlapping grids and a joblib sweep of their union (n_jobs workers), all
    started together on one out_dir and sweep name; then the same union alone, to compare.

    Each point survives when it has one completed record, a metrics log with every step once,
    no stray checkpoint, and losses and final parameters bit-identical to the point run alone.
    """
    shared, alone = work / "shared", work / "alone"
    work.mkdir(parents=True, exist_ok=True)
    launches = [
        _sweep(shared, grid_a, *extra),
        _sweep(shared, grid_b, *extra),
        _sweep(
            shared,
            sorted({*grid_a, *grid_b}),
            *extra,
            "hydra/launcher=joblib",
            f"hydra.launcher.n_jobs={n_jobs}",
        ),
    ]
    procs = [start_entry("pretrain", o, work, keep_stdout=True) for o in launches]
    logs = [p.communicate(timeout=900)[0] for p in procs]
    waits = sum(log.count("waiting for") for log in logs)
    solo = run_entry("pretrain", _sweep(alone, sorted({*grid_a, *grid_b}), *extra), work, 900)
    trials = []
    names = sorted(p.name for p in alone.iterdir() if (p / records.RECORD_FILE).exists())
    for name in names:
        problems = _point_problems(shared / name)
        if not problems:
            problems = differences(shared / name, alone / name)
        detail = "; ".join(problems) or "one completed record, every step once, exact"
        trials.append(Trial(CONCURRENT, f"point {name}", not problems, detail, int(bool(problems))))
    manifest_problems = []
    try:
        manifest = json.loads((shared / ".sweeps" / f"{SWEEP_NAME}.json").read_text())
        listed = sorted(p["run_name"] for p in manifest["points"])
        if listed != names:
            manifest_problems.append(f"manifest lists {listed}, the points are {names}")
    except (OSError, ValueError, KeyError, TypeError) as err:
        manifest_problems.append(f"manifest unreadable: {err}")
    if solo.returncode != 0 or not names:
        manifest_problems.append(f"the solo sweep failed: {solo.stdout[-300:]}")
    detail = "; ".join(manifest_problems) or (
        f"valid, lists all {len(names)} points; {len(procs)} sweeps waited {waits} times "
        "for a point another was training"
    )
    trials.append(Trial(CONCURRENT, f".sweeps/{SWEEP_NAME}.json", not manifest_problems, detail))
    return trials
