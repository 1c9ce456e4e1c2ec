"""The claims ledger: each published claim about language models, tested on this study's runs.

    python -m scaling.reports.claims --sweep runs/isoflop --tasks runs/tasks \
        --ablations runs/ablations --out results/CLAIMS.md

One row per claim: the experiment that tests it, the measured effect with its interval, and a
verdict at the scale measured: supported, contradicted or not resolved. Everything is
recomputed from run records (never written by hand); a claim whose runs are missing is not
resolved and says why. This module builds each rule's inputs from runs; the rules themselves,
pure functions with their minimum effects, are `scaling.analysis.rules`, and the ledger prints them
as a
table. Beside the Markdown goes `claims.json`, one entry per claim.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from scaling import records
from scaling.analysis import emergence, transfer
from scaling.analysis import rules as claim_rules
from scaling.analysis.fit.results import Estimate, jsonable
from scaling.analysis.rules import BudgetRatio, Rules, SweepEvidence
from scaling.analysis.verdicts import NOT_RESOLVED, OUTCOMES, Verdict, fmt, fmt_interval
from scaling.records import atomic_write_text

NOT_MEASURED = "not measured"  # a reason, never a verdict: the claim's runs are missing


@dataclass
class Claim:
    number: int
    claim: str
    experiment: str
    measured: str
    interval: str
    verdict: str  # one of scaling.analysis.verdicts.OUTCOMES
    reason: str  # why, in full (the ledger's notes)
    summary: str = ""  # a few words beside the verdict in the table, e.g. per task
    note: str = ""  # context for reading the figures
    extra: dict[str, Any] = field(default_factory=dict)  # further figures for claims.json

    def __post_init__(self) -> None:
        if self.verdict not in OUTCOMES:
            raise ValueError(f"claim {self.number}: verdict {self.verdict!r} not in {OUTCOMES}")


def _missing(number: int, claim: str, experiment: str, why: str) -> Claim:
    return Claim(number, claim, experiment, "–", "–", NOT_RESOLVED, f"{NOT_MEASURED}: {why}")


def _from_verdict(
    number: int,
    claim: str,
    experiment: str,
    measured: str,
    interval: str,
    verdict: Verdict,
    **kwargs: Any,
) -> Claim:
    return Claim(
        number, claim, experiment, measured, interval, verdict.verdict, verdict.reason, **kwargs
    )


# ---------------------------------------------------------------------------------- 1 and 2

C1 = "More parameters give lower loss (at fixed data, and at compute-optimal data)"
C2 = "Loss falls as a power law in N and D; compute-optimal training uses ~20 tokens/parameter"


def sweep_evidence(
    study: Any, fits: Any, chinchilla: tuple[Any, Any] | None = None
) -> SweepEvidence:
    """Claims 1 and 2's evidence from a sweep report's `Study` and `Fits` (scaling.reports.sweep):
    alpha and beta from Approach 3 (E fixed at the corpus's entropy where it is known:
    `Fits.law`), the held-out error, and tokens per parameter at each budget inside the swept
    range, from the IsoFLOP minima of Approach 2 where fitted, else from Approach 3's frontier
    at the report's budgets that lie inside the runs' compute. E_fit is the free fit's.

    `chinchilla`, the same study and its fits with N counting every parameter, reads the
    tokens per parameter the way Hoffmann et al. count them (their ~20 is per parameter,
    embeddings included): its Approach 3 frontier inside the runs' compute decides, and the
    sweep's own ratios are reported beside it."""
    law_name, a3 = fits.law()
    free = fits.results.get("approach3", a3)
    held = fits.results.get("heldout")
    p = study.points
    best = p.loc[p.groupby("D")["loss"].idxmin()]
    a2 = fits.results.get("approach2")
    if a2 is not None:
        source = "Approach 2 IsoFLOP minima"
        ratios = tuple(_isoflop_ratio(row) for row in a2.derived["isoflop_minima"])
    else:
        source = "Approach 3 frontier, budgets inside the runs' compute"
        ratios = tuple(
            _frontier_ratio(row, p)
            for row in a3.derived.get("frontier", [])
            if p["C"].min() <= row["C"] <= p["C"].max()
        )
    other_source, other = "", ()
    counted = chinchilla[1].law() if chinchilla is not None else None
    if counted is not None:
        name_c, a3_c = counted
        p_c = chinchilla[0].points
        other_source, other = f"{source}, N non-embedding", ratios
        source = "Approach 3 over every parameter (Chinchilla's count, C = 6ND)" + (
            ", E fixed" if name_c == "approach3_e_fixed" else ""
        )
        ratios = tuple(
            _frontier_ratio(row, p_c)
            for row in a3_c.derived.get("frontier", [])
            if p_c["C"].min() <= row["C"] <= p_c["C"].max()
        )
    fixed = law_name == "approach3_e_fixed"
    return SweepEvidence(
        fit=f"Approach 3, E fixed at {study.entropy:.4f}" if fixed else "Approach 3 (E free)",
        alpha=a3.params["alpha"],
        beta=a3.params["beta"],
        heldout_error=None if held is None else held.mean_abs_rel_error,
        ratio_source=source,
        ratios=ratios,
        E_known=study.entropy,
        E_fit=free.params["E"],
        largest_n_wins=(int((best["N"] == p["N"].max()).sum()), len(best)),
        other_ratio_source=other_source,
        other_ratios=other,
    )


