"""Du et al. 2024's test: is a task metric a function of pre-training loss alone, whatever N and D?

A cubic spline in loss is fitted on all runs and compared, by an F-test and by leave-one-out
error, with the same spline plus log N and log D (scaling.analysis.emergence reads its verdict).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from scaling.analysis.emergence_terms import (
    DEFAULT_THRESHOLDS,
    LOSS_EXPLAINS,
    SCALE_MATTERS,
    UNDETERMINED,
    Thresholds,
)


def loss_spline_basis(loss: np.ndarray, n_knots: int) -> np.ndarray:
    """Cubic regression spline in standardised loss (truncated-power basis, knots at interior
    quantiles): flexible enough for a sigmoid in loss, so N is not credited with misfit."""
    z = (loss - loss.mean()) / (loss.std() or 1.0)
    cols = [np.ones_like(z), z, z**2, z**3]
    knots = np.quantile(z, np.linspace(0.0, 1.0, n_knots + 2)[1:-1])
    cols += [np.clip(z - k, 0.0, None) ** 3 for k in knots]
    return np.column_stack(cols)


def _fit(design: np.ndarray, y: np.ndarray) -> tuple[float, float, int]:
    """Residual sum of squares, leave-one-out (PRESS) sum of squares and rank of a least-squares
    fit. LOO residuals are e_i / (1 - h_ii), from the hat matrix, without refitting."""
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    leverage = np.einsum("ij,ji->i", design, np.linalg.pinv(design))
    loo = resid / np.clip(1.0 - leverage, 1e-9, None)
    return float(resid @ resid), float(loo @ loo), int(np.linalg.matrix_rank(design))


def _r2_on(design: np.ndarray, target: np.ndarray) -> float:
    """R^2 of regressing `target` on `design` (how well loss already predicts log N)."""
    total = np.sum(np.square(target - target.mean()))
    if total == 0.0:
        return 1.0
    resid = target - design @ np.linalg.lstsq(design, target, rcond=None)[0]
    return float(1.0 - resid @ resid / total)


def loss_explains(
    loss: np.ndarray,
    y: np.ndarray,
    n: np.ndarray,
    d: np.ndarray | None = None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> dict[str, float | int | str | None]:
    """Du et al. 2024's claim as a nested-model test over runs: y ~ spline(loss) against
    y ~ spline(loss) + log N (+ log D).

    Returns the F-test p-value, RSS and leave-one-out error ratios (full / loss-only; near 1
    when N and D add nothing), and a verdict: 'loss explains it' when p >= du_alpha,
    'N/D matter beyond loss' when p < du_alpha, 'undetermined' when the runs cannot separate
    N (or D) from loss or are too few."""
    loss, y = np.asarray(loss, np.float64), np.asarray(y, np.float64)
    out: dict = dict.fromkeys(["p_value", "rss_ratio", "cv_ratio", "knots", "scale_r2_on_loss"])
    out["n_runs"] = len(y)
    extras = _log_scale_columns(n, d)
    if extras.shape[1] == 0 or len(y) < 6:
        return {**out, "verdict": UNDETERMINED, "reason": "N and D do not vary, or < 6 runs"}
    n_knots = thresholds.du_knots
    while n_knots > 0 and len(y) - (4 + n_knots + extras.shape[1]) < 3:
        n_knots -= 1  # keep at least 3 residual degrees of freedom
    restricted = loss_spline_basis(loss, n_knots)
    full = np.column_stack([restricted, extras])
    collinear = max(_r2_on(restricted, e) for e in extras.T)
    rss_r, press_r, rank_r = _fit(restricted, y)
    rss_f, press_f, rank_f = _fit(full, y)
    dof = len(y) - rank_f
    out.update(knots=n_knots, scale_r2_on_loss=collinear)
    if collinear >= thresholds.collinear_r2 or rank_f == rank_r or dof < 1:
        reason = "log N / log D are (nearly) a function of loss in these runs"
        return {**out, "verdict": UNDETERMINED, "reason": reason}
    p_value = _f_test(rss_r, rss_f, rank_f - rank_r, dof, y)
    verdict = LOSS_EXPLAINS if p_value >= thresholds.du_alpha else SCALE_MATTERS
    return {
        **out,
        "p_value": p_value,
        "rss_ratio": rss_f / rss_r if rss_r > 0 else 1.0,
        "cv_ratio": press_f / press_r if press_r > 0 else 1.0,
        "verdict": verdict,
        "reason": f"F-test: log N/log D beyond a spline in loss, alpha={thresholds.du_alpha}",
    }


def _log_scale_columns(n: np.ndarray, d: np.ndarray | None) -> np.ndarray:
    """Centred log N and log D as columns, leaving out any that does not vary."""
    logs = [np.log(np.asarray(v, np.float64)) for v in (n, d) if v is not None]
    logs = [v - v.mean() for v in logs if np.ptp(v) > 0]
    return np.column_stack(logs) if logs else np.empty((len(n), 0))


def _f_test(rss_r: float, rss_f: float, q: int, dof: int, y: np.ndarray) -> float:
    """p-value of the nested F-test; exact fits (no residual) are settled without dividing by 0."""
    scale = max(float(np.sum(np.square(y - y.mean()))), 1e-300)
    if rss_r <= 1e-12 * scale:
        return 1.0  # loss alone already fits exactly
    if rss_f <= 1e-12 * scale:
        return 0.0
    f_stat = ((rss_r - rss_f) / q) / (rss_f / dof)
    return float(stats.f.sf(max(f_stat, 0.0), q, dof))
