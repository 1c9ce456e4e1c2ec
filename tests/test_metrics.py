"""Per-example task metrics on hand-made cases, intervals and the resolution of a table."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from scaling.tasks import metrics

# Three examples padded to 6 positions; answers are the masked positions (lengths 3, 2, 4).
TARGET = np.array(
    [
        [9, 9, 1, 2, 3, 0],
        [9, 5, 6, 0, 0, 0],
        [9, 7, 8, 7, 8, 0],
    ]
)
MASK = np.array(
    [
        [0, 0, 1, 1, 1, 0],
        [0, 1, 1, 0, 0, 0],
        [0, 1, 1, 1, 1, 0],
    ],
    dtype=bool,
)
# Row 0 all right (the prompt position differs, which must not count); row 1 one of two
# right; row 2 the answer shifted left by one token: 7 8 7 8 -> 8 7 8 4.
PRED = np.array(
    [
        [4, 4, 1, 2, 3, 4],
        [9, 5, 1, 0, 0, 0],
        [9, 8, 7, 8, 4, 0],
    ]
)


def levenshtein_reference(a, b) -> int:
    """Textbook O(len(a) len(b)) DP, one cell at a time."""
    table = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            table[i][j] = min(
                table[i - 1][j] + 1,
                table[i][j - 1] + 1,
                table[i - 1][j - 1] + (a[i - 1] != b[j - 1]),
            )
    return table[-1][-1]


def test_exact_match_and_token_accuracy_read_only_answer_tokens():
    np.testing.assert_array_equal(metrics.exact_match(PRED, TARGET, MASK), [1.0, 0.0, 0.0])
    np.testing.assert_allclose(metrics.token_accuracy(PRED, TARGET, MASK), [1.0, 0.5, 0.0])


def test_edit_distance_counts_a_shift_as_two_edits_not_a_full_miss():
    # Row 2: "7 8 7 8" vs "8 7 8 4" is one deletion + one insertion (Hamming would say 4).
    np.testing.assert_array_equal(metrics.edit_distance(PRED, TARGET, MASK), [0.0, 1.0, 2.0])


def test_edit_distance_hand_cases():
    assert metrics.edit_distance_ragged([[1, 2, 3]], [[1, 2, 3]]).tolist() == [0.0]
    assert metrics.edit_distance_ragged([list(b"kitten")], [list(b"sitting")]).tolist() == [3.0]
    assert metrics.edit_distance_ragged([[]], [[4, 5]]).tolist() == [2.0]
    assert metrics.edit_distance_ragged([[4, 5, 6]], [[]]).tolist() == [3.0]
    assert metrics.edit_distance_ragged([[1, 1, 1]], [[2, 2, 2]]).tolist() == [3.0]


def test_edit_distance_matches_reference_dp_on_random_sequences():
    rng = np.random.default_rng(0)
    # Small alphabet so matches, shifts and repeats are common; lengths 0..9 both sides.
    preds = [rng.integers(0, 3, rng.integers(0, 10)).tolist() for _ in range(400)]
    targets = [rng.integers(0, 3, rng.integers(0, 10)).tolist() for _ in range(400)]
    expected = [levenshtein_reference(p, t) for p, t in zip(preds, targets, strict=True)]
    np.testing.assert_array_equal(metrics.edit_distance_ragged(preds, targets), expected)


def test_masked_edit_distance_matches_reference_dp_with_scattered_masks():
    rng = np.random.default_rng(1)
    pred = rng.integers(0, 3, (200, 12))
    target = rng.integers(0, 3, (200, 12))
    mask = rng.random((200, 12)) < 0.5
    mask[:, 0] = True  # every example has an answer token
    expected = [
        levenshtein_reference(p[m], t[m]) for p, t, m in zip(pred, target, mask, strict=True)
    ]
    np.testing.assert_array_equal(metrics.edit_distance(pred, target, mask), expected)


def test_answer_logprob_sums_answer_positions_only():
    logprob = np.log(np.full(TARGET.shape, 0.5))
    logprob[:, 0] = -100.0  # prompt positions must not count
    np.testing.assert_allclose(
        metrics.answer_logprob(logprob, MASK),
        [3 * math.log(0.5), 2 * math.log(0.5), 4 * math.log(0.5)],
    )


def test_brier_by_hand_and_from_stored_pieces():
    # One answer token, V = 3: p = (0.7, 0.2, 0.1), target 0 -> 0.3^2 + 0.2^2 + 0.1^2 = 0.14.
    probs = np.array([[[0.7, 0.2, 0.1]]])
    target = np.array([[0]])
    mask = np.array([[True]])
    assert metrics.brier(*metrics.brier_pieces(probs, target), mask)[0] == pytest.approx(0.14)
    # A confident wrong answer scores the maximum, 2; a confident right one 0.
    sure = np.array([[[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]])
    both = metrics.brier(*metrics.brier_pieces(sure, np.array([[0, 0]])), np.array([[1, 0]], bool))
    assert both[0] == pytest.approx(2.0)
    right = metrics.brier(*metrics.brier_pieces(sure, np.array([[0, 0]])), np.array([[0, 1]], bool))
    assert right[0] == pytest.approx(0.0)


def test_brier_pieces_equal_the_direct_definition_on_random_distributions():
    rng = np.random.default_rng(2)
    probs = rng.dirichlet(np.ones(11), size=(5, 7))
    target = rng.integers(0, 11, (5, 7))
    mask = rng.random((5, 7)) < 0.6
    mask[:, 0] = True
    onehot = np.eye(11)[target]
    direct = (np.square(probs - onehot).sum(-1) * mask).sum(1) / mask.sum(1)
    np.testing.assert_allclose(metrics.brier(*metrics.brier_pieces(probs, target), mask), direct)


def test_per_example_brier_from_sum_of_squares_matches_full_probs():
    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.ones(10), size=TARGET.shape)
    target_prob, sum_sq = metrics.brier_pieces(probs, TARGET)
    logprob = np.log(target_prob)
    from_probs = metrics.per_example(PRED, TARGET, MASK, logprob, probs=probs)
    from_pieces = metrics.per_example(PRED, TARGET, MASK, logprob, sum_sq_prob=sum_sq)
    assert set(from_probs) == set(metrics.METRICS)
    np.testing.assert_allclose(from_probs["brier"], from_pieces["brier"])
    assert "brier" not in metrics.per_example(PRED, TARGET, MASK, logprob)


def test_inputs_are_validated():
    with pytest.raises(ValueError, match="no answer tokens"):
        metrics.exact_match(PRED, TARGET, np.zeros_like(MASK))
    with pytest.raises(ValueError, match="shape"):
        metrics.token_accuracy(PRED[:, :5], TARGET, MASK)


def test_resolution_is_where_zero_correct_stops_being_plausible():
    for n in (1, 10, 300, 10_000):
        r = metrics.resolution(n)
        # At accuracy r, all n wrong has probability exactly 5%.
        assert stats.binom.pmf(0, n, r) == pytest.approx(0.05)
    assert metrics.resolution(1) == pytest.approx(0.95)
    assert metrics.resolution(3000) == pytest.approx(3 / 3000, rel=0.01)  # rule of three
    assert "resolution 0.000998" in metrics.resolution_note(3000)


def test_examples_needed_inverts_resolution():
    for accuracy in (0.1, 0.01, 0.001):
        n = metrics.examples_needed(accuracy)
        assert metrics.resolution(n) <= accuracy < metrics.resolution(n - 1)


def test_wilson_interval_known_values():
    low, high = metrics.wilson_interval(0, 10)
    z2 = stats.norm.ppf(0.975) ** 2
    assert low == 0.0 and high == pytest.approx(z2 / (10 + z2))  # 0.2775
    low, high = metrics.wilson_interval(5, 10)
    assert (low, high) == pytest.approx((0.2366, 0.7634), abs=1e-4)


def test_summarise_uses_wilson_for_proportions_and_t_for_continuous():
    rng = np.random.default_rng(4)
    per_example = {
        "exact_match": (rng.random(400) < 0.1).astype(float),
        "edit": rng.normal(2, 1, 400),
    }
    out = metrics.summarise(per_example)
    assert out["n"] == 400 and out["resolution"] == pytest.approx(metrics.resolution(400))
    em = out["exact_match"]
    assert em["interval"] == "wilson"
    assert (em["ci_low"], em["ci_high"]) == pytest.approx(
        metrics.wilson_interval(per_example["exact_match"].sum(), 400)
    )
    edit = out["edit"]
    expected = stats.t.interval(
        0.95, 399, loc=per_example["edit"].mean(), scale=stats.sem(per_example["edit"])
    )
    assert edit["interval"] == "t" and (edit["ci_low"], edit["ci_high"]) == pytest.approx(expected)
    boot = metrics.summarise(per_example, continuous="bootstrap")["edit"]
    assert boot["interval"] == "bootstrap"
    assert boot["ci_low"] == pytest.approx(expected[0], abs=0.03)
    assert boot["ci_high"] == pytest.approx(expected[1], abs=0.03)
    with pytest.raises(ValueError, match="disagree"):
        metrics.summarise({"a": np.zeros(3), "b": np.zeros(4)})
