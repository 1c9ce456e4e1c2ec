"""The claims ledger's specification: each claim's rule on fabricated inputs, one table per claim.

Every row is a case: made-up measurements and the verdict the ledger must give them. Each claim
reaches all three outcomes (a clear yes, a clear no, data too thin to tell), and the cases of
issue 17, where the old rules gave the wrong answer, are rows of their own. The rules are pure
functions (scaling.analysis.rules), so no run is trained here.
"""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from scaling.analysis import emergence, rules
from scaling.analysis.emergence_terms import (
    GENUINE,
    MIRAGE,
    MIXED,
    NO_RISE,
    SMOOTH,
    UNDETERMINED,
    Thresholds,
)
from scaling.analysis.fit.results import Estimate, FitResult, interval_estimate
from scaling.analysis.ledger import ablations
from scaling.analysis.ledger import sweep as ledger_sweep
from scaling.analysis.ledger.claim import missing
from scaling.analysis.rules import BudgetRatio, Rules, SweepEvidence
from scaling.analysis.study import Fits
from scaling.analysis.verdicts import CONTRADICTED, NOT_RESOLVED, OUTCOMES, SUPPORTED
from scaling.reports import claims

S, C, NR = SUPPORTED, CONTRADICTED, NOT_RESOLVED
RULES = Rules()


def est(point: float, low: float | None, high: float | None, failed: int = 0) -> Estimate:
    """An estimate from 1000 resamples, `failed` of which gave no value."""
    return Estimate(point, low, high, n_samples=1000, n_failed=failed)


def reached_all_outcomes(cases: list) -> bool:
    return {case.values[-1] for case in cases} == set(OUTCOMES)


# ---------------------------------------------------------------------------------- intervals


def test_failed_resamples_are_counted_not_silently_dropped():
    samples = np.r_[np.linspace(0.1, 0.3, 600), np.full(400, np.nan)]  # 40% failed
    e = interval_estimate(0.2, samples)
    assert (e.n_samples, e.n_failed, e.failed_share) == (1000, 400, 0.4)
    assert 0.1 <= e.ci_low < e.ci_high <= 0.3  # read from the 600 that worked
    assert e.to_dict()["n_failed"] == 400


def test_bounds_are_values_not_failures_where_a_curve_is_never_reached():
    samples = np.r_[np.full(600, np.inf), np.linspace(1.0, 2.0, 390), np.full(10, np.nan)]
    e = interval_estimate(np.inf, samples, bounds_ok=True)
    assert e.n_failed == 10 and e.ci_high == math.inf and 1.0 <= e.ci_low <= 2.0


# ---------------------------------------------------------------------------------- claims 1, 2


def sweep(**changes) -> SweepEvidence:
    """A clear yes for claims 1 and 2; each case changes what it needs."""
    clear = dict(
        fit="Approach 3",
        alpha=est(0.34, 0.25, 0.45),
        beta=est(0.28, 0.2, 0.36),
        heldout_error=0.02,
        ratio_source="Approach 2",
        ratios=(BudgetRatio(1e15, est(20, 15, 28), True), BudgetRatio(1e16, est(22, 16, 30), True)),
    )
    return SweepEvidence(**{**clear, **changes})


CLAIM1 = [
    pytest.param(sweep(), S, id="alpha and beta clearly above their minima"),
    pytest.param(
        sweep(largest_n_wins=(3, 5)),
        S,
        id="an IsoFLOP grid: the largest N cannot win at every D, and need not",
    ),
    pytest.param(sweep(alpha=est(0.01, -0.02, 0.04)), C, id="alpha inside the null region"),
    pytest.param(sweep(alpha=est(-0.2, -0.3, -0.1)), C, id="more parameters, higher loss"),
    pytest.param(
        sweep(alpha=est(0.06, -0.15, 0.25)), NR, id="alpha's interval straddles the minimum"
    ),
    pytest.param(
        sweep(beta=est(-0.2, -0.4, -0.1)),
        NR,
        id="beta below 0: the compute-optimal half cannot be read",
    ),
    pytest.param(sweep(alpha=est(0.34, 0.25, 0.45, failed=400)), NR, id="40% of resamples failed"),
    pytest.param(sweep(alpha=Estimate(0.34)), NR, id="no bootstrap: no interval"),
]


