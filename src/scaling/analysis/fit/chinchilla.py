"""Chinchilla Approach 3: L(N, D) = E + A/N^alpha + B/D^beta, fitted as in Besiroglu et al.
2024 ("Chinchilla Scaling: A replication attempt").

Parameters x = (a, b, e, alpha, beta) with A = exp(a), B = exp(b), E = exp(e); predicted log
loss = logsumexp(a - alpha log N, b - beta log D, e); objective = sum of Huber(delta) of
(predicted log L - log L); L-BFGS from every point of a grid of starts, best objective kept.

With `e_fixed` the irreducible loss is not fitted but set (a corpus of known entropy, such as the
synthetic one, has a known E): the same objective over x = (a, b, alpha, beta), e = log e_fixed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike
from scipy.special import logsumexp

from scaling.analysis.fit._multistart import (
    MultiStartResult,
    distinct_optima,
    huber,
    lse,
    multistart,
    padded_data,
    refit,
)
from scaling.analysis.fit._validate import positive
from scaling.analysis.fit.bootstrap import bootstrap_info, resample_counts
from scaling.analysis.fit.results import FitResult, estimates

HUBER_DELTA = 1e-3
PARAM_NAMES = ("A", "B", "E", "alpha", "beta")
# Budgets (FLOPs) at which the compute-optimal frontier is reported by default.
DEFAULT_BUDGETS = tuple(10.0**k for k in range(18, 26))


def start_grid(
    alpha: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0),
    beta: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0),
    e: tuple[float, ...] = (-1.0, -0.5, 0.0, 0.5, 1.0),
    a: tuple[float, ...] = (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
    b: tuple[float, ...] = (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
) -> np.ndarray:
    """(S, 5) starts (a, b, e, alpha, beta); the default is the paper's 4500-point grid."""
    return np.array(
        [(a_, b_, e_, al, be) for al, be, e_, a_, b_ in itertools.product(alpha, beta, e, a, b)]
    )


