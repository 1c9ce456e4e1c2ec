"""Per-example task metrics, computed from arrays the training side hands over.

The evaluator (which owns the model) produces, for a batch of B examples padded to T positions:

- `pred_tokens (B, T)`: the model's prediction at each position. Only answer positions are read,
  so the predicted answer always has the answer's length. Two producers fit this contract:
  teacher-forced argmax (position t predicted from the gold prefix) or a free-running greedy
  continuation of exactly the answer's length written into the answer positions. Say which in
  the table; for free-running decodes of another length use `edit_distance_ragged`.
- `target_tokens (B, T)`, `answer_mask (B, T)` (bool: which positions are answer tokens),
- `target_logprob (B, T)`: teacher-forced log p(correct token) at each position,
- for the Brier score, `sum_sq_prob (B, T)` = sum_v p_v^2 per position (or full `probs`), so
  no V-sized array need be stored: brier_t = 1 - 2 p_target + sum_v p_v^2.

Every metric returns one value per example (B,), so intervals and resolutions are computed
here from the same per-example arrays. Pure numpy/scipy: the analysis side never imports model
code (DESIGN.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

# Every metric, with its orientation for scoring curves: edit distance and Brier fall as the
# model improves.
HIGHER_IS_BETTER = {
    "exact_match": True,
    "token_accuracy": True,
    "edit_distance": False,
    "answer_logprob": True,
    "brier": False,
}
METRICS = tuple(HIGHER_IS_BETTER)


def _check(pred: ArrayLike, target: ArrayLike, mask: ArrayLike) -> np.ndarray:
    """Validate shapes; return the mask as bool. Every example needs an answer token, else its
    accuracy would be a silent 0/0."""
    mask_BxT = np.asarray(mask, dtype=bool)
    same_shape = np.shape(pred) == np.shape(target) == mask_BxT.shape
    if not same_shape or mask_BxT.ndim != 2:
        raise ValueError(
            f"pred {np.shape(pred)}, target {np.shape(target)} and mask {mask_BxT.shape} "
            "must share one (B, T) shape"
        )
    empty = np.flatnonzero(~mask_BxT.any(axis=1))
    if empty.size:
        raise ValueError(f"examples {empty[:5].tolist()} have no answer tokens")
    return mask_BxT


def exact_match(
    pred_tokens: ArrayLike, target_tokens: ArrayLike, answer_mask: ArrayLike
) -> np.ndarray:
    """1.0 where every answer token is right, else 0.0."""
    mask = _check(pred_tokens, target_tokens, answer_mask)
    wrong = (np.asarray(pred_tokens) != np.asarray(target_tokens)) & mask
    return (~wrong.any(axis=1)).astype(np.float64)


def token_accuracy(
    pred_tokens: ArrayLike, target_tokens: ArrayLike, answer_mask: ArrayLike
) -> np.ndarray:
    """Share of answer tokens predicted right."""
    mask = _check(pred_tokens, target_tokens, answer_mask)
    right = (np.asarray(pred_tokens) == np.asarray(target_tokens)) & mask
    return right.sum(axis=1) / mask.sum(axis=1)


def answer_logprob(target_logprob: ArrayLike, answer_mask: ArrayLike) -> np.ndarray:
    """Sum of log p(correct token) over answer tokens: log p of the whole answer."""
    mask = np.asarray(answer_mask, dtype=bool)
    return np.where(mask, np.asarray(target_logprob, dtype=np.float64), 0.0).sum(axis=1)


def brier_pieces(probs: ArrayLike, target_tokens: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(p_target, sum_v p_v^2), each (B, T), from full (B, T, V) probabilities: the two numbers
    per position the Brier score needs, so an evaluator can reduce V away before storing."""
    probs = np.asarray(probs, dtype=np.float64)
    target = np.asarray(target_tokens)[..., None]
    return np.take_along_axis(probs, target, axis=-1)[..., 0], np.square(probs).sum(axis=-1)


def brier(target_prob: ArrayLike, sum_sq_prob: ArrayLike, answer_mask: ArrayLike) -> np.ndarray:
    """Mean over answer tokens of sum_v (p_v - 1[v = target])^2 = 1 - 2 p_target + sum_v p_v^2.

    0 for a confident right answer, 2 for a confident wrong one."""
    mask = np.asarray(answer_mask, dtype=bool)
    per_token = 1.0 - 2.0 * np.asarray(target_prob, np.float64) + np.asarray(sum_sq_prob)
    return np.where(mask, per_token, 0.0).sum(axis=1) / mask.sum(axis=1)


