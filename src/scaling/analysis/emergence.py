"""Is an ability emergent, or only under exact match? Task metrics against scale, scored.

Input: a tidy table with one row per (run, task) and one column per metric (`to_wide` turns a
long table with `metric`/`value` columns into that), plus the run's N, compute C, tokens D and
pre-training loss. Column names are a `Columns` (defaults match `scaling.records`).

Per task and metric:

1. Curves against N, against C and against pre-training loss (`curves`): the mean over runs at
   each x, ordered from least to most capable (ascending N and C, descending loss).
2. Emergence scores of each curve (`curve_scores`), from BIG-bench (Srivastava et al. 2022,
   "Beyond the Imitation Game", arXiv:2206.04615, Appendix B "Definitions of linearity and
   breakthroughness"; the same score is Schaeffer et al. 2023's "emergence score", §4). With
   y_i the metric at the i-th smallest scale, oriented so that higher is better,
       I(y) = sign(argmax_i y_i - argmin_i y_i) * (max_i y_i - min_i y_i)
       breakthroughness B = I(y) / sqrt(median_i (y_{i+1} - y_i)^2)
       linearity        L = I(y) / sqrt(sum_i  (y_{i+1} - y_i)^2)
   B is large when the whole improvement happens in a few steps while the typical step is
   small; L is large when the improvement is spread evenly. A straight line over n scales
   has B = n - 1 and L = sqrt(n - 1); a single jump has L = 1 and B limited only by the noise
   of the flat steps. Both are invariant to the metric's units, so exact match, edit distance
   and log prob are comparable. I(y) and B are as BIG-bench and Schaeffer et al. state them;
   L's root-sum-square normalisation follows the same pattern but could not be checked
   against the appendix text here. Both are reported; neither decides a verdict.
3. Whether each curve *jumps* (`curve_scores`): B over a handful of scales cannot say (on 3
   scales B of a monotone curve lies between sqrt(2) and 2, a straight line scoring the most),
   so a jump is read directly. The best window of up to `Thresholds.jump_width` adjacent steps
   is found; the curve jumps when that window climbs at least `min_improvement` of the way
   from the curve's worst value to a perfect score, and its rise per step is at least
   `jump_contrast` times the median step outside it (a straight line scores 1). At least
   `context_steps` steps must lie outside the window, so that a jump can be told from a steady
   rise: `Thresholds.min_scales` follows from that, and a curve on fewer scales is undetermined.
4. Two verdicts:
   - Schaeffer et al. 2023 ("Are Emergent Abilities of Large Language Models a Mirage?"): exact
     match jumping while every continuous metric (per-token accuracy, token edit distance,
     answer log prob, Brier) is smooth is a "mirage"; the continuous metrics jumping too is
     "genuine"; exact match rising with no metric jumping is "smooth"; exact match not rising
     at all is "no rise" (the ability is not acquired within the scales measured).
   - Du et al. 2024 ("Understanding Emergent Abilities of Language Models from the Loss
     Perspective"): is the metric a function of pre-training loss regardless of N and D? A
     cubic spline in loss is fitted on all runs and compared, by an F-test and by
     leave-one-out error, with the same spline plus log N and log D. Where the runs separate
     loss from N and D and the test finds loss explains exact match, the ability's scale is its
     pre-training loss (Du et al.'s loss threshold), so the Schaeffer verdict is read against
     loss; otherwise against the study's own axis. One D per N cannot separate them: the test
     is then undetermined and says so.

Never imports model code (DESIGN.md): numpy, scipy and pandas only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict

import numpy as np
import pandas as pd

from scaling.analysis.emergence_terms import (
    AXES,
    CONTINUOUS_METRICS,
    DEFAULT_COLUMNS,
    DEFAULT_THRESHOLDS,
    DISCRETE_METRICS,
    GENUINE,
    LOSS_EXPLAINS,
    MIRAGE,
    MIXED,
    NO_RISE,
    PERFECT,
    SCORE_NAMES,
    SMOOTH,
    UNDETERMINED,
    Columns,
    Thresholds,
)
from scaling.analysis.loss_test import loss_explains
from scaling.tasks.metrics import HIGHER_IS_BETTER, resolution

# ---------------------------------------------------------------------------------------------
# Table shape


def to_wide(
    long: pd.DataFrame,
    columns: Columns = DEFAULT_COLUMNS,
    metric_col: str = "metric",
    value_col: str = "value",
) -> pd.DataFrame:
    """One row per (run, task) with a column per metric, from one row per (run, task, metric).
    Every other column must be constant within a (run, task) and is kept."""
    keys = [columns.run, columns.task]
    rest = [c for c in long.columns if c not in (*keys, metric_col, value_col)]
    values = long.pivot_table(index=keys, columns=metric_col, values=value_col, aggfunc="mean")
    values.columns.name = None
    info = long[keys + rest].drop_duplicates(keys).set_index(keys)
    return info.join(values).reset_index()


def metric_columns(table: pd.DataFrame) -> list[str]:
    """The known metrics present in the table, in the canonical order."""
    return [m for m in HIGHER_IS_BETTER if m in table.columns]


def oriented(metric: str, values: np.ndarray) -> np.ndarray:
    """The metric with higher = better (edit distance and Brier are negated)."""
    sign = 1.0 if HIGHER_IS_BETTER.get(metric, True) else -1.0
    return sign * np.asarray(values, dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# Curves


def curve(
    table: pd.DataFrame, metric: str, axis: str, columns: Columns = DEFAULT_COLUMNS
) -> pd.DataFrame:
    """Mean, standard error and run count of `metric` at each x of `axis`, least capable first
    (ascending N or C, descending loss). Rows missing x or the metric are dropped."""
    x_col = columns.axis(axis)
    rows = table[[x_col, metric]].dropna()
    grouped = rows.groupby(x_col)[metric]
    out = pd.DataFrame({"y": grouped.mean(), "y_sem": grouped.sem(), "n_runs": grouped.size()})
    out = out.rename_axis("x").reset_index()
    return out.sort_values("x", ascending=axis != "loss", ignore_index=True)


def curves(
    table: pd.DataFrame,
    metrics: Sequence[str] | None = None,
    axes: Iterable[str] = AXES,
    columns: Columns = DEFAULT_COLUMNS,
) -> pd.DataFrame:
    """Every task's curve of every metric against every axis present, as one long table
    (task, metric, axis, x, y, y_sem, n_runs) ready for `scaling.reports.sweep` to plot."""
    metrics = list(metrics) if metrics is not None else metric_columns(table)
    parts = []
    for task, rows in table.groupby(columns.task, sort=True):
        for axis in axes:
            if columns.axis(axis) not in rows.columns:
                continue
            for metric in metrics:
                part = curve(rows, metric, axis, columns)
                parts.append(part.assign(task=task, metric=metric, axis=axis))
    if not parts:
        return pd.DataFrame(columns=["task", "metric", "axis", "x", "y", "y_sem", "n_runs"])
    return pd.concat(parts, ignore_index=True)[
        ["task", "metric", "axis", "x", "y", "y_sem", "n_runs"]
    ]


# ---------------------------------------------------------------------------------------------
# Emergence scores (BIG-bench, Srivastava et al. 2022, Appendix B)


def improvement(y: np.ndarray) -> float:
    """I(y) = sign(argmax y - argmin y) * (max y - min y): the full range, negative when the
    best value comes at a smaller scale than the worst."""
    y = np.asarray(y, dtype=np.float64)
    return float(np.sign(np.argmax(y) - np.argmin(y)) * (y.max() - y.min()))


def _ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator with 0/0 = 0 (a flat curve) and the denominator floored at
    1e-9 of |numerator|, so a perfectly flat-then-jump curve scores 1e9, not inf (JSON)."""
    if numerator == 0.0:
        return 0.0
    return numerator / max(denominator, 1e-9 * abs(numerator))


