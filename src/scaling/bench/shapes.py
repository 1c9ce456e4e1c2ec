"""The benchmark shapes: GPT-2 preset models with a batch, a sequence length and a vocabulary.

GPU shapes are GPT-2 124M and 355M plus a small wide-vocabulary model (the issue's table);
CPU shapes are tiny byte-level models that two cores train in seconds, and the default study's
rungs at its batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from scaling.config import ModelConfig
from scaling.model import accounting
from scaling.sweep.ladder import ladder

GPT2_VOCAB = 50257


@dataclasses.dataclass(frozen=True)
class Shape:
    name: str
    n_layers: int
    d_model: int
    n_heads: int
    vocab_size: int
    batch_size: int
    seq_len: int

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.seq_len

    def model_config(
        self, remat: bool = False, overrides: Mapping[str, Any] | None = None
    ) -> ModelConfig:
        """The `model.arch=gpt2` config of this shape (compute dtype and attention on auto),
        with the `overrides` fields replaced (a variant of our side, scaling.bench.variants)."""
        cfg = ModelConfig(
            name=self.name,
            arch="gpt2",
            d_model=self.d_model,
            n_layers=self.n_layers,
            n_heads=self.n_heads,
            remat=remat,
        )
        return dataclasses.replace(cfg, **(overrides or {}))

    def flops_per_token(self, overrides: Mapping[str, Any] | None = None) -> float:
        """Training FLOPs per token, 6N+12LdT (accounting.FLOPS_6N_ATTN): what MFU uses."""
        model = self.model_config(overrides=overrides)
        flops = accounting.flops_per_token(model, self.vocab_size, self.seq_len)
        return flops[accounting.FLOPS_6N_ATTN]

    def n_params(self) -> int:
        return accounting.param_counts(self.model_config(), self.vocab_size, self.seq_len).total


GPU_SHAPES = (
    Shape("gpt2-124m", 12, 768, 12, GPT2_VOCAB, 32, 1024),
    Shape("gpt2-355m", 24, 1024, 16, GPT2_VOCAB, 16, 1024),
    Shape("L4-d256-v50k", 4, 256, 4, GPT2_VOCAB, 64, 512),
)
CPU_SHAPES = (
    Shape("L4-d256-v256", 4, 256, 4, 256, 16, 256),
    Shape("L2-d128-v256", 2, 128, 4, 256, 32, 128),
)
# The default study's rungs at its batch (experiment=smoke: 16 x 128 bytes); by --shapes only.
STUDY_SHAPES = tuple(
    Shape(f"{c.name}-16x128", c.n_layers, c.d_model, c.n_heads, 256, 16, 128)
    for c in ladder()
    if c.name in ("n110k", "n221k", "n393k")
)
# GPT-2's vocabulary at a size two CPU cores train: where a fused loss (model.loss_chunk_tokens)
# can be tried without a GPU; by --shapes only.
CPU_WIDE_VOCAB_SHAPE = Shape("L2-d128-v50k", 2, 128, 4, GPT2_VOCAB, 8, 128)
SHAPES = {s.name: s for s in GPU_SHAPES + CPU_SHAPES + STUDY_SHAPES + (CPU_WIDE_VOCAB_SHAPE,)}
