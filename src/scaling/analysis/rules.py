"""The claims ledger's rules: one pure function per claim, from measured effects to a verdict.

Each rule takes plain numbers, `Estimate`s or small tables (never run dirs), so the ledger's
specification is its table-driven test (tests/test_claim_rules.py): fabricated inputs for a
clear yes, a clear no and data too thin to tell. `scaling.reports.claims` builds the inputs from
runs.
Every minimum effect is a field of `Rules` and is printed in the ledger's rules table
(`rules_table`). The outcomes and how intervals decide them are in `scaling.analysis.verdicts`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from scaling.analysis.emergence_terms import (
    GENUINE,
    MIRAGE,
    MIXED,
    NO_RISE,
    SMOOTH,
    UNDETERMINED,
    Thresholds,
)
from scaling.analysis.fit.results import Estimate
from scaling.analysis.format import interval_of, number, table
from scaling.analysis.verdicts import (
    CONTRADICTED,
    NOT_RESOLVED,
    SUPPORTED,
    Verdict,
    above,
    difference_estimate,
    every,
    mean_estimate,
    pooled_spread,
    proportion_gain,
    slope_estimate,
    some,
    within,
)


@dataclass(frozen=True)
class Rules:
    """Every threshold behind a verdict (the ledger prints them in its rules table)."""

    level: float = 0.95  # t intervals (claims 4, 6, 7, 8); the fits' bootstraps state their own
    max_failed_share: float = 0.10  # an interval with more failed resamples decides nothing
    min_exponent: float = 0.05  # claim 1: alpha, the exponent of N
    heldout_error: float = 0.05  # claim 2: the law predicts the largest budgets this well...
    heldout_error_fails: float = 0.10  # ...and fails to beyond this (in between: not resolved)
    ratio_low: float = 10.0  # claim 2: "~20 tokens per parameter" is this band
    ratio_high: float = 40.0
    min_data_multiplier: float = 2.0  # claim 3: "far less" data is D_E/D_F above this
    min_finetune_gain: float = 0.05  # claim 4: nats of answer loss
    memorisation_gap: float = 0.05  # claim 6: nats of val - train loss
    min_corruption_slope: float = 0.001  # claim 7: nats of clean val loss per percent corrupted
    min_schedule_gap: float = 0.01  # claim 8: nats between the best and the worst schedule


# ---------------------------------------------------------------------------------- 1 and 2


@dataclass(frozen=True)
class BudgetRatio:
    """Compute-optimal tokens per parameter at one budget inside the swept range."""

    C: float
    tokens_per_param: Estimate
    interior: bool  # the loss minimum lies inside the sizes tried at this budget


@dataclass(frozen=True)
class SweepEvidence:
    """What claims 1 and 2 read from an N x D (or IsoFLOP) sweep; `claims.sweep_evidence`
    builds it from the sweep report's fits."""

    fit: str  # the fit alpha and beta come from
    alpha: Estimate
    beta: Estimate
    heldout_error: float | None  # mean |relative error| predicting the largest budgets
    ratio_source: str  # the fit the per-budget ratios come from
    ratios: tuple[BudgetRatio, ...]  # budgets inside the swept range only, never beyond
    E_known: float | None = None  # the corpus's exact entropy, where known
    E_fit: Estimate | None = None  # the fit's irreducible loss
    largest_n_wins: tuple[int, int] | None = None  # (token counts the largest N wins, of all)
    # the ratios in the sweep's own convention when `ratios` are read in the claim's (reported)
    other_ratio_source: str = ""
    other_ratios: tuple[BudgetRatio, ...] = ()


def claim1(ev: SweepEvidence, rules: Rules) -> Verdict:
    """More parameters give lower loss, at fixed data (alpha above `min_exponent`) and at
    compute-optimal data (along the fitted frontier L falls with N when also beta > 0)."""
    fixed = above(ev.alpha, rules.min_exponent, "alpha", rules.max_failed_share)
    if fixed.verdict != SUPPORTED:
        return fixed
    optimal = above(ev.beta, 0.0, "beta", rules.max_failed_share)
    if optimal.verdict == SUPPORTED:
        return Verdict(SUPPORTED, f"{fixed.reason}; {optimal.reason}", ev.alpha)
    return Verdict(
        NOT_RESOLVED,
        f"{fixed.reason}, but {optimal.reason}: the compute-optimal half cannot be read",
        ev.alpha,
    )