def _isoflop_ratio(row: dict) -> BudgetRatio:
    return BudgetRatio(row["C"], Estimate(**row["tokens_per_param"]), bool(row["interior"]))


def _frontier_ratio(row: dict, points: pd.DataFrame) -> BudgetRatio:
    n_opt, d_opt = row["N_opt"]["estimate"], row["D_opt"]["estimate"]
    inside = (
        points["N"].min() <= n_opt <= points["N"].max()
        and points["D"].min() <= d_opt <= points["D"].max()
    )
    return BudgetRatio(row["C"], Estimate(**row["tokens_per_param"]), bool(inside))


def sweep_claims(root: Path | None, rules: Rules, n_bootstrap: int) -> list[Claim]:
    from scaling.reports import (
        sweep as report,  # the sweep report's study loading and fits, reused as they are
    )

    exp = f"sweep (`{root}`)"
    if root is None or not root.is_dir():
        why = f"no sweep runs ({root})"
        return [_missing(1, C1, exp, why), _missing(2, C2, exp, why)]
    study = report.load_study(root, root.name)
    fits = report.fit_study(
        study,
        n_bootstrap=n_bootstrap,
        only=("approach3", "approach3_e_fixed", "approach2", "heldout"),
    )
    if fits.law() is None:
        why = fits.skipped.get("approach3", "no Approach 3 fit")
        return [_missing(1, C1, exp, why), _missing(2, C2, exp, why)]
    # Counted every parameter, the IsoFLOP budgets are no longer equal-compute slices: the law
    # is read at 1-3-10 steps of C inside the runs' compute instead.
    counted = report.load_study(root, root.name, n_convention="total")
    counted_fits = report.fit_study(
        counted,
        n_bootstrap=n_bootstrap,
        only=("approach3", "approach3_e_fixed"),
        budgets=report.decade_budgets(counted.points),
    )
    evidence = sweep_evidence(study, fits, (counted, counted_fits))
    return [claim1_row(evidence, exp, rules), claim2_row(evidence, exp, rules)]


def claim1_row(ev: SweepEvidence, exp: str, rules: Rules) -> Claim:
    wins = ""
    if ev.largest_n_wins is not None:
        wins = (
            f"; the largest N has the lowest loss at {ev.largest_n_wins[0]} of "
            f"{ev.largest_n_wins[1]} token counts (reported, not decisive)"
        )
    return _from_verdict(
        1,
        C1,
        f"{exp}, {ev.fit}",
        f"alpha = {fmt(ev.alpha.estimate)}, beta = {fmt(ev.beta.estimate)}{wins}",
        f"alpha {fmt_interval(ev.alpha)}; beta {fmt_interval(ev.beta)}",
        claim_rules.claim1(ev, rules),
        note="Along the fitted frontier L falls with N exactly when alpha > 0 and beta > 0, so "
        "the compute-optimal half needs beta's interval above 0 too.",
    )


def _ratio_list(ratios: tuple) -> str:
    listed = ", ".join(
        f"C = {b.C:.2g}: {fmt_interval(b.tokens_per_param)}{'' if b.interior else ' (edge)'}"
        for b in ratios
    )
    return listed or "none inside the swept range"