@pytest.mark.parametrize(("evidence", "verdict"), CLAIM1)
def test_claim1_more_parameters_lower_loss(evidence, verdict):
    assert rules.claim1(evidence, RULES).verdict == verdict


POWER_LAW = [
    pytest.param(sweep(), S, id="held-out error 2%, both exponents above 0"),
    pytest.param(
        sweep(heldout_error=0.5, beta=est(-0.2, -0.4, -0.1)),
        C,
        id="50% held-out error and beta < 0",
    ),
    pytest.param(sweep(heldout_error=0.5), C, id="the law misses the largest budgets by 50%"),
    pytest.param(sweep(beta=est(-0.01, -0.05, 0.0)), C, id="loss does not fall with D"),
    pytest.param(sweep(heldout_error=0.07), NR, id="held-out error between the thresholds"),
    pytest.param(sweep(heldout_error=None), NR, id="too few runs for a held-out check"),
    pytest.param(sweep(beta=est(0.28, -0.1, 0.6)), NR, id="beta straddles 0"),
]


@pytest.mark.parametrize(("evidence", "verdict"), POWER_LAW)
def test_claim2_power_law_half(evidence, verdict):
    assert rules.power_law(evidence, RULES).verdict == verdict


def ratio(c: float, point: float, low: float, high: float, interior=True, failed=0):
    return BudgetRatio(c, est(point, low, high, failed), interior)


TOKENS_PER_PARAM = [
    pytest.param(sweep(), S, id="inside [10, 40] at every budget"),
    pytest.param(sweep(ratios=(ratio(1e15, 160, 100, 250),)), C, id="160 tokens/param, clearly"),
    pytest.param(
        sweep(ratios=(ratio(1e15, 20, 15, 25), ratio(1e16, 3, 2, 5))),
        C,
        id="one budget clearly off",
    ),
    pytest.param(sweep(ratios=(ratio(1e15, 162, 2.87, 1.78e4),)), NR, id="an interval 6000x wide"),
    pytest.param(
        sweep(ratios=(ratio(1e15, 20, 15, 25, failed=400),)),
        NR,
        id="40% of resamples failed (alpha < 0)",
    ),
    pytest.param(
        sweep(ratios=(ratio(1e15, 160, 100, 250, interior=False),)),
        NR,
        id="the minimum at the edge of its rungs",
    ),
    pytest.param(
        sweep(ratios=(ratio(1e15, 20, 15, 25), ratio(1e16, 3, 2, 5, interior=False))),
        S,
        id="an edge budget calls nothing",
    ),
    pytest.param(sweep(ratios=()), NR, id="no budget inside the swept range"),
]


@pytest.mark.parametrize(("evidence", "verdict"), TOKENS_PER_PARAM)
def test_claim2_tokens_per_parameter_half(evidence, verdict):
    assert rules.tokens_per_param(evidence, RULES).verdict == verdict


CLAIM2 = [
    pytest.param(sweep(), S, id="both halves hold"),
    pytest.param(sweep(heldout_error=0.5), C, id="the power law fails"),
    pytest.param(
        sweep(ratios=(ratio(1e15, 20, 15, 25, interior=False),)), NR, id="the ratio cannot be read"
    ),
]


@pytest.mark.parametrize(("evidence", "verdict"), CLAIM2)
def test_claim2_needs_both_halves(evidence, verdict):
    assert rules.claim2(evidence, RULES).verdict == verdict


