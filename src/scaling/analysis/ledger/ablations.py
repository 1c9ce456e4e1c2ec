"""Claims 6 to 8 of the ledger from the ablations: memorisation, corrupted data, LR schedules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from scaling import records
from scaling.analysis import rules as claim_rules
from scaling.analysis import transfer
from scaling.analysis.format import MISSING, interval_of, number
from scaling.analysis.ledger.claim import Claim, from_verdict, missing
from scaling.analysis.rules import Rules
from scaling.analysis.verdicts import Verdict

C6 = "Too many parameters for the data leads to memorisation (train/val gap against N/D)"
C7 = "Garbage in, garbage out: corrupted pre-training text costs loss and task skill"
C8 = "The learning-rate schedule matters (cosine vs WSD vs constant at equal compute)"


def _completed(root: Path) -> pd.DataFrame:
    table = records.collect(root) if root.is_dir() else pd.DataFrame()
    return table[table["status"] == "completed"] if len(table) else table


def _effect_interval(verdict: Verdict) -> str:
    return MISSING if verdict.effect is None else interval_of(verdict.effect)


def memorisation_claim(root: Path, rules: Rules) -> Claim:
    exp = f"repeated data (`experiment=ablation_memorise`, {root})"
    runs = _completed(root)
    if runs.empty:
        return missing(6, C6, exp, f"no completed runs under {root}")
    ratio = (runs["n_params_nonembedding"] / runs["unique_tokens"]).to_numpy(float)
    gap = (runs["final_val_loss"] - runs["final_train_loss"]).to_numpy(float)
    verdict = claim_rules.claim6(ratio, gap, rules)
    table = ", ".join(f"N/U={r:.2g}: {g:+.3f}" for r, g in sorted(zip(ratio, gap, strict=True)))
    i_max = int(np.argmax(ratio))
    return from_verdict(
        6,
        C6,
        exp,
        f"val - train loss {gap[i_max]:+.3f} nats at the largest N/U = {ratio[i_max]:.2g}, "
        f"{gap[int(np.argmin(ratio))]:+.3f} at the smallest",
        f"gap rise {_effect_interval(verdict)} over {len(runs)} runs",
        verdict,
        note=f"U = unique training tokens (data.unique_tokens). Gaps: {table}.",
    )


def corruption_claim(root: Path, eval_root: Path, rules: Rules) -> Claim:
    exp = f"noise rows (`experiment=ablation_corrupt`, `ablation_corrupt_eval`, {root})"
    runs = _completed(root)
    if runs.empty or "data_corrupt_fraction" not in runs:
        return missing(7, C7, exp, f"{len(runs)} completed runs under {root}")
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
    return from_verdict(
        7,
        C7,
        exp,
        f"clean val loss {number(verdict.effect.estimate if verdict.effect else None)} nats per "
        f"percent of rows corrupted{skill}",
        _effect_interval(verdict)
        + f"; fractions {sorted(set(frac.tolist()))}, losses "
        + ", ".join(number(x, 4) for x in loss[order]),
        verdict,
        note="Corrupted rows are uniform random bytes; validation stays clean. The verdict rests "
        "on the loss; task skill is reported, not decided (few-shot skill of tiny models sits "
        "at the evaluation's resolution).",
    )


def schedule_claim(root: Path, rules: Rules) -> Claim:
    exp = f"schedules at equal compute (`experiment=ablation_schedule`, {root})"
    runs = _completed(root)
    if runs.empty or runs["schedule"].nunique() < 2:
        return missing(8, C8, exp, f"{len(runs)} completed runs under {root}")
    verdict = claim_rules.claim8(runs["schedule"], runs["final_val_loss"].astype(float), rules)
    by = runs.groupby("schedule")["final_val_loss"]
    seeds = sorted({int(by.size().min()), int(by.size().max())})
    return from_verdict(
        8,
        C8,
        exp,
        ", ".join(f"{s} {m:.4f}" for s, m in by.mean().sort_values().items())
        + f" (mean final val loss over {'-'.join(map(str, seeds))} seeds)",
        f"worst - best {_effect_interval(verdict)}",
        verdict,
        note="The interval is the seed spread's, pooled over schedules, Bonferroni-corrected for "
        "picking the best and worst after the fact.",
    )
