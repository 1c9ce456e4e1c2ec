"""The train step: a pure function of (state, lr, batch), jitted and compiled in one place.

The Flax NNX model is split once into a static graphdef and a params pytree, merged back inside
the jitted function; the state is donated. `build_step` gives the loop its compiled step for K
runs: for K = 1 the plain jitted single-run step, for K > 1 that step vmapped over runs stacked
on a leading axis (each with its own learning-rate table, read at its optimizer's count).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from scaling.config import TrainConfig
from scaling.model.transformer import Transformer
from scaling.train import shard
from scaling.train.loss import fused_lm_loss, lm_loss
from scaling.train.optim import OPTIMIZER_FIELDS, make_optimizer


class TrainState(NamedTuple):
    """One run's train state, a pytree (K runs stacked: every leaf with a leading axis K)."""

    params: Any  # the model's parameters as a pure dict (nnx.to_pure_dict)
    opt_state: Any  # the optimizer's state (optax); its count is the schedule's place
    step: jax.Array  # int32: optimizer steps taken
    first_bad_step: jax.Array  # int32: the first step whose loss or gradient was not finite, -1


LR_SPEC = jax.ShapeDtypeStruct((), jnp.float32)  # the step's learning-rate argument


def init_state(
    model_factory: Callable[[], Transformer],
    tx: optax.GradientTransformation,
    layout: shard.Layout = shard.SINGLE,
) -> tuple[Any, TrainState]:
    """The graphdef and a fresh train state, initialised in one compiled call.

    Built eagerly, every initializer and optimizer buffer is its own small XLA compile
    (about 40 for a 2-layer model, seconds on a CPU); under one `jax.jit` it is a single one.
    On a mesh each device initialises only its own shards.
    """
    graphdef, _ = nnx.split(nnx.eval_shape(model_factory))

    def make() -> TrainState:
        return fresh_state(model_factory, tx)

    if layout.mesh is None:
        return graphdef, jax.jit(make)()
    shardings = layout.shardings(jax.eval_shape(make))
    return graphdef, jax.jit(make, out_shardings=shardings)()


def fresh_state(
    model_factory: Callable[[], Transformer], tx: optax.GradientTransformation
) -> TrainState:
    """A new train state (traced by `init_state`, or by `jax.eval_shape` for a template)."""
    params = nnx.to_pure_dict(nnx.split(model_factory())[1])
    return TrainState(
        params=params,
        opt_state=tx.init(params),
        step=jnp.zeros((), jnp.int32),
        first_bad_step=jnp.full((), -1, jnp.int32),
    )


def make_loss_fn(graphdef: Any, z_loss: float) -> Callable[..., tuple]:
    def loss_fn(
        params: Any, batch_BxTp1: jax.Array, mask_BxTp1: jax.Array | None = None
    ) -> tuple[jax.Array, dict]:
        model = nnx.merge(graphdef, params)
        inputs_BxT, targets_BxT = batch_BxTp1[:, :-1], batch_BxTp1[:, 1:]
        # A mask (fine-tuning) counts only its positions, e.g. the answer tokens of a task.
        mask_BxT = None if mask_BxTp1 is None else mask_BxTp1[:, 1:]
        if model.loss_chunk_tokens:
            x_BxTxD, w_VxD = model.features(inputs_BxT), model.unembedding()
            chunk = model.loss_chunk_tokens
            return fused_lm_loss(x_BxTxD, w_VxD, targets_BxT, z_loss, chunk, mask_BxT)
        return lm_loss(model(inputs_BxT), targets_BxT, z_loss, mask_BxT)

    return loss_fn


def make_train_step(
    graphdef: Any,
    train: TrainConfig,
    z_loss: float,
    grad_accum: int,
    layout: shard.Layout = shard.SINGLE,
) -> jax.stages.Wrapped:
    """The jitted step(state, lr, batch_BxTp1, mask_BxTp1=None); `state` is donated, so the
    caller must use the returned one.

    `lr` is this step's learning rate (the schedule at the optimizer's count, e.g. from
    `lr_table`): an argument rather than a constant of the program, so every run of one shape
    and optimizer shares one step. Within a process the same jitted function is returned for
    them (a sweep's runs trace and compile it once); across processes the persistent
    compilation cache serves it. `mask_BxTp1` (optional, same shape as the batch) restricts the
    loss to its positions; without it the step is exactly the pre-training step. On a mesh
    (`layout`) the parameters are gathered for the passes and the gradients and new state
    pinned to the state's shards.
    """
    settings = tuple((name, getattr(train, name)) for name in OPTIMIZER_FIELDS)
    return _train_step(graphdef, settings, z_loss, grad_accum, layout)