def test_claim2_reads_budgets_inside_the_sweep_only():
    """The old ledger read the ratio at the report's largest budget, 10x beyond the data."""
    points = pd.DataFrame({"N": [1e5, 2e5, 4e5] * 2, "D": [1e6] * 3 + [4e6] * 3, "loss": 1.0})
    points["C"] = 6 * points["N"] * points["D"]
    frontier = [
        {
            "C": c,
            "N_opt": {"estimate": 2e5},
            "D_opt": {"estimate": 2e6},
            "tokens_per_param": est(10, 5, 20).to_dict(),
        }
        for c in (3e11, 1e12, 3e12, 1e13, 1e14)  # the runs' compute spans 6e11 to 9.6e12
    ]
    a3 = FitResult(
        "a3",
        {"alpha": est(0.3, 0.2, 0.4), "beta": est(0.3, 0.2, 0.4), "E": est(1.5, 1.4, 1.6)},
        6,
        derived={"frontier": frontier},
    )
    study = SimpleNamespace(points=points, entropy=1.52)
    evidence = ledger_sweep.sweep_evidence(study, Fits(results={"approach3": a3}))
    assert [b.C for b in evidence.ratios] == [1e12, 3e12]
    assert evidence.E_known == 1.52 and evidence.E_fit.estimate == 1.5
    # Approach 2's per-budget minima, where fitted, come first, with their interior flags.
    minima = [
        {
            "C": 6e12,
            "N_opt": est(2e5, 1e5, 4e5).to_dict(),
            "tokens_per_param": est(25.0, 6.25, 100.0).to_dict(),
            "interior": False,
        }
    ]
    a2 = FitResult("a2", {}, 6, derived={"isoflop_minima": minima})
    evidence = ledger_sweep.sweep_evidence(study, Fits(results={"approach3": a3, "approach2": a2}))
    (budget,) = evidence.ratios
    assert not budget.interior
    assert (budget.tokens_per_param.ci_low, budget.tokens_per_param.ci_high) == (6.25, 100.0)
    # With E fixed at the known entropy, alpha and beta come from that fit; E_fit stays free.
    fixed = FitResult("a3", {"alpha": est(0.5, 0.4, 0.6), "beta": est(0.4, 0.3, 0.5)}, 6)
    both = Fits(results={"approach3": a3, "approach3_e_fixed": fixed})
    evidence = ledger_sweep.sweep_evidence(study, both)
    assert evidence.alpha.estimate == 0.5 and "E fixed at 1.5200" in evidence.fit
    assert evidence.E_fit.estimate == 1.5
    # Read in Chinchilla's count (every parameter), that fit's frontier decides the ratio and
    # the sweep's own Approach 2 minima are reported beside it.
    counted_points = points.assign(N=points["N"] * 1.25, C=points["C"] * 1.25)
    counted = SimpleNamespace(points=counted_points, entropy=1.52)
    counted_frontier = [{**row, "C": row["C"] * 1.25} for row in frontier]
    counted_a3 = FitResult("a3", a3.params, 6, derived={"frontier": counted_frontier})
    evidence = ledger_sweep.sweep_evidence(
        study,
        Fits(results={"approach3": a3, "approach2": a2}),
        (counted, Fits(results={"approach3": counted_a3})),
    )
    assert [b.C for b in evidence.ratios] == [1.25e12, 3.75e12]  # inside 7.5e11 to 1.2e13
    assert "Chinchilla's count" in evidence.ratio_source
    assert [b.C for b in evidence.other_ratios] == [6e12]
    assert "Approach 2" in evidence.other_ratio_source


# ---------------------------------------------------------------------------------- claim 3


def finetuned(
    d_f, d_e, low, high, d_min=1e4, d_max=1.6e5, failed=0, task="add", n=1e5, bracket=None
):
    """One row of `transfer.effective_data`: a fine-tuned run's D_E against from-scratch data
    that reach from d_min to d_max tokens; `bracket` is what the same size's from-scratch runs
    show, (the largest D that did not reach the fine-tuned loss, the smallest that did)."""
    not_reached, reached = bracket or (0.0, math.inf)
    return {
        "scratch_not_reached": not_reached,
        "scratch_reached": reached,
        "task": task,
        "n": n,
        "seed": 0,
        "d_f": d_f,
        "d_e": d_e,
        "d_e_low": low,
        "d_e_high": high,
        "scratch_d_min": d_min,
        "scratch_d_max": d_max,
        "d_e_resamples": 1000,
        "d_e_failed": failed,
    }


