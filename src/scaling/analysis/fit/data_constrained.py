"""Muennighoff et al. 2023 ("Scaling Data-Constrained Language Models"): repeated tokens and
excess parameters are worth less than fresh ones.

With U unique tokens available and D tokens trained on, U_D = min(U, D) unique tokens are seen,
R_D = D/U_D - 1 times repeated, and the effective data is
    D' = U_D + U_D R_D* (1 - exp(-R_D / R_D*)).
Parameters beyond what U_D unique tokens can use are discounted the same way: U_N is the
compute-optimal size for U_D tokens under the law's own frontier, capped at N,
    U_N = min(N, G (G U_D)^(beta/alpha)),  G = (alpha A / (beta B))^(1/(alpha+beta)),
R_N = N/U_N - 1 and N' = U_N + U_N R_N* (1 - exp(-R_N / R_N*)). The loss is
    L(N, D, U) = E + A/N'^alpha + B/D'^beta,
which is Chinchilla's L(N, D) wherever D <= U (one epoch or less) and N <= U_N.
The definitions follow the paper's equations 5-7 and its released fitting code, whose constants
are `MUENNIGHOFF_2023`.

The fit (Huber on log loss, log-sum-exp form, multi-start L-BFGS, as Approach 3) either fits
all seven parameters at once, or, as the paper did, only R_D* and R_N* on repeated-data runs with
the Chinchilla part given (`base`: a law fitted on runs that did not repeat data).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import minimize_scalar

from scaling.analysis.fit._multistart import fit_with_bootstrap, huber, lse, padded_data
from scaling.analysis.fit._validate import positive
from scaling.analysis.fit.bootstrap import bootstrap_info
from scaling.analysis.fit.chinchilla import HUBER_DELTA, ChinchillaLaw, law_params
from scaling.analysis.fit.results import FitResult, estimates

PARAM_NAMES = ("A", "B", "E", "alpha", "beta", "R_D_star", "R_N_star")
FORM = (
    "L = E + A/N'^alpha + B/D'^beta; D' = U + U R_D* (1 - exp(-R_D/R_D*)), R_D = D/U - 1; "
    "N' = U_N + U_N R_N* (1 - exp(-R_N/R_N*)), R_N = N/U_N - 1, "
    "U_N = min(N, G (G U)^(beta/alpha)), G = (alpha A/(beta B))^(1/(alpha+beta))"
)


def repetitions(d: ArrayLike, u: ArrayLike) -> np.ndarray:
    """R = D/U - 1, floored at 0 (a run that has not finished one epoch repeats nothing)."""
    return np.maximum(np.asarray(d, float) / np.asarray(u, float) - 1.0, 0.0)


def unique_seen(d: ArrayLike, u: ArrayLike) -> np.ndarray:
    """U_D = min(U, D): a run shorter than one epoch sees only D of its U unique tokens."""
    return np.minimum(np.asarray(u, float), np.asarray(d, float))


def _discounted(base: np.ndarray, reps: np.ndarray, r_star: float) -> np.ndarray:
    # U + U R* (1 - exp(-R/R*)), with expm1 so that R << R* keeps its digits.
    return base + base * r_star * -np.expm1(-reps / r_star)


def effective_data(d: ArrayLike, u: ArrayLike, r_star: float) -> np.ndarray:
    """D' = U_D + U_D R_D* (1 - exp(-R_D / R_D*)), U_D = min(U, D): D itself within one epoch."""
    u_d = unique_seen(d, u)
    return _discounted(u_d, repetitions(d, u_d), r_star)


@dataclass(frozen=True)
class Allocation:
    """A compute-optimal run under a data constraint: N, D = C/(6N), epochs D/U, its loss."""

    C: float
    U: float
    N: float
    D: float
    epochs: float
    loss: float

    def to_dict(self) -> dict[str, float]:
        return {k: float(getattr(self, k)) for k in ("C", "U", "N", "D", "epochs", "loss")}


