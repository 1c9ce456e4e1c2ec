"""Plan runs from a fitted law: which budgets to report a frontier at, and which runs to make
next (the compute-optimal N, D and steps at a budget, and a window of sizes centred on it).

Analysis side only: a law comes as numbers (or a fits JSON), sizes as numbers or the ladder's
counts (`scaling.model.accounting`, pure Python); nothing here builds a model.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from scaling.analysis.fit.chinchilla import PARAM_NAMES, ChinchillaLaw
from scaling.analysis.fit.table import FitInputError


def budgets_for(c: ArrayLike, beyond_decades: int = 1) -> tuple[float, ...]:
    """Powers of ten spanning the fitted data's compute, and `beyond_decades` past its largest
    (the extrapolation a frontier is usually read for): 1e11-1e14 for runs at 3e11-2e13,
    where a fixed 1e18-1e25 would report only extrapolations."""
    c = np.asarray(c, float)
    c = c[np.isfinite(c) & (c > 0)]
    if not len(c):
        raise ValueError("no positive compute values to choose budgets from")
    lo = math.floor(math.log10(c.min()))
    hi = math.ceil(math.log10(c.max())) + beyond_decades
    return tuple(10.0**k for k in range(lo, hi + 1))


def law_from_json(path: str | Path) -> ChinchillaLaw:
    """The Approach 3 law in a fits JSON: `experiments/fit.py`'s output or a report's
    `fits.json` (the first object with estimates of A, B, E, alpha and beta)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise FitInputError(f"{path}: cannot read a fits JSON ({err})") from None
    found = _find_law(doc)
    if found is None:
        raise FitInputError(f"{path}: no fitted law (estimates of {', '.join(PARAM_NAMES)})")
    return found


def _find_law(node: Any) -> ChinchillaLaw | None:
    if isinstance(node, dict):
        params = node.get("params")
        if isinstance(params, dict) and all(k in params for k in PARAM_NAMES):
            return ChinchillaLaw(**{k: float(params[k]["estimate"]) for k in PARAM_NAMES})
        for value in node.values():
            found = _find_law(value)
            if found is not None:
                return found
    return None


@dataclass(frozen=True)
class Run:
    """One proposed run: its size, tokens, steps and the law's predicted loss."""

    name: str
    N: float
    D: float
    steps: int
    tokens_per_param: float
    predicted_loss: float


@dataclass(frozen=True)
class Suggestion:
    C: float
    N_opt: float
    D_opt: float
    tokens_per_param: float
    predicted_loss: float
    tokens_per_step: int
    window: list[Run]  # sizes around N_opt at this C, smallest first; the centre is the optimum

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def optimal_budget(law: ChinchillaLaw, *, n: float | None = None, d: float | None = None) -> float:
    """The budget C at which `n` parameters (or `d` tokens) are compute-optimal: the frontier
    N_opt = G (C/6)^(beta/(alpha+beta)) inverted (D_opt with exponent alpha/(alpha+beta))."""
    if (n is None) == (d is None):
        raise ValueError("give exactly one of N and D")
    g = float(law.compute_optimal(6.0)[0])  # N_opt at C/6 = 1
    s = law.alpha + law.beta
    if not (math.isfinite(g) and g > 0):
        raise ValueError("the law has no compute-optimal frontier (alpha or beta <= 0)")
    if n is not None:
        return 6.0 * math.exp((math.log(n) - math.log(g)) * s / law.beta)
    assert d is not None  # exactly one of n and d was given
    return 6.0 * math.exp((math.log(d) + math.log(g)) * s / law.alpha)


def suggest(
    law: ChinchillaLaw,
    budget: float,
    *,
    tokens_per_step: int,
    sizes: dict[str, float] | None = None,
    window: int = 5,
    spacing: float = 2.0,
) -> Suggestion:
    """The compute-optimal run at `budget` and a window of `window` sizes centred on it: the
    named `sizes` nearest N_opt in log (a ladder's rungs, slid inside the ladder at its ends),
    or without them sizes N_opt x spacing^k. Each gets D = C / (6N) and its steps."""
    if not (budget > 0 and tokens_per_step > 0 and window >= 1 and spacing > 1):
        raise ValueError("budget, tokens per step and window must be positive, spacing > 1")
    n_opt, d_opt = (float(v) for v in law.compute_optimal(budget))
    if not math.isfinite(n_opt):
        raise ValueError("the law has no compute-optimal frontier (alpha or beta <= 0)")
    if sizes:
        ranked = sorted(sizes.items(), key=lambda item: item[1])
        centre = min(range(len(ranked)), key=lambda i: abs(math.log(ranked[i][1] / n_opt)))
        k = min(window, len(ranked))
        lo = min(max(centre - (k - 1) // 2, 0), len(ranked) - k)
        chosen = ranked[lo : lo + k]
    else:
        half = (window - 1) // 2
        chosen = [
            (f"N_opt*{spacing:g}^{i}", n_opt * spacing**i) for i in range(-half, window - half)
        ]
    runs = [_run(law, name, n, budget, tokens_per_step) for name, n in chosen]
    return Suggestion(
        C=float(budget),
        N_opt=n_opt,
        D_opt=d_opt,
        tokens_per_param=d_opt / n_opt,
        predicted_loss=float(law.loss(n_opt, d_opt)),
        tokens_per_step=tokens_per_step,
        window=runs,
    )


def _run(law: ChinchillaLaw, name: str, n: float, budget: float, tokens_per_step: int) -> Run:
    d = budget / (6.0 * n)
    return Run(name, n, d, max(1, math.ceil(d / tokens_per_step)), d / n, float(law.loss(n, d)))