CLAIM3 = [
    pytest.param([finetuned(1e4, 5e4, 4e4, 6e4)], S, id="5x, interval [4x, 6x]"),
    pytest.param([finetuned(4e4, 4.6e4, 4.2e4, 5e4)], C, id="1.15x is not far less"),
    pytest.param([finetuned(1e4, 3e4, 1.5e4, 6e4)], NR, id="interval [1.5x, 6x] straddles 2x"),
    pytest.param(
        [finetuned(1e4, 7.78e6, 5e6, 1e7, d_max=3e5)],
        S,
        id="778x extrapolated: at least the 30x the data back",
    ),
    pytest.param(
        [finetuned(1e4, 1.2e300, 1e290, 1e305, d_max=3e5)],
        S,
        id="a near-flat fit's 1e296x: still only >= 30x",
    ),
    pytest.param(
        [finetuned(1e4, 1e6, 8e5, 2e6, d_max=1.5e4)],
        NR,
        id="extrapolated, but the data back only 1.5x",
    ),
    pytest.param([finetuned(1e4, 5e4, 4e4, 6e4, failed=300)], NR, id="30% of refits failed"),
    pytest.param(
        [finetuned(1e4, math.inf, math.inf, math.inf)],
        S,
        id="from scratch never reaches it: >= 16x",
    ),
    pytest.param([finetuned(1e4, 0.0, 0.0, 0.0)], C, id="worse than the smallest from-scratch run"),
    pytest.param([finetuned(1e4, 5e4, None, None)], NR, id="no bootstrap: no interval"),
    pytest.param(
        [finetuned(1e4, 5e4, 4e4, 6e4), finetuned(4e4, 4.6e4, 4.2e4, 5e4)],
        C,
        id="one run of the task clearly not",
    ),
    pytest.param(
        [finetuned(1e4, 5e4, 4e4, 6e4), finetuned(1e4, 3e4, 1.5e4, 6e4, task="kv")],
        NR,
        id="one task supported, one unresolved",
    ),
    pytest.param([], NR, id="no fine-tuned run"),
    pytest.param(
        [finetuned(1e4, 2.3e4, 0.6e4, 1e9, bracket=(4e4, 1.6e5))],
        S,
        id="the fit says 2.3x, but from scratch at 4x D_F has not reached it",
    ),
    pytest.param(
        [finetuned(1e4, 5e4, 4e4, 6e4, bracket=(1e4, 1.5e4))],
        C,
        id="the fit says 5x, but from scratch at 1.5x D_F reached it: the runs decide",
    ),
    pytest.param(
        [finetuned(1e4, 5e4, None, None, bracket=(1e4, 4e4))],
        NR,
        id="no fit interval; the runs bracket it between 1x and 4x",
    ),
]


@pytest.mark.parametrize(("runs", "verdict"), CLAIM3)
def test_claim3_fine_tuning_needs_far_less_data(runs, verdict):
    assert rules.claim3(pd.DataFrame(runs), RULES).verdict == verdict


def test_claim3_keeps_the_fits_interval_inside_what_the_runs_of_that_size_show():
    multiplier, bound = rules.data_multiplier(finetuned(1e4, 2.3e4, 0.6e4, 1e9, bracket=(4e4, 1e5)))
    assert bound == "≥" and multiplier.estimate == pytest.approx(4.0)
    assert (multiplier.ci_low, multiplier.ci_high) == pytest.approx((4.0, 10.0))


def test_claim3_reports_an_extrapolated_d_e_as_a_lower_bound():
    multiplier, bound = rules.data_multiplier(finetuned(1e4, 7.78e6, 5e6, 1e7, d_max=3e5))
    assert bound == "≥" and multiplier.estimate == pytest.approx(30.0)
    assert multiplier.ci_low == pytest.approx(30.0) and multiplier.ci_high == math.inf


# ---------------------------------------------------------------------------------- claim 4


def paired(gains: dict[float, list[float]], task="add", ft_em=0.2, po_em=0.1) -> list[dict]:
    """Paired-table rows at one D_F: size -> answer-loss gains of fine-tuning, one per seed."""
    return [
        {
            "task": task,
            "n": n,
            "seed": seed,
            "d_f": 1e5,
            "pretrain_only_loss": 2.0,
            "finetuned_loss": 2.0 - g,
            "pretrain_only_exact_match": po_em,
            "finetuned_exact_match": ft_em,
            "task_n_eval": 2000,
        }
        for n, per_seed in gains.items()
        for seed, g in enumerate(per_seed)
    ]


