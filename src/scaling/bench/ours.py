"""Our side of the benchmark: the Trainer's own jitted step, built by the same functions.

The training loop builds its step from `Plan`, `make_schedule`, `make_optimizer`, `init_state`,
`microbatches` and `scaling.train.step.build_step`, compiles it ahead of time and feeds it host
batches through `jnp.asarray`; this does exactly that on random tokens, so the figure is the
training loop's.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from scaling.bench.shapes import Shape
from scaling.config import TrainConfig
from scaling.model.transformer import build_model
from scaling.train import optim
from scaling.train.step import build_step, init_state

N_BATCHES = 4  # distinct random batches cycled through, generated once on the host


def random_batches(shape: Shape, seed: int = 0) -> list[np.ndarray]:
    """int32 (B, T+1) token batches, uniform over the vocabulary; the same for every side."""
    rng = np.random.default_rng(seed)
    size = (shape.batch_size, shape.seq_len + 1)
    return [rng.integers(0, shape.vocab_size, size, dtype=np.int32) for _ in range(N_BATCHES)]


class OursStep:
    """One shape's compiled training step and state; `run(n)` times n steps."""

    name = "ours"

    def __init__(
        self,
        shape: Shape,
        remat: bool = False,
        grad_accum: int | None = None,
        seed: int = 0,
        overrides: Mapping[str, Any] | None = None,
    ) -> None:
        """`overrides`: ModelConfig fields replaced in the shape's config (a variant side)."""
        self.shape = shape
        cfg = TrainConfig(
            batch_size=shape.batch_size, tokens=10**12, grad_accum=grad_accum, seed=seed
        )
        plan = optim.Plan.from_config(cfg, shape.seq_len)
        tx = optim.make_optimizer(cfg, optim.make_schedule(cfg, plan))
        model_cfg = shape.model_config(remat=remat, overrides=overrides)
        graphdef, self.state = init_state(
            lambda: build_model(model_cfg, shape.vocab_size, shape.seq_len, seed=seed), tx
        )
        self.grad_accum = optim.microbatches(cfg, model_cfg, shape.vocab_size, shape.seq_len)
        batch = jax.ShapeDtypeStruct((shape.batch_size, shape.seq_len + 1), jnp.int32)
        self.step, self.compile_s = build_step(
            graphdef, cfg, model_cfg.z_loss, self.grad_accum, self.state, [batch]
        )
        # XLA's buffer assignment for the step's temporaries (activations, logits): per side,
        # where the process's peak is shared by every JAX side in it.
        stats = self.step.memory_analysis()
        self.temp_bytes: int | None = stats.temp_size_in_bytes if stats else None
        self.lr = np.float32(cfg.lr)  # the peak throughout, as the peer's constant rate
        self.batches = random_batches(shape, seed)
        self.loss: float | None = None
        self._i = 0

    def run(self, n_steps: int) -> float:
        """Seconds for n steps, from the first dispatch until the last loss is on the host."""
        start = time.perf_counter()
        for _ in range(n_steps):
            batch = self.batches[self._i % N_BATCHES]
            self.state, metrics = self.step(self.state, self.lr, jnp.asarray(batch))
            self._i += 1
        self.loss = float(metrics["loss"])
        return time.perf_counter() - start

    def peak_memory_bytes(self) -> int | None:
        """Peak device memory of this process so far; None where the backend keeps no count."""
        stats = jax.local_devices()[0].memory_stats()
        return stats.get("peak_bytes_in_use") if stats else None

    def device_kind(self) -> str:
        return jax.local_devices()[0].device_kind
