"""Chinchilla Approaches 1 and 2: the compute-optimal frontier N_opt(C), D_opt(C) measured
directly from runs, then power laws N_opt = G_N C^a and D_opt = G_D C^b fitted in log space.

Approach 1 (minimum-loss envelope): C = 6 N D at every logged point of every training curve;
in each log-spaced bin of C the point of lowest loss gives (N_opt, D_opt).
Approach 2 (IsoFLOP profiles): runs grouped by compute budget; per budget a parabola of loss
against log N, whose vertex is N_opt(C) and D_opt = C / (6 N_opt). Only budgets whose vertex
lies inside their sizes enter the power laws; the others are listed with `interior` false.
"""

from __future__ import annotations

import numpy as np

from scaling.analysis.fit._validate import positive
from scaling.analysis.fit.bootstrap import counts, resample_groups, resample_within
from scaling.analysis.fit.regression import log_design, lstsq
from scaling.analysis.fit.results import FitResult, estimates

_MIN_POINTS = 3  # power-law fits need at least this many frontier points


def _power_laws(c: np.ndarray, n_opt: np.ndarray, d_opt: np.ndarray) -> dict[str, float]:
    """a, b, G_N, G_D of N_opt = G_N C^a, D_opt = G_D C^b (NaN with too few points)."""
    if len(c) < _MIN_POINTS:
        return dict.fromkeys(("a", "b", "G_N", "G_D"), np.nan)
    design = log_design(c)
    log_gn, a = lstsq(design, np.log(n_opt))
    log_gd, b = lstsq(design, np.log(d_opt))
    return {"a": a, "b": b, "G_N": np.exp(log_gn), "G_D": np.exp(log_gd)}


def _samples(fits: list[dict[str, float]]) -> dict[str, np.ndarray]:
    return {k: np.array([f[k] for f in fits]) for k in ("a", "b", "G_N", "G_D")}


def _info(
    samples: dict[str, np.ndarray] | None, seed: int, level: float, resampling: str, **extra
) -> dict:
    n_resamples = 0 if samples is None else len(samples["a"])
    failed = 0 if samples is None else int(np.sum(~np.isfinite(samples["a"])))
    boot = {
        "n_resamples": n_resamples,
        "n_failed": failed,  # resamples with fewer than 3 frontier points: left out
        "seed": seed,
        "level": level,
        "interval": "percentile",
    }
    return {
        "form": "N_opt = G_N C^a, D_opt = G_D C^b",
        **extra,
        "bootstrap": {**boot, "resampling": resampling},
    }


# --- Approach 1 -------------------------------------------------------------------------------


def envelope_points(
    n: np.ndarray, d: np.ndarray, loss: np.ndarray, edges: np.ndarray
) -> dict[str, np.ndarray]:
    """Per non-empty bin of C = 6ND (bins given by `edges`): C, N, D and loss of the point of
    minimum loss."""
    c = 6.0 * n * d
    bins = np.digitize(c, edges) - 1
    inside = (bins >= 0) & (bins < len(edges) - 1)
    idx = np.flatnonzero(inside)
    order = idx[np.lexsort((loss[idx], bins[idx]))]  # by bin, then loss
    first = order[np.r_[True, bins[order][1:] != bins[order][:-1]]] if len(order) else order
    return {"C": c[first], "N_opt": n[first], "D_opt": d[first], "loss": loss[first]}


def c_bins(
    n: np.ndarray, d: np.ndarray, n_bins: int, c_range: tuple[float, float] | None = None
) -> np.ndarray:
    """Edges of n_bins log-spaced bins spanning c_range (default: all of C = 6ND)."""
    c = 6.0 * np.asarray(n, float) * np.asarray(d, float)
    low, high = c_range if c_range is not None else (c.min(), c.max() * (1 + 1e-12))
    return np.geomspace(low, high, n_bins + 1)