CLEAR = {1e5: [0.30, 0.31], 2e5: [0.35, 0.34], 4e5: [0.40, 0.41]}
CLAIM4 = [
    pytest.param(paired(CLEAR), S, id="0.3 nats better at every size, seeds agree"),
    pytest.param(paired({1e5: [0.001, 0.0], 2e5: [0.002, 0.001]}), C, id="a negligible gain"),
    pytest.param(
        paired({1e5: [1e-6, 0.0], 2e5: [1e-6, 2e-6]}, ft_em=0.0, po_em=0.3),
        C,
        id="1e-6 nats better while exact match falls 0.3 -> 0",
    ),
    pytest.param(
        paired({1e5: [0.40, 0.41], 2e5: [0.40, 0.41]}, ft_em=0.0, po_em=0.3),
        C,
        id="lower loss, but exact match falls",
    ),
    pytest.param(
        paired({1e5: [0.0, 0.01], 2e5: [0.30, 0.31], 4e5: [0.40, 0.41]}),
        C,
        id="from N = 200k up only",
    ),
    pytest.param(
        paired(CLEAR) + paired({1e5: [-0.2, -0.21], 2e5: [-0.3, -0.29]}, task="kv"),
        C,
        id="a task worse everywhere does not drop out",
    ),
    pytest.param(paired({1e5: [0.3], 2e5: [0.4]}), NR, id="one seed: no interval"),
    pytest.param(paired({1e5: [0.0, 0.12], 2e5: [0.02, 0.14]}), NR, id="seeds too noisy to tell"),
    pytest.param(paired({1e5: [math.nan]}), NR, id="no pre-train-only pair"),
]


@pytest.mark.parametrize(("rows", "verdict"), CLAIM4)
def test_claim4_fine_tuned_beats_pretrain_only_at_every_size(rows, verdict):
    assert rules.claim4(pd.DataFrame(rows), RULES).verdict == verdict


def test_claim4_says_from_which_size_it_holds():
    rows = paired({1e5: [0.0, 0.01], 2e5: [0.30, 0.31], 4e5: [0.40, 0.41]})
    sizes = rules.finetune_gains(pd.DataFrame(rows), RULES)["add"]
    assert rules.holds_from(sizes) == 2e5
    assert "supported from N = 200,000 up" in rules.sizes_verdict(sizes).reason
    # A gain at the smallest size only is not "from N up".
    only_smallest = rules.finetune_gains(
        pd.DataFrame(paired({1e5: [0.3, 0.31], 2e5: [0.0, 0.01], 4e5: [0.0, 0.01]})), RULES
    )["add"]
    assert rules.holds_from(only_smallest) is None
    assert rules.sizes_verdict(only_smallest).verdict == C


# ---------------------------------------------------------------------------------- claim 5


def ladder(per_token: np.ndarray, answer_len: int = 8, exact=None) -> pd.DataFrame:
    """One run per size of a task whose answer has `answer_len` tokens, each right with the
    given probability: exact match p^L, the continuous metrics smooth functions of p."""
    p = np.asarray(per_token, float)
    n = np.logspace(6, 10, len(p))
    return pd.DataFrame(
        {
            "run_name": [f"r{i}" for i in range(len(p))],
            "task": "add",
            "n_params_total": n,
            "flops_6n": 120 * n * n,
            "tokens_seen": 20 * n,
            "final_val_loss": 1.7 + 400.0 / n**0.34,
            "exact_match": p**answer_len if exact is None else exact,
            "token_accuracy": p,
            "edit_distance": answer_len * (1 - p),
            "answer_logprob": answer_len * np.log(p),
            "brier": (1 - p) ** 2,
        }
    )


def sigmoid_in_log_n(n_scales: int) -> np.ndarray:
    return 1 / (1 + np.exp(-1.5 * (np.linspace(6, 10, n_scales) - 8)))


def label(table: pd.DataFrame) -> str:
    return emergence.verdict_table(table)["schaeffer_verdict"].iloc[0]


LEAP = np.array([0.30, 0.30, 0.31, 0.95, 0.95, 0.96])  # per-token accuracy itself leaps


