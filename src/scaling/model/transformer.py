"""Decoder-only transformer in Flax NNX, GPT-2 or Llama style from one `ModelConfig`.

The model holds only `nnx.Param` state (no RNG streams, dropout or batch statistics), so the
training loop can `nnx.split` it once and run `nnx.merge(graphdef, params)(tokens)` inside a plain
`jax.jit`. Parameters live in `cfg.param_dtype`; activations are computed in `compute_dtype(cfg)`
and the logits come back in float32.

With the `gpt2` preset the parameter tree has exactly the shapes of Hugging Face's
`GPT2LMHeadModel` (fused qkv with bias, output projection with bias, 4d MLP with biases,
LayerNorms with bias, learned positions, tied head without bias), so the 124M shape has
124,439,808 parameters; `scaling.model.accounting.param_counts` mirrors this module analytically.
"""

from __future__ import annotations

import math
from typing import Any, Literal, cast

import jax
import jax.numpy as jnp
from flax import nnx

from scaling.config import ModelConfig, kv_heads, resolve_model


def compute_dtype(cfg: ModelConfig) -> jnp.dtype:
    """Activation dtype: bfloat16 on accelerators, float32 on CPU, unless set explicitly."""
    if cfg.compute_dtype == "auto":
        return jnp.dtype(jnp.bfloat16 if jax.default_backend() != "cpu" else jnp.float32)
    return jnp.dtype(cfg.compute_dtype)


def attention_impl(cfg: ModelConfig, dtype: jnp.dtype) -> str:
    """Attention kernel. "auto": cuDNN flash attention where it runs (a GPU and a 16-bit
    dtype), `causal_attention`'s query chunks on a CPU, `jax.nn`'s XLA one otherwise."""
    if cfg.attention != "auto":
        return cfg.attention
    half = jnp.dtype(dtype) in (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))
    backend = jax.default_backend()
    if backend == "cpu":
        return "chunked"
    return "cudnn" if backend == "gpu" and half else "xla"


_QUERY_CHUNKS = 4  # 4 skips 3/8 of the score matrix; more chunks make the GEMMs too small


def causal_attention(
    q_BxTxHxDh: jax.Array, k_BxTxHxDh: jax.Array, v_BxTxHxDh: jax.Array
) -> jax.Array:
    """Causal softmax attention computed per chunk of queries against only the keys it can
    see, so the masked upper triangle is mostly never computed. On a CPU this is about 5-9%
    faster per training step than the full masked matrix (results/perf/README.md)."""
    _, t, _, dh = q_BxTxHxDh.shape
    n_chunks = _QUERY_CHUNKS if t % _QUERY_CHUNKS == 0 else 1
    chunk = t // n_chunks
    # One transpose to heads-major up front, so every chunk's scores are plain batched GEMMs.
    q_BxHxTxDh, k_BxHxTxDh, v_BxHxTxDh = (
        x.transpose(0, 2, 1, 3) for x in (q_BxTxHxDh * dh**-0.5, k_BxTxHxDh, v_BxTxHxDh)
    )
    outs_BxHxCxDh = []
    for i in range(n_chunks):
        end = (i + 1) * chunk
        s_BxHxCxTk = jnp.einsum("bhqd,bhkd->bhqk", q_BxHxTxDh[:, :, i * chunk : end],
                                k_BxHxTxDh[:, :, :end])  # fmt: skip
        visible_CxTk = jnp.arange(i * chunk, end)[:, None] >= jnp.arange(end)[None, :]
        s_BxHxCxTk = jnp.where(visible_CxTk, s_BxHxCxTk.astype(jnp.float32), -jnp.inf)
        p_BxHxCxTk = jax.nn.softmax(s_BxHxCxTk, axis=-1).astype(v_BxHxTxDh.dtype)
        outs_BxHxCxDh.append(jnp.einsum("bhqk,bhkd->bhqd", p_BxHxCxTk, v_BxHxTxDh[:, :, :end]))
    return jnp.concatenate(outs_BxHxCxDh, axis=2).transpose(0, 2, 1, 3)