def power_law(ev: SweepEvidence, rules: Rules) -> Verdict:
    """Loss falls as a power law: both exponents' intervals above 0 and the largest budgets
    predicted within `heldout_error`; contradicted by an exponent at or below 0 or a held-out
    error beyond `heldout_error_fails`."""
    exponents = {
        name: above(est, 0.0, name, rules.max_failed_share)
        for name, est in (("alpha", ev.alpha), ("beta", ev.beta))
    }
    both = every(exponents)
    if both.verdict == CONTRADICTED:
        return both
    if ev.heldout_error is None:
        return Verdict(NOT_RESOLVED, "no held-out check")
    held = f"held-out error {ev.heldout_error:.1%}"
    if ev.heldout_error > rules.heldout_error_fails:
        return Verdict(CONTRADICTED, f"{held} beyond {rules.heldout_error_fails:.0%}")
    if ev.heldout_error >= rules.heldout_error:
        return Verdict(
            NOT_RESOLVED,
            f"{held}: between {rules.heldout_error:.0%} and {rules.heldout_error_fails:.0%}",
        )
    if both.verdict == SUPPORTED:
        return Verdict(SUPPORTED, f"{held}; alpha and beta above 0")
    return Verdict(NOT_RESOLVED, f"{held}, but {both.reason}")


def tokens_per_param(ev: SweepEvidence, rules: Rules) -> Verdict:
    """Compute-optimal training uses ~20 tokens per parameter: `budget_ratios` on the sweep's."""
    return budget_ratios(ev.ratios, rules, ev.ratio_source)


def budget_ratios(ratios: Sequence[BudgetRatio], rules: Rules, source: str) -> Verdict:
    """The ratio's interval inside [ratio_low, ratio_high] at every budget inside the sweep
    whose minimum lies inside its rungs; a budget at the edge of its rungs, or beyond the sweep,
    calls nothing. `source` names the fit the ratios come from."""
    if not ratios:
        return Verdict(NOT_RESOLVED, f"no budget inside the swept range ({source})")
    interior = [b for b in ratios if b.interior]
    if not interior:
        return Verdict(
            NOT_RESOLVED,
            f"the loss minimum lies at the edge of the sizes tried at all {len(ratios)} "
            f"budgets ({source})",
        )
    per_budget = {
        f"C = {b.C:.2g}": within(
            b.tokens_per_param,
            rules.ratio_low,
            rules.ratio_high,
            "tokens/param",
            rules.max_failed_share,
        )
        for b in interior
    }
    return every(per_budget)


def claim2(ev: SweepEvidence, rules: Rules) -> Verdict:
    """Both halves of claim 2 must hold: the power law and ~20 tokens per parameter."""
    halves = {"power law": power_law(ev, rules), "~20 tokens/param": tokens_per_param(ev, rules)}
    combined = every(halves)
    detail = "; ".join(f"{name} {v.verdict} ({v.reason})" for name, v in halves.items())
    return Verdict(combined.verdict, detail)


# ---------------------------------------------------------------------------------- 3


def data_multiplier(row: Mapping) -> tuple[Estimate, str]:
    """D_E/D_F of one fine-tuned run (a row of `transfer.effective_data`), read only where the
    from-scratch data reach: an end of D_E's interval beyond the largest from-scratch D stands
    for "at least that D" (the upper end unknown), one below the smallest for "at most it" (the
    lower end unknown). The same size's from-scratch runs bound D_E without any fit
    (`scratch_not_reached` < D_E <= `scratch_reached`): the interval is kept inside that bracket,
    and is the bracket where the fit's interval misses it. Returns the multiplier and '≥', '≤'
    or '' for its point."""
    d_f, d_min, d_max = row["d_f"], row["scratch_d_min"], row["scratch_d_max"]
    d_e = row["d_e"]
    not_reached = row.get("scratch_not_reached", 0.0)
    reached = row.get("scratch_reached", math.inf)
    bound = "≥" if d_e > d_max else "≤" if d_e < d_min else ""
    n_samples, n_failed = int(row.get("d_e_resamples", 0)), int(row.get("d_e_failed", 0))
    low, high = row["d_e_low"], row["d_e_high"]
    if pd.isna(low) or pd.isna(high):
        low, high = 0.0, math.inf
    else:
        low = d_max if low > d_max else 0.0 if low < d_min else low
        high = math.inf if high > d_max else d_min if high < d_min else high
    low, high = max(low, not_reached), min(high, reached)
    if low > high:  # the fit misses what the runs show: the runs decide
        low, high = not_reached, reached
    point = float(np.clip(np.clip(d_e, d_min, d_max), low, high))
    if d_e < not_reached == point:
        bound = "≥"  # the runs of this size show more data than the fit says
    if (low, high) == (0.0, math.inf):
        return Estimate(point / d_f, n_samples=n_samples, n_failed=n_failed), bound
    return Estimate(point / d_f, low / d_f, high / d_f, n_samples, n_failed), bound


