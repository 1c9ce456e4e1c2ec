"""Verdicts from effect sizes with intervals: supported, contradicted or not resolved.

Every rule of the claims ledger (scaling.analysis.rules) is built from the pieces here. An effect
is an
`Estimate` oriented so that the claim predicts a large positive value, and a verdict compares
its interval with the smallest effect the claim needs:
- supported when the whole interval lies above that minimum;
- contradicted when the whole interval lies at or below it (a negligible effect, or one the
  other way);
- not resolved when it straddles the minimum, when there is no interval, or when too many
  of the resamples behind the interval failed (the rest would give a confident-looking
  interval that answers a different question).
Several verdicts combine as a universal claim (`every`: one clear counterexample contradicts)
or an existential one (`some`: one clear example supports).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from scaling.analysis.fit.results import Estimate
from scaling.analysis.format import interval_of, number
from scaling.tasks.metrics import wilson_interval

SUPPORTED = "supported"
CONTRADICTED = "contradicted"
NOT_RESOLVED = "not resolved"
OUTCOMES = (SUPPORTED, CONTRADICTED, NOT_RESOLVED)


@dataclass(frozen=True)
class Verdict:
    """One of `OUTCOMES`, why, and the effect it rests on (None for a combined verdict)."""

    verdict: str
    reason: str
    effect: Estimate | None = None


def undecidable(effect: Estimate, max_failed_share: float) -> str | None:
    """Why `effect` cannot decide a verdict, or None when it can."""
    if not math.isfinite(effect.estimate) and effect.ci_low is None:
        return "no estimate"
    if effect.failed_share > max_failed_share:
        return (
            f"{effect.n_failed} of {effect.n_samples} resamples failed "
            f"(more than {max_failed_share:.0%})"
        )
    if effect.ci_low is None:
        return "no interval"
    return None


def above(effect: Estimate, minimum: float, what: str, max_failed_share: float) -> Verdict:
    """Supported when `effect`'s interval lies above `minimum`, contradicted when it lies at or
    below it, not resolved when it straddles it or cannot decide."""
    why = undecidable(effect, max_failed_share)
    shown = f"{what} {interval_of(effect)}"
    if why is not None:
        return Verdict(NOT_RESOLVED, f"{shown}: {why}", effect)
    assert effect.ci_low is not None and effect.ci_high is not None  # undecidable checked
    if effect.ci_low > minimum:
        return Verdict(SUPPORTED, f"{shown} lies above {number(minimum)}", effect)
    if effect.ci_high <= minimum:
        return Verdict(CONTRADICTED, f"{shown} lies at or below {number(minimum)}", effect)
    return Verdict(NOT_RESOLVED, f"{shown} straddles {number(minimum)}", effect)


def within(
    effect: Estimate, low: float, high: float, what: str, max_failed_share: float
) -> Verdict:
    """Supported when `effect`'s interval lies inside [low, high], contradicted when it lies
    wholly outside, not resolved when it straddles an edge or cannot decide."""
    why = undecidable(effect, max_failed_share)
    shown = f"{what} {interval_of(effect)}"
    band = f"[{number(low)}, {number(high)}]"
    if why is not None:
        return Verdict(NOT_RESOLVED, f"{shown}: {why}", effect)
    assert effect.ci_low is not None and effect.ci_high is not None  # undecidable checked
    if low <= effect.ci_low and effect.ci_high <= high:
        return Verdict(SUPPORTED, f"{shown} lies inside {band}", effect)
    if effect.ci_high < low or effect.ci_low > high:
        return Verdict(CONTRADICTED, f"{shown} lies outside {band}", effect)
    return Verdict(NOT_RESOLVED, f"{shown} straddles an edge of {band}", effect)


def _listed(units: Mapping[str, Verdict], outcome: str) -> str:
    return "; ".join(f"{label}: {v.reason}" for label, v in units.items() if v.verdict == outcome)


def every(units: Mapping[str, Verdict]) -> Verdict:
    """A claim that must hold for every unit: supported when all are, contradicted when any one
    is contradicted, otherwise not resolved. No units decide nothing."""
    outcomes = [v.verdict for v in units.values()]
    if not outcomes:
        return Verdict(NOT_RESOLVED, "nothing to judge")
    if all(o == SUPPORTED for o in outcomes):
        return Verdict(SUPPORTED, f"all {len(outcomes)} supported")
    if CONTRADICTED in outcomes:
        return Verdict(CONTRADICTED, "contradicted at " + _listed(units, CONTRADICTED))
    n_supported = outcomes.count(SUPPORTED)
    return Verdict(
        NOT_RESOLVED,
        f"{n_supported} of {len(outcomes)} supported; not resolved at "
        + _listed(units, NOT_RESOLVED),
    )


def some(units: Mapping[str, Verdict]) -> Verdict:
    """A claim that one unit suffices for: supported when any is, contradicted when all are
    contradicted, otherwise not resolved. No units decide nothing."""
    outcomes = [v.verdict for v in units.values()]
    if not outcomes:
        return Verdict(NOT_RESOLVED, "nothing to judge")
    if SUPPORTED in outcomes:
        return Verdict(SUPPORTED, "supported at " + _listed(units, SUPPORTED))
    if all(o == CONTRADICTED for o in outcomes):
        return Verdict(CONTRADICTED, f"all {len(outcomes)} contradicted")
    return Verdict(NOT_RESOLVED, "not resolved at " + _listed(units, NOT_RESOLVED))


# ---------------------------------------------------------------------------------- intervals


def _t(level: float, dof: int) -> float:
    return float(stats.t.ppf(0.5 + level / 2, dof))


def slope_estimate(
    x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, level: float
) -> Estimate:
    """Least-squares slope of y on x with its t interval (n - 2 degrees of freedom, so the
    scatter about the line is the noise); no interval below 3 points or 2 distinct x."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2 or np.ptp(x) == 0:
        return Estimate(math.nan)
    fit = stats.linregress(x, y)
    if len(x) < 3:
        return Estimate(float(fit.slope))
    half = _t(level, len(x) - 2) * fit.stderr
    return Estimate(float(fit.slope), float(fit.slope - half), float(fit.slope + half))