def breakthroughness(y: np.ndarray) -> float:
    """BIG-bench B = I(y) / sqrt(median_i (y_{i+1} - y_i)^2), y ordered by scale, higher =
    better (Srivastava et al. 2022, App. B; Schaeffer et al. 2023's emergence score)."""
    steps = np.diff(np.asarray(y, dtype=np.float64))
    return _ratio(improvement(y), math.sqrt(np.median(np.square(steps))))


def linearity(y: np.ndarray) -> float:
    """BIG-bench-style linearity L = I(y) / sqrt(sum_i (y_{i+1} - y_i)^2): sqrt(n - 1) for a
    straight line, 1 for a single step."""
    steps = np.diff(np.asarray(y, dtype=np.float64))
    return _ratio(improvement(y), math.sqrt(np.sum(np.square(steps))))


def max_step_share(y: np.ndarray) -> float:
    """Share of the curve's total movement made in its single largest step (1/(n-1) for a
    straight line, 1 for a single jump): a plain-language companion to B and L."""
    steps = np.abs(np.diff(np.asarray(y, dtype=np.float64)))
    total = steps.sum()
    return float(steps.max() / total) if total > 0 else 0.0


def headroom(metric: str, values: np.ndarray) -> float:
    """How far the curve's worst value (oriented, higher = better) lies from a perfect score."""
    return float(oriented(metric, np.array([PERFECT[metric]]))[0] - np.min(values))