@dataclass(frozen=True)
class DataConstrainedLaw:
    A: float
    B: float
    E: float
    alpha: float
    beta: float
    R_D_star: float
    R_N_star: float

    def chinchilla(self) -> ChinchillaLaw:
        """The law without a data constraint (U large enough that nothing repeats)."""
        return ChinchillaLaw(self.A, self.B, self.E, self.alpha, self.beta)

    def unique_params(self, u: ArrayLike) -> np.ndarray:
        """G (G U)^(beta/alpha): the compute-optimal N for U tokens seen once (the frontier
        N_opt = G (C/6)^(beta/(alpha+beta)) with D_opt = U)."""
        g = self.chinchilla().compute_optimal(6.0)[0]  # G: N_opt at C/6 = 1
        return g * np.power(g * np.asarray(u, float), self.beta / self.alpha)

    def effective_params(self, n: ArrayLike, d: ArrayLike, u: ArrayLike) -> np.ndarray:
        """N' = U_N + U_N R_N* (1 - exp(-R_N / R_N*)), U_N = min(N, unique_params(U_D))."""
        n = np.asarray(n, float)
        u_n = np.minimum(n, self.unique_params(unique_seen(d, u)))
        return _discounted(u_n, repetitions(n, u_n), self.R_N_star)

    def effective_data(self, d: ArrayLike, u: ArrayLike) -> np.ndarray:
        return effective_data(d, u, self.R_D_star)

    def loss(self, n: ArrayLike, d: ArrayLike, u: ArrayLike) -> np.ndarray:
        n_eff, d_eff = self.effective_params(n, d, u), self.effective_data(d, u)
        return self.E + self.A / np.power(n_eff, self.alpha) + self.B / np.power(d_eff, self.beta)

    def optimal_allocation(self, c: float, u: float) -> Allocation:
        """The N (and D = C/(6N), epochs = D/U) of least loss at compute C = 6ND when only U
        unique tokens exist. The loss is smooth in log N but for the kink where N reaches
        U_N, so a dense grid over ten decades around Chinchilla's N_opt finds the basin and a
        bounded scalar search refines it."""
        c, u = float(c), float(u)
        if not (c > 0 and u > 0):
            raise ValueError(f"optimal_allocation needs C > 0 and U > 0, got C={c}, U={u}")
        centre = math.log(float(self.chinchilla().compute_optimal(c)[0]))
        grid = np.linspace(centre - 11.5, centre + 11.5, 4001)

        def loss_at(log_n: float | np.ndarray) -> float | np.ndarray:
            n = np.exp(log_n)
            return self.loss(n, c / (6.0 * n), u)

        i = int(np.argmin(loss_at(grid)))
        lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
        best = minimize_scalar(loss_at, bounds=(lo, hi), method="bounded",
                               options={"xatol": 1e-10})  # fmt: skip
        n = math.exp(best.x)
        d = c / (6.0 * n)
        return Allocation(c, u, n, d, d / u, float(best.fun))

    def to_dict(self) -> dict[str, float]:
        return {k: float(getattr(self, k)) for k in PARAM_NAMES}


# The paper's fit (Muennighoff et al. 2023, section 5 and appendix: A = 521, B = 1488,
# E = 1.87, alpha = beta = 0.353, R_N* = 5.3, R_D* = 15.4), at the full precision of the
# constants released with its code (github.com/huggingface/datablations, "Parametric fit"):
# a, b, e, alpha, beta, R_D*, R_N* = 6.255414, 7.3049974, 0.6254804, 0.3526596, 0.3526596,
# 15.387756, 5.309743 with A = exp(a), B = exp(b), E = exp(e).
MUENNIGHOFF_2023 = DataConstrainedLaw(
    A=math.exp(6.255414),
    B=math.exp(7.3049974),
    E=math.exp(0.6254804),
    alpha=0.3526596,
    beta=0.3526596,
    R_D_star=15.387756,
    R_N_star=5.309743,
)
PRESET_SOURCES = {
    "muennighoff2023": "Muennighoff et al. 2023, Scaling Data-Constrained Language Models "
    "(NeurIPS), eq. 5-7; constants as released with the paper's code (datablations)",
}


def optimal_allocation(
    c: float, u: float, law: DataConstrainedLaw = MUENNIGHOFF_2023
) -> Allocation:
    """N, D and epochs minimising the loss at compute C with U unique tokens (default: the
    paper's constants)."""
    return law.optimal_allocation(c, u)


# --- fitting ----------------------------------------------------------------------------------


def _log_terms(log_n, log_u, reps_d, a, b, alpha, beta, log_rd, log_rn):
    """(log A/N'^alpha, log B/D'^beta) in JAX, broadcasting parameters (S, 1) over rows."""
    r_d, r_n = jnp.exp(log_rd), jnp.exp(log_rn)
    log_d_eff = log_u + jnp.log1p(-r_d * jnp.expm1(-reps_d / r_d))
    # log G and log U_N; alpha and beta are kept off zero so that a wandering start gives a
    # large objective instead of a NaN.
    al, be = jnp.maximum(alpha, 1e-6), jnp.maximum(beta, 1e-6)
    log_g = (jnp.log(al) + a - jnp.log(be) - b) / (al + be)
    log_un = jnp.minimum(log_n, log_g + (be / al) * (log_g + log_u))
    reps_n = jnp.expm1(log_n - log_un)
    log_n_eff = log_un + jnp.log1p(-r_n * jnp.expm1(-reps_n / r_n))
    return a - alpha * log_n_eff, b - beta * log_d_eff


