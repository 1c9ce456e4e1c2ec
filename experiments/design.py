"""Check a sweep's design before running it: can its grid recover a known scaling law?

    python experiments/design.py experiment=isoflop_cpu \
        --law E=0.8263,A=20,B=40,alpha=0.4,beta=0.3 --noise 0.01 --out results/design/README.md

Samples the law on exactly the points the experiment's grid would train (scaling.sweep.grid.plan,
composed as the sweeper composes them), with log-normal noise of the given sd, fits as the
study does and prints how well each quantity comes back (scaling.analysis.fit.design). `--law-from
results/isoflop/fits.json` takes the law a study measured (its E-fixed Approach 3 fit), and
`--noise-from results/isoflop/points.csv` the spread between its seeds (the sd of log loss,
from the points that ran two or more seeds). Bad input prints one error line, exit code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path

from scaling.reports.design import main

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"

if __name__ == "__main__":
    sys.exit(main(CONF_DIR))
