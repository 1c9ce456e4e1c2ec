"""The scaling-law fit's speed: the full-grid Approach 3 fit and its bootstrap, cold and warm,
and a check that bootstrap refits from the full fit's best optima match full-grid refits."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from scaling.provenance import cores_available, cpu_name

if TYPE_CHECKING:  # numpy stays unimported until the timed import of the fit
    import numpy as np


def machine() -> dict[str, Any]:
    """The host and JAX's backend, with the load average the timings shared the CPU with."""
    import jax

    return {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu": cpu_name(),
        "cores_available": cores_available(),
        "load_average_1_5_15min": [round(v, 2) for v in os.getloadavg()],
        "jax": jax.__version__,
        "jax_backend": jax.default_backend(),
    }


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """fn(*args, **kwargs) and the seconds it took."""
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def fit_speed(data: str, resamples: int, repeats: int, n_verify: int) -> dict[str, Any]:
    """The timings, the fit and the check (`verify`) on the points of the CSV `data`: cold is
    the first call (XLA compilation included), warm the median of `repeats` more."""
    start = time.perf_counter()
    from scaling.analysis import fit

    import_s = time.perf_counter() - start
    pts = fit.load_points(
        data, n_col="Model Size", c_col="Training FLOP", loss_col="loss", drop_highest=5
    )
    n, d, loss = (pts[k].to_numpy() for k in ("N", "D", "loss"))
    report = {"machine": machine(), "n_points": len(pts), "import_s": import_s}

    full, report["full_grid_cold_s"] = timed(fit.fit_chinchilla, n, d, loss)
    warm = [timed(fit.fit_chinchilla, n, d, loss)[1] for _ in range(repeats)]
    report["full_grid_warm_s"] = statistics.median(warm)
    report["fit"] = {
        **full.law.to_dict(),
        "objective": full.objective,
        "n_starts": full.n_starts,
        "n_starts_at_best": full.n_at_best,
    }

    boot = (n, d, loss, full.bootstrap_starts)
    kw = {"n_resamples": resamples, "seed": 0}
    x, report["bootstrap_cold_s"] = timed(fit.bootstrap_chinchilla, *boot, **kw)
    warm = [timed(fit.bootstrap_chinchilla, *boot, **kw)[1] for _ in range(repeats)]
    report["bootstrap_warm_s"] = statistics.median(warm)
    report["bootstrap"] = {"n_resamples": resamples, "n_starts": len(full.bootstrap_starts)}
    report["verify"] = verify(fit, n, d, loss, x, n_verify)

    return report


def verify(
    fit: ModuleType,
    n: np.ndarray,
    d: np.ndarray,
    loss: np.ndarray,
    x_boot: np.ndarray,
    n_check: int,
) -> dict[str, Any]:
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
