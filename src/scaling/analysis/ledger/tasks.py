"""Claims 3 to 5 of the ledger from a task study: data transferred, fine-tuning gains, emergence.

The evidence is the task study's tables (scaling.analysis.task_study), judged by
scaling.analysis.rules.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from scaling.analysis import rules as claim_rules
from scaling.analysis.emergence_terms import Thresholds
from scaling.analysis.fit.results import Estimate, FitResult
from scaling.analysis.format import interval_of, number
from scaling.analysis.ledger.claim import Claim, from_verdict, missing
from scaling.analysis.rules import Rules
from scaling.analysis.task_study import analyse
from scaling.analysis.verdicts import Verdict

C3 = "Fine-tuning needs far less task data than training from scratch (how many times less)"
C4 = "Fine-tuned models beat pre-train-only models on their task at every size"
C5 = "Abilities emerge suddenly with scale (under which metrics)"


def task_claims(root: Path | None, rules: Rules, n_bootstrap: int) -> list[Claim]:
    exp = f"task study (`{root}`): pre-train-only / fine-tuned / from scratch"
    try:
        if root is None or not root.is_dir():
            raise ValueError(f"no task runs ({root})")
        study = analyse(root, n_bootstrap)
    except ValueError as err:
        return [missing(k, c, exp, str(err)) for k, c in ((3, C3), (4, C4), (5, C5))]
    return [
        claim3_row(study.effective, study.transfer_laws, exp, rules),
        claim4_row(study.paired, exp, rules),
        claim5_row(study.verdicts, exp),
    ]


def claim3_row(
    effective: pd.DataFrame, laws: dict[str, FitResult], exp: str, rules: Rules
) -> Claim:
    exp += "; from-scratch fit inverted (Hernandez et al. 2021)"
    if effective.empty:
        return missing(3, C3, exp, "no fine-tuned loss could be inverted")
    measured, lows, highs = [], [], []
    for task, rows in effective.groupby("task", sort=True):
        pairs = [claim_rules.data_multiplier(r) for r in rows.to_dict("records")]
        points = [f"{bound}{number(m.estimate)}x" for m, bound in pairs]
        measured.append(f"{task}: {', '.join(points)}")
        lows += [m.ci_low for m, _ in pairs if m.ci_low is not None]
        highs += [m.ci_high for m, _ in pairs if m.ci_high is not None]
    bounded = int((effective["d_e"] > effective["scratch_d_max"]).sum())
    failed = int(effective["d_e_failed"].sum())
    bracketed = int(
        ((effective["scratch_not_reached"] > 0) | np.isfinite(effective["scratch_reached"])).sum()
    )
    law_text = "; ".join(
        f"{t}: D_T = {number(r.value('k'))} D_F^{number(r.value('alpha'))} "
        f"N^{number(r.value('beta'))}"
        for t, r in laws.items()
    )
    return from_verdict(
        3,
        C3,
        exp,
        "D_E/D_F per fine-tuned run: " + "; ".join(measured),
        f"per-run intervals span [{number(min(lows, default=None))}, "
        f"{number(max(highs, default=None))}]",
        claim_rules.claim3(effective, rules),
        summary="; ".join(
            f"{v.verdict} for {task}"
            for task, v in claim_rules.multiplier_verdicts(effective, rules).items()
        ),
        note=f"{bounded} of {len(effective)} D_E lie beyond the largest from-scratch D: they "
        f"count only as that D (≥). Each interval is kept inside what the from-scratch runs of "
        f"its size show ({bracketed} of {len(effective)} have such runs on one side at least; ≥ "
        "where the fit said less than they show). "
        f"{failed} refits failed in all. "
        + (f"Transfer laws: {law_text}." if law_text else "No transfer law fitted."),
    )


def claim4_row(paired: pd.DataFrame, exp: str, rules: Rules) -> Claim:
    gains = claim_rules.finetune_gains(paired, rules)
    if not gains:
        return missing(4, C4, exp, "no size with both a fine-tuned and a pre-train-only run")
    measured = "; ".join(
        f"{task}: "
        + ", ".join(f"N = {n:,.0f}: {_effect(v).estimate:+.3f}" for n, v in sizes.items())
        for task, sizes in gains.items()
    )
    intervals = "; ".join(
        f"{task}: " + ", ".join(interval_of(_effect(v)) for v in sizes.values())
        for task, sizes in gains.items()
    )
    return from_verdict(
        4,
        C4,
        exp + "; largest D_F per task",
        f"answer-loss gain of fine-tuning (nats) {measured}",
        intervals,
        claim_rules.claim4(paired, rules),
        summary="; ".join(_size_summary(task, sizes) for task, sizes in gains.items()),
        note="Loss is the answer-token cross-entropy on the eval split; the interval is the "
        "seed spread's, pooled over the task's sizes; exact match is checked on the "
        "evaluation set (Newcombe interval).",
    )


def _effect(verdict: Verdict) -> Estimate:
    assert verdict.effect is not None  # finetune_gains gives every verdict its effect
    return verdict.effect


def _size_summary(task: str, sizes: dict[float, Verdict]) -> str:
    verdict = claim_rules.sizes_verdict(sizes).verdict
    start = claim_rules.holds_from(sizes)
    return f"{task}: {verdict}" + ("" if start is None else f", supported from N = {start:,.0f} up")


def claim5_row(verdicts: dict[str, pd.DataFrame], exp: str) -> Claim:
    exp += "; jumps vs compute (vs loss where Du et al.'s test allows), Schaeffer's metrics"
    if not verdicts:
        return missing(5, C5, exp, "no emergence table")
    labels, jumps, du = {}, [], []
    for arm, table in verdicts.items():
        for task, rows in table.groupby("task"):
            axis = rows["verdict_axis"].iloc[0]
            unit = f"{task} ({arm}, vs {axis})"
            labels[unit] = rows["schaeffer_verdict"].iloc[0]
            jumped = rows[rows[f"jump_{axis}"].fillna(False).astype(bool)]["metric"].tolist()
            jumps.append(f"{unit}: {', '.join(jumped) or 'none'}")
            exact = rows[rows["metric"] == "exact_match"]
            if len(exact):
                du.append(f"{unit}: {exact['du_verdict'].iloc[0]} ({exact['du_reason'].iloc[0]})")
    n_scales = max(int(t["n_scales_c"].max()) for t in verdicts.values())
    return from_verdict(
        5,
        C5,
        exp,
        "; ".join(f"{unit}: {label}" for unit, label in labels.items()),
        f"metrics that jump: {'; '.join(jumps)}",
        claim_rules.claim5(labels),
        note=f"At most {n_scales} compute scales per curve ({Thresholds().min_scales} "
        f"needed for a jump to show). Du et al.: {'; '.join(du)}. See results/tasks/README.md "
        "for every score.",
    )
