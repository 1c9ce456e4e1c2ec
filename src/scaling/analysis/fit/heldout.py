"""Held-out check: fit Approach 3 below a compute cut, predict the losses above it, and the
minimum loss reachable at the held-out compute (the IsoFLOP minimum of the largest budget)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from scaling.analysis.fit._validate import positive
from scaling.analysis.fit.chinchilla import HUBER_DELTA, ChinchillaLaw, fit_chinchilla
from scaling.analysis.fit.results import jsonable

_MIN_FIT_ROWS = 6  # five parameters: fewer rows cannot pin them down


@dataclass
class HeldOutResult:
    c_cut: float
    law: ChinchillaLaw
    n_fit: int
    n_heldout: int
    mean_abs_rel_error: float
    max_abs_rel_error: float
    points: list[dict[str, float]] = field(
        default_factory=list
    )  # N, D, C, loss, predicted, rel_error
    e_fixed: float | None = None  # E was set to this, not fitted
    # At the held-out compute (the geometric mean C of the held-out rows): the fitted law's
    # minimum over N of L(N, C/6N), against the measured minimum given to the check.
    min_loss_predicted: float | None = None
    min_loss_measured: float | None = None

    @property
    def min_loss_rel_error(self) -> float | None:
        if self.min_loss_predicted is None or self.min_loss_measured is None:
            return None
        return (self.min_loss_predicted - self.min_loss_measured) / self.min_loss_measured

    def to_dict(self) -> dict[str, Any]:
        return jsonable({**asdict(self), "min_loss_rel_error": self.min_loss_rel_error})


def heldout_check(
    n: np.ndarray,
    d: np.ndarray,
    loss: np.ndarray,
    *,
    c_cut: float,
    c: np.ndarray | None = None,
    delta: float = HUBER_DELTA,
    e_fixed: float | None = None,
    min_loss_measured: float | None = None,
) -> HeldOutResult:
    """Fit on rows with C < c_cut (C = 6ND unless given), predict rows with C >= c_cut; relative
    error = (predicted - loss) / loss per held-out point. With `e_fixed` the fit sets E (see
    `fit_chinchilla`). With `min_loss_measured` (e.g. the held-out budget's IsoFLOP minimum),
    the law's own minimum at the held-out compute is predicted against it."""
    if c is None:
        n, d, loss = positive("N, D, loss", n, d, loss)
        c = 6.0 * n * d
    else:
        n, d, loss, c = positive("N, D, loss, C", n, d, loss, c)
    fit_rows = c < c_cut
    if fit_rows.sum() < _MIN_FIT_ROWS or fit_rows.all():
        raise ValueError(
            f"cut C={c_cut:.3g} leaves {fit_rows.sum()} rows to fit and {(~fit_rows).sum()} "
            f"to predict; need at least {_MIN_FIT_ROWS} and 1"
        )
    law = fit_chinchilla(n[fit_rows], d[fit_rows], loss[fit_rows], delta=delta, e_fixed=e_fixed).law
    held = ~fit_rows
    predicted = law.loss(n[held], d[held])
    c_held = float(np.exp(np.mean(np.log(c[held]))))
    n_opt, d_opt = law.compute_optimal(c_held)
    rel = (predicted - loss[held]) / loss[held]
    points = [
        {"N": a, "D": b, "C": cc, "loss": y, "predicted": p, "rel_error": r}
        for a, b, cc, y, p, r in zip(
            n[held], d[held], c[held], loss[held], predicted, rel, strict=True
        )
    ]
    return HeldOutResult(
        c_cut=float(c_cut),
        law=law,
        n_fit=int(fit_rows.sum()),
        n_heldout=int(held.sum()),
        mean_abs_rel_error=float(np.mean(np.abs(rel))),
        max_abs_rel_error=float(np.max(np.abs(rel))),
        points=points,
        e_fixed=e_fixed,
        min_loss_predicted=float(law.loss(n_opt, d_opt)),
        min_loss_measured=min_loss_measured,
    )