def _objective(x, w, shared):
    log_n, log_u, reps_d, log_loss, delta, *base = shared
    # Rows (1, R) against each start's parameters (S, 1): broadcast explicitly.
    log_n, log_u, reps_d, log_loss = (v[None, :] for v in (log_n, log_u, reps_d, log_loss))
    if base:  # x = (log R_D*, log R_N*); shared ends with the given (a, b, e, alpha, beta)
        a, b, e, alpha, beta = (base[0][i] for i in range(5))
        log_rd, log_rn = x[:, 0, None], x[:, 1, None]
    else:
        a, b, e, alpha, beta, log_rd, log_rn = (x[:, i, None] for i in range(7))
    t_n, t_d = _log_terms(log_n, log_u, reps_d, a, b, alpha, beta, log_rd, log_rn)
    return jnp.sum(w * huber(lse(t_n, t_d, e) - log_loss, delta), axis=-1)


_R_STARTS = (math.log(1.0), math.log(10.0), math.log(100.0))


def start_grid() -> np.ndarray:
    """(8748, 7) starts (a, b, e, alpha, beta, log R_D*, log R_N*): a coarser Chinchilla grid
    times three values of each R* (1, 10, 100). alpha and beta start above 0, where G exists."""
    grid = itertools.product(
        (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
        (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
        (-1.0, 0.0, 1.0),
        (0.25, 0.5, 1.0),
        (0.25, 0.5, 1.0),
        _R_STARTS,
        _R_STARTS,
    )
    return np.array(list(grid))


def _params(x: np.ndarray, base: np.ndarray | None) -> dict[str, np.ndarray]:
    if base is not None:  # x holds (log R_D*, log R_N*) only
        x = np.concatenate([np.broadcast_to(base, (*x.shape[:-1], 5)), x], axis=-1)
    return {**law_params(x), "R_D_star": np.exp(x[..., 5]), "R_N_star": np.exp(x[..., 6])}


def data_constrained_fit(
    n: np.ndarray,
    d: np.ndarray,
    u: np.ndarray,
    loss: np.ndarray,
    *,
    base: ChinchillaLaw | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    delta: float = HUBER_DELTA,
    starts: np.ndarray | None = None,
) -> FitResult:
    """Fit the law to runs of N parameters, D tokens and U unique tokens each.

    Without `base` all seven parameters are fitted; with it (a Chinchilla law, e.g. fitted on
    runs that saw their data once) only R_D* and R_N* are, as in the paper, which is what a
    handful of repeated-data runs can pin down. Intervals by bootstrap over rows."""
    n, d, u, loss = positive("N, D, U, loss", n, d, u, loss)
    u_d = unique_seen(d, u)
    shared = padded_data([np.log(n), np.log(u_d), repetitions(d, u_d), np.log(loss)], delta)
    base_x = None
    if base is not None:
        base_x = np.asarray(base.x(), float)
        shared += (base_x,)
        grid = np.array(list(itertools.product(_R_STARTS, _R_STARTS)))
    else:
        grid = start_grid()
    starts = grid if starts is None else np.asarray(starts, float)
    res, xb = fit_with_bootstrap(_objective, starts, shared, len(loss), n_bootstrap, seed)
    samples = None if xb is None else _params(xb, base_x)
    return FitResult(
        method="muennighoff_data_constrained",
        params=estimates(_params(res.x, base_x), samples, level),
        n_points=len(loss),
        info={
            "form": FORM,
            "fitted": "R_D*, R_N* (A, B, E, alpha, beta given)" if base else "all seven",
            "base": None if base is None else base.to_dict(),
            "loss": f"sum Huber(delta={delta}) of log-loss residuals, log-sum-exp form",
            "objective": res.f,
            "n_starts": len(starts),
            "bootstrap": bootstrap_info(n_bootstrap, seed, level),
        },
    )


def law_of(result: FitResult) -> DataConstrainedLaw:
    """The point-estimate law of a `data_constrained_fit` result."""
    return DataConstrainedLaw(**{k: result.value(k) for k in PARAM_NAMES})