@dataclass(frozen=True)
class ChinchillaLaw:
    A: float
    B: float
    E: float
    alpha: float
    beta: float

    @classmethod
    def from_x(cls, x: np.ndarray) -> ChinchillaLaw:
        a, b, e, alpha, beta = (float(v) for v in x)
        return cls(math.exp(a), math.exp(b), math.exp(e), alpha, beta)

    def x(self) -> np.ndarray:
        return np.array([np.log(self.A), np.log(self.B), np.log(self.E), self.alpha, self.beta])

    def loss(self, n: ArrayLike, d: ArrayLike) -> np.ndarray:
        # A/N^alpha as exp(log A - alpha log N): N^alpha alone overflows for a steep law (a
        # bootstrap sample's alpha of 40 at N = 1e9) where the term itself is only tiny.
        log_n, log_d = np.log(np.asarray(n, float)), np.log(np.asarray(d, float))
        return (
            self.E
            + np.exp(math.log(self.A) - self.alpha * log_n)
            + np.exp(math.log(self.B) - self.beta * log_d)
        )

    def compute_optimal(self, c: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """(N_opt, D_opt) minimising the loss at C = 6 N D."""
        return compute_optimal(self.A, self.B, self.alpha, self.beta, c)

    def to_dict(self) -> dict[str, float]:
        return {k: float(getattr(self, k)) for k in PARAM_NAMES}


def compute_optimal(
    A: ArrayLike, B: ArrayLike, alpha: ArrayLike, beta: ArrayLike, c: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form frontier, broadcasting over parameter samples and budgets:
    G = (alpha A / (beta B))^(1/(alpha+beta)), N_opt = G (C/6)^(beta/(alpha+beta)),
    D_opt = G^-1 (C/6)^(alpha/(alpha+beta)).

    Computed in logs: G's power overflows for a flat law (alpha + beta near 0) long before
    N_opt does. A law that does not fall in both N and D (alpha <= 0 or beta <= 0, as a
    bootstrap resample can give) has no frontier: NaN, not a division by zero."""
    A, B, alpha, beta, c = np.broadcast_arrays(
        *(np.asarray(v, float) for v in (A, B, alpha, beta, c))
    )
    falls = (alpha > 0) & (beta > 0) & (A > 0) & (B > 0)
    al, be, a_, b_ = (np.where(falls, v, 1.0) for v in (alpha, beta, A, B))
    log_g = (np.log(al) + np.log(a_) - np.log(be) - np.log(b_)) / (al + be)
    log_c6 = np.log(c / 6.0)
    # A sizes' logarithm past 709 is a size past float range: inf is its value, not an error.
    with np.errstate(over="ignore"):
        n_opt = np.exp(log_g + be / (al + be) * log_c6)
        d_opt = np.exp(al / (al + be) * log_c6 - log_g)
    return np.where(falls, n_opt, np.nan), np.where(falls, d_opt, np.nan)


def _objective(x, w, shared):
    log_n, log_d, log_loss, delta, *e_fixed = shared
    # Rows (1, R) against each start's parameters (S, 1): broadcast explicitly.
    log_n, log_d, log_loss = log_n[None, :], log_d[None, :], log_loss[None, :]
    if e_fixed:  # x = (a, b, alpha, beta); shared ends with e = log E
        a, b, alpha, beta = (x[:, i, None] for i in range(4))
        e = e_fixed[0]
    else:
        a, b, e, alpha, beta = (x[:, i, None] for i in range(5))
    pred = lse(a - alpha * log_n, b - beta * log_d, e)
    return jnp.sum(w * huber(pred - log_loss, delta), axis=-1)


_FREE_E = [0, 1, 3, 4]  # the columns of (a, b, e, alpha, beta) fitted when E is fixed


def _shared(n, d, loss, delta: float, e_fixed: float | None) -> tuple[np.ndarray, ...]:
    """The shared data of the free-E or (ending with log E) the fixed-E fit."""
    shared = padded_data([np.log(v) for v in (n, d, loss)], delta)
    return shared if e_fixed is None else (*shared, np.asarray(math.log(e_fixed)))


def _full_x(x: np.ndarray, e_fixed: float | None) -> np.ndarray:
    """(..., 5) parameters (a, b, e, alpha, beta) from a fit's own columns."""
    if e_fixed is None:
        return x
    out = np.full((*x.shape[:-1], 5), math.log(e_fixed))
    out[..., _FREE_E] = x
    return out


def objective(
    x: np.ndarray,
    n: np.ndarray,
    d: np.ndarray,
    loss: np.ndarray,
    weights: np.ndarray | None = None,
    delta: float = HUBER_DELTA,
) -> float:
    """The Approach 3 objective at x = (a, b, e, alpha, beta), in float64 numpy (for checks)."""
    a, b, e, alpha, beta = np.asarray(x, float)
    terms = np.stack([a - alpha * np.log(n), b - beta * np.log(d), np.full(len(n), e)])
    r = logsumexp(terms, axis=0) - np.log(loss)
    h = np.where(np.abs(r) <= delta, 0.5 * r * r, delta * (np.abs(r) - 0.5 * delta))
    return float(np.sum(h if weights is None else weights * h))


@dataclass(frozen=True)
class ChinchillaFit:
    law: ChinchillaLaw
    objective: float
    n_points: int
    n_starts: int
    n_at_best: int  # starts ending within 1e-4 (relative) of the best objective
    bootstrap_starts: np.ndarray  # (k, 5) end points of the k lowest distinct objective levels


def fit_chinchilla(
    n: np.ndarray,
    d: np.ndarray,
    loss: np.ndarray,
    *,
    delta: float = HUBER_DELTA,
    starts: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    n_bootstrap_starts: int = 4,
    e_fixed: float | None = None,
) -> ChinchillaFit:
    """Approach 3 point fit from every start of `starts` (default: the paper's grid); `weights`
    optionally weighs the rows (bootstrap counts give the fit of a resample). With `e_fixed`,
    E is that value and the starts are the grid's distinct (a, b, alpha, beta)."""
    res, n_starts = _minimise(n, d, loss, delta, starts, weights, e_fixed)
    return ChinchillaFit(
        law=ChinchillaLaw.from_x(_full_x(res.x, e_fixed)),
        objective=res.f,
        n_points=len(loss),
        n_starts=n_starts,
        n_at_best=int(np.sum(res.f_all <= res.f * (1 + 1e-4))),
        bootstrap_starts=_full_x(distinct_optima(res, n_bootstrap_starts), e_fixed),
    )


def _minimise(n, d, loss, delta, starts, weights, e_fixed) -> tuple[MultiStartResult, int]:
    """The multi-start minimisation behind `fit_chinchilla` (and its number of starts)."""
    n, d, loss = positive("N, D, loss", n, d, loss)
    e_fixed = _checked_e(e_fixed)
    starts = start_grid() if starts is None else np.asarray(starts, float)
    if e_fixed is not None:
        starts = np.unique(starts[:, _FREE_E], axis=0)
    weights = np.ones(len(loss)) if weights is None else np.asarray(weights, float).ravel()
    if len(weights) != len(loss) or np.any(weights < 0):
        raise ValueError(f"weights must be {len(loss)} non-negative values")
    shared = _shared(n, d, loss, delta, e_fixed)
    return multistart(_objective, starts, shared, weights), len(starts)


def _checked_e(e_fixed: float | None) -> float | None:
    if e_fixed is not None and not (math.isfinite(e_fixed) and e_fixed > 0):
        raise ValueError(f"e_fixed={e_fixed} must be a positive loss")
    return e_fixed


def bootstrap_chinchilla(
    n: np.ndarray,
    d: np.ndarray,
    loss: np.ndarray,
    starts: np.ndarray,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    delta: float = HUBER_DELTA,
    e_fixed: float | None = None,
) -> np.ndarray:
    """(n_resamples, 5) fitted x = (a, b, e, alpha, beta) on rows resampled with replacement,
    each the best of L-BFGS runs from `starts` (normally `ChinchillaFit.bootstrap_starts`,
    whose e column is ignored when `e_fixed` is given)."""
    n, d, loss = positive("N, D, loss", n, d, loss)
    e_fixed = _checked_e(e_fixed)
    starts = np.asarray(starts, float)
    if e_fixed is not None:
        starts = starts[:, _FREE_E]
    row_counts = resample_counts(len(loss), n_resamples, seed)
    x, _ = refit(_objective, starts, row_counts, _shared(n, d, loss, delta, e_fixed))
    return _full_x(x, e_fixed)


def law_params(x: np.ndarray) -> dict[str, np.ndarray]:
    """A, B, E, alpha, beta of parameters x (..., 5+) = (a, b, e, alpha, beta, ...)."""
    # A resample can end at a degenerate law whose log A or log B lies past a float's range
    # (exp overflows to inf); its A or B is then inf and its frontier NaN: a failed sample,
    # counted as such in its intervals.
    with np.errstate(over="ignore"):
        return {
            "A": np.exp(x[..., 0]),
            "B": np.exp(x[..., 1]),
            "E": np.exp(x[..., 2]),
            "alpha": x[..., 3],
            "beta": x[..., 4],
        }


def _exponents(p: Mapping[str, np.ndarray | float]) -> dict[str, np.ndarray]:
    # N_opt = G (C/6)^a, D_opt = G^-1 (C/6)^b: a = beta/(alpha+beta), b = alpha/(alpha+beta).
    # Only a law falling in both N and D has a frontier (as in compute_optimal): NaN otherwise,
    # where beta/(alpha+beta) could divide by zero.
    alpha, beta = np.asarray(p["alpha"], float), np.asarray(p["beta"], float)
    falls = (alpha > 0) & (beta > 0)
    s = np.where(falls, alpha + beta, 1.0)
    g, _ = compute_optimal(p["A"], p["B"], alpha, beta, 6.0)
    return {"a": np.where(falls, beta / s, np.nan), "b": np.where(falls, alpha / s, np.nan), "G": g}


def frontier_table(
    law: ChinchillaLaw,
    samples: dict[str, np.ndarray] | None,
    budgets: tuple[float, ...],
    level: float,
) -> list[dict[str, object]]:
    """Rows (C, N_opt, D_opt, tokens_per_param), each an estimate with its interval."""
    rows = []
    for c in budgets:
        n_opt, d_opt = law.compute_optimal(c)
        point = {"N_opt": n_opt, "D_opt": d_opt, "tokens_per_param": d_opt / n_opt}
        sampled = None
        if samples is not None:
            ns, ds = compute_optimal(
                samples["A"], samples["B"], samples["alpha"], samples["beta"], c
            )
            sampled = {"N_opt": ns, "D_opt": ds, "tokens_per_param": ds / ns}
        est = estimates(point, sampled, level)
        rows.append({"C": float(c), **{k: v.to_dict() for k, v in est.items()}})
    return rows


def chinchilla_approach3(
    n: np.ndarray,
    d: np.ndarray,
    loss: np.ndarray,
    *,
    n_bootstrap: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    budgets: tuple[float, ...] = DEFAULT_BUDGETS,
    delta: float = HUBER_DELTA,
    e_fixed: float | None = None,
    starts: np.ndarray | None = None,
) -> FitResult:
    """Approach 3 fit with bootstrap intervals for A, B, E, alpha, beta, the frontier exponents
    a, b and coefficient G (N_opt = G (C/6)^a), and N_opt, D_opt, D_opt/N_opt at each budget.
    Bootstrap refits start from the best few optima of the full fit (`bootstrap_chinchilla`).
    With `e_fixed`, E is set rather than fitted (its interval is that one value); `starts` as
    in `fit_chinchilla` (default: the paper's grid)."""
    best = fit_chinchilla(n, d, loss, delta=delta, e_fixed=e_fixed, starts=starts)
    point: dict[str, float | np.ndarray] = dict(best.law.to_dict())
    point.update(_exponents(point))
    samples = None
    if n_bootstrap:
        x = bootstrap_chinchilla(
            n,
            d,
            loss,
            best.bootstrap_starts,
            n_resamples=n_bootstrap,
            seed=seed,
            delta=delta,
            e_fixed=e_fixed,
        )
        samples = law_params(x)
        samples.update(_exponents(samples))
    return FitResult(
        method="chinchilla_approach3",
        params=estimates(point, samples, level),
        n_points=best.n_points,
        derived={"frontier": frontier_table(best.law, samples, budgets, level)},
        info={
            "form": "L = E + A/N^alpha + B/D^beta",
            "e_fixed": e_fixed,
            "loss": f"sum Huber(delta={delta}) of log-loss residuals, log-sum-exp form",
            "objective": best.objective,
            "n_starts": best.n_starts,
            "n_starts_at_best": best.n_at_best,
            "bootstrap": bootstrap_info(
                n_bootstrap,
                seed,
                level,
                refit_starts=f"end points of the {len(best.bootstrap_starts)} lowest distinct "
                "optima of the full fit",
            ),
        },
    )


def profile_e(
    n: np.ndarray,
    d: np.ndarray,
    loss: np.ndarray,
    e_values: np.ndarray,
    *,
    delta: float = HUBER_DELTA,
) -> np.ndarray:
    """The Approach 3 objective minimised with E fixed at each of `e_values` (a profile): flat
    where the data cannot tell E apart, a clear dip where they pin it down."""
    # Objectives only: a profile point far from the data's E can end at an A or B too large
    # for a float (the fit in logs is fine), so no law is built from it.
    return np.array([_minimise(n, d, loss, delta, None, None, float(e))[0].f for e in e_values])
