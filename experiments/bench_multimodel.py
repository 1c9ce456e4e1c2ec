"""Aggregate training throughput of K runs of one shape trained together (scaling.train.loop)
against the same K runs trained one at a time, and how far their losses drift apart.

    python experiments/bench_multimodel.py                  # tiny, n110k, n393k; K=4; CPU
    python experiments/bench_multimodel.py --rungs n1m8,n3m1 --k 8 --batch-size 32   # a GPU

Per rung: the step alone (single-run vs K-run vmapped step, alternating timed blocks) and end to
end (K solo runs, then the same K as a group). Writes results/perf/multimodel_<device>.md (or
--out) after every rung (scaling.bench.multimodel). `--budget-s S` bounds the command: once S
seconds are spent no new rung starts (a rung in flight is not cut: bound the process from
outside too, as `make bench-gpu` does). Asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scaling.bench.multimodel import Settings, run

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    d = Settings()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rungs", default=d.rungs)
    p.add_argument("--k", type=int, default=d.k, help="runs per group")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--seq-len", type=int, default=d.seq_len)
    p.add_argument("--steps", type=int, default=d.steps, help="steps of each end-to-end run")
    p.add_argument("--reps", type=int, default=d.reps, help="alternating timed blocks per side")
    p.add_argument("--block", type=int, default=d.block, help="steps per timed block")
    p.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="wall-clock seconds for the whole command; no rung starts once they are spent",
    )
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    if args.budget_s is not None and args.budget_s < 0:
        p.error(f"--budget-s {args.budget_s:g}: must be >= 0")
    known = {path.stem for path in (ROOT / "conf" / "model").glob("*.yaml")}
    unknown = sorted(set(args.rungs.split(",")) - known)
    if unknown:
        p.error(f"--rungs: unknown {unknown}; known: {sorted(known)}")
    return run(ROOT, Settings(**vars(args)), sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
