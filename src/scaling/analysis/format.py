"""Numbers, intervals, percentages and Markdown tables as every report and ledger prints them.

Two number styles, kept apart because the committed results use both: `number` (a verdict's
figures: '∞' for infinity) and `cell` (a table cell: anything, '–' for any non-finite float).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from scaling.analysis.fit.results import Estimate

MISSING = "–"


def number(x: float | None, digits: int = 3) -> str:
    """A number to `digits` significant digits; '–' for None or NaN, '∞' for infinity."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return MISSING
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    return f"{x:.{digits}g}"


def cell(value: Any, digits: int = 3) -> str:
    """A table cell: a float to `digits` significant digits, '–' for None or a non-finite
    float, anything else as `str` gives it."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return MISSING
    if isinstance(value, float | np.floating):
        return f"{value:.{digits}g}"
    return str(value)


def interval(
    estimate: float | None,
    low: float | None,
    high: float | None,
    show: Callable[[Any], str] = number,
) -> str:
    """'0.12 [0.05, 0.2]', or the estimate alone where there is no interval (`low` None)."""
    if low is None:
        return show(estimate)
    return f"{show(estimate)} [{show(low)}, {show(high)}]"


def interval_of(est: Estimate) -> str:
    """An `Estimate` as `interval` writes it, in `number`'s style."""
    return interval(est.estimate, est.ci_low, est.ci_high)


def percent(share: float, digits: int = 0) -> str:
    """A share as a percentage: 0.1234 -> '12%' (digits=0), '12.3%' (digits=1)."""
    return f"{share:.{digits}%}"


def row(cells: Iterable[str]) -> str:
    """One Markdown table row of already formatted cells."""
    return "| " + " | ".join(cells) + " |"


def table(header: Sequence[str], rows: Iterable[Iterable[str]], align: str | None = None) -> str:
    """A Markdown table; `align` gives each column 'l' (---) or 'r' (---:), default all 'l'."""
    rule = ["---:" if a == "r" else "---" for a in (align or "l" * len(header))]
    return "\n".join([row(header), row(rule), *(row(r) for r in rows)])
