"""Time the Approach 3 fit on Epoch's Chinchilla data: the full 4500-start grid fit and 1000
bootstrap refits, cold (first call: includes XLA compilation) and warm; and check that starting
bootstrap refits from the best few optima of the full fit gives the same answer as a full-grid
refit of the same resamples. Prints timings with machine info; asserts nothing about time.

    python experiments/bench_fit.py [--data ../shared/data/chinchilla_svg_extracted.csv]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from scaling.bench.fit_speed import fit_speed

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "chinchilla_svg_extracted.csv"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(DATA))
    p.add_argument("--resamples", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3, help="warm repeats (median reported)")
    p.add_argument("--verify", type=int, default=20, help="resamples refitted on the full grid")
    args = p.parse_args()
    report = fit_speed(args.data, args.resamples, args.repeats, args.verify)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