def _norm(cfg: ModelConfig, dim: int, dtype: jnp.dtype, rngs: nnx.Rngs) -> nnx.Module:
    param_dtype = jnp.dtype(cfg.param_dtype)
    if cfg.norm == "layernorm":
        assert cfg.bias is not None  # the model is built from a resolved config
        return nnx.LayerNorm(
            dim,
            epsilon=cfg.norm_eps,
            use_bias=cfg.bias,
            dtype=dtype,
            param_dtype=param_dtype,
            rngs=rngs,
        )
    return nnx.RMSNorm(dim, epsilon=cfg.norm_eps, dtype=dtype, param_dtype=param_dtype, rngs=rngs)


@jax.custom_vjp
def _dense(x_BxTxI: jax.Array, w_IxO: jax.Array) -> jax.Array:
    """x @ w over x's last axis, with a weight gradient XLA:CPU can hand to its fast GEMM."""
    return jax.lax.dot_general(x_BxTxI, w_IxO, (((x_BxTxI.ndim - 1,), (0,)), ((), ())))


def _dense_fwd(x_BxTxI: jax.Array, w_IxO: jax.Array) -> tuple[jax.Array, tuple]:
    return _dense(x_BxTxI, w_IxO), (x_BxTxI, w_IxO)


def _dense_bwd(res: tuple, dy_BxTxO: jax.Array) -> tuple[jax.Array, jax.Array]:
    x_BxTxI, w_IxO = res
    dx_BxTxI = jax.lax.dot_general(dy_BxTxO, w_IxO, (((dy_BxTxO.ndim - 1,), (1,)), ((), ())))
    # Left to itself XLA:CPU computes dW = xᵀ·dy by transposing dy and running a dot its
    # library GEMM does not take (about half the speed). Materialising the smaller of xᵀ and
    # dyᵀ (the barrier keeps XLA from folding it back into the dot) makes it a plain GEMM.
    # The same products, summed in another order: losses match to float32 rounding.
    x_BTxI = x_BxTxI.reshape(-1, x_BxTxI.shape[-1])
    dy_BTxO = dy_BxTxO.reshape(-1, dy_BxTxO.shape[-1])
    matmul = (((1,), (0,)), ((), ()))
    if x_BTxI.shape[1] <= dy_BTxO.shape[1]:
        dw_IxO = jax.lax.dot_general(jax.lax.optimization_barrier(x_BTxI.T), dy_BTxO, matmul)
    else:
        dw_IxO = jax.lax.dot_general(jax.lax.optimization_barrier(dy_BTxO.T), x_BTxI, matmul).T
    return dx_BxTxI, dw_IxO


_dense.defvjp(_dense_fwd, _dense_bwd)


def _linear_dot_general(
    lhs: jax.Array,
    rhs: jax.Array,
    dimension_numbers: Any,
    precision: Any = None,
    preferred_element_type: Any = None,
    out_sharding: Any = None,
) -> jax.Array:
    """`nnx.Linear`'s matmul: `_dense` on a CPU backend, `lax.dot_general` everywhere else
    (GPU and TPU GEMMs take transposed operands as they come)."""
    plain = (precision, preferred_element_type, out_sharding) == (None, None, None)
    matmul = dimension_numbers == (((lhs.ndim - 1,), (0,)), ((), ())) and rhs.ndim == 2
    if plain and matmul and jax.default_backend() == "cpu":
        return _dense(lhs, rhs)
    return jax.lax.dot_general(
        lhs,
        rhs,
        dimension_numbers,
        precision=precision,
        preferred_element_type=preferred_element_type,
        out_sharding=out_sharding,
    )


