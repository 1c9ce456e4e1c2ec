"""The train step called directly, with and without jit, and the accumulation of micro-batches."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scaling.config import validate
from scaling.data.build import build_corpus
from scaling.model.transformer import build_model
from scaling.train.optim import Plan, make_optimizer, make_schedule
from scaling.train.step import TrainState, init_state, make_train_step


def _tiny_step(tiny_config, grad_accum: int = 1):
    # XLA's attention kernel: the CPU's query-chunked one is a Python loop when run eagerly.
    cfg = validate(tiny_config("model.attention=xla"))
    corpus = build_corpus(cfg.data, seed=cfg.train.seed)
    seq_len = cfg.data.seq_len
    tx = make_optimizer(cfg.train, make_schedule(cfg.train, Plan.from_config(cfg.train, seq_len)))
    graphdef, state = init_state(
        lambda: build_model(cfg.model, corpus.vocab_size, seq_len, seed=cfg.train.seed), tx
    )
    step = make_train_step(graphdef, cfg.train, cfg.model.z_loss, grad_accum)
    batch_BxTp1 = jnp.asarray(corpus.train_batch(0, cfg.train.batch_size, seq_len))
    return step, state, batch_BxTp1, corpus.vocab_size


def _copy(state: TrainState) -> TrainState:
    return jax.tree.map(jnp.array, state)  # the jitted step donates the state it is given


def _assert_same_step(got: tuple, want: tuple, params_rtol: float) -> None:
    """Two steps' (state, metrics) agree: metrics to float32 rounding, parameters to
    `params_rtol` (an update near 0 differs in absolute terms only, hence atol)."""
    (state, metrics), (state_want, metrics_want) = got, want
    for key in ("loss", "ce", "grad_norm"):
        np.testing.assert_allclose(metrics[key], metrics_want[key], rtol=1e-5)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=params_rtol, atol=1e-6),
        state.params,
        state_want.params,
    )


@pytest.mark.slow  # eager, every primitive compiles on its own: ~15 s on 2 cores
def test_one_step_is_the_same_with_and_without_jit(tiny_config):
    step, state, batch_BxTp1, vocab = _tiny_step(tiny_config)
    lr = jnp.float32(1e-3)
    with jax.disable_jit():
        eager = step(_copy(state), lr, batch_BxTp1)
    jitted_state, jitted = step(_copy(state), lr, batch_BxTp1)
    _assert_same_step((jitted_state, jitted), eager, params_rtol=1e-5)
    assert int(jitted_state.step) == 1 and int(jitted_state.first_bad_step) == -1
    # Freshly initialised, the model predicts every byte about equally: ce near log(vocab).
    assert abs(float(jitted["ce"]) - math.log(vocab)) < 0.1


def test_micro_batches_give_the_whole_batch_step(tiny_config):
    one, state, batch_BxTp1, _ = _tiny_step(tiny_config)
    two, *_ = _tiny_step(tiny_config, grad_accum=2)
    lr = jnp.float32(1e-3)
    whole = one(_copy(state), lr, batch_BxTp1)
    _assert_same_step(two(_copy(state), lr, batch_BxTp1), whole, params_rtol=1e-4)
