"""Parameter counts, FLOPs per token, device peaks and MFU, in named conventions.

Pure Python (no JAX), so the analysis side can count without a model. Every number names the
convention it follows:

Parameters (`param_counts`):
  - `total`: every parameter of `scaling.model.transformer.Transformer` (tested equal to the real
  model).
  - `nonembedding` (Kaplan et al. 2020): the blocks' weight matrices only, attention
    2·d² + 2·d·d_kv (q and out; k and v, d_kv = d but under grouped-query attention) and MLP
    2·d·d_ff (GELU) or 3·d·d_ff (SwiGLU), per layer; biases, norm gains, embeddings and head
    excluded ("excluding biases and other sub-leading terms").
  - `with_head` (Porian et al. 2024): nonembedding + d·vocab for the output head, counted even
    when the head is tied to the embedding, since its matmul is done either way.

FLOPs per token (`flops_per_token`), training (forward + backward):
  - `FLOPS_6N`: 6·nonembedding (Kaplan et al. 2020).
  - `FLOPS_6N_ATTN`: 6·with_head + 12·L·d·T (PaLM, Chowdhery et al. 2022, appendix B); MFU uses
    this one.
  - `FLOPS_CHINCHILLA`: Hoffmann et al. 2022 appendix F, every matmul of the forward pass
    (embedding, qkv, attention logits, softmax, attention over values, output projection,
    dense, final logits) times 3 for forward + backward, divided by T.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from scaling.config import ModelConfig, kv_heads, resolve_model

FLOPS_6N = "6N"
FLOPS_6N_ATTN = "6N+attn"
FLOPS_CHINCHILLA = "chinchilla"
FLOPS_CONVENTIONS = (FLOPS_6N, FLOPS_6N_ATTN, FLOPS_CHINCHILLA)


@dataclass(frozen=True)
class ParamCounts:
    total: int
    nonembedding: int
    with_head: int


def _norm_params(cfg: ModelConfig, dim: int) -> int:
    # LayerNorm has a gain and (iff bias) a shift; RMSNorm only a gain.
    return 2 * dim if cfg.norm == "layernorm" and cfg.bias else dim


def _mlp_mats(cfg: ModelConfig) -> int:
    return 3 if cfg.mlp == "swiglu" else 2


def param_counts(cfg: ModelConfig, vocab_size: int, max_seq_len: int) -> ParamCounts:
    """Parameter counts of the model `cfg` builds (resolved here; resolving is idempotent)."""
    m = resolve_model(cfg)
    assert m.d_ff is not None  # resolve_model always sets it
    d, f, n_layers = m.d_model, m.d_ff, m.n_layers
    head_dim = d // m.n_heads
    kv_dim = kv_heads(m) * head_dim  # d, unless grouped-query attention shares kv heads
    bias = 1 if m.bias else 0

    attn_w = 2 * d * d + 2 * d * kv_dim  # q and out, k and v
    mlp_w = _mlp_mats(m) * d * f
    block_total = (
        attn_w
        + bias * (2 * d + 2 * kv_dim)  # qkv (d + 2 kv_dim) and output (d) biases
        + mlp_w
        + bias * ((_mlp_mats(m) - 1) * f + d)  # up (and gate) biases, down bias
        + 2 * _norm_params(m, d)
        + (2 * _norm_params(m, head_dim) if m.qk_norm else 0)
    )
    positions = m.max_positions or max_seq_len
    embed = vocab_size * d + (positions * d if m.position == "learned" else 0)
    head = 0 if m.tie_embeddings else d * vocab_size
    total = embed + n_layers * block_total + _norm_params(m, d) + head

    nonembedding = n_layers * (attn_w + mlp_w)
    return ParamCounts(
        total=total, nonembedding=nonembedding, with_head=nonembedding + d * vocab_size
    )


def flops_per_token(cfg: ModelConfig, vocab_size: int, seq_len: int) -> dict[str, float]:
    """Training FLOPs per token in each convention, keyed by `FLOPS_CONVENTIONS`."""
    m = resolve_model(cfg)
    assert m.d_ff is not None  # resolve_model always sets it
    d, f, n_layers, n_heads, t, v = m.d_model, m.d_ff, m.n_layers, m.n_heads, seq_len, vocab_size
    counts = param_counts(m, vocab_size, seq_len)
    attn_dim = d  # H·dh: n_heads * head_dim == d_model here
    kv_dim = kv_heads(m) * (d // n_heads)

    per_layer = (
        2 * t * d * (attn_dim + 2 * kv_dim)  # qkv projections
        + 2 * t * t * attn_dim  # attention logits q·kᵀ
        + 3 * n_heads * t * t  # softmax
        + 2 * t * t * attn_dim  # softmax @ values
        + 2 * t * attn_dim * d  # output projection
        + 2 * t * _mlp_mats(m) * d * f  # dense
    )
    forward = 2 * t * v * d + n_layers * per_layer + 2 * t * d * v  # embeddings, blocks, logits
    return {
        FLOPS_6N: 6.0 * counts.nonembedding,
        FLOPS_6N_ATTN: 6.0 * counts.with_head + 12.0 * n_layers * d * t,
        FLOPS_CHINCHILLA: 3.0 * forward / t,
    }


def activation_bytes_per_token(
    cfg: ModelConfig, vocab_size: int, seq_len: int, dtype_bytes: int = 4
) -> int:
    """A rough count of the activations a training step keeps per token for its backward pass.

    Per layer: the residual stream, two norm outputs, q, k, v and the attention output (7·d),
    the MLP's hidden activations before and after the nonlinearity (2·d_ff, 3·d_ff for SwiGLU)
    and a row of attention probabilities per head (n_heads·T); then the logits and their
    gradient (2·V), unless the loss is fused with the head (`loss_chunk_tokens`: a buffer of
    one chunk's logits, whatever the batch). An estimate for choosing microbatches
    (scaling.train.optim.microbatches), not a memory bound.
    """
    m = resolve_model(cfg)
    assert m.d_ff is not None  # resolve_model always sets it
    per_layer = 7 * m.d_model + _mlp_mats(m) * m.d_ff + m.n_heads * seq_len
    logits = 0 if m.loss_chunk_tokens else 2 * vocab_size
    return dtype_bytes * (m.n_layers * per_layer + logits)


# Dense (non-sparse) bf16 tensor-core peaks in FLOP/s per jax device, from vendor spec sheets
# (NVIDIA lists "with sparsity" figures: these are half of those).
DEVICE_PEAK_FLOPS: dict[str, float] = {
    "H100 SXM": 989.4e12,
    "H100 PCIe": 756e12,
    "H200": 989.4e12,  # same GH100 compute as H100 SXM, more HBM
    "GH200": 989.4e12,
    "A100": 312e12,  # 40GB and 80GB, SXM4 and PCIe alike
    "A10G": 70e12,  # AWS variant of the A10 (A10 itself: 125e12)
    "A10": 125e12,
    "L4": 121e12,
    # V100 has no bf16; these are its fp16 tensor-core peaks, the closest mixed-precision figure.
    "V100 SXM2": 125e12,
    "V100 PCIe": 112e12,
    "V100S PCIe": 130e12,
    # TPUs: per chip, which is one jax device from v4 on (megacore / single TensorCore).
    "TPU v4": 275e12,
    "TPU v5e": 197e12,
    "TPU v5p": 459e12,
    "TPU v6e": 918e12,
}

# jax `device_kind` patterns -> DEVICE_PEAK_FLOPS key; first match wins, so the specific
# variants come before the families they belong to. Unlisted variants (H100 NVL, H200 NVL,
# TPU v4 lite, ...) have other peaks and deliberately match nothing.
_DEVICE_PATTERNS: tuple[tuple[str, str | None], ...] = (
    (r"\bh100\b.*\bnvl\b", None),
    (r"\bh100\b.*\bpcie\b", "H100 PCIe"),
    (r"\bh100\b.*\b(sxm\w*|hbm3)\b", "H100 SXM"),
    (r"\bgh200\b", "GH200"),
    (r"\bh200\b.*\bnvl\b", None),
    (r"\bh200\b", "H200"),
    (r"\ba100\b", "A100"),
    (r"\ba10g\b", "A10G"),
    (r"\ba10\b", "A10"),
    (r"\bl4\b", "L4"),
    (r"\bv100s\b.*\bpcie\b", "V100S PCIe"),
    (r"\bv100\b.*\bsxm\w*", "V100 SXM2"),
    (r"\bv100\b.*\bpcie\b", "V100 PCIe"),
    (r"^tpu v4$", "TPU v4"),
    (r"^tpu v5 ?(lite|e)$", "TPU v5e"),
    (r"^tpu v5p?$", "TPU v5p"),
    (r"^tpu v6 ?(lite|e)$", "TPU v6e"),
)


def device_peak_flops(device_kind: str) -> float | None:
    """Peak bf16 FLOP/s for a jax `device.device_kind` string; None when unknown (never a guess).

    E.g. "NVIDIA H100 80GB HBM3" (SXM), "NVIDIA H100 PCIe", "NVIDIA A100-SXM4-80GB", "TPU v4",
    "TPU v5 lite" (v5e), "TPU v5" (v5p); "cpu" -> None.
    """
    kind = re.sub(r"[-_]", " ", device_kind.strip().lower())
    for pattern, key in _DEVICE_PATTERNS:
        if re.search(pattern, kind):
            return None if key is None else DEVICE_PEAK_FLOPS[key]
    return None


def mfu(tokens_per_s: float, flops_per_token: float, peak: float | None) -> float | None:
    """Model FLOPs utilisation as a fraction (0.349, not 34.9); None when the peak is unknown."""
    if peak is None or peak <= 0:
        return None
    return tokens_per_s * flops_per_token / peak
