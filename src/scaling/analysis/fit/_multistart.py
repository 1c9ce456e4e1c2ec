"""Multi-start fitting of the robust log-space laws (Approach 3, data-constrained, Kaplan with E)
and their bootstrap refits, on top of the batched L-BFGS.

Full fits run in two phases: every start is minimised in float32 (about 3x cheaper per
evaluation on CPU), then the `polish` lowest end points are minimised again in float64. On the
Epoch data the float32 phase alone ends within 0.03% of the optimum (A = 477.69 against
477.83); after the float64 polish the fit agrees with scipy's float64 L-BFGS-B to 5 digits.
Bootstrap refits run in float64 from a few optima of the full fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

import jax.numpy as jnp
import numpy as np

from scaling.analysis.fit._lbfgs import Objective, minimize_batched
from scaling.analysis.fit.bootstrap import resample_counts


class Tolerances(TypedDict):
    """Stopping tolerances passed to `minimize_batched` as keyword arguments."""

    ftol: float
    gtol: float


SCAN_TOL: Tolerances = {"ftol": 1e-6, "gtol": 1e-9}  # float32: stop near its precision
POLISH_TOL: Tolerances = {"ftol": 1e-13, "gtol": 1e-12}
_MIN_ROWS = 256


def huber(r: jnp.ndarray, delta: float | jnp.ndarray) -> jnp.ndarray:
    """Huber loss: quadratic within delta of zero, linear beyond."""
    ar = jnp.abs(r)
    return jnp.where(ar <= delta, 0.5 * r * r, delta * (ar - 0.5 * delta))


def lse(*terms: jnp.ndarray) -> jnp.ndarray:
    """log(sum(exp(terms))), stable and broadcasting: the log of a sum of power-law terms."""
    terms = jnp.broadcast_arrays(*terms)
    m = terms[0]
    for t in terms[1:]:
        m = jnp.maximum(m, t)
    return m + jnp.log(sum(jnp.exp(t - m) for t in terms))


def padded_rows(n: int) -> int:
    # Data are padded with zero-weight rows to a power of two of at least 256, so fits on
    # data sets of different sizes share compiled code (a compile costs more than the fit).
    return max(_MIN_ROWS, 1 << (n - 1).bit_length())


def pad(values: np.ndarray, n_pad: int) -> np.ndarray:
    """Zero-pad a row vector to n_pad (padding rows carry zero weight)."""
    out = np.zeros(n_pad)
    out[: len(values)] = values
    return out


def padded_data(columns: Sequence[np.ndarray], delta: float) -> tuple[np.ndarray, ...]:
    """A robust fit's `shared` data: its row columns zero-padded to `padded_rows`, then delta."""
    n_pad = padded_rows(len(columns[0]))
    return (*(pad(v, n_pad) for v in columns), np.asarray(delta))


@dataclass(frozen=True)
class MultiStartResult:
    x: np.ndarray  # (P,) best parameters
    f: float  # best objective
    x_all: np.ndarray  # (S, P) end point of every start
    f_all: np.ndarray  # (S,) objective at every end point (float64 where polished)


def multistart(
    objective: Objective,
    starts: np.ndarray,
    shared: Any,
    row_weights: np.ndarray,
    *,
    polish: int = 64,
) -> MultiStartResult:
    """Minimise from every start (float32), polish the best `polish` (float64), keep the best;
    with at most 2 x polish starts, all of them run in float64 directly.
    `row_weights` (n,) weighs each data row (ones for a plain fit, counts for a resample)."""
    mask = pad(row_weights, padded_rows(len(row_weights)))
    weights = np.broadcast_to(mask, (len(starts), len(mask)))
    if len(starts) > 2 * polish:
        scan = minimize_batched(objective, starts, weights, shared, dtype=np.float32, **SCAN_TOL)
        f_all = np.where(np.isfinite(scan.f), scan.f, np.inf).astype(np.float64)
        x_all = scan.x.astype(np.float64)
        best = np.argsort(f_all, kind="stable")[:polish]
    else:
        x_all, f_all = np.array(starts, np.float64), np.full(len(starts), np.inf)
        best = np.arange(len(starts))
    fine = minimize_batched(
        objective, x_all[best], weights[: len(best)], shared, dtype=np.float64, **POLISH_TOL
    )
    x_all[best], f_all[best] = fine.x, np.where(np.isfinite(fine.f), fine.f, np.inf)
    i = int(np.argmin(f_all))
    return MultiStartResult(x_all[i], float(f_all[i]), x_all, f_all)


def fit_with_bootstrap(
    objective: Objective, starts: np.ndarray, shared: Any, n_rows: int, n_bootstrap: int, seed: int
) -> tuple[MultiStartResult, np.ndarray | None]:
    """The multi-start fit on all `n_rows` rows and, with `n_bootstrap`, the (B, P) refits on
    rows resampled with replacement, each started from the 4 lowest distinct optima of the fit."""
    res = multistart(objective, starts, shared, np.ones(n_rows))
    if not n_bootstrap:
        return res, None
    row_counts = resample_counts(n_rows, n_bootstrap, seed)
    x, _ = refit(objective, distinct_optima(res, 4), row_counts, shared)
    return res, x


def distinct_optima(result: MultiStartResult, k: int, rtol: float = 1e-3) -> np.ndarray:
    """End points of the k lowest distinct optima (objective values more than rtol apart)."""
    order = np.argsort(result.f_all, kind="stable")
    picked: list[int] = []
    for i in order:
        if not np.isfinite(result.f_all[i]) or len(picked) == k:
            break
        if all(abs(result.f_all[i] - result.f_all[j]) > rtol * result.f_all[j] for j in picked):
            picked.append(int(i))
    return result.x_all[picked]


def refit(
    objective: Objective, starts: np.ndarray, row_counts: np.ndarray, shared: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Best-of-starts float64 fit for each row weighting (bootstrap counts, shape (B, n)):
    returns (B, P) parameters and (B,) objective values."""
    n_res, n_rows = row_counts.shape
    k = len(starts)
    weights = np.zeros((n_res, padded_rows(n_rows)))
    weights[:, :n_rows] = row_counts
    res = minimize_batched(
        objective,
        np.tile(starts, (n_res, 1)),
        np.repeat(weights, k, axis=0),
        shared,
        dtype=np.float64,
        **POLISH_TOL,
    )
    f = np.where(np.isfinite(res.f), res.f, np.inf).reshape(n_res, k)
    best = np.argmin(f, axis=1)
    x = res.x.reshape(n_res, k, -1)[np.arange(n_res), best]
    return x, f[np.arange(n_res), best]