def multiplier_verdicts(effective: pd.DataFrame, rules: Rules) -> dict[str, Verdict]:
    """Task -> verdict: every fine-tuned run's D_E/D_F interval (`data_multiplier`) above
    `min_data_multiplier`."""
    tasks = {}
    for task, rows in effective.groupby("task", sort=True):
        runs = {}
        for row in rows.to_dict("records"):
            multiplier, bound = data_multiplier(row)
            label = f"N = {row['n']:,.0f}, D_F = {row['d_f']:.3g}, seed {row['seed']}"
            what = f"D_E/D_F {bound}".rstrip()
            runs[label] = above(multiplier, rules.min_data_multiplier, what, rules.max_failed_share)
        tasks[task] = every(runs)
    return tasks


def claim3(effective: pd.DataFrame, rules: Rules) -> Verdict:
    """Fine-tuning needs far less task data than training from scratch, in every task."""
    if effective.empty:
        return Verdict(NOT_RESOLVED, "no fine-tuned run to invert")
    return every(multiplier_verdicts(effective, rules))


# ---------------------------------------------------------------------------------- 4


def finetune_gains(paired: pd.DataFrame, rules: Rules) -> dict[str, dict[float, Verdict]]:
    """Task -> N -> verdict on the gain of fine-tuning over pre-train-only at the task's largest
    D_F: answer loss lower by more than `min_finetune_gain` nats (mean over seeds, with the t
    interval of the seed spread pooled over the task's sizes), and exact match not clearly lower
    (its Newcombe interval on the evaluation set not wholly below 0)."""
    both = paired.dropna(subset=["finetuned_loss", "pretrain_only_loss"])
    top = both[both["d_f"] == both.groupby("task")["d_f"].transform("max")]
    out: dict[str, dict[float, Verdict]] = {}
    for task, rows in top.groupby("task", sort=True):
        gain = rows["pretrain_only_loss"] - rows["finetuned_loss"]
        sd, dof = pooled_spread(gain, rows["n"])
        out[task] = {}
        for n, at_n in rows.groupby("n", sort=True):
            g = gain.loc[at_n.index]
            effect = mean_estimate(float(g.mean()), sd, dof, len(g), rules.level)
            verdict = above(
                effect, rules.min_finetune_gain, "answer-loss gain (nats)", rules.max_failed_share
            )
            if dof < 1:
                verdict = Verdict(
                    NOT_RESOLVED,
                    f"answer-loss gain {number(effect.estimate)} nats: one seed per size, so no "
                    "seed spread to measure it against",
                    effect,
                )
            em = _exact_match_gain(at_n, rules)
            if em is not None and em.ci_high is not None and em.ci_high < 0:
                verdict = Verdict(
                    CONTRADICTED,
                    f"exact match falls by {interval_of(em)}; {verdict.reason}",
                    effect,
                )
            out[task][float(n)] = verdict
    return out


def _exact_match_gain(rows: pd.DataFrame, rules: Rules) -> Estimate | None:
    """Fine-tuned minus pre-train-only exact match on one size's evaluation set, or None."""
    ft, po = rows["finetuned_exact_match"].mean(), rows["pretrain_only_exact_match"].mean()
    if pd.isna(ft) or pd.isna(po) or "task_n_eval" not in rows:
        return None
    return proportion_gain(float(ft), float(po), int(rows["task_n_eval"].min()), rules.level)


def holds_from(sizes: Mapping[float, Verdict]) -> float | None:
    """The smallest N from which every larger size is supported, when some smaller one is not
    (None when every size is supported, or the largest is not)."""
    ordered = sorted(sizes.items())
    start = len(ordered)
    while start > 0 and ordered[start - 1][1].verdict == SUPPORTED:
        start -= 1
    return ordered[start][0] if 0 < start < len(ordered) else None


def sizes_verdict(sizes: Mapping[float, Verdict]) -> Verdict:
    """One task's verdict over its sizes (`every`), saying from which N up it holds when it
    holds at the largest sizes only."""
    combined = every({f"N = {n:,.0f}": v for n, v in sorted(sizes.items())})
    if combined.verdict == SUPPORTED:
        return Verdict(SUPPORTED, f"supported at every size ({len(sizes)})")
    start = holds_from(sizes)
    if start is None:
        return combined
    return Verdict(combined.verdict, f"supported from N = {start:,.0f} up; {combined.reason}")