@functools.lru_cache(maxsize=16)
def _train_step(
    graphdef: Any,
    optimizer_settings: tuple[tuple[str, Any], ...],
    z_loss: float,
    grad_accum: int,
    layout: shard.Layout,
) -> jax.stages.Wrapped:
    train = TrainConfig(**dict(optimizer_settings))
    grad_fn = jax.value_and_grad(make_loss_fn(graphdef, z_loss), has_aux=True)

    def step(
        state: TrainState,
        lr: jax.Array,
        batch_BxTp1: jax.Array,
        mask_BxTp1: jax.Array | None = None,
    ) -> tuple[TrainState, dict]:
        # The schedule's place in the optimizer state is kept (its count), its value is `lr`.
        tx = make_optimizer(train, lambda count: lr)
        params = state.params
        whole = layout.gather(params)
        if grad_accum == 1:
            (loss, aux), grads = grad_fn(whole, batch_BxTp1, mask_BxTp1)
        else:
            loss, aux, grads = accumulate_grads(grad_fn, whole, grad_accum, batch_BxTp1, mask_BxTp1)
        grads = layout.constrain(grads)
        grad_norm = optax.tree.norm(grads)
        updates, opt_state = tx.update(grads, state.opt_state, params)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        first_bad = jnp.where(
            (state.first_bad_step < 0) & ~finite, state.step, state.first_bad_step
        )
        new_state = TrainState(
            params=optax.apply_updates(params, updates),
            opt_state=opt_state,
            step=state.step + 1,
            first_bad_step=first_bad,
        )
        return layout.constrain(new_state), {"loss": loss, "ce": aux["ce"], "grad_norm": grad_norm}

    return jax.jit(step, donate_argnums=0)


def accumulate_grads(
    grad_fn: Callable[..., tuple],
    params: Any,
    grad_accum: int,
    batch_BxTp1: jax.Array,
    mask_BxTp1: jax.Array | None = None,
) -> tuple[jax.Array, dict, Any]:
    """(loss, aux, grads) of the batch as `grad_accum` microbatches, summed in a `lax.scan`:
    the same mean as one pass over the whole batch, with one microbatch's activations live."""

    def split(x_BxTp1: jax.Array | None) -> jax.Array | None:
        """The batch as (A, Bm, Tp1): one micro-batch per step of the scan."""
        return None if x_BxTp1 is None else x_BxTp1.reshape(grad_accum, -1, x_BxTp1.shape[-1])

    micro_AxBmxTp1 = (split(batch_BxTp1), split(mask_BxTp1))

    def accumulate(carry: tuple, micro_i: tuple) -> tuple[tuple, None]:
        (loss_i, aux_i), grads_i = grad_fn(params, *micro_i)
        if mask_BxTp1 is None:
            return jax.tree.map(jnp.add, carry, (loss_i, aux_i, grads_i)), None
        # Masked losses are means over each microbatch's own positions: weight them by those
        # counts so the step equals the one-batch mean over all positions.
        count_i = micro_i[1][:, 1:].sum().astype(jnp.float32)
        weighted = jax.tree.map(lambda x: x * count_i, (loss_i, aux_i, grads_i))
        return jax.tree.map(jnp.add, carry, (*weighted, count_i)), None

    zero = jnp.zeros((), jnp.float32)
    zeros = (zero, {"ce": zero, "z": zero}, jax.tree.map(jnp.zeros_like, params))
    if mask_BxTp1 is None:
        (loss, aux, grads), _ = jax.lax.scan(accumulate, zeros, micro_AxBmxTp1)
        total: int | jax.Array = grad_accum
    else:
        (loss, aux, grads, count), _ = jax.lax.scan(accumulate, (*zeros, zero), micro_AxBmxTp1)
        total = jnp.maximum(count, 1.0)
    return jax.tree.map(lambda x: x / total, (loss, aux, grads))


def make_group_step(
    graphdef: Any, train: TrainConfig, z_loss: float, grad_accum: int
) -> jax.stages.Wrapped:
    """The single-run step vmapped over (state, batch, lr table); the stacked state is donated.

    `train` gives the settings the runs share (`scaling.config.group_key`); each run's
    learning rate comes from its own row of the table, indexed by its optimizer's step count.
    """

    def one(state: TrainState, batch_BxTp1: jax.Array, lr_S: jax.Array) -> tuple:
        step = make_train_step(graphdef, train, z_loss, grad_accum)
        return step(state, lr_S[state.step], batch_BxTp1)

    return jax.jit(jax.vmap(one), donate_argnums=0)


def build_step(
    graphdef: Any,
    train: TrainConfig,
    z_loss: float,
    grad_accum: int,
    state: TrainState,
    batch_specs: Sequence[jax.ShapeDtypeStruct | jax.Array],
    lr_KxS: jax.Array | None = None,
    layout: shard.Layout = shard.SINGLE,
) -> tuple[Any, float]:
    """(the compiled step, the seconds its compile took), lowered ahead of time for `state`.

    Without `lr_KxS` one run's step(state, lr, *batches) (`make_train_step`); with it the step
    of the K runs stacked in `state`, step(state, batch_KxBxTp1, lr_KxS) (`make_group_step`),
    where `batch_specs` is the one stacked batch.
    """
    start = time.perf_counter()
    if lr_KxS is None:
        jitted = make_train_step(graphdef, train, z_loss, grad_accum, layout)
        compiled = jitted.lower(state, LR_SPEC, *batch_specs).compile()
    else:
        jitted = make_group_step(graphdef, train, z_loss, grad_accum)
        compiled = jitted.lower(state, *batch_specs, lr_KxS).compile()
    return compiled, time.perf_counter() - start


def stack(trees: Sequence[Any]) -> Any:
    """Trees of one structure as one, each leaf with a new leading axis (K runs)."""
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def take(stacked: Any, index: int | np.ndarray) -> Any:
    """Run `index` of a stacked tree (an int), or the stack of the runs listed (an array)."""
    return jax.tree.map(lambda x: x[index], stacked)