def claim2_row(ev: SweepEvidence, exp: str, rules: Rules) -> Claim:
    halves = {
        "power law": claim_rules.power_law(ev, rules),
        "~20 tokens/param": claim_rules.tokens_per_param(ev, rules),
    }
    held = "–" if ev.heldout_error is None else f"{ev.heldout_error:.1%}"
    ratios = _ratio_list(ev.ratios)
    e_fit = ev.E_fit
    return _from_verdict(
        2,
        C2,
        f"{exp}, {ev.fit}, held-out check; tokens/param from the {ev.ratio_source}",
        f"held-out mean abs. rel. error {held}; alpha = {fmt(ev.alpha.estimate)}, beta = "
        f"{fmt(ev.beta.estimate)}; E = {fmt(None if e_fit is None else e_fit.estimate)} "
        f"(corpus entropy {fmt(ev.E_known)})",
        f"tokens/param {ratios}",
        claim_rules.claim2(ev, rules),
        summary="; ".join(f"{name} {v.verdict}" for name, v in halves.items()),
        note="Budgets beyond the swept compute are never read; a budget whose loss minimum lies "
        "at the edge of the sizes tried is marked (edge) and calls nothing."
        + (
            f" For reference, from the {ev.other_ratio_source}: {_ratio_list(ev.other_ratios)}."
            if ev.other_ratio_source
            else ""
        ),
        extra={
            "E_known": ev.E_known,
            "E_fit": None if e_fit is None else e_fit.estimate,
            "E_fit_interval": None if e_fit is None else [e_fit.ci_low, e_fit.ci_high],
        },
    )


# ---------------------------------------------------------------------------------- 3, 4, 5

C3 = "Fine-tuning needs far less task data than training from scratch (how many times less)"
C4 = "Fine-tuned models beat pre-train-only models on their task at every size"
C5 = "Abilities emerge suddenly with scale (under which metrics)"


def task_claims(root: Path | None, rules: Rules, n_bootstrap: int) -> list[Claim]:
    from scaling.reports import tasks as taskreport

    exp = f"task study (`{root}`): pre-train-only / fine-tuned / from scratch"
    try:
        if root is None or not root.is_dir():
            raise ValueError(f"no task runs ({root})")
        study = taskreport.analyse(root, n_bootstrap)
    except ValueError as err:
        return [_missing(k, c, exp, str(err)) for k, c in ((3, C3), (4, C4), (5, C5))]
    return [
        claim3_row(study.effective, study.transfer_laws, exp, rules),
        claim4_row(study.paired, exp, rules),
        claim5_row(study.verdicts, exp),
    ]