def claim4(paired: pd.DataFrame, rules: Rules) -> Verdict:
    """Fine-tuned models beat pre-train-only models on their task at every size, every task."""
    gains = finetune_gains(paired, rules)
    if not gains:
        return Verdict(NOT_RESOLVED, "no size with both a fine-tuned and a pre-train-only run")
    return every({task: sizes_verdict(sizes) for task, sizes in gains.items()})


# ---------------------------------------------------------------------------------- 5

# What each emergence label (scaling.analysis.emergence.schaeffer_verdict) says about the claim.
EMERGENCE_OUTCOMES = {
    GENUINE: (SUPPORTED, "exact match and the continuous metrics jump"),
    MIRAGE: (CONTRADICTED, "a mirage: exact match jumps, no continuous metric does"),
    SMOOTH: (CONTRADICTED, "smooth: exact match rises, no metric jumps"),
    MIXED: (NOT_RESOLVED, "mixed: too few continuous metrics jump to call it"),
    NO_RISE: (NOT_RESOLVED, "no rise: exact match is not acquired at these scales"),
    UNDETERMINED: (NOT_RESOLVED, "too few scales for a jump to show"),
}


# Labels that say nothing about how an ability arrives: it never rose, or too few scales.
UNINFORMATIVE = (NO_RISE, UNDETERMINED)


def claim5(labels: Mapping[str, str]) -> Verdict:
    """Abilities emerge suddenly with scale: supported when some task's ability jumps under
    continuous metrics too, contradicted when every ability that rose did so as a mirage or
    smoothly. A task with no rise or too few scales says nothing either way and is left out
    (named in the reason); with none left the claim is not resolved."""
    informative = {u: lab for u, lab in labels.items() if lab not in UNINFORMATIVE}
    left_out = sorted(set(labels) - set(informative))
    if not informative:
        why = "no task's ability rose over enough scales" + (
            f" ({', '.join(left_out)})" if left_out else ""
        )
        return Verdict(NOT_RESOLVED, why)
    verdict = some({u: Verdict(*EMERGENCE_OUTCOMES[lab]) for u, lab in informative.items()})
    if left_out:
        note = f"; left out (no rise or too few scales): {', '.join(left_out)}"
        return Verdict(verdict.verdict, verdict.reason + note, verdict.effect)
    return verdict


# ---------------------------------------------------------------------------------- 6, 7, 8


def claim6(n_over_u: np.ndarray, gap: np.ndarray, rules: Rules) -> Verdict:
    """Too many parameters for the data leads to memorisation: the val - train gap rises by
    more than `memorisation_gap` over the N/U range (its slope on log N/U, with a t interval,
    times the range). A gap that does not rise is contradicted when the smallest N/U does not
    memorise yet, and not resolved when it does (no contrast in the design)."""
    n_over_u, gap = np.asarray(n_over_u, float), np.asarray(gap, float)
    x = np.log10(n_over_u)
    if len(np.unique(x)) < 3:
        return Verdict(NOT_RESOLVED, f"{len(np.unique(x))} distinct N/U: a trend needs 3")
    span = float(np.ptp(x))
    slope = slope_estimate(x, gap, rules.level)
    rise = Estimate(
        slope.estimate * span,
        None if slope.ci_low is None else slope.ci_low * span,
        None if slope.ci_high is None else slope.ci_high * span,
    )
    what = f"gap rise over N/U {number(n_over_u.min())} to {number(n_over_u.max())} (nats)"
    verdict = above(rise, rules.memorisation_gap, what, rules.max_failed_share)
    baseline = float(gap[x == x.min()].mean())
    if verdict.verdict == CONTRADICTED and baseline >= rules.memorisation_gap:
        return Verdict(
            NOT_RESOLVED,
            f"{verdict.reason}, but the gap is already {baseline:+.3f} at the smallest N/U: no "
            "run that does not memorise to contrast with",
            rise,
        )
    return verdict


def claim7(fraction: np.ndarray, loss: np.ndarray, rules: Rules) -> Verdict:
    """Corrupted pre-training text costs loss: the clean val loss rises with the share of rows
    corrupted by more than `min_corruption_slope` nats per percent (least-squares slope over
    every run, seeds included, with a t interval; 3 runs at least)."""
    slope = slope_estimate(100 * np.asarray(fraction, float), loss, rules.level)
    what = f"slope over {len(loss)} runs (nats per percent corrupted)"
    return above(slope, rules.min_corruption_slope, what, rules.max_failed_share)