def pooled_spread(values: pd.Series, groups: pd.Series) -> tuple[float, int]:
    """Standard deviation of `values` about their group means, pooled over the groups, and its
    degrees of freedom (sum of group sizes less one each): the seed noise of a design where
    every group (a schedule, a model size) repeats a few seeds."""
    centred = values - values.groupby(groups).transform("mean")
    dof = int(len(values) - groups.nunique())
    if dof < 1:
        return math.nan, 0
    return float(math.sqrt(np.sum(np.square(centred)) / dof)), dof


def mean_estimate(mean: float, sd: float, dof: int, n: int, level: float) -> Estimate:
    """A group mean of n values with the t interval of a pooled `sd` (none when dof < 1)."""
    if dof < 1:
        return Estimate(mean)
    half = _t(level, dof) * sd / math.sqrt(n)
    return Estimate(mean, mean - half, mean + half)


def difference_estimate(
    diff: float, sd: float, dof: int, n_a: int, n_b: int, level: float
) -> Estimate:
    """A difference of two group means with the t interval of a pooled `sd`."""
    if dof < 1:
        return Estimate(diff)
    half = _t(level, dof) * sd * math.sqrt(1 / n_a + 1 / n_b)
    return Estimate(diff, diff - half, diff + half)


def proportion_gain(p_new: float, p_old: float, n: int, level: float) -> Estimate:
    """p_new - p_old for two rates measured on n examples each, with Newcombe's hybrid score
    interval (from the two Wilson intervals): honest near 0 and 1, where exact match lives."""
    lo_new, hi_new = wilson_interval(p_new * n, n, level)
    lo_old, hi_old = wilson_interval(p_old * n, n, level)
    diff = p_new - p_old
    low = diff - math.hypot(p_new - lo_new, hi_old - p_old)
    high = diff + math.hypot(hi_new - p_new, p_old - lo_old)
    return Estimate(diff, low, high)