def flat_noise_with_an_exact_match_jump() -> pd.DataFrame:
    """Exact match jumps; every continuous metric is flat up to noise, such as per-token
    accuracy [.50, .501, .499, .500, .52]: too small a rise to be a jump."""
    table = ladder(np.full(5, 0.5), exact=[0.0, 0.0, 0.0, 0.45, 0.9])
    noise = np.array([0.0, 0.001, -0.001, 0.0, 0.02])
    return table.assign(
        token_accuracy=0.5 + noise,
        edit_distance=2.0 - 2 * noise,
        answer_logprob=-5.55 + 2 * noise,
        brier=0.25 - 0.1 * noise,
    )


EMERGENCE = [
    pytest.param(ladder(LEAP), GENUINE, S, id="continuous metrics jump too: genuine"),
    pytest.param(ladder(sigmoid_in_log_n(8)), MIRAGE, C, id="p^8 of a smooth sigmoid: a mirage"),
    pytest.param(
        flat_noise_with_an_exact_match_jump(),
        MIRAGE,
        C,
        id="flat noise in the continuous metrics is no jump",
    ),
    pytest.param(
        ladder(sigmoid_in_log_n(8), answer_len=1),
        SMOOTH,
        C,
        id="smooth under every metric",
    ),
    pytest.param(
        ladder(sigmoid_in_log_n(8), exact=np.zeros(8)),
        NO_RISE,
        NR,
        id="exact match never rises",
    ),
    pytest.param(ladder(sigmoid_in_log_n(3)), UNDETERMINED, NR, id="3 scales cannot show a step"),
]


@pytest.mark.parametrize(("table", "expected_label", "verdict"), EMERGENCE)
def test_claim5_abilities_emerge_suddenly(table, expected_label, verdict):
    assert label(table) == expected_label
    assert rules.claim5({"add (finetuned, vs n)": expected_label}).verdict == verdict


CLAIM5_TASKS = [
    pytest.param({"a": GENUINE, "b": MIRAGE}, S, id="one task emerges"),
    pytest.param({"a": MIRAGE, "b": SMOOTH}, C, id="every task a mirage or smooth"),
    pytest.param(
        {"a": MIRAGE, "b": NO_RISE},
        C,
        id="a task that never rose says nothing either way",
    ),
    pytest.param({"a": SMOOTH, "b": UNDETERMINED}, C, id="nor one on too few scales"),
    pytest.param({"a": NO_RISE, "b": UNDETERMINED}, NR, id="no task rose: nothing"),
    pytest.param({"a": MIRAGE, "b": MIXED}, NR, id="mixed might emerge"),
    pytest.param({"a": MIXED}, NR, id="mixed"),
    pytest.param({}, NR, id="no task"),
]


@pytest.mark.parametrize(("labels", "verdict"), CLAIM5_TASKS)
def test_claim5_over_tasks_one_example_suffices(labels, verdict):
    assert rules.claim5(labels).verdict == verdict


# ---------------------------------------------------------------------------------- claims 6-8

N_OVER_U = [1.0, 2.0, 4.0, 8.0, 16.0]
CLAIM6 = [
    pytest.param(N_OVER_U, [0.0, 0.11, 0.19, 0.31, 0.40], S, id="the gap rises 0.4 nats"),
    pytest.param(
        N_OVER_U, [0.014, 0.013, 0.012, 0.011, 0.010], C, id="flat small gap, falling noise"
    ),
    pytest.param(
        N_OVER_U,
        [0.010, 0.011, 0.012, 0.013, 0.014],
        C,
        id="flat small gap, rising noise: same verdict",
    ),
    pytest.param(
        N_OVER_U, [0.50, 0.49, 0.50, 0.48, 0.47], NR, id="a large gap at every N/U: no contrast"
    ),
    pytest.param(N_OVER_U, [0.0, 0.3, -0.1, 0.2, 0.1], NR, id="too noisy to tell"),
    pytest.param([1.0, 1.0, 16.0], [0.0, 0.01, 0.9], NR, id="two N/U: no trend"),
]


@pytest.mark.parametrize(("n_over_u", "gap", "verdict"), CLAIM6)
def test_claim6_too_many_parameters_memorise(n_over_u, gap, verdict):
    assert rules.claim6(np.array(n_over_u), np.array(gap), RULES).verdict == verdict


