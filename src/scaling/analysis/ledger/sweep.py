"""Claims 1 and 2 of the ledger from an N x D sweep: more parameters, power law, ~20 tokens/param.

The evidence is the sweep study's fits (scaling.analysis.study), judged by scaling.analysis.rules.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from scaling.analysis import rules as claim_rules
from scaling.analysis import study as sweep_study
from scaling.analysis.fit.results import Estimate
from scaling.analysis.format import interval_of, number
from scaling.analysis.ledger.claim import Claim, from_verdict, missing
from scaling.analysis.rules import BudgetRatio, Rules, SweepEvidence
from scaling.analysis.study import Fits, Study

C1 = "More parameters give lower loss (at fixed data, and at compute-optimal data)"
C2 = "Loss falls as a power law in N and D; compute-optimal training uses ~20 tokens/parameter"


def sweep_evidence(
    study: Study, fits: Fits, chinchilla: tuple[Study, Fits] | None = None
) -> SweepEvidence:
    """Claims 1 and 2's evidence from a sweep report's `Study` and `Fits` (scaling.analysis.study):
    alpha and beta from Approach 3 (E fixed at the corpus's entropy where it is known:
    `Fits.law`), the held-out error, and tokens per parameter at each budget inside the swept
    range, from the IsoFLOP minima of Approach 2 where fitted, else from Approach 3's frontier
    at the report's budgets that lie inside the runs' compute. E_fit is the free fit's.

    `chinchilla`, the same study and its fits with N counting every parameter, reads the
    tokens per parameter the way Hoffmann et al. count them (their ~20 is per parameter,
    embeddings included): its Approach 3 frontier inside the runs' compute decides, and the
    sweep's own ratios are reported beside it."""
    law = fits.law()
    assert law is not None  # the caller checks that an Approach 3 law was fitted
    law_name, a3 = law
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
            frontier_ratio(row, p)
            for row in a3.derived.get("frontier", [])
            if p["C"].min() <= row["C"] <= p["C"].max()
        )
    other_source = ""
    other: tuple[BudgetRatio, ...] = ()
    if chinchilla is not None and (counted := chinchilla[1].law()) is not None:
        name_c, a3_c = counted
        p_c = chinchilla[0].points
        other_source, other = f"{source}, N non-embedding", ratios
        source = "Approach 3 over every parameter (Chinchilla's count, C = 6ND)" + (
            ", E fixed" if name_c == "approach3_e_fixed" else ""
        )
        ratios = tuple(
            frontier_ratio(row, p_c)
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


def frontier_ratio(row: dict, points: pd.DataFrame) -> BudgetRatio:
    """The tokens per parameter of an Approach 3 frontier row (`frontier_table`), interior
    where its N_opt and D_opt lie inside the sizes and token counts of `points` (N, D)."""
    n_opt, d_opt = row["N_opt"]["estimate"], row["D_opt"]["estimate"]
    inside = (
        points["N"].min() <= n_opt <= points["N"].max()
        and points["D"].min() <= d_opt <= points["D"].max()
    )
    return BudgetRatio(row["C"], Estimate(**row["tokens_per_param"]), bool(inside))


def sweep_claims(root: Path | None, rules: Rules, n_bootstrap: int) -> list[Claim]:
    exp = f"sweep (`{root}`)"
    if root is None or not root.is_dir():
        why = f"no sweep runs ({root})"
        return [missing(1, C1, exp, why), missing(2, C2, exp, why)]
    study = sweep_study.load_study(root, root.name)
    fits = sweep_study.fit_study(
        study,
        n_bootstrap=n_bootstrap,
        only=("approach3", "approach3_e_fixed", "approach2", "heldout"),
    )
    if fits.law() is None:
        why = fits.skipped.get("approach3", "no Approach 3 fit")
        return [missing(1, C1, exp, why), missing(2, C2, exp, why)]
    # Counted every parameter, the IsoFLOP budgets are no longer equal-compute slices: the law
    # is read at 1-3-10 steps of C inside the runs' compute instead.
    counted = sweep_study.load_study(root, root.name, n_convention="total")
    counted_fits = sweep_study.fit_study(
        counted,
        n_bootstrap=n_bootstrap,
        only=("approach3", "approach3_e_fixed"),
        budgets=sweep_study.decade_budgets(counted.points),
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
    return from_verdict(
        1,
        C1,
        f"{exp}, {ev.fit}",
        f"alpha = {number(ev.alpha.estimate)}, beta = {number(ev.beta.estimate)}{wins}",
        f"alpha {interval_of(ev.alpha)}; beta {interval_of(ev.beta)}",
        claim_rules.claim1(ev, rules),
        note="Along the fitted frontier L falls with N exactly when alpha > 0 and beta > 0, so "
        "the compute-optimal half needs beta's interval above 0 too.",
    )


def _ratio_list(ratios: tuple) -> str:
    listed = ", ".join(
        f"C = {b.C:.2g}: {interval_of(b.tokens_per_param)}{'' if b.interior else ' (edge)'}"
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
    return from_verdict(
        2,
        C2,
        f"{exp}, {ev.fit}, held-out check; tokens/param from the {ev.ratio_source}",
        f"held-out mean abs. rel. error {held}; alpha = {number(ev.alpha.estimate)}, beta = "
        f"{number(ev.beta.estimate)}; E = {number(None if e_fit is None else e_fit.estimate)} "
        f"(corpus entropy {number(ev.E_known)})",
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