def _linear(
    cfg: ModelConfig, d_in: int, d_out: int, std: float, dtype: jnp.dtype, rngs: nnx.Rngs
) -> nnx.Linear:
    assert cfg.bias is not None  # the model is built from a resolved config
    return nnx.Linear(
        d_in,
        d_out,
        use_bias=cfg.bias,
        dtype=dtype,
        param_dtype=jnp.dtype(cfg.param_dtype),
        kernel_init=nnx.initializers.normal(std),
        dot_general=_linear_dot_general,
        rngs=rngs,
    )


def _rope(x_BxTxHxDh: jax.Array, theta: float) -> jax.Array:
    """Rotary positions (Su et al. 2021), half-split layout as in GPT-NeoX and HF Llama.

    The angles are computed in float32: bf16 positions lose integer precision past 256.
    """
    _, t, _, dh = x_BxTxHxDh.shape
    inv_freq_R = theta ** (-jnp.arange(0, dh, 2, dtype=jnp.float32) / dh)
    angle_TxR = jnp.arange(t, dtype=jnp.float32)[:, None] * inv_freq_R[None, :]
    cos_1xTx1xR = jnp.cos(angle_TxR)[None, :, None, :]
    sin_1xTx1xR = jnp.sin(angle_TxR)[None, :, None, :]
    x1_BxTxHxR, x2_BxTxHxR = jnp.split(x_BxTxHxDh.astype(jnp.float32), 2, axis=-1)
    rotated_BxTxHxDh = jnp.concatenate(
        [
            x1_BxTxHxR * cos_1xTx1xR - x2_BxTxHxR * sin_1xTx1xR,
            x2_BxTxHxR * cos_1xTx1xR + x1_BxTxHxR * sin_1xTx1xR,
        ],
        axis=-1,
    )
    return rotated_BxTxHxDh.astype(x_BxTxHxDh.dtype)


