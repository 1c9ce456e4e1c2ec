"""The optimizer side of a run: its step plan, learning-rate schedule, AdamW and microbatches."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import optax

from scaling.config import ModelConfig, TrainConfig
from scaling.model import accounting
from scaling.model.transformer import compute_dtype


@dataclasses.dataclass(frozen=True)
class Plan:
    """Step counts derived from the token budget."""

    tokens_per_step: int
    total_steps: int
    warmup_steps: int

    @classmethod
    def from_config(cls, train: TrainConfig, seq_len: int) -> Plan:
        tokens_per_step = train.batch_size * seq_len
        total_steps = max(1, math.ceil(train.tokens / tokens_per_step))
        warmup_tokens = train.warmup_tokens
        if warmup_tokens is None:
            warmup_tokens = int(0.05 * total_steps * tokens_per_step)
        warmup_steps = min(total_steps - 1, math.ceil(warmup_tokens / tokens_per_step))
        return cls(tokens_per_step, total_steps, max(0, warmup_steps))


# XLA:CPU writes every intermediate of the step to memory, so once a batch's activations
# outgrow the last-level cache the step runs at memory speed. Micro-batches of about this many
# tokens stay in cache: 1.4-1.7x the tokens/s of the whole batch on 2 cores for the benchmark
# shapes and the study's rungs; fewer tokens make the GEMMs too small (results/perf/README.md).
CPU_MICROBATCH_TOKENS = 512
# Below this activation estimate the whole batch is in cache and a split only adds loop
# overhead (n110k at 16 x 128 tokens, ~19 MB, trains faster whole; n221k, ~34 MB, split).
CPU_CACHE_BYTES = 24 * 2**20


def microbatches(
    train: TrainConfig,
    model: ModelConfig,
    vocab_size: int,
    seq_len: int,
    data_shards: int = 1,
    backend: str | None = None,
) -> int:
    """Microbatches per optimizer step: `train.grad_accum`, or where it is None (auto) the
    count for the device. On a CPU, once the batch's activations exceed `CPU_CACHE_BYTES`, the
    fewest microbatches of at most `CPU_MICROBATCH_TOKENS` tokens (one sequence if longer);
    elsewhere 1. Each microbatch keeps a multiple of `data_shards` rows. The step's loss and
    gradient are the whole batch's either way (to float32 rounding)."""
    if train.grad_accum is not None:
        return train.grad_accum
    if (backend or jax.default_backend()) != "cpu":
        return 1
    dtype_bytes = compute_dtype(model).itemsize
    per_token = accounting.activation_bytes_per_token(model, vocab_size, seq_len, dtype_bytes)
    if train.batch_size * seq_len * per_token <= CPU_CACHE_BYTES:
        return 1
    rows = max(1, CPU_MICROBATCH_TOKENS // seq_len)
    feasible = [
        n
        for n in range(1, train.batch_size + 1)
        if train.batch_size % n == 0 and (train.batch_size // n) % data_shards == 0
    ]
    fitting = [n for n in feasible if train.batch_size // n <= rows]
    return min(fitting) if fitting else max(feasible)


def make_schedule(train: TrainConfig, plan: Plan) -> optax.Schedule:
    """Linear warmup, then cosine decay, WSD (constant then linear decay), or constant."""
    peak, floor = train.lr, train.lr * train.min_lr_ratio
    warmup, total = plan.warmup_steps, plan.total_steps
    ramp = optax.linear_schedule(0.0, peak, max(warmup, 1))
    if train.schedule == "cosine":
        return optax.warmup_cosine_decay_schedule(0.0, peak, warmup, total, end_value=floor)
    if train.schedule == "constant":
        return optax.join_schedules([ramp, optax.constant_schedule(peak)], [warmup])
    # wsd: warmup-stable-decay (Hu et al. 2024); optax has none, so compose one.
    decay_steps = max(1, round(train.decay_fraction * total))
    decay_start = max(warmup, total - decay_steps)
    decay = optax.linear_schedule(peak, floor, total - decay_start)
    return optax.join_schedules([ramp, optax.constant_schedule(peak), decay], [warmup, decay_start])


def lr_table(schedule: optax.Schedule, n_steps: int) -> jax.Array:
    """float32 (n_steps,): the schedule at optimizer counts 0..n_steps-1."""
    return jax.jit(jax.vmap(schedule))(jnp.arange(n_steps))


# The only TrainConfig fields `make_optimizer` reads, so they alone key the compiled step
# (scaling.train.step.make_train_step); the others (tokens, lr, schedule, seed, ...) reach the
# step as data.
OPTIMIZER_FIELDS = ("beta1", "beta2", "eps", "weight_decay", "grad_clip")


def make_optimizer(train: TrainConfig, schedule: optax.Schedule) -> optax.GradientTransformation:
    """AdamW at `schedule`'s rate, its gradients clipped by global norm where grad_clip > 0."""
    beta1, beta2, eps, weight_decay, grad_clip = (getattr(train, f) for f in OPTIMIZER_FIELDS)

    # Decay matrices only: biases, norm gains and 1-d parameters are left alone.
    def decay_mask(params: Any) -> Any:
        return jax.tree.map(lambda p: p.ndim >= 2, params)

    adamw = optax.adamw(
        schedule, b1=beta1, b2=beta2, eps=eps, weight_decay=weight_decay, mask=decay_mask
    )
    if grad_clip > 0:
        return optax.chain(optax.clip_by_global_norm(grad_clip), adamw)
    return adamw
