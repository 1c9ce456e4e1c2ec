"""Time the Approach 3 fit on Epoch's Chinchilla data: the full 4500-start grid fit and 1000
bootstrap refits, cold (first call: includes XLA compilation) and warm; and check that starting
bootstrap refits from the best few optima of the full fit gives the same answer as a full-grid
refit of the same resamples. Prints timings with machine info; asserts nothing about time.

    python experiments/bench_fit.py [--data ../shared/data/chinchilla_svg_extracted.csv]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from scaling.provenance import cpu_name

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "chinchilla_svg_extracted.csv"


def machine() -> dict:
    import jax

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu": cpu_name(),
        "cores_available": cores,
        "load_average_1_5_15min": [round(v, 2) for v in os.getloadavg()],
        "jax": jax.__version__,
        "jax_backend": jax.default_backend(),
    }


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(DATA))
    p.add_argument("--resamples", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3, help="warm repeats (median reported)")
    p.add_argument("--verify", type=int, default=20, help="resamples refitted on the full grid")
    args = p.parse_args()

    start = time.perf_counter()
    from scaling.analysis import fit

    import_s = time.perf_counter() - start
    pts = fit.load_points(
        args.data, n_col="Model Size", c_col="Training FLOP", loss_col="loss", drop_highest=5
    )
    n, d, loss = (pts[k].to_numpy() for k in ("N", "D", "loss"))
    report = {"machine": machine(), "n_points": len(pts), "import_s": import_s}

    full, report["full_grid_cold_s"] = timed(fit.fit_chinchilla, n, d, loss)
    warm = [timed(fit.fit_chinchilla, n, d, loss)[1] for _ in range(args.repeats)]
    report["full_grid_warm_s"] = statistics.median(warm)
    report["fit"] = {
        **full.law.to_dict(),
        "objective": full.objective,
        "n_starts": full.n_starts,
        "n_starts_at_best": full.n_at_best,
    }

    boot = (n, d, loss, full.bootstrap_starts)
    kw = {"n_resamples": args.resamples, "seed": 0}
    x, report["bootstrap_cold_s"] = timed(fit.bootstrap_chinchilla, *boot, **kw)
    warm = [timed(fit.bootstrap_chinchilla, *boot, **kw)[1] for _ in range(args.repeats)]
    report["bootstrap_warm_s"] = statistics.median(warm)
    report["bootstrap"] = {"n_resamples": args.resamples, "n_starts": len(full.bootstrap_starts)}
    report["verify"] = verify(fit, n, d, loss, x, args.verify)

    print(json.dumps(report, indent=2))
    return 0


def verify(fit, n, d, loss, x_boot, n_check: int) -> dict:
    """Full 4500-start refits of the first n_check resamples vs the reduced-start refits."""
    weights = fit.resample_counts(len(loss), len(x_boot), seed=0)[:n_check]
    rel_obj, rel_par = [], []
    for w, xb in zip(weights, x_boot, strict=False):
        grid = fit.fit_chinchilla(n, d, loss, weights=w)
        f_grid = grid.objective
        f_boot = fit.chinchilla.objective(xb, n, d, loss, w)
        rel_obj.append((f_boot - f_grid) / f_grid)
        law = fit.ChinchillaLaw.from_x(xb).to_dict()
        rel_par.append(max(abs(law[k] / v - 1) for k, v in grid.law.to_dict().items()))
    return {
        "n_resamples_checked": len(rel_obj),
        "max_rel_objective_excess": max(rel_obj),
        "max_rel_param_difference": max(rel_par),
    }


if __name__ == "__main__":
    sys.exit(main())
