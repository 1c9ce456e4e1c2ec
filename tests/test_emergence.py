"""Emergence scores and verdicts on synthetic curves whose answer is known by construction.

Per-token accuracy p rises smoothly with log N; an answer of L = 8 independent tokens is then
exactly right with probability p^8: sharp under exact match, smooth under per-token accuracy,
edit distance, log prob and Brier (Schaeffer et al. 2023). The examples are sampled and scored
through `scaling.tasks.metrics`, so the whole path from per-example arrays to verdicts runs.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from scaling.analysis import emergence
from scaling.analysis.emergence_terms import (
    CONTINUOUS_METRICS,
    GENUINE,
    LOSS_EXPLAINS,
    MIRAGE,
    MIXED,
    NO_RISE,
    SCALE_MATTERS,
    SMOOTH,
    UNDETERMINED,
    Thresholds,
)
from scaling.analysis.loss_test import loss_explains
from scaling.tasks import metrics

ANSWER_LEN = 8
VOCAB = 50
N_EXAMPLES = 2000
LOG10_N = np.linspace(6.0, 10.0, 8)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def sample_eval(p: float, rng, answer_len: int = ANSWER_LEN) -> dict[str, float]:
    """Mean metrics of N_EXAMPLES answers whose tokens are each right with probability p, from a
    model that puts probability p on the right token and spreads the rest evenly."""
    shape = (N_EXAMPLES, answer_len + 2)
    target = rng.integers(0, VOCAB, shape)
    right = rng.random(shape) < p
    pred = np.where(right, target, (target + rng.integers(1, VOCAB, shape)) % VOCAB)
    mask = np.zeros(shape, dtype=bool)
    mask[:, 2:] = True  # two prompt tokens, then the answer
    logprob = np.full(shape, math.log(p))
    sum_sq = np.full(shape, p * p + (1 - p) ** 2 / (VOCAB - 1))
    per_example = metrics.per_example(pred, target, mask, logprob, sum_sq_prob=sum_sq)
    return {name: float(values.mean()) for name, values in per_example.items()}


def ladder(per_token: np.ndarray, seed: int = 0, answer_len: int = ANSWER_LEN) -> pd.DataFrame:
    """One run per model size (D = 20 N), one task; pre-training loss falls with N."""
    rng = np.random.default_rng(seed)
    n = 10.0**LOG10_N
    rows = []
    for i, p in enumerate(per_token):
        row = {"run_name": f"r{i}", "task": "add", "n_params_total": n[i]}
        row.update(tokens_seen=20 * n[i], flops_6n=6 * n[i] * 20 * n[i], n_examples=N_EXAMPLES)
        row["final_val_loss"] = 1.7 + 400.0 / n[i] ** 0.34
        rows.append(row | sample_eval(float(p), rng, answer_len))
    return pd.DataFrame(rows)


def smooth_per_token() -> np.ndarray:
    return sigmoid(1.5 * (LOG10_N - 8.0))  # 0.05 at 1e6 parameters, 0.95 at 1e10


def test_scores_by_hand():
    line = np.linspace(0.0, 1.0, 6)
    assert emergence.breakthroughness(line) == pytest.approx(5.0)  # n - 1
    assert emergence.linearity(line) == pytest.approx(math.sqrt(5.0))
    assert emergence.max_step_share(line) == pytest.approx(0.2)
    # Steps 0.1, 0.1, 0.8: I = 1, median step^2 = 0.01, sum of steps^2 = 0.66.
    y = np.array([0.0, 0.1, 0.2, 1.0])
    assert emergence.breakthroughness(y) == pytest.approx(10.0)
    assert emergence.linearity(y) == pytest.approx(1 / math.sqrt(0.66))
    assert emergence.max_step_share(y) == pytest.approx(0.8)
    # A worsening curve has negative improvement; a flat one scores 0, not NaN.
    assert emergence.improvement(y[::-1]) == pytest.approx(-1.0)
    assert emergence.breakthroughness(np.zeros(5)) == 0.0
    # A perfectly flat-then-jump curve is capped, finite, so tables stay JSON-able.
    assert 1e8 < emergence.breakthroughness(np.array([0.0, 0.0, 0.0, 1.0])) < math.inf


def test_edit_distance_is_scored_with_lower_is_better():
    falling = np.array([8.0, 6.0, 4.0, 2.0])
    scores = emergence.curve_scores(falling, "edit_distance")
    assert scores["improvement"] == pytest.approx(6.0)
    assert scores["breakthroughness_ratio"] == pytest.approx(1.0)
    assert scores["jump_contrast"] == pytest.approx(1.0)
    assert scores["rises"] is True and scores["jump"] is False


# Curves ordered by scale (token accuracy: perfect = 1) -> does it jump?
JUMPS = [
    pytest.param([0.0, 0.0, 0.0, 0.45, 0.9], True, id="a rise over two adjacent steps"),
    pytest.param([0.0, 0.0, 0.9, 0.9], True, id="one step on the fewest scales that show it"),
    pytest.param([0.0, 0.0, 0.9], False, id="3 scales: no step can be told from a rise"),
    pytest.param([0.0, 0.25, 0.5, 0.75, 1.0], False, id="a straight line"),
    pytest.param([0.047, 0.182, 0.5, 0.818, 0.953], False, id="a smooth sigmoid in log N"),
    pytest.param([0.50, 0.501, 0.499, 0.500, 0.52], False, id="flat noise: too small a rise"),
    pytest.param([0.9, 0.9, 0.0, 0.0, 0.0], False, id="a fall is no jump"),
]


@pytest.mark.parametrize(("curve", "jumps"), JUMPS)
def test_a_jump_is_a_large_rise_in_at_most_two_adjacent_steps(curve, jumps):
    assert emergence.curve_scores(np.array(curve), "token_accuracy")["jump"] is jumps


def test_the_fewest_scales_follow_from_the_context_a_jump_needs():
    assert Thresholds().min_scales == 4
    assert Thresholds(context_steps=3).min_scales == 5
    with pytest.raises(ValueError, match="context_steps"):
        Thresholds(context_steps=0)


def test_the_minimum_rise_is_a_share_of_the_way_to_a_perfect_score():
    # Log prob from -8 nats: 5% of the way to 0 is 0.4 nats; edit distance from 4 tokens: 0.2.
    assert not emergence.curve_scores(np.array([-8, -8, -8, -7.7, -7.7]), "answer_logprob")["rises"]
    assert emergence.curve_scores(np.array([-8, -8, -8, -7.5, -7.5]), "answer_logprob")["jump"]
    assert emergence.curve_scores(np.array([4, 4, 4, 3.7, 3.7]), "edit_distance")["jump"]


def test_p_to_the_L_is_a_mirage():
    table = ladder(smooth_per_token())
    verdicts = emergence.verdict_table(table).set_index("metric")
    ratio = verdicts["breakthroughness_ratio_n"]
    assert ratio["exact_match"] > 3.0 * ratio["token_accuracy"]
    assert verdicts.loc["exact_match", "jump_n"]
    for metric in CONTINUOUS_METRICS:
        assert not verdicts.loc[metric, "jump_n"], metric
        assert ratio[metric] < 1.5, metric  # a straight line scores 1
    assert set(verdicts["schaeffer_verdict"]) == {MIRAGE}
    assert verdicts["resolution"].iloc[0] == pytest.approx(metrics.resolution(N_EXAMPLES))


def test_a_jump_in_per_token_accuracy_is_genuine():
    # Per-token accuracy itself leaps between 1e8 and 1.8e8 parameters, nearly flat elsewhere.
    per_token = np.where(LOG10_N < 8.1, 0.30, 0.95) + 0.005 * (LOG10_N - 8.0)
    verdicts = emergence.verdict_table(ladder(per_token)).set_index("metric")
    assert verdicts["jump_n"].all()
    assert set(verdicts["schaeffer_verdict"]) == {GENUINE}


def test_a_one_token_answer_rises_smoothly():
    # With L = 1 exact match equals per-token accuracy: the same smooth sigmoid.
    verdicts = emergence.verdict_table(ladder(smooth_per_token(), answer_len=1))
    assert not verdicts["jump_n"].any()
    assert set(verdicts["schaeffer_verdict"]) == {SMOOTH}


def scores(jump: bool, rises: bool = True, n_scales: int = 5) -> dict:
    return {"n_scales": n_scales, "rises": rises, "jump": jump}


# Per metric (exact match first, then continuous metrics): (jumps, rises) -> the task's verdict.
SCHAEFFER = [
    pytest.param(
        {
            "exact_match": scores(True),
            "token_accuracy": scores(True),
            "edit_distance": scores(False),
        },
        GENUINE,
        id="half jump: genuine",
    ),
    pytest.param(
        {"exact_match": scores(True), "token_accuracy": scores(False)},
        MIRAGE,
        id="only exact match jumps: mirage",
    ),
    pytest.param(
        {"exact_match": scores(False), "token_accuracy": scores(False)},
        SMOOTH,
        id="exact match rises smoothly: smooth",
    ),
    pytest.param(
        {"exact_match": scores(False, rises=False), "token_accuracy": scores(False)},
        NO_RISE,
        id="exact match does not rise",
    ),
    pytest.param(
        {"exact_match": scores(True, n_scales=3), "token_accuracy": scores(True)},
        UNDETERMINED,
        id="too few scales",
    ),
    pytest.param({"exact_match": scores(True)}, UNDETERMINED, id="no continuous metric"),
    pytest.param(
        {"exact_match": scores(False), "token_accuracy": scores(True)},
        MIXED,
        id="smooth exact match, a continuous jump",
    ),
]


@pytest.mark.parametrize(("task_scores", "verdict"), SCHAEFFER)
def test_schaeffer_verdict_rules(task_scores, verdict):
    assert emergence.schaeffer_verdict(task_scores) == verdict


def test_genuine_share_decides_mixed():
    task = {
        "exact_match": scores(True),
        "token_accuracy": scores(True),
        "edit_distance": scores(False),
    }
    strict = Thresholds(genuine_share=0.75)
    assert emergence.schaeffer_verdict(task, thresholds=strict) == MIXED


def test_too_few_scales_give_no_verdict():
    table = ladder(smooth_per_token()).iloc[-3:]  # exact match rises on these 3 scales
    verdicts = emergence.verdict_table(table)
    assert set(verdicts["schaeffer_verdict"]) == {UNDETERMINED}


def test_curves_against_n_c_and_loss_run_least_to_most_capable():
    table = ladder(smooth_per_token())
    curves = emergence.curves(table, metrics=["token_accuracy"])
    assert set(curves["axis"]) == {"n", "c", "loss"}
    for axis, part in curves.groupby("axis"):
        # Each axis orders the same runs the same way, so accuracy rises along every one.
        assert np.all(np.diff(part["y"].to_numpy()) > 0), axis
    loss = curves[curves["axis"] == "loss"]["x"].to_numpy()
    assert np.all(np.diff(loss) < 0)


def test_to_wide_from_long_and_json_records():
    table = ladder(smooth_per_token())
    info = ["run_name", "task", "n_params_total", "tokens_seen", "flops_6n", "final_val_loss"]
    long = table.melt(id_vars=[*info, "n_examples"], var_name="metric")
    wide = emergence.to_wide(long).sort_values("n_params_total", ignore_index=True)
    pd.testing.assert_frame_equal(wide[table.columns], table, check_dtype=False)
    records = emergence.to_records(emergence.verdict_table(wide))
    assert len(records) == len(metrics.METRICS)
    json.dumps(records, allow_nan=False)  # strict JSON: no NaN, no numpy types
    assert json.dumps(emergence.thresholds_dict())


# ---------------------------------------------------------------------------------------------
# Du et al. 2024: a function of pre-training loss regardless of N and D?


def grid_runs(n_dependence: float, seed: int = 0) -> pd.DataFrame:
    """A 5 x 5 grid of N and D (so different N reach the same loss through different D), with
    Chinchilla's fitted loss; per-token accuracy a sigmoid in loss plus n_dependence * log N,
    exact match its 8th power, both measured with binomial-sized noise."""
    rng = np.random.default_rng(seed)
    n = np.repeat(np.logspace(7, 10, 5), 5)
    d = np.tile(np.logspace(9, 12, 5), 5)
    loss = 1.69 + 406.4 / n**0.34 + 410.7 / d**0.28
    log_n = np.log(n) - np.log(n).mean()
    p = sigmoid((np.median(loss) - loss) / 0.25 + n_dependence * log_n)
    noise = rng.normal(0.0, 0.01, (2, len(n)))
    return pd.DataFrame(
        {
            "run_name": [f"r{i}" for i in range(len(n))],
            "task": "add",
            "n_params_total": n,
            "tokens_seen": d,
            "flops_6n": 6 * n * d,
            "final_val_loss": loss,
            "token_accuracy": p + noise[0],
            "exact_match": p**8 + noise[1],
        }
    )


def test_du_loss_explains_a_metric_that_depends_on_loss_only():
    verdicts = emergence.verdict_table(grid_runs(0.0)).set_index("metric")
    assert set(verdicts["du_verdict"]) == {LOSS_EXPLAINS}
    assert (verdicts["du_p_value"] > 0.05).all()
    assert (verdicts["du_rss_ratio"] > 0.7).all()
    # The ability is a function of loss, so loss is the scale its verdict is read against.
    assert set(verdicts["verdict_axis"]) == {"loss"}


def test_du_detects_a_metric_that_depends_on_n_beyond_loss():
    verdicts = emergence.verdict_table(grid_runs(0.5)).set_index("metric")
    assert set(verdicts["du_verdict"]) == {SCALE_MATTERS}
    assert set(verdicts["verdict_axis"]) == {"n"}
    assert (verdicts["du_p_value"] < 0.01).all()
    # Where the N effect is additive on the logit, log N also helps out of sample.
    assert verdicts.loc["token_accuracy", "du_cv_ratio"] < 0.5


def test_du_is_undetermined_when_loss_is_a_function_of_n():
    # One D per N (D = 20 N): N and loss move together, so nothing can separate them.
    result = loss_explains(
        loss=1.7 + 400.0 / np.logspace(6, 10, 8) ** 0.34,
        y=smooth_per_token(),
        n=np.logspace(6, 10, 8),
        d=20 * np.logspace(6, 10, 8),
    )
    assert result["verdict"] == UNDETERMINED
    assert result["scale_r2_on_loss"] > 0.99


# the study's counts: 4 at least, 5 source sizes, 10 sources
@pytest.mark.parametrize("n_scales", [4, 5, 10])
def test_the_verdict_at_every_scale_count_the_study_uses(n_scales):
    """A known step is called a jump, a straight line and a smooth sigmoid are not, and p^L of
    a per-token accuracy rising in a straight line is a mirage: exact match jumps alone."""
    x = np.linspace(0.0, 1.0, n_scales)

    def jumps(y, metric="token_accuracy"):
        return emergence.curve_scores(np.asarray(y), metric)["jump"]

    assert jumps(np.where(x >= 0.5, 0.9, 0.0))
    assert not jumps(0.9 * x)
    assert not jumps(1 / (1 + np.exp(-4 * (x - 0.5))))
    per_token = 0.3 + 0.65 * x
    assert jumps(per_token**8, "exact_match") and not jumps(per_token)
    verdict = emergence.schaeffer_verdict(
        {
            "exact_match": emergence.curve_scores(per_token**8, "exact_match"),
            "token_accuracy": emergence.curve_scores(per_token, "token_accuracy"),
        }
    )
    assert verdict == MIRAGE
