"""Single-variable and transfer power laws.

Kaplan et al. 2020: L(N) = (N_c / N)^alpha_N, L(D) = (D_c / D)^alpha_D, fitted by least squares
in log space (log L = alpha log X_c - alpha log X); optionally with an irreducible term,
L = E + (X_c / X)^alpha, fitted like Approach 3 (Huber on log loss, log-sum-exp form,
multi-start L-BFGS).
Hernandez et al. 2021: effective data transferred D_T = k D_F^alpha N^beta, fitted by least
squares in log space.
"""

from __future__ import annotations

import itertools

import jax.numpy as jnp
import numpy as np

from scaling.analysis.fit._multistart import fit_with_bootstrap, huber, lse, padded_data
from scaling.analysis.fit._validate import positive
from scaling.analysis.fit.bootstrap import bootstrap_info
from scaling.analysis.fit.chinchilla import HUBER_DELTA
from scaling.analysis.fit.regression import log_design, lstsq, lstsq_bootstrap
from scaling.analysis.fit.results import FitResult, estimates

# --- Kaplan -----------------------------------------------------------------------------------


def _kaplan_from_coef(coef: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # log L = c0 + c1 log X  ->  alpha = -c1, X_c = exp(c0 / alpha).
    alpha = -coef[..., 1]
    return np.exp(coef[..., 0] / alpha), alpha


def _saturating_objective(x, w, shared):
    log_x, log_loss, delta = shared
    log_x, log_loss = log_x[None, :], log_loss[None, :]  # rows (1, R) against starts (S, 1)
    c, alpha, e = (x[:, i, None] for i in range(3))
    return jnp.sum(w * huber(lse(c - alpha * log_x, e) - log_loss, delta), axis=-1)


def _saturating_starts() -> np.ndarray:
    # (c = alpha log X_c, alpha, e = log E)
    grid = itertools.product(
        (0.0, 2.5, 5.0, 10.0, 20.0), (0.05, 0.1, 0.25, 0.5, 1.0), (-1.0, -0.5, 0.0, 0.5, 1.0)
    )
    return np.array(list(grid))


def _saturating_params(x: np.ndarray, variable: str) -> dict[str, np.ndarray]:
    c, alpha, e = x[..., 0], x[..., 1], x[..., 2]
    return {f"{variable}_c": np.exp(c / alpha), f"alpha_{variable}": alpha, "E": np.exp(e)}


def kaplan_fit(
    x: np.ndarray,
    loss: np.ndarray,
    *,
    variable: str = "N",
    irreducible: bool = False,
    n_bootstrap: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    delta: float = HUBER_DELTA,
) -> FitResult:
    """L(X) = (X_c / X)^alpha_X (or E + that, with `irreducible`), X being `variable` (N or D).
    Parameters are named X_c, alpha_X (and E)."""
    x, loss = positive(f"{variable}, loss", x, loss)
    if irreducible:
        return _kaplan_saturating(x, loss, variable, n_bootstrap, seed, level, delta)
    design = log_design(x)
    coef = lstsq(design, np.log(loss))
    names = (f"{variable}_c", f"alpha_{variable}")
    point = dict(zip(names, _kaplan_from_coef(coef), strict=True))
    samples = None
    if n_bootstrap:
        boot = lstsq_bootstrap(design, np.log(loss), n_bootstrap, seed)
        samples = dict(zip(names, _kaplan_from_coef(boot), strict=True))
    return FitResult(
        method=f"kaplan_{variable}",
        params=estimates(point, samples, level),
        n_points=len(loss),
        info={
            "form": f"L = ({variable}_c / {variable})^alpha_{variable}",
            "loss": "least squares on log loss",
            "bootstrap": bootstrap_info(n_bootstrap, seed, level),
        },
    )


def _kaplan_saturating(x, loss, variable, n_bootstrap, seed, level, delta) -> FitResult:
    shared = padded_data([np.log(x), np.log(loss)], delta)
    res, xb = fit_with_bootstrap(
        _saturating_objective, _saturating_starts(), shared, len(loss), n_bootstrap, seed
    )
    samples = None if xb is None else _saturating_params(xb, variable)
    return FitResult(
        method=f"kaplan_{variable}_irreducible",
        params=estimates(_saturating_params(res.x, variable), samples, level),
        n_points=len(loss),
        info={
            "form": f"L = E + ({variable}_c / {variable})^alpha_{variable}",
            "loss": f"sum Huber(delta={delta}) of log-loss residuals, log-sum-exp form",
            "objective": res.f,
            "n_starts": len(res.f_all),
            "bootstrap": bootstrap_info(n_bootstrap, seed, level),
        },
    )


# --- Hernandez transfer -----------------------------------------------------------------------


def _transfer_params(coef: np.ndarray) -> dict[str, np.ndarray]:
    return {"k": np.exp(coef[..., 0]), "alpha": coef[..., 1], "beta": coef[..., 2]}


def transfer_fit(
    d_f: np.ndarray,
    n: np.ndarray,
    d_t: np.ndarray,
    *,
    n_bootstrap: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> FitResult:
    """Hernandez et al. 2021: D_T = k D_F^alpha N^beta, with D_F the fine-tuning tokens, N the
    parameters and D_T the effective pre-training tokens transferred."""
    d_f, n, d_t = positive("D_F, N, D_T", d_f, n, d_t)
    design = log_design(d_f, n)
    coef = lstsq(design, np.log(d_t))
    samples = None
    if n_bootstrap:
        samples = _transfer_params(lstsq_bootstrap(design, np.log(d_t), n_bootstrap, seed))
    return FitResult(
        method="hernandez_transfer",
        params=estimates(_transfer_params(coef), samples, level),
        n_points=len(d_t),
        info={
            "form": "D_T = k D_F^alpha N^beta",
            "loss": "least squares on log D_T",
            "bootstrap": bootstrap_info(n_bootstrap, seed, level),
        },
    )
