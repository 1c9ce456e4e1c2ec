"""The claims ledger: each published claim about language models, tested on this study's runs.

    python -m scaling.claims --sweep runs/smoke --tasks runs/tasks --ablations runs/ablations \
        --out results/CLAIMS.md

One row per claim: the experiment that tests it, the measured figure with its interval, and a
verdict at the scale measured. Everything is recomputed from run records (never written by
hand); a claim whose runs are missing says so instead of guessing. Verdicts use the fixed
rules in `Rules`, stated in the ledger itself.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from scaling import emergence, fit, records, transfer
from scaling.rundir import atomic_write_text

SUPPORTED = "supported"
CONTRADICTED = "contradicted"
NOT_RESOLVED = "not resolved"
NOT_MEASURED = "not measured"


@dataclass(frozen=True)
class Rules:
    """The thresholds behind every verdict (printed in the ledger)."""

    heldout_error: float = 0.05  # a power law "predicts" when held-out mean |rel. error| is below
    chinchilla_ratio: float = 20.0  # Hoffmann et al. 2022's tokens per parameter
    max_interval_ratio: float = 10.0  # a ratio interval wider than this factor decides nothing
    memorisation_gap: float = 0.05  # nats: a val-train gap this large counts as memorising
    trend_rho: float = 0.8  # Spearman rho for "rises with" / "falls with"
    schedule_noise_multiple: float = 2.0  # schedule spread must beat this x the seed spread


@dataclass
class Claim:
    number: int
    claim: str
    experiment: str
    measured: str
    interval: str
    verdict: str
    detail: str = ""


def _f(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:.{digits}g}"


def _f4(x: float) -> str:
    return _f(x, 4)


def _ci(low: float | None, high: float | None) -> str:
    return f"[{_f(low)}, {_f(high)}]" if low is not None else "–"


def _missing(number: int, claim: str, experiment: str, why: str) -> Claim:
    return Claim(number, claim, experiment, "–", "–", NOT_MEASURED, why)


# ---------------------------------------------------------------------------------- 1 and 2

C1 = "More parameters give lower loss (at fixed data, and at compute-optimal data)"
C2 = "Loss falls as a power law in N and D; compute-optimal training uses ~20 tokens/parameter"


def sweep_claims(root: Path | None, rules: Rules, n_bootstrap: int) -> list[Claim]:
    from scaling import report  # the sweep report's study loading and fits, reused as they are

    exp = f"sweep (`{root}`), Approach 3 fit"
    if root is None or not root.is_dir():
        why = f"no sweep runs ({root})"
        return [_missing(1, C1, exp, why), _missing(2, C2, exp, why)]
    study = report.load_study(root, root.name)
    fits = report.fit_study(study, n_bootstrap=n_bootstrap, only=("approach3", "heldout"))
    a3 = fits.results.get("approach3")
    if a3 is None:
        why = fits.skipped.get("approach3", "no Approach 3 fit")
        return [_missing(1, C1, exp, why), _missing(2, C2, exp, why)]
    p = study.points
    best = p.loc[p.groupby("D")["loss"].idxmin()]
    largest_wins = int((best["N"] == p["N"].max()).sum())
    alpha, beta = a3.params["alpha"], a3.params["beta"]
    if alpha.ci_low is not None and alpha.ci_low > 0 and largest_wins == len(best):
        v1 = SUPPORTED
    elif alpha.ci_high is not None and alpha.ci_high < 0:
        v1 = CONTRADICTED
    else:
        v1 = NOT_RESOLVED
    claim1 = Claim(
        1,
        C1,
        exp,
        f"alpha = {_f(alpha.estimate)}; largest N has the lowest loss at {largest_wins} of "
        f"{len(best)} token counts",
        f"alpha {_ci(alpha.ci_low, alpha.ci_high)}",
        v1,
        "Compute-optimal data: along the fitted frontier L falls with N exactly when alpha > 0 "
        "and beta > 0, so both halves rest on alpha's interval.",
    )
    held = fits.results.get("heldout")
    frontier = a3.derived.get("frontier", [])
    row = frontier[-1] if frontier else None
    ratio = fit.Estimate(**row["tokens_per_param"]) if row else None
    parts = [f"alpha = {_f(alpha.estimate)}, beta = {_f(beta.estimate)}"]
    if held is not None:
        parts.append(f"held-out mean abs. rel. error {held.mean_abs_rel_error:.1%}")
    if ratio is not None:
        parts.append(f"tokens/parameter at C = {row['C']:.0e}: {_f(ratio.estimate)}")
    power_ok = (
        held is not None
        and held.mean_abs_rel_error < rules.heldout_error
        and all(e.ci_low is not None and e.ci_low > 0 for e in (alpha, beta))
    )
    if ratio is None or ratio.ci_low is None:
        ratio_verdict = NOT_RESOLVED
    elif not ratio.covers(rules.chinchilla_ratio):
        ratio_verdict = CONTRADICTED
    elif ratio.ci_high / ratio.ci_low > rules.max_interval_ratio:
        ratio_verdict = f"{NOT_RESOLVED} (interval too wide)"
    else:
        ratio_verdict = SUPPORTED
    v2 = f"power law {SUPPORTED if power_ok else NOT_RESOLVED}; ~20 tokens/param {ratio_verdict}"
    claim2 = Claim(
        2,
        C2,
        exp + ", held-out check, compute-optimal frontier",
        "; ".join(parts),
        f"beta {_ci(beta.ci_low, beta.ci_high)}; tokens/param "
        + (_ci(ratio.ci_low, ratio.ci_high) if ratio is not None else "–"),
        v2,
        "Power law: held-out error below "
        f"{rules.heldout_error:.0%} and alpha, beta intervals above 0; the ratio's interval "
        f"must hold {rules.chinchilla_ratio:g} and span less than "
        f"{rules.max_interval_ratio:g}x to call it. "
        "Small CPU runs are far from converged, which pushes the fitted optimum to small N.",
    )
    return [claim1, claim2]


# ---------------------------------------------------------------------------------- 3, 4, 5

C3 = "Fine-tuning needs far less task data than training from scratch (how many times less)"
C4 = "Fine-tuned models beat pre-train-only models on their task at every size"
C5 = "Abilities emerge suddenly with scale (under which metrics)"


def task_claims(root: Path | None, n_bootstrap: int) -> list[Claim]:
    from scaling import taskreport

    exp = f"task study (`{root}`): pre-train-only / fine-tuned / from scratch"
    try:
        if root is None or not root.is_dir():
            raise ValueError(f"no task runs ({root})")
        study = taskreport.analyse(root, n_bootstrap)
    except ValueError as err:
        return [_missing(k, c, exp, str(err)) for k, c in ((3, C3), (4, C4), (5, C5))]
    return [_claim3(study, exp), _claim4(study, exp), _claim5(study, exp)]


def _claim3(study, exp: str) -> Claim:
    eff = study.effective.dropna(subset=["d_e"]) if len(study.effective) else study.effective
    if eff.empty:
        return _missing(3, C3, exp, "no fine-tuned loss could be inverted")
    mult = eff["data_multiplier"]
    low = (eff["d_e_low"] / eff["d_f"]).min()
    high = (eff["d_e_high"] / eff["d_f"]).max()
    extrapolated = int(eff["extrapolated"].sum())
    per_task = ", ".join(
        f"{t}: {_f(g['data_multiplier'].median())}x" for t, g in eff.groupby("task")
    )
    verdicts = []
    for task, rows in eff.groupby("task"):
        if (rows["d_e_low"] / rows["d_f"] > 1).all():
            verdicts.append(f"{SUPPORTED} for {task}")
        elif (rows["d_e_high"] / rows["d_f"] < 1).all():
            verdicts.append(f"{CONTRADICTED} for {task}")
        else:
            verdicts.append(f"{NOT_RESOLVED} for {task}")
    verdict = "; ".join(verdicts)
    laws = "; ".join(
        f"{t}: D_T = {_f(r.value('k'))} D_F^{_f(r.value('alpha'))} N^{_f(r.value('beta'))}"
        for t, r in study.transfer_laws.items()
    )
    return Claim(
        3,
        C3,
        exp + "; from-scratch fit inverted (Hernandez et al. 2021)",
        f"D_E/D_F median {_f(mult.median())}x over {len(eff)} fine-tuned runs ({per_task})",
        f"per-run 95% CIs span {_ci(low, high)}",
        verdict,
        "A task is supported when every fine-tuned run's D_E interval lies above its D_F. "
        f"{extrapolated} of {len(eff)} D_E lie beyond the largest from-scratch D (extrapolated). "
        + (f"Transfer laws: {laws}." if laws else "No transfer law fitted."),
    )


def _claim4(study, exp: str) -> Claim:
    p = study.paired.dropna(subset=["finetuned_loss", "pretrain_only_loss"])
    if p.empty:
        return _missing(4, C4, exp, "no size with both a fine-tuned and a pre-train-only run")
    top = p[p["d_f"] == p.groupby("task")["d_f"].transform("max")]
    gain = top["pretrain_only_loss"] - top["finetuned_loss"]
    by_loss = gain > 0
    em_gain = top["finetuned_exact_match"] - top["pretrain_only_exact_match"]
    resolved = em_gain > top["task_resolution"]
    sizes = f"{int(by_loss.sum())} of {len(top)} (task, size) pairs"
    if by_loss.all():
        verdict = f"{SUPPORTED} (by answer loss)"
    elif not by_loss.any():
        verdict = CONTRADICTED
    else:
        first = top[by_loss].groupby("task")["n"].min()
        verdict = "from N = " + ", ".join(f"{t}: {n:,.0f}" for t, n in first.items())
    return Claim(
        4,
        C4,
        exp + f"; largest D_F per task ({', '.join(map(_f, top['d_f'].unique()))} tokens)",
        f"fine-tuned answer loss below pre-train-only in {sizes} (by {gain.min():.3f} to "
        f"{gain.max():.3f} nats); exact-match gain beyond the "
        f"eval resolution in {int(resolved.sum())} of {len(top)}",
        f"EM gain range {_ci(em_gain.min(), em_gain.max())}",
        verdict,
        "Loss is the answer-token cross-entropy on the eval split; EM resolution "
        f"{_f(top['task_resolution'].max())}.",
    )


def _claim5(study, exp: str) -> Claim:
    if not study.verdicts:
        return _missing(5, C5, exp, "no emergence table")
    parts, jumps = [], []
    for arm, table in study.verdicts.items():
        for task, rows in table.groupby("task"):
            parts.append(f"{task} ({arm}): {rows['schaeffer_verdict'].iloc[0]}")
            jumped = rows[rows["jump_c"].fillna(False).astype(bool)]["metric"].tolist()
            jumps.append(f"{task} ({arm}): {', '.join(jumped) or 'none'}")
    seen = {v for t in study.verdicts.values() for v in t["schaeffer_verdict"]}
    if emergence.GENUINE in seen:
        verdict = f"{SUPPORTED} (a jump that continuous metrics show too)"
    elif emergence.MIRAGE in seen:
        verdict = f"{CONTRADICTED} (exact match jumps, continuous metrics do not: a mirage)"
    else:
        verdict = f"{NOT_RESOLVED} ({', '.join(sorted(seen))})"
    n_scales = max(int(t.get("n_scales_c", pd.Series([0])).max()) for t in study.verdicts.values())
    return Claim(
        5,
        C5,
        exp + "; BIG-bench breakthroughness vs compute, Schaeffer and Du verdicts",
        "; ".join(parts),
        f"metrics that jump vs compute: {'; '.join(jumps)}",
        verdict,
        f"At most {n_scales} compute scales per curve; see results/tasks/README.md for every "
        "score and the Du et al. test.",
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
    if len(runs) < 3:
        return _missing(6, C6, exp, f"{len(runs)} completed runs under {root}")
    ratio = runs["n_params_nonembedding"] / runs["unique_tokens"]
    gap = runs["final_val_loss"] - runs["final_train_loss"]
    rho = stats.spearmanr(ratio, gap).statistic
    i_max = int(np.argmax(ratio.to_numpy()))
    big = gap.iloc[i_max]
    if rho >= rules.trend_rho and big >= rules.memorisation_gap:
        verdict = SUPPORTED
    elif rho <= -rules.trend_rho:
        verdict = CONTRADICTED
    else:
        verdict = NOT_RESOLVED
    table = ", ".join(f"N/U={r:.2g}: {g:+.3f}" for r, g in sorted(zip(ratio, gap, strict=True)))
    return Claim(
        6,
        C6,
        exp,
        f"val - train loss {big:+.3f} nats at the largest N/U = {ratio.iloc[i_max]:.2g}; "
        f"Spearman rho(gap, N/U) = {rho:.2f}",
        f"gap range {_ci(gap.min(), gap.max())} over {len(runs)} runs",
        verdict,
        f"U = unique training tokens (data.unique_tokens). Gaps: {table}.",
    )


def corruption_claim(root: Path, eval_root: Path) -> Claim:
    exp = f"noise rows (`experiment=ablation_corrupt`, `ablation_corrupt_eval`, {root})"
    runs = _completed(root)
    if len(runs) < 2 or "data_corrupt_fraction" not in runs:
        return _missing(7, C7, exp, f"{len(runs)} completed runs under {root}")
    frac = runs["data_corrupt_fraction"].fillna(0).astype(float).to_numpy()
    loss = runs["final_val_loss"].to_numpy(float)
    slope, intercept, *_ = stats.linregress(frac * 100, loss)
    clean = intercept
    skill = ""
    evals = transfer.arms(_completed(eval_root)) if eval_root.is_dir() else pd.DataFrame()
    if len(evals):
        source = runs.set_index("run_name")["data_corrupt_fraction"].fillna(0.0)
        evals = evals.assign(frac=evals["source_run_name"].map(source).astype(float))
        per = evals.groupby(["task", "frac"])[["task_token_accuracy", "task_answer_logprob"]]
        pieces = []
        for task, rows in per.mean().reset_index().groupby("task"):
            s_acc = stats.linregress(rows["frac"] * 100, rows["task_token_accuracy"]).slope
            s_lp = stats.linregress(rows["frac"] * 100, rows["task_answer_logprob"]).slope
            pieces.append(f"{task}: tok acc {s_acc:+.2g}/%, answer log p {s_lp:+.2g}/%")
        skill = "; few-shot task skill per percent: " + "; ".join(pieces)
    ordered = loss[np.argsort(frac)]
    rising = np.all(np.diff(ordered) > 0)
    verdict = SUPPORTED if slope > 0 and rising else NOT_RESOLVED
    return Claim(
        7,
        C7,
        exp,
        f"clean val loss +{slope:.3g} nats per percent of rows corrupted "
        f"({slope / clean:.2%} of the clean loss per percent){skill}",
        f"fractions {sorted(set(frac.tolist()))}, losses {', '.join(map(_f4, ordered))}",
        verdict,
        "Corrupted rows are uniform random bytes; validation stays clean. One seed per fraction.",
    )


def schedule_claim(root: Path, rules: Rules) -> Claim:
    exp = f"schedules at equal compute (`experiment=ablation_schedule`, {root})"
    runs = _completed(root)
    if runs.empty or runs["schedule"].nunique() < 2:
        return _missing(8, C8, exp, f"{len(runs)} completed runs under {root}")
    by = runs.groupby("schedule")["final_val_loss"]
    means, spread = by.mean(), by.agg(lambda x: x.max() - x.min())
    noise = float(spread.max()) if (by.size() > 1).any() else math.nan
    gap = float(means.max() - means.min())
    if not math.isfinite(noise):
        verdict = NOT_RESOLVED
    elif gap > rules.schedule_noise_multiple * noise:
        verdict = f"{SUPPORTED}: {means.idxmin()} best"
    else:
        verdict = f"{NOT_RESOLVED} (within seed noise)"
    return Claim(
        8,
        C8,
        exp,
        ", ".join(f"{s} {m:.4f}" for s, m in means.sort_values().items())
        + f" (mean final val loss over {int(by.size().min())} seeds)",
        f"schedule spread {gap:.4f} vs seed spread {_f(noise)}",
        verdict,
        f"A schedule effect must exceed {rules.schedule_noise_multiple:g}x the largest seed "
        "spread within a schedule.",
    )


# ---------------------------------------------------------------------------------- ledger


def build(
    sweep: Path | None,
    tasks: Path | None,
    ablations: Path | None,
    rules: Rules = Rules(),
    n_bootstrap: int = 1000,
) -> list[Claim]:
    claims = sweep_claims(sweep, rules, n_bootstrap) + task_claims(tasks, n_bootstrap)
    if ablations is None:
        why = "no ablation runs (--ablations)"
        exps = ("ablation_memorise", "ablation_corrupt", "ablation_schedule")
        return claims + [
            _missing(k, c, f"`experiment={e}`", why)
            for k, c, e in zip((6, 7, 8), (C6, C7, C8), exps, strict=True)
        ]
    return claims + [
        memorisation_claim(ablations / "memorise", rules),
        corruption_claim(ablations / "corrupt", ablations / "corrupt_eval"),
        schedule_claim(ablations / "schedule", rules),
    ]


def markdown(claims: list[Claim], command: str, rules: Rules) -> str:
    out = [
        "# Claims ledger",
        "",
        f"Rebuilt by `{command}` on {dt.date.today().isoformat()} from run records; never "
        "edited by hand. Verdicts hold at the scale measured (tiny models on a CPU unless the "
        "experiment says otherwise), not beyond it.",
        "",
        "| # | claim | experiment | measured | interval | verdict |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for c in claims:
        cells = [str(c.number), c.claim, c.experiment, c.measured, c.interval, c.verdict]
        out.append("| " + " | ".join(x.replace("|", "/") for x in cells) + " |")
    out += ["", "## Notes", ""]
    out += [f"{c.number}. {c.detail}" for c in claims if c.detail]
    out += ["", "## Verdict rules", ""]
    out += [f"- `{k}` = {v}" for k, v in asdict(rules).items()]
    return "\n".join(out) + "\n"


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
    command = args.command or "python -m scaling.claims " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, markdown(claims, command, Rules()))
    print(args.out)


if __name__ == "__main__":
    main()