def _left_align(tokens: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gather each row's masked tokens to the front: a (B, longest answer) array and the (B,)
    lengths."""
    lengths = mask.sum(axis=1)
    order = np.argsort(~mask, axis=1, kind="stable")  # masked positions first, in order
    width = max(int(lengths.max(initial=0)), 1)
    return np.take_along_axis(tokens, order, axis=1)[:, :width], lengths


def _levenshtein_padded(
    a: np.ndarray, len_a: np.ndarray, b: np.ndarray, len_b: np.ndarray
) -> np.ndarray:
    """Levenshtein distance of a[i, :len_a[i]] and b[i, :len_b[i]] for every row at once.

    Row-by-row DP vectorised over the batch and over columns: the substitution and deletion
    candidates come from the previous row; the insertion chain within a row,
    D[j] = min_k<=j (cand[k] + j - k), is a running minimum of cand[k] - k. Padding never
    leaks in because D[i, j] depends only on the prefixes a[:i], b[:j]."""
    n_rows, width_b = b.shape
    cols = np.arange(width_b + 1)
    prev = np.broadcast_to(cols, (n_rows, width_b + 1)).astype(np.int64)
    out = prev[np.arange(n_rows), len_b].copy()  # rows with len_a == 0: distance len_b
    for i in range(1, a.shape[1] + 1):
        cost = (a[:, i - 1 : i] != b).astype(np.int64)
        cand = np.empty_like(prev)
        cand[:, 0] = i
        cand[:, 1:] = np.minimum(prev[:, 1:] + 1, prev[:, :-1] + cost)
        prev = np.minimum.accumulate(cand - cols, axis=1) + cols
        done = len_a == i
        out[done] = prev[done, len_b[done]]
    return out


def edit_distance(
    pred_tokens: ArrayLike, target_tokens: ArrayLike, answer_mask: ArrayLike
) -> np.ndarray:
    """Token Levenshtein distance between predicted and target answers (Schaeffer et al. 2023).

    Both sequences are the tokens at answer positions, so both are as long as the answer and
    the distance is at most that length; a prediction shifted by one token costs 2, not the
    answer's length."""
    mask = _check(pred_tokens, target_tokens, answer_mask)
    pred, lengths = _left_align(np.asarray(pred_tokens), mask)
    target, _ = _left_align(np.asarray(target_tokens), mask)
    return _levenshtein_padded(pred, lengths, target, lengths).astype(np.float64)


def edit_distance_ragged(
    preds: Sequence[Sequence[int]], targets: Sequence[Sequence[int]]
) -> np.ndarray:
    """Levenshtein distance for pairs of token sequences of any lengths (e.g. a free-running
    greedy decode stopped at end-of-sequence against the reference answer)."""
    if len(preds) != len(targets):
        raise ValueError(f"{len(preds)} predictions for {len(targets)} targets")
    len_a = np.array([len(p) for p in preds], dtype=np.int64)
    len_b = np.array([len(t) for t in targets], dtype=np.int64)
    a = np.full((len(preds), max(int(len_a.max(initial=0)), 1)), -1, dtype=np.int64)
    b = np.full((len(targets), max(int(len_b.max(initial=0)), 1)), -2, dtype=np.int64)
    for i, (p, t) in enumerate(zip(preds, targets, strict=True)):
        a[i, : len(p)] = p
        b[i, : len(t)] = t
    return _levenshtein_padded(a, len_a, b, len_b).astype(np.float64)


def per_example(
    pred_tokens: ArrayLike,
    target_tokens: ArrayLike,
    answer_mask: ArrayLike,
    target_logprob: ArrayLike,
    sum_sq_prob: ArrayLike | None = None,
    probs: ArrayLike | None = None,
) -> dict[str, np.ndarray]:
    """Every metric, one (B,) array each. Brier needs `sum_sq_prob` or full `probs`; without
    either it is left out rather than guessed."""
    out = {
        "exact_match": exact_match(pred_tokens, target_tokens, answer_mask),
        "token_accuracy": token_accuracy(pred_tokens, target_tokens, answer_mask),
        "edit_distance": edit_distance(pred_tokens, target_tokens, answer_mask),
        "answer_logprob": answer_logprob(target_logprob, answer_mask),
    }
    if probs is not None:
        out["brier"] = brier(*brier_pieces(probs, target_tokens), answer_mask)
    elif sum_sq_prob is not None:
        target_prob = np.exp(np.asarray(target_logprob, dtype=np.float64))
        out["brier"] = brier(target_prob, sum_sq_prob, answer_mask)
    return out


# ---------------------------------------------------------------------------------------------
# Intervals and resolution


def resolution(n: int, confidence: float = 0.95) -> float:
    """Smallest true accuracy distinguishable from zero with n examples.

    With accuracy p, all n answers are wrong with probability (1 - p)^n; that stays above
    1 - confidence until p = 1 - (1 - confidence)^(1/n), about 3/n at 95% (rule of three).
    A table that sees 0 correct can only say "accuracy below this"."""
    if n < 1:
        raise ValueError(f"need at least one example, got n={n}")
    return float(1.0 - (1.0 - confidence) ** (1.0 / n))


def examples_needed(accuracy: float, confidence: float = 0.95) -> int:
    """Smallest evaluation set whose resolution reaches `accuracy` (inverse of `resolution`)."""
    if not 0.0 < accuracy < 1.0:
        raise ValueError(f"accuracy must lie in (0, 1), got {accuracy}")
    return math.ceil(math.log(1.0 - confidence) / math.log1p(-accuracy))


def resolution_note(n: int, confidence: float = 0.95) -> str:
    """The line every task table states under itself."""
    return (
        f"n = {n} examples per task; resolution {resolution(n, confidence):.3g} "
        f"(smallest accuracy distinguishable from zero at {confidence:.0%})"
    )


def wilson_interval(successes: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion: stays inside [0, 1] and, unlike the normal
    interval, is not zero-width at 0 or n successes, which is where emergence curves start."""
    z = stats.norm.ppf(0.5 + confidence / 2.0)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def t_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Student-t interval for a mean (continuous metrics; n is large in practice)."""
    n = len(values)
    if n < 2:
        return math.nan, math.nan
    mean = float(np.mean(values))
    half = stats.t.ppf(0.5 + confidence / 2.0, n - 1) * np.std(values, ddof=1) / math.sqrt(n)
    return mean - half, mean + half


def bootstrap_interval(
    values: np.ndarray, confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Seeded percentile bootstrap interval for a mean (skewed metrics such as log prob)."""
    rng = np.random.default_rng(seed)
    block = max(1, 2**22 // len(values))  # resample in blocks: ~32 MiB of indices at a time
    means = np.concatenate(
        [
            values[
                rng.integers(0, len(values), (min(block, n_resamples - start), len(values)))
            ].mean(axis=1)
            for start in range(0, n_resamples, block)
        ]
    )
    tail = (1.0 - confidence) / 2.0 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def _is_binary(values: np.ndarray) -> bool:
    return bool(np.all((values == 0.0) | (values == 1.0)))


def summarise(
    per_example_metrics: Mapping[str, np.ndarray],
    confidence: float = 0.95,
    continuous: str = "t",
    seed: int = 0,
) -> dict:
    """Mean and interval of every metric, plus n and the resolution (JSON-able).

    Binary metrics (exact match) get Wilson intervals; continuous ones a t interval, or a
    percentile bootstrap with `continuous="bootstrap"`."""
    if continuous not in ("t", "bootstrap"):
        raise ValueError(f"continuous must be 't' or 'bootstrap', got {continuous!r}")
    sizes = {len(np.asarray(v)) for v in per_example_metrics.values()}
    if len(sizes) != 1:
        raise ValueError(f"metrics disagree on the number of examples: {sorted(sizes)}")
    (n,) = sizes
    out: dict = {"n": n, "confidence": confidence, "resolution": resolution(n, confidence)}
    for name, raw in per_example_metrics.items():
        values = np.asarray(raw, dtype=np.float64)
        if _is_binary(values):
            (low, high), method = wilson_interval(values.sum(), n, confidence), "wilson"
        elif continuous == "t":
            (low, high), method = t_interval(values, confidence), "t"
        else:
            (low, high), method = bootstrap_interval(values, confidence, seed=seed), "bootstrap"
        out[name] = {
            "mean": float(values.mean()),
            "ci_low": None if math.isnan(low) else float(low),
            "ci_high": None if math.isnan(high) else float(high),
            "interval": method,
        }
    return out