def envelope_fit(
    run: np.ndarray,
    n: np.ndarray,
    d: np.ndarray,
    loss: np.ndarray,
    *,
    n_bins: int = 30,
    c_range: tuple[float, float] | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> FitResult:
    """Approach 1 from training-curve rows (run id, N, tokens seen D, loss at that point).

    Bootstrap resamples whole runs with replacement (a curve's points are not independent) and
    recomputes the envelope on the same bins."""
    run = np.asarray(run).ravel()
    n, d, loss = positive("N, D, loss", n, d, loss)
    if len(run) != len(loss):
        raise ValueError(f"run ids ({len(run)}) and points ({len(loss)}) differ in length")
    sizes = np.unique(n)
    if len(sizes) < 2:
        # Every envelope point would have this one N: N_opt(C) flat by construction (a = 0)
        # and D_opt = C/(6N) (b = 1), which says nothing about the frontier.
        raise ValueError(
            f"Approach 1 needs runs of at least 2 model sizes; all {len(np.unique(run))} runs "
            f"have N = {sizes[0]:.4g}, so the envelope cannot tell which size is optimal"
        )
    edges = c_bins(n, d, n_bins, c_range)
    env = envelope_points(n, d, loss, edges)
    point = _power_laws(env["C"], env["N_opt"], env["D_opt"])
    if not np.isfinite(point["a"]):
        raise ValueError(f"only {len(env['C'])} non-empty bins of C; need {_MIN_POINTS}")
    samples = None
    if n_bootstrap:
        fits = []
        for rows in resample_groups(run, n_bootstrap, seed):
            e = envelope_points(n[rows], d[rows], loss[rows], edges)
            fits.append(_power_laws(e["C"], e["N_opt"], e["D_opt"]))
        samples = _samples(fits)
    table = [dict(zip(env, vals, strict=True)) for vals in zip(*env.values(), strict=True)]
    return FitResult(
        method="chinchilla_approach1",
        params=estimates(point, samples, level),
        n_points=len(loss),
        derived={"envelope": table},
        info=_info(
            samples,
            seed,
            level,
            "runs with replacement",
            n_runs=len(np.unique(run)),
            n_bins=n_bins,
            c_range=[edges[0], edges[-1]],
        ),
    )


# --- Approach 2 -------------------------------------------------------------------------------


def group_budgets(c: np.ndarray, rtol: float = 0.05) -> np.ndarray:
    """Integer budget labels: sorted C values split wherever neighbours differ by > rtol."""
    c = np.asarray(c, float)
    order = np.argsort(c)
    breaks = np.r_[False, c[order][1:] > c[order][:-1] * (1 + rtol)]
    labels = np.empty(len(c), dtype=np.int64)
    labels[order] = np.cumsum(breaks)
    return labels


def parabola(log_n: np.ndarray, loss: np.ndarray, weights: np.ndarray) -> np.ndarray | None:
    """(p2, p1, p0) of the weighted least-squares parabola of loss on log N; None when fewer
    than 3 distinct sizes carry weight."""
    used = weights > 0
    if len(np.unique(log_n[used])) < 3:
        return None
    # np.polyfit weighs residuals, so sqrt of the row multiplicities.
    return np.polyfit(log_n[used], loss[used], 2, w=np.sqrt(weights[used]))


def parabola_vertex(
    log_n: np.ndarray, loss: np.ndarray, weights: np.ndarray
) -> tuple[float, float]:
    """(log N, loss) at the vertex of `parabola`; NaN when there is none or it is not convex."""
    coef = parabola(log_n, loss, weights)
    if coef is None or coef[0] <= 0:
        return np.nan, np.nan
    p2, p1, p0 = coef
    x = -p1 / (2 * p2)
    return x, p0 + p1 * x + p2 * x * x


def isoflop_minima(
    n: np.ndarray, c: np.ndarray, loss: np.ndarray, groups: np.ndarray, weights: np.ndarray
) -> dict[str, np.ndarray]:
    """Per budget group: C (geometric mean of the group), N_opt, D_opt = C/(6 N_opt), the
    parabola's minimum loss, and whether the minimum is interior: the vertex lies strictly
    inside the sizes tried and the lowest measured loss is not at the smallest or largest."""
    out: dict[str, list] = {"C": [], "N_opt": [], "D_opt": [], "loss": [], "interior": []}
    log_n = np.log(n)
    for label in np.unique(groups):
        m = (groups == label) & (weights > 0)
        x, l_min = parabola_vertex(log_n[m], loss[m], weights[m])
        budget = float(np.exp(np.mean(np.log(c[m]))))
        sizes, best = log_n[m], log_n[m][np.argmin(loss[m])]
        inside = sizes.min() < x < sizes.max() and sizes.min() < best < sizes.max()
        out["C"].append(budget)
        out["N_opt"].append(np.exp(x))
        out["D_opt"].append(budget / (6 * np.exp(x)))
        out["loss"].append(l_min)
        out["interior"].append(bool(inside))
    return {k: np.array(v) for k, v in out.items()}


def _valid(m: dict[str, np.ndarray]) -> np.ndarray:
    """Budgets whose vertex is a measured minimum: finite and inside the sizes tried. A vertex
    beyond the edge is an extrapolation of the parabola, not an optimum the runs found."""
    return np.isfinite(m["N_opt"]) & m["interior"]


def isoflop_fit(
    n: np.ndarray,
    c: np.ndarray,
    loss: np.ndarray,
    *,
    budget: np.ndarray | None = None,
    rtol: float = 0.05,
    n_bootstrap: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> FitResult:
    """Approach 2 from one row per run (N, compute C, final loss). Runs are grouped by `budget`
    labels if given, else by C within rtol. Bootstrap resamples runs with replacement within
    each budget, so every IsoFLOP profile stays in every resample."""
    n, c, loss = positive("N, C, loss", n, c, loss)
    groups = group_budgets(c, rtol) if budget is None else np.unique(budget, return_inverse=True)[1]
    minima = isoflop_minima(n, c, loss, groups, np.ones(len(n)))
    ok = _valid(minima)
    if not np.isfinite(minima["N_opt"]).any():
        raise ValueError("no budget has a convex profile (3+ sizes, loss curving up both ways)")
    # With fewer than 3 interior minima the power laws are NaN, and the minima still reported.
    point = _power_laws(minima["C"][ok], minima["N_opt"][ok], minima["D_opt"][ok])
    samples, per_budget = None, None
    if n_bootstrap:
        fits, n_opts = [], []
        for w in counts(resample_within(groups, n_bootstrap, seed), len(n)):
            mb = isoflop_minima(n, c, loss, groups, w)
            okb = _valid(mb)
            fits.append(_power_laws(mb["C"][okb], mb["N_opt"][okb], mb["D_opt"][okb]))
            n_opts.append(mb["N_opt"])
        samples, per_budget = _samples(fits), np.array(n_opts)
    return FitResult(
        method="chinchilla_approach2",
        params=estimates(point, samples, level),
        n_points=len(n),
        derived={"isoflop_minima": _minima_table(minima, per_budget, level)},
        info=_info(
            samples,
            seed,
            level,
            "runs with replacement within each budget",
            n_budgets=len(minima["C"]),
            n_budgets_used=int(ok.sum()),
            power_laws=(
                "fitted on the budgets with interior minima"
                if ok.sum() >= _MIN_POINTS
                else f"not fitted: {ok.sum()} budgets with interior minima, need {_MIN_POINTS}"
            ),
        ),
    )


def _optimum(c: float, n_opt: np.ndarray) -> dict[str, np.ndarray]:
    return {"N_opt": n_opt, "D_opt": c / (6 * n_opt), "tokens_per_param": c / (6 * n_opt**2)}


def _minima_table(minima: dict[str, np.ndarray], n_samples: np.ndarray | None, level: float):
    rows = []
    for i, budget in enumerate(minima["C"]):
        sampled = None if n_samples is None else _optimum(budget, n_samples[:, i])
        est = estimates(_optimum(budget, minima["N_opt"][i]), sampled, level)
        rows.append(
            {
                "C": budget,
                **{k: v.to_dict() for k, v in est.items()},
                "loss": minima["loss"][i],
                "interior": minima["interior"][i],
            }
        )
    return rows