class Attention(nnx.Module):
    """Causal self-attention with a fused qkv projection (as GPT-2's c_attn): H query heads and
    Hkv key/value heads (grouped-query attention, Ainslie et al. 2023, where Hkv < H: each kv
    head serves H/Hkv consecutive query heads, as in HF Llama's repeat_kv)."""

    def __init__(self, cfg: ModelConfig, dtype: jnp.dtype, *, rngs: nnx.Rngs):
        d = cfg.d_model
        self.n_heads = cfg.n_heads
        self.n_kv_heads = kv_heads(cfg)
        self.head_dim = d // cfg.n_heads
        self.rope_theta = cfg.rope_theta if cfg.position == "rope" else None
        self.impl = attention_impl(cfg, dtype)
        qkv_dim = (self.n_heads + 2 * self.n_kv_heads) * self.head_dim
        self.qkv = _linear(cfg, d, qkv_dim, cfg.init_std, dtype, rngs)
        # GPT-2 residual scaling: each block adds two projections to the residual stream.
        out_std = cfg.init_std / math.sqrt(2 * cfg.n_layers)
        self.out = _linear(cfg, d, d, out_std, dtype, rngs)
        self.q_norm: nnx.Module | None
        self.k_norm: nnx.Module | None
        if cfg.qk_norm:
            self.q_norm = _norm(cfg, self.head_dim, dtype, rngs)
            self.k_norm = _norm(cfg, self.head_dim, dtype, rngs)
        else:
            self.q_norm = self.k_norm = None

    def __call__(self, x_BxTxD: jax.Array) -> jax.Array:
        b, t, d = x_BxTxD.shape
        h, hkv, dh = self.n_heads, self.n_kv_heads, self.head_dim
        qkv_BxTxDqkv = self.qkv(x_BxTxD)
        q_BxTxHxDh = qkv_BxTxDqkv[..., : h * dh].reshape(b, t, h, dh)
        k_BxTxHkvxDh = qkv_BxTxDqkv[..., h * dh : (h + hkv) * dh].reshape(b, t, hkv, dh)
        v_BxTxHkvxDh = qkv_BxTxDqkv[..., (h + hkv) * dh :].reshape(b, t, hkv, dh)
        if hkv != h:  # each kv head serves h/hkv consecutive query heads
            k_BxTxHxDh, v_BxTxHxDh = (
                jnp.repeat(x, h // hkv, axis=2) for x in (k_BxTxHkvxDh, v_BxTxHkvxDh)
            )
        else:
            k_BxTxHxDh, v_BxTxHxDh = k_BxTxHkvxDh, v_BxTxHkvxDh
        if self.q_norm is not None and self.k_norm is not None:  # both or neither
            q_BxTxHxDh = self.q_norm(q_BxTxHxDh)
            k_BxTxHxDh = self.k_norm(k_BxTxHxDh)
        if self.rope_theta is not None:
            q_BxTxHxDh = _rope(q_BxTxHxDh, self.rope_theta)
            k_BxTxHxDh = _rope(k_BxTxHxDh, self.rope_theta)
        dtype = v_BxTxHxDh.dtype  # norms may return float32; the kernels want one dtype
        q_BxTxHxDh, k_BxTxHxDh = q_BxTxHxDh.astype(dtype), k_BxTxHxDh.astype(dtype)
        if self.impl == "chunked":
            out_BxTxHxDh = causal_attention(q_BxTxHxDh, k_BxTxHxDh, v_BxTxHxDh)
        else:
            out_BxTxHxDh = jax.nn.dot_product_attention(
                q_BxTxHxDh,
                k_BxTxHxDh,
                v_BxTxHxDh,
                is_causal=True,
                implementation=cast(Literal["xla", "cudnn"], self.impl),  # not "chunked" here
            )
        return self.out(out_BxTxHxDh.reshape(b, t, d))


class Mlp(nnx.Module):
    """GELU MLP (2 matrices, GPT-2) or SwiGLU (3 matrices, Shazeer 2020 / Llama)."""

    def __init__(self, cfg: ModelConfig, dtype: jnp.dtype, *, rngs: nnx.Rngs):
        d, f = cfg.d_model, cfg.d_ff
        assert f is not None  # the model is built from a resolved config
        out_std = cfg.init_std / math.sqrt(2 * cfg.n_layers)
        self.swiglu = cfg.mlp == "swiglu"
        self.up = _linear(cfg, d, f, cfg.init_std, dtype, rngs)
        self.gate = _linear(cfg, d, f, cfg.init_std, dtype, rngs) if self.swiglu else None
        self.down = _linear(cfg, f, d, out_std, dtype, rngs)

    def __call__(self, x_BxTxD: jax.Array) -> jax.Array:
        if self.gate is not None:  # SwiGLU
            h_BxTxF = jax.nn.silu(self.gate(x_BxTxD)) * self.up(x_BxTxD)
        else:
            h_BxTxF = jax.nn.gelu(self.up(x_BxTxD), approximate=True)  # GPT-2's gelu_new
        return self.down(h_BxTxF)


class Block(nnx.Module):
    """Pre-norm residual block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, cfg: ModelConfig, dtype: jnp.dtype, *, rngs: nnx.Rngs):
        self.attn_norm = _norm(cfg, cfg.d_model, dtype, rngs)
        self.attn = Attention(cfg, dtype, rngs=rngs)
        self.mlp_norm = _norm(cfg, cfg.d_model, dtype, rngs)
        self.mlp = Mlp(cfg, dtype, rngs=rngs)

    def __call__(self, x_BxTxD: jax.Array) -> jax.Array:
        x_BxTxD = x_BxTxD + self.attn(self.attn_norm(x_BxTxD)).astype(x_BxTxD.dtype)
        return x_BxTxD + self.mlp(self.mlp_norm(x_BxTxD)).astype(x_BxTxD.dtype)


def _run_block(block: Block, x_BxTxD: jax.Array) -> jax.Array:
    return block(x_BxTxD)


# Rematerialised variant: activations inside a block are recomputed in the backward pass.
_run_block_remat = nnx.remat(_run_block)


class Transformer(nnx.Module):
    """Token embedding (+ learned positions), pre-norm blocks, final norm, LM head."""

    def __init__(self, cfg: ModelConfig, vocab_size: int, max_seq_len: int, *, rngs: nnx.Rngs):
        self.dtype = compute_dtype(cfg)
        self.remat = cfg.remat
        self.loss_chunk_tokens = cfg.loss_chunk_tokens  # read by the training loss (train.step)
        self.max_seq_len = max_seq_len
        param_dtype = jnp.dtype(cfg.param_dtype)

        def embed(n_rows: int) -> nnx.Embed:
            init = nnx.initializers.normal(cfg.init_std)
            return nnx.Embed(
                n_rows,
                cfg.d_model,
                dtype=self.dtype,
                param_dtype=param_dtype,
                embedding_init=init,
                rngs=rngs,
            )

        self.embed = embed(vocab_size)
        self.pos_embed = embed(max_seq_len) if cfg.position == "learned" else None
        self.blocks = nnx.List([Block(cfg, self.dtype, rngs=rngs) for _ in range(cfg.n_layers)])
        self.final_norm = _norm(cfg, cfg.d_model, self.dtype, rngs)
        if cfg.tie_embeddings:
            self.head = None
        else:
            self.head = nnx.Linear(
                cfg.d_model,
                vocab_size,
                use_bias=False,  # never a head bias, in either preset
                dtype=self.dtype,
                param_dtype=param_dtype,
                kernel_init=nnx.initializers.normal(cfg.init_std),
                rngs=rngs,
            )

    def __call__(self, tokens_BxT: jax.Array) -> jax.Array:
        """float32 logits (B, T, V)."""
        x_BxTxD = self.features(tokens_BxT)
        # The head matmul runs in the compute dtype but accumulates and returns float32,
        # so the softmax and loss see full-precision logits.
        if self.head is None:
            w_VxD = self.unembedding()
            return jnp.einsum("btd,vd->btv", x_BxTxD, w_VxD, preferred_element_type=jnp.float32)
        w_DxV = self.head.kernel[...].astype(self.dtype)
        return jnp.einsum("btd,dv->btv", x_BxTxD, w_DxV, preferred_element_type=jnp.float32)

    def features(self, tokens_BxT: jax.Array) -> jax.Array:
        """The final-normed hidden states (B, T, D) in the compute dtype: what the head reads."""
        t = tokens_BxT.shape[1]
        if t > self.max_seq_len:
            raise ValueError(f"sequence length {t} exceeds max_seq_len={self.max_seq_len}")
        x_BxTxD = self.embed(tokens_BxT)
        if self.pos_embed is not None:
            x_BxTxD = x_BxTxD + self.pos_embed(jnp.arange(t))[None]
        run = _run_block_remat if self.remat else _run_block
        for block in self.blocks:
            x_BxTxD = run(block, x_BxTxD)
        return self.final_norm(x_BxTxD).astype(self.dtype)

    def unembedding(self) -> jax.Array:
        """The LM head as (V, D) in the compute dtype (the tied embedding, or the head's kernel
        transposed): logits are `features @ unembedding()ᵀ`."""
        if self.head is None:
            return self.embed.embedding[...].astype(self.dtype)
        return self.head.kernel[...].astype(self.dtype).T


def build_model(cfg: ModelConfig, vocab_size: int, max_seq_len: int, seed: int) -> Transformer:
    """A freshly initialised model; `cfg` is resolved here too (resolving is idempotent).
    `cfg.max_positions`, where set (an imported model's position table), wins over
    `max_seq_len` (the run's sequence length)."""
    positions = cfg.max_positions or max_seq_len
    return Transformer(resolve_model(cfg), vocab_size, positions, rngs=nnx.Rngs(seed))