CLAIM7 = [
    pytest.param([0, 0.1, 0.3], [1.974, 2.026, 2.154], S, id="+0.006 nats per percent"),
    pytest.param(
        [0, 0, 0.1, 0.1, 0.3, 0.3],
        [1.97, 1.98, 2.04, 2.02, 2.15, 2.16],
        S,
        id="two seeds per fraction",
    ),
    pytest.param(
        [0, 0.1, 0.3], [2.0000, 2.0001, 2.0002], C, id="2.0000 / 2.0001 / 2.0002: no cost"
    ),
    pytest.param(
        [0, 0, 0.1, 0.1, 0.3, 0.3], [2.0, 2.01, 2.0, 2.01, 2.0, 2.01], C, id="flat across seeds"
    ),
    pytest.param([0, 0, 0.3, 0.3], [1.9, 2.1, 1.95, 2.15], NR, id="seed noise swamps it"),
    pytest.param([0, 0.3], [1.97, 2.15], NR, id="two runs: no interval"),
]


@pytest.mark.parametrize(("fraction", "loss", "verdict"), CLAIM7)
def test_claim7_corrupted_text_costs_loss(fraction, loss, verdict):
    assert rules.claim7(np.array(fraction), np.array(loss), RULES).verdict == verdict


def schedules(losses: dict[str, list[float]]) -> tuple[pd.Series, pd.Series]:
    rows = [(s, loss) for s, seeds in losses.items() for loss in seeds]
    return pd.Series([s for s, _ in rows]), pd.Series([loss for _, loss in rows])


CLAIM8 = [
    pytest.param(
        {"cosine": [1.88, 1.89], "wsd": [1.78, 1.78], "constant": [1.80, 1.81]},
        S,
        id="0.1 nats, seeds agree",
    ),
    pytest.param(
        {"cosine": [1.8000, 1.8003], "wsd": [1.8001, 1.8002], "constant": [1.8002, 1.8001]},
        C,
        id="all within 1e-3",
    ),
    pytest.param(
        {"cosine": [1.8001], "wsd": [1.8000]}, NR, id="one seed each: 1e-4 is not supported"
    ),
    pytest.param({"cosine": [1.85, 1.75], "wsd": [1.70, 1.80]}, NR, id="seeds spread 0.1"),
    pytest.param({"cosine": [1.8, 1.81]}, NR, id="one schedule"),
]


@pytest.mark.parametrize(("losses", "verdict"), CLAIM8)
def test_claim8_the_schedule_matters(losses, verdict):
    assert rules.claim8(*schedules(losses), RULES).verdict == verdict


# ---------------------------------------------------------------------------------- the ledger

TABLES = {
    "claim 1": CLAIM1,
    "claim 2": CLAIM2,
    "claim 2, power law": POWER_LAW,
    "claim 2, tokens/param": TOKENS_PER_PARAM,
    "claim 3": CLAIM3,
    "claim 4": CLAIM4,
    "claim 5": EMERGENCE,
    "claim 5, over tasks": CLAIM5_TASKS,
    "claim 6": CLAIM6,
    "claim 7": CLAIM7,
    "claim 8": CLAIM8,
}


@pytest.mark.parametrize("name", TABLES)
def test_every_rule_reaches_all_three_outcomes(name):
    assert reached_all_outcomes(TABLES[name])


def test_the_rules_table_states_every_minimum_effect():
    table = rules.rules_table(RULES, Thresholds())
    for claim in range(1, 9):
        assert f"| {claim} |" in table
    for shown in (
        "alpha > 0.05",
        "[10, 40]",
        "D_E/D_F > 2",
        "0.05 nats",
        "0.001 nats per percent",
        "> 0.01 nats",
        "4 scales",
        "10% of",
    ):
        assert shown in table, shown


def test_claims_json_has_one_of_three_verdicts_and_claim2_has_e():
    rows = [
        ledger_sweep.claim2_row(sweep(E_known=1.52, E_fit=est(1.5, 1.4, 1.6)), "sweep", RULES),
        missing(6, ablations.C6, "memorise", "no runs"),
    ]
    entries = json.loads(claims.to_json(rows))
    assert [e["verdict"] for e in entries] == [S, NR]
    assert entries[0]["E_known"] == 1.52 and entries[0]["E_fit_interval"] == [1.4, 1.6]
    assert entries[1]["reason"].startswith("not measured")