def claim3_row(effective: pd.DataFrame, laws: dict, exp: str, rules: Rules) -> Claim:
    exp += "; from-scratch fit inverted (Hernandez et al. 2021)"
    if effective.empty:
        return _missing(3, C3, exp, "no fine-tuned loss could be inverted")
    measured, lows, highs = [], [], []
    for task, rows in effective.groupby("task", sort=True):
        pairs = [claim_rules.data_multiplier(r) for r in rows.to_dict("records")]
        points = [f"{bound}{fmt(m.estimate)}x" for m, bound in pairs]
        measured.append(f"{task}: {', '.join(points)}")
        lows += [m.ci_low for m, _ in pairs if m.ci_low is not None]
        highs += [m.ci_high for m, _ in pairs if m.ci_high is not None]
    bounded = int((effective["d_e"] > effective["scratch_d_max"]).sum())
    failed = int(effective["d_e_failed"].sum())
    bracketed = int(
        ((effective["scratch_not_reached"] > 0) | np.isfinite(effective["scratch_reached"])).sum()
    )
    law_text = "; ".join(
        f"{t}: D_T = {fmt(r.value('k'))} D_F^{fmt(r.value('alpha'))} N^{fmt(r.value('beta'))}"
        for t, r in laws.items()
    )
    return _from_verdict(
        3,
        C3,
        exp,
        "D_E/D_F per fine-tuned run: " + "; ".join(measured),
        f"per-run intervals span [{fmt(min(lows, default=None))}, {fmt(max(highs, default=None))}]",
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
        return _missing(4, C4, exp, "no size with both a fine-tuned and a pre-train-only run")
    measured = "; ".join(
        f"{task}: " + ", ".join(f"N = {n:,.0f}: {v.effect.estimate:+.3f}" for n, v in sizes.items())
        for task, sizes in gains.items()
    )
    intervals = "; ".join(
        f"{task}: " + ", ".join(fmt_interval(v.effect) for v in sizes.values())
        for task, sizes in gains.items()
    )
    return _from_verdict(
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


def _size_summary(task: str, sizes: dict[float, Verdict]) -> str:
    verdict = claim_rules.sizes_verdict(sizes).verdict
    start = claim_rules.holds_from(sizes)
    return f"{task}: {verdict}" + ("" if start is None else f", supported from N = {start:,.0f} up")


def claim5_row(verdicts: dict[str, pd.DataFrame], exp: str) -> Claim:
    exp += "; jumps vs compute (vs loss where Du et al.'s test allows), Schaeffer's metrics"
    if not verdicts:
        return _missing(5, C5, exp, "no emergence table")
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
    return _from_verdict(
        5,
        C5,
        exp,
        "; ".join(f"{unit}: {label}" for unit, label in labels.items()),
        f"metrics that jump: {'; '.join(jumps)}",
        claim_rules.claim5(labels),
        note=f"At most {n_scales} compute scales per curve ({emergence.Thresholds().min_scales} "
        f"needed for a jump to show). Du et al.: {'; '.join(du)}. See results/tasks/README.md "
        "for every score.",
    )


# ---------------------------------------------------------------------------------- 6, 7, 8

C6 = "Too many parameters for the data leads to memorisation (train/val gap against N/D)"
C7 = "Garbage in, garbage out: corrupted pre-training text costs loss and task skill"
C8 = "The learning-rate schedule matters (cosine vs WSD vs constant at equal compute)"


def _completed(root: Path) -> pd.DataFrame:
    table = records.collect(root) if root.is_dir() else pd.DataFrame()
    return table[table["status"] == "completed"] if len(table) else table


def memorisation_claim(root: Path, rules: Rules) -> Claim:
    exp = f"repeated data (`experiment=ablation_memorise`, {root})"
    runs = _completed(root)
    if runs.empty:
        return _missing(6, C6, exp, f"no completed runs under {root}")
    ratio = (runs["n_params_nonembedding"] / runs["unique_tokens"]).to_numpy(float)
    gap = (runs["final_val_loss"] - runs["final_train_loss"]).to_numpy(float)
    verdict = claim_rules.claim6(ratio, gap, rules)
    table = ", ".join(f"N/U={r:.2g}: {g:+.3f}" for r, g in sorted(zip(ratio, gap, strict=True)))
    i_max = int(np.argmax(ratio))
    return _from_verdict(
        6,
        C6,
        exp,
        f"val - train loss {gap[i_max]:+.3f} nats at the largest N/U = {ratio[i_max]:.2g}, "
        f"{gap[int(np.argmin(ratio))]:+.3f} at the smallest",
        "gap rise "
        + ("–" if verdict.effect is None else fmt_interval(verdict.effect))
        + f" over {len(runs)} runs",
        verdict,
        note=f"U = unique training tokens (data.unique_tokens). Gaps: {table}.",
    )


def corruption_claim(root: Path, eval_root: Path, rules: Rules) -> Claim:
    exp = f"noise rows (`experiment=ablation_corrupt`, `ablation_corrupt_eval`, {root})"
    runs = _completed(root)
    if runs.empty or "data_corrupt_fraction" not in runs:
        return _missing(7, C7, exp, f"{len(runs)} completed runs under {root}")
    frac = runs["data_corrupt_fraction"].fillna(0).astype(float).to_numpy()
    loss = runs["final_val_loss"].to_numpy(float)
    verdict = claim_rules.claim7(frac, loss, rules)
    skill = ""
    evals = transfer.arms(_completed(eval_root)) if eval_root.is_dir() else pd.DataFrame()
    if len(evals):
        source = runs.set_index("run_name")["data_corrupt_fraction"].fillna(0.0)
        evals = evals.assign(frac=evals["source_run_name"].map(source).astype(float))
        per = evals.groupby(["task", "frac"])[["task_token_accuracy", "task_answer_logprob"]]
        pieces = []
        for task, rows in per.mean().reset_index().groupby("task"):
            if rows["frac"].nunique() < 2:
                continue
            s_acc = stats.linregress(rows["frac"] * 100, rows["task_token_accuracy"]).slope
            s_lp = stats.linregress(rows["frac"] * 100, rows["task_answer_logprob"]).slope
            pieces.append(f"{task}: tok acc {s_acc:+.2g}/%, answer log p {s_lp:+.2g}/%")
        if pieces:
            skill = "; few-shot task skill per percent: " + "; ".join(pieces)
    order = np.argsort(frac)
    return _from_verdict(
        7,
        C7,
        exp,
        f"clean val loss {fmt(verdict.effect.estimate if verdict.effect else None)} nats per "
        f"percent of rows corrupted{skill}",
        ("–" if verdict.effect is None else fmt_interval(verdict.effect))
        + f"; fractions {sorted(set(frac.tolist()))}, losses "
        + ", ".join(fmt(x, 4) for x in loss[order]),
        verdict,
        note="Corrupted rows are uniform random bytes; validation stays clean. The verdict rests "
        "on the loss; task skill is reported, not decided (few-shot skill of tiny models sits "
        "at the evaluation's resolution).",
    )


def schedule_claim(root: Path, rules: Rules) -> Claim:
    exp = f"schedules at equal compute (`experiment=ablation_schedule`, {root})"
    runs = _completed(root)
    if runs.empty or runs["schedule"].nunique() < 2:
        return _missing(8, C8, exp, f"{len(runs)} completed runs under {root}")
    verdict = claim_rules.claim8(runs["schedule"], runs["final_val_loss"].astype(float), rules)
    by = runs.groupby("schedule")["final_val_loss"]
    seeds = sorted({int(by.size().min()), int(by.size().max())})
    return _from_verdict(
        8,
        C8,
        exp,
        ", ".join(f"{s} {m:.4f}" for s, m in by.mean().sort_values().items())
        + f" (mean final val loss over {'-'.join(map(str, seeds))} seeds)",
        "worst - best " + ("–" if verdict.effect is None else fmt_interval(verdict.effect)),
        verdict,
        note="The interval is the seed spread's, pooled over schedules, Bonferroni-corrected for "
        "picking the best and worst after the fact.",
    )


# ---------------------------------------------------------------------------------- ledger


def build(
    sweep: Path | None,
    tasks: Path | None,
    ablations: Path | None,
    rules: Rules | None = None,
    n_bootstrap: int = 1000,
) -> list[Claim]:
    rules = rules or Rules()
    claims = sweep_claims(sweep, rules, n_bootstrap) + task_claims(tasks, rules, n_bootstrap)
    if ablations is None:
        why = "no ablation runs (--ablations)"
        exps = ("ablation_memorise", "ablation_corrupt", "ablation_schedule")
        return claims + [
            _missing(k, c, f"`experiment={e}`", why)
            for k, c, e in zip((6, 7, 8), (C6, C7, C8), exps, strict=True)
        ]
    return claims + [
        memorisation_claim(ablations / "memorise", rules),
        corruption_claim(ablations / "corrupt", ablations / "corrupt_eval", rules),
        schedule_claim(ablations / "schedule", rules),
    ]


def markdown(claims: list[Claim], command: str, rules: Rules) -> str:
    out = [
        "# Claims ledger",
        "",
        f"Rebuilt by `{command}` on {dt.date.today().isoformat()} from run records; never "
        "edited by hand. Verdicts hold at the scale measured (tiny models on a CPU unless the "
        "experiment says otherwise), not beyond it. Each is supported, contradicted or not "
        "resolved by the rules below; the notes say why.",
        "",
        "| # | claim | experiment | measured | interval | verdict |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for c in claims:
        verdict = f"**{c.verdict}**" + (f" ({c.summary})" if c.summary else "")
        cells = [str(c.number), c.claim, c.experiment, c.measured, c.interval, verdict]
        out.append("| " + " | ".join(x.replace("|", "/") for x in cells) + " |")
    out += ["", "## Notes", ""]
    out += [
        f"{c.number}. {c.verdict}: {c.reason}." + (f" {c.note}" if c.note else "") for c in claims
    ]
    out += ["", "## Rules", "", claim_rules.rules_table(rules, emergence.Thresholds())]
    return "\n".join(out) + "\n"


def to_json(claims: list[Claim]) -> str:
    """claims.json: one entry per claim, its verdict one of the three outcomes."""
    entries = [
        {
            "id": c.number,
            "claim": c.claim,
            "verdict": c.verdict,
            "measured": c.measured,
            "interval": c.interval,
            "reason": c.reason,
            **c.extra,
        }
        for c in claims
    ]
    return json.dumps(jsonable(entries), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", type=Path, help="N x D sweep root (claims 1-2)")
    parser.add_argument("--tasks", type=Path, help="task study root (claims 3-5)")
    parser.add_argument("--ablations", type=Path, help="ablations root (claims 6-8)")
    parser.add_argument("--out", type=Path, default=Path("results/CLAIMS.md"))
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--command", help="the command to cite as having rebuilt the ledger")
    args = parser.parse_args(argv)
    claims = build(args.sweep, args.tasks, args.ablations, n_bootstrap=args.bootstrap)
    command = args.command or "python -m scaling.reports.claims " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, markdown(claims, command, Rules()))
    atomic_write_text(args.out.with_name("claims.json"), to_json(claims))
    print(args.out)


if __name__ == "__main__":
    main()