def best_jump(y: np.ndarray, max_steps: int, min_rise: float) -> tuple[float, int, float]:
    """(rise, steps, contrast) of the window of at most `max_steps` adjacent steps whose rise per
    step is the largest multiple of the median |step| outside it, among windows rising at least
    `min_rise`; (0, 0, 0) when none does. y is ordered by scale, higher = better."""
    steps = np.diff(np.asarray(y, dtype=np.float64))
    best = (0.0, 0, 0.0)
    for width in range(1, max_steps + 1):
        for start in range(len(steps) - width + 1):
            rise = float(steps[start : start + width].sum())
            if rise < min_rise or rise <= 0.0:
                continue
            outside = np.abs(np.delete(steps, np.s_[start : start + width]))
            contrast = _ratio(rise / width, float(np.median(outside)))
            if contrast > best[2]:
                best = (rise, width, contrast)
    return best


def curve_scores(
    y: np.ndarray, metric: str, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> dict[str, float | int | bool]:
    """Scores of one curve (values ordered least to most capable, metric's own orientation):
    BIG-bench's, the best jump's (`best_jump`), whether the curve rises at least
    `min_improvement` of its headroom, and whether it jumps (module docstring, item 3)."""
    values = oriented(metric, y)
    n = len(values)
    if n < 2:
        return {
            "n_scales": n,
            **dict.fromkeys(SCORE_NAMES, math.nan),
            "rises": False,
            "jump": False,
        }
    gain = improvement(values)
    min_rise = thresholds.min_improvement * headroom(metric, values)
    max_steps = min(thresholds.jump_width, n - 1 - thresholds.context_steps)
    rise, width, contrast = best_jump(values, max_steps, min_rise)
    b = breakthroughness(values)
    rises = bool(gain > 0 and gain >= min_rise)
    return {
        "n_scales": n,
        "improvement": gain,
        "breakthroughness": b,
        "breakthroughness_ratio": b / (n - 1),
        "linearity": linearity(values),
        "max_step_share": max_step_share(values),
        "jump_rise": rise,
        "jump_steps": width,
        "jump_contrast": contrast,
        "rises": rises,
        "jump": bool(rises and n >= thresholds.min_scales and contrast >= thresholds.jump_contrast),
    }


# ---------------------------------------------------------------------------------------------
# Schaeffer et al. 2023: does the jump survive continuous metrics?


def schaeffer_verdict(
    scores: Mapping[str, Mapping[str, float | int | bool]],
    discrete: str = "exact_match",
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> str:
    """One task's verdict from its curves' scores (metric -> `curve_scores`) on one axis.

    'undetermined' with too few scales for a jump to show, or no continuous metric to compare;
    'no rise' when the discrete metric does not rise by `min_improvement`; then, by the share of
    continuous metrics that jump: with exact match jumping, 'mirage' (none), 'genuine' (at least
    `genuine_share`) or 'mixed'; with exact match rising smoothly, 'smooth' (none) or 'mixed'."""
    exact = scores.get(discrete)
    if exact is None or exact["n_scales"] < thresholds.min_scales:
        return UNDETERMINED
    if not exact["rises"]:
        return NO_RISE
    continuous = [bool(scores[m]["jump"]) for m in CONTINUOUS_METRICS if m in scores]
    if not continuous:
        return UNDETERMINED
    share = float(np.mean(continuous))
    if exact["jump"]:
        if share == 0.0:
            return MIRAGE
        return GENUINE if share >= thresholds.genuine_share else MIXED
    return SMOOTH if share == 0.0 else MIXED


# ---------------------------------------------------------------------------------------------
# The table


def _task_scores(rows, metrics, columns, thresholds) -> dict[str, dict[str, dict]]:
    """metric -> axis -> curve_scores, for one task's rows."""
    out: dict[str, dict[str, dict]] = {}
    for metric in metrics:
        out[metric] = {}
        for axis in AXES:
            if columns.axis(axis) in rows.columns:
                y = curve(rows, metric, axis, columns)["y"].to_numpy()
                out[metric][axis] = curve_scores(y, metric, thresholds)
    return out


def verdict_table(
    table: pd.DataFrame,
    metrics: Sequence[str] | None = None,
    columns: Columns = DEFAULT_COLUMNS,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    verdict_axis: str = "n",
) -> pd.DataFrame:
    """One row per task x metric: emergence scores against N, C and loss (suffixes _n, _c,
    _loss), the metric's Du et al. test against loss, the task's Schaeffer verdict and the axis
    it was read on (`verdict_axis`, or loss where the Du test finds loss explains exact match),
    and the evaluation resolution when the table has `n_examples`."""
    metrics = list(metrics) if metrics is not None else metric_columns(table)
    rows_out = []
    for task, rows in table.groupby(columns.task, sort=True):
        scores = _task_scores(rows, metrics, columns, thresholds)
        du = {m: _du_columns(rows, m, columns, thresholds) for m in metrics}
        axis = verdict_axis
        discrete = DISCRETE_METRICS[0]
        exact = du.get(discrete, {})
        if exact.get("du_verdict") == LOSS_EXPLAINS and "loss" in scores.get(discrete, {}):
            axis = "loss"
        on_axis = {m: s[axis] for m, s in scores.items() if axis in s}
        schaeffer = schaeffer_verdict(on_axis, thresholds=thresholds)
        for metric in metrics:
            better = HIGHER_IS_BETTER.get(metric, True)
            row = {"task": task, "metric": metric, "higher_is_better": better}
            for ax, s in scores[metric].items():
                row.update({f"{k}_{ax}": v for k, v in s.items()})
            row["schaeffer_verdict"] = schaeffer
            row["verdict_axis"] = axis
            row.update(du[metric])
            row["resolution"] = _resolution(rows, columns)
            rows_out.append(row)
    return pd.DataFrame(rows_out)


def _du_columns(rows, metric, columns, thresholds) -> dict:
    """The Du et al. test for one task and metric, as du_* columns."""
    needed = [columns.loss, columns.n, metric]
    has_d = columns.d in rows.columns
    data = rows[needed + ([columns.d] if has_d else [])].dropna()
    result = loss_explains(
        data[columns.loss].to_numpy(),
        data[metric].to_numpy(),
        data[columns.n].to_numpy(),
        data[columns.d].to_numpy() if has_d else None,
        thresholds,
    )
    return {f"du_{k}": v for k, v in result.items()}


def _resolution(rows: pd.DataFrame, columns: Columns) -> float | None:
    """Resolution of the smallest evaluation set behind the task's rows, if recorded."""
    if columns.n_examples not in rows.columns or rows[columns.n_examples].isna().all():
        return None
    return resolution(int(rows[columns.n_examples].min()))


def to_records(frame: pd.DataFrame) -> list[dict]:
    """A verdict (or curves) table as JSON-able dicts: numpy scalars to Python, NaN to None."""
    return json.loads(frame.to_json(orient="records"))


def thresholds_dict(thresholds: Thresholds = DEFAULT_THRESHOLDS) -> dict[str, float | int]:
    """The thresholds as a dict (min_scales included), for a caption or a results JSON."""
    return {**asdict(thresholds), "min_scales": thresholds.min_scales}
