"""The bench command (experiments/bench.py): its arguments, checked, and the run they ask for.

Throughput of our step against the PyTorch peer per shape, or peak memory per ladder rung; the
report is rewritten after every row (scaling.bench.runner) so that a kill loses at most one.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from scaling.bench.measure import SIDES, Budget
from scaling.bench.runner import bench_shapes, ladder_memory, now_utc, run_report
from scaling.bench.shapes import CPU_SHAPES, GPU_SHAPES, SHAPES, Shape
from scaling.bench.tables import markdown
from scaling.bench.variants import parse_variants
from scaling.provenance import git_commit
from scaling.sweep.ladder import ladder


def parser(description: str) -> argparse.ArgumentParser:
    """The command's arguments (`description` heads its --help)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--device", choices=("cpu", "gpu"), default=None, help="default: detected")
    p.add_argument("--shapes", default=None, help=f"comma-separated, of {sorted(SHAPES)}")
    p.add_argument("--sides", default=None, help=f"comma-separated, of {list(SIDES)}")
    p.add_argument("--reps", type=int, default=5, help="interleaved blocks per side")
    p.add_argument("--block-s", type=float, default=3.0, help="seconds per timed block")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per side first")
    p.add_argument(
        "--grad-accum",
        type=int,
        default=None,
        help="micro-batches per step, every side (default: ours the Trainer's choice for the "
        "device, the peer's the whole batch)",
    )
    p.add_argument(
        "--ladder",
        nargs="?",
        const="all",
        default=None,
        help="peak memory per ladder rung instead of the shapes; optionally which rungs",
    )
    p.add_argument("--ladder-batch", type=int, default=8, help="sequences per ladder step")
    p.add_argument(
        "--memory-cap-gib",
        type=float,
        default=None,
        help="ladder: a rung trains when its step (plain, else with remat) peaks at or below "
        "this much device memory (default on a GPU: 80, one 80 GB card, whatever this card's "
        "size)",
    )
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:key=value[,key=value...]",
        help="add a side ours-NAME: our step with these ModelConfig fields replaced "
        "(repeatable), e.g. xla:attention=xla, remat:remat=true",
    )
    p.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="wall-clock seconds for the whole command; shapes and rungs it leaves no time "
        "for are rows saying they were skipped",
    )
    p.add_argument("--out", type=Path, default=None, help="default: results/perf/<device>")
    return p


def run(
    p: argparse.ArgumentParser, args: argparse.Namespace, argv: Sequence[str], results: Path
) -> int:
    """Check `args` (p.error on a bad one, before any child starts), measure, write the tables
    (to --out, else `results`/<device>) and print them; the exit status: 1 if nothing was
    measured. `argv` are the command's own arguments, recorded in the report."""
    device = args.device or ("gpu" if has_gpu() else "cpu")
    names = args.shapes.split(",") if args.shapes else None
    unknown = sorted(set(names or ()) - set(SHAPES))
    if unknown:
        p.error(f"--shapes: unknown {unknown}; known: {sorted(SHAPES)}")
    if names:
        shapes = [SHAPES[n] for n in names]
    elif args.ladder:
        shapes = []  # --ladder alone measures the rungs only
    else:
        shapes = list(CPU_SHAPES if device == "cpu" else GPU_SHAPES)
    if args.grad_accum is not None:
        uneven = [s.name for s in shapes if args.grad_accum < 1 or s.batch_size % args.grad_accum]
        if uneven:
            p.error(f"--grad-accum {args.grad_accum}: does not divide the batch of {uneven}")
    sides = tuple(args.sides.split(",")) if args.sides else None
    if sides and set(sides) - set(SIDES):
        p.error(f"--sides: unknown {sorted(set(sides) - set(SIDES))}")
    try:
        variants = parse_variants(args.variant, shapes)  # before any child starts
    except ValueError as err:
        p.error(str(err))
    if variants and not shapes:
        p.error("--variant: no shapes to run it on (the ladder measures our plain step)")
    if args.budget_s is not None and args.budget_s < 0:
        p.error(f"--budget-s {args.budget_s:g}: must be >= 0")
    cap = args.memory_cap_gib
    if cap is None and device == "gpu":
        cap = 80.0  # the question asked of the ladder: does it train on one 80 GB card?
    if cap is not None and cap <= 0:
        p.error(f"--memory-cap-gib {cap:g}: must be positive")
    rungs = None
    if args.ladder:
        wanted = None if args.ladder == "all" else set(args.ladder.split(","))
        rungs = [  # the largest first (ladder_memory)
            Shape(c.name, c.n_layers, c.d_model, c.n_heads, 256, args.ladder_batch, 1024)
            for c in reversed(ladder())
            if wanted is None or c.name in wanted
        ]
        if wanted and len(rungs) != len(wanted):
            p.error(f"--ladder: unknown rungs {sorted(wanted - {r.name for r in rungs})}")

    budget = Budget(args.budget_s)  # counted from here, where the children start
    report = {
        "command": "python " + shlex.join(["experiments/bench.py", *argv]),
        "date": now_utc(),
        "git_commit": git_commit(),
        "device": device,
        "reps": args.reps,
        "block_s": args.block_s,
        "budget_s": args.budget_s,
        "variants": variants,
    }
    shape_rows = bench_shapes(
        shapes, device, sides, args.reps, args.block_s, args.warmup, args.grad_accum,
        variants, budget,
    )  # fmt: skip
    ladder_rows = None
    if rungs is not None:
        report["ladder_seq_len"], report["ladder_batch_size"] = 1024, args.ladder_batch
        report["ladder_memory_cap_gib"] = cap
        ladder_rows = ladder_memory(
            rungs, device, reps=1, block_s=args.block_s, warmup=2, cap_gib=cap, budget=budget
        )
    out = args.out or results / device
    measured = run_report(report, out, shape_rows, ladder_rows)
    print(f"wrote {out.with_suffix('.md')} and {out.with_suffix('.json')}", file=sys.stderr)
    print(markdown(report))
    if not measured:
        print("nothing measured: every shape failed or was skipped", file=sys.stderr)
        return 1
    return 0


def has_gpu() -> bool:
    """Whether nvidia-smi lists a GPU."""
    # Asked without importing jax here: this process must not claim the accelerator's memory.
    import shutil
    import subprocess

    smi = shutil.which("nvidia-smi")
    return smi is not None and subprocess.run([smi, "-L"], capture_output=True).returncode == 0
