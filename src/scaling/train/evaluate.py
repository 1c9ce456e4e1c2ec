"""Evaluation on the validation sample: the eval step, the sample, the loss and its error."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from scaling.data.corpus import Corpus
from scaling.train import shard

# Sequences per validation batch, whatever the run's batch size: the validation sample (train.
# eval_batches of these) is then the same for every run on a corpus and seq_len.
VAL_ROWS = 16


@functools.lru_cache(maxsize=16)  # one jitted function per model shape, as the train step
def make_eval_step(graphdef: Any, layout: shard.Layout = shard.SINGLE) -> jax.stages.Wrapped:
    """The jitted eval(params, batch_BxTp1) -> ce_B: each sequence's mean next-token
    cross-entropy (nats/token), from which the loss and its standard error follow.

    With `model.loss_chunk_tokens` set the logits are computed for a few rows at a time (about
    that many tokens), so the batch's whole (B, T, V) logits are never held, as in training.
    On a mesh the result is replicated, so that every process can read all of it.
    """

    def step(params: Any, batch_BxTp1: jax.Array) -> jax.Array:
        model = nnx.merge(graphdef, params)
        b, tp1 = batch_BxTp1.shape

        def ce(rows_BcxTp1: jax.Array) -> jax.Array:
            logits_BcxTxV = model(rows_BcxTp1[:, :-1]).astype(jnp.float32)
            target_BcxT = jnp.take_along_axis(logits_BcxTxV, rows_BcxTp1[:, 1:, None], -1)[..., 0]
            return (jax.nn.logsumexp(logits_BcxTxV, axis=-1) - target_BcxT).mean(axis=1)

        rows = b
        if model.loss_chunk_tokens:
            fit = max(1, model.loss_chunk_tokens // (tp1 - 1))
            rows = max(r for r in range(1, b + 1) if b % r == 0 and r <= fit)
        if rows == b:
            return ce(batch_BxTp1)
        return jax.lax.map(ce, batch_BxTp1.reshape(b // rows, rows, tp1)).reshape(b)

    if layout.mesh is None:
        return jax.jit(step)
    return jax.jit(step, out_shardings=NamedSharding(layout.mesh, PartitionSpec()))


def evaluate(eval_step: Callable, params: Any, batches: list[Any]) -> np.ndarray:
    """float64 (E,): each validation sequence's mean next-token cross-entropy (nats/token)."""
    return np.concatenate(jax.device_get([eval_step(params, b) for b in batches])).astype(float)


def mean_and_se(sums_E: np.ndarray, counts_E: np.ndarray) -> tuple[float, float | None]:
    """The token-weighted mean loss of E sequences (their loss sums over their token counts),
    and its standard error with the sequence as the sampled unit (the ratio estimator's, which
    is std/sqrt(E) when every sequence has as many tokens); None for a single sequence."""
    sums_E, counts_E = np.asarray(sums_E, float), np.asarray(counts_E, float)
    n, total = len(sums_E), counts_E.sum()
    mean = float(sums_E.sum() / total)
    if n < 2:
        return mean, None
    residual_E = sums_E - mean * counts_E
    return mean, float(np.sqrt(n / (n - 1) * np.sum(residual_E**2)) / total)


def validation_sample(corpus: Corpus, n_batches: int, seq_len: int, n_devices: int) -> tuple:
    """(batches, n): the corpus's validation sample of `n_batches` x VAL_ROWS sequences (fewer
    where its split is smaller), in batches whose rows divide over `n_devices` data shards; the
    last batch is padded with rows of zeros (an empty answer mask, for a task), whose results
    are dropped (n is the number of real sequences). A batch is an array, or a tuple (tokens,
    answer_mask)."""
    batches = corpus.val_batches(n_batches, VAL_ROWS, seq_len)
    rows = VAL_ROWS * n_devices // math.gcd(VAL_ROWS, n_devices)
    n = sum(len(jax.tree.leaves(b)[0]) for b in batches)
    if rows == VAL_ROWS or not batches:
        return batches, n
    whole = jax.tree.map(lambda *xs: np.concatenate(xs), *batches)
    pad = -(-n // rows) * rows - n
    whole = jax.tree.map(lambda x: np.concatenate([x, np.zeros_like(x[:1]).repeat(pad, 0)]), whole)
    return [jax.tree.map(lambda x, i=i: x[i : i + rows], whole) for i in range(0, n + pad, rows)], n