def claim8(schedule: pd.Series, loss: pd.Series, rules: Rules) -> Verdict:
    """The learning-rate schedule matters: the worst schedule's mean final loss exceeds the
    best's by more than `min_schedule_gap`, with a t interval from the seed spread pooled over
    schedules (Bonferroni over the pairs, since best and worst are picked after the fact)."""
    means, counts = loss.groupby(schedule).mean(), loss.groupby(schedule).size()
    if len(means) < 2:
        return Verdict(NOT_RESOLVED, f"{len(means)} schedule(s): nothing to compare")
    best, worst = means.idxmin(), means.idxmax()
    sd, dof = pooled_spread(loss, schedule)
    pairs = len(means) * (len(means) - 1) / 2
    level = 1 - (1 - rules.level) / pairs
    gap = difference_estimate(
        float(means[worst] - means[best]), sd, dof, int(counts[worst]), int(counts[best]), level
    )
    what = f"{worst} - {best} (nats)"
    if dof < 1:
        return Verdict(
            NOT_RESOLVED,
            f"{what} {number(gap.estimate)}: one seed per schedule, so no seed spread to measure "
            "it against",
            gap,
        )
    return above(gap, rules.min_schedule_gap, what, rules.max_failed_share)


# ---------------------------------------------------------------------------------- the table


def rules_table(rules: Rules, thresholds: Thresholds) -> str:
    """The ledger's rules, one row per claim, with each minimum effect."""
    r, t = rules, thresholds
    rows = [
        (
            "all",
            f"{r.level:.0%} intervals; an interval with more than {r.max_failed_share:.0%} of "
            "its resamples failed decides nothing (not resolved); nothing read beyond the data "
            "decides a verdict",
            "–",
        ),
        (
            "1",
            "supported: alpha's interval above the minimum and beta's above 0; contradicted: "
            "alpha's at or below the minimum",
            f"alpha > {number(r.min_exponent)}",
        ),
        (
            "2",
            "power law: held-out error below the first figure and alpha, beta above 0 "
            "(contradicted beyond the second, or an exponent at or below 0); tokens/param: "
            "interval inside the band at every budget inside the sweep whose minimum lies "
            "inside its rungs (contradicted wholly outside). Both halves must hold",
            f"held-out error < {r.heldout_error:.0%} (fails > {r.heldout_error_fails:.0%}); "
            f"tokens/param in [{number(r.ratio_low)}, {number(r.ratio_high)}]",
        ),
        (
            "3",
            "every fine-tuned run's D_E/D_F interval above the minimum (contradicted: one at or "
            "below); D_E beyond the largest from-scratch D counts only as at least that D; the "
            "interval stays inside what the same size's from-scratch runs show (above the "
            "largest D that did not reach the fine-tuned loss, at most the smallest that did)",
            f"D_E/D_F > {number(r.min_data_multiplier)}",
        ),
        (
            "4",
            "at each size, the answer-loss gain's seed interval above the minimum and exact "
            "match not clearly lower; every size of every task (else: from which N up)",
            f"gain > {number(r.min_finetune_gain)} nats",
        ),
        (
            "5",
            "supported: some task's exact match and continuous metrics jump (genuine); "
            "contradicted: every task a mirage or smooth; not resolved: too few scales, no "
            f"rise, or mixed. A jump climbs >= {t.min_improvement:.0%} of the way to a perfect "
            f"score in at most {t.jump_width} adjacent steps, >= {number(t.jump_contrast)}x the "
            f"median step outside it; read against loss where Du et al.'s test finds loss "
            f"explains exact match (p >= {t.du_alpha})",
            f"{t.min_scales} scales; rise >= {t.min_improvement:.0%} of the headroom; "
            f"contrast >= {number(t.jump_contrast)}",
        ),
        (
            "6",
            "the val - train gap's rise over the N/U range (slope on log N/U) above the minimum; "
            "contradicted at or below it unless the smallest N/U already memorises",
            f"rise > {number(r.memorisation_gap)} nats",
        ),
        (
            "7",
            "the clean val loss's slope in the share of rows corrupted above the minimum",
            f"> {number(r.min_corruption_slope)} nats per percent",
        ),
        (
            "8",
            "the worst minus the best schedule's mean final loss above the minimum, with the "
            "seed spread pooled over schedules (needs 2+ seeds)",
            f"> {number(r.min_schedule_gap)} nats",
        ),
    ]
    return table(["claim", "rule", "minimum effect"], rows)
