"""The transformer at tiny sizes: shapes, causality, options, parameter counts, training."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from scaling.config import ModelConfig, resolve_model
from scaling.model.accounting import param_counts
from scaling.model.transformer import attention_impl, build_model, causal_attention, compute_dtype
from scaling.train.loss import lm_loss

VOCAB = 64
SEQ = 16


def tiny(**overrides) -> ModelConfig:
    base = dict(d_model=32, n_layers=2, n_heads=2)
    return resolve_model(ModelConfig(**{**base, **overrides}))


def n_params(model: nnx.Module) -> int:
    return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


@functools.partial(jax.jit, static_argnums=0)
def _apply(graphdef, params, tokens_BxT):
    return nnx.merge(graphdef, params)(tokens_BxT)


def forward(model: nnx.Module, tokens_BxT: jax.Array) -> jax.Array:
    """One compiled forward pass (much faster than op-by-op eager dispatch)."""
    return _apply(*nnx.split(model), tokens_BxT)


def tokens(seed: int = 0, batch: int = 2) -> jax.Array:
    return jax.random.randint(jax.random.key(seed), (batch, SEQ), 0, VOCAB)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_logits_shape_and_dtype(arch):
    model = build_model(tiny(arch=arch), VOCAB, SEQ, seed=0)
    logits_BxTxV = forward(model, tokens())
    assert logits_BxTxV.shape == (2, SEQ, VOCAB)
    assert logits_BxTxV.dtype == jnp.float32
    assert bool(jnp.isfinite(logits_BxTxV).all())
    # Shorter sequences than max_seq_len work; longer ones are refused.
    assert forward(model, tokens()[:, :5]).shape == (2, 5, VOCAB)
    with pytest.raises(ValueError, match="max_seq_len"):
        model(jnp.zeros((1, SEQ + 1), jnp.int32))


@pytest.mark.parametrize(
    "overrides",
    [
        dict(arch="gpt2"),
        dict(arch="gpt2", position="rope"),
        dict(arch="llama"),
        dict(arch="llama", position="learned", qk_norm=True),
        dict(arch="gpt2", qk_norm=True, remat=True),
    ],
    ids=["gpt2", "gpt2-rope", "llama", "llama-learned-qknorm", "gpt2-qknorm-remat"],
)
def test_future_tokens_never_change_earlier_logits(overrides):
    model = build_model(tiny(**overrides), VOCAB, SEQ, seed=1)
    x_BxT = tokens(seed=2)
    cut = 7
    changed_BxT = x_BxT.at[:, cut:].set((x_BxT[:, cut:] + 1) % VOCAB)
    before, after = forward(model, x_BxT), forward(model, changed_BxT)
    np.testing.assert_allclose(before[:, :cut], after[:, :cut], atol=1e-6, rtol=0)
    # ...while a changed past token does reach later positions (the check above has teeth).
    assert not np.allclose(before[:, cut:], after[:, cut:], atol=1e-4)


def test_positions_make_logits_depend_on_token_order():
    # Causal attention alone is permutation-invariant over the prefix: swapping two earlier
    # tokens leaves the last position's output unchanged unless positions are encoded.
    x_BxT = tokens(seed=4, batch=1)
    swapped_BxT = x_BxT.at[0, 0].set(x_BxT[0, 1]).at[0, 1].set(x_BxT[0, 0])
    assert int(x_BxT[0, 0]) != int(x_BxT[0, 1])
    for position in ("rope", "learned"):
        model = build_model(tiny(arch="llama", position=position), VOCAB, SEQ, seed=0)
        assert not np.allclose(
            forward(model, x_BxT)[0, -1], forward(model, swapped_BxT)[0, -1], atol=1e-5
        )


def _scale_query_kernel(model, factor: float) -> None:
    for block in model.blocks:
        kernel = block.attn.qkv.kernel
        d = kernel.shape[0]
        kernel[...] = kernel[...].at[:, :d].multiply(factor)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_qk_norm_makes_attention_invariant_to_query_scale(arch):
    x_BxT = tokens(seed=3)
    # Scaling the query kernel scales q exactly while the qkv bias is zero (as at init), and both
    # LayerNorm and RMSNorm on q undo a scale; without qk_norm the attention pattern sharpens.
    with_norm = build_model(tiny(arch=arch, qk_norm=True), VOCAB, SEQ, seed=0)
    before = forward(with_norm, x_BxT)
    _scale_query_kernel(with_norm, 10.0)
    np.testing.assert_allclose(forward(with_norm, x_BxT), before, atol=1e-4)

    without = build_model(tiny(arch=arch), VOCAB, SEQ, seed=0)
    before = forward(without, x_BxT)
    _scale_query_kernel(without, 10.0)
    assert not np.allclose(forward(without, x_BxT), before, atol=1e-4)


def test_lm_loss_is_cross_entropy_plus_z_loss():
    logits_BxTxV = jax.random.normal(jax.random.key(0), (2, 3, 5)) * 3.0
    targets_BxT = jnp.array([[0, 1, 2], [3, 4, 0]])
    loss, aux = lm_loss(logits_BxTxV, targets_BxT, z_loss=0.0)
    log_probs = jax.nn.log_softmax(logits_BxTxV)
    expected_ce = -np.mean(np.take_along_axis(np.asarray(log_probs), targets_BxT[..., None], -1))
    np.testing.assert_allclose(loss, expected_ce, rtol=1e-6)
    np.testing.assert_allclose(aux["ce"], expected_ce, rtol=1e-6)
    lse = jax.nn.logsumexp(logits_BxTxV, -1)
    np.testing.assert_allclose(aux["z"], np.mean(np.square(lse)), rtol=1e-6)

    with_z, aux_z = lm_loss(logits_BxTxV, targets_BxT, z_loss=1e-2)
    assert aux_z["z"] > 0
    assert with_z > loss
    np.testing.assert_allclose(with_z, loss + 1e-2 * aux_z["z"], rtol=1e-6)

    # A mask restricts the mean to the positions that count.
    mask_BxT = jnp.array([[1, 0, 0], [0, 0, 1]])
    masked, _ = lm_loss(logits_BxTxV, targets_BxT, 0.0, mask_BxT=mask_BxT)
    picked = np.asarray(log_probs)[[0, 1], [0, 2], [0, 0]]
    np.testing.assert_allclose(masked, -picked.mean(), rtol=1e-6)


COUNT_CASES = {
    "gpt2": dict(arch="gpt2"),
    "llama": dict(arch="llama"),
    "gpt2-untied": dict(arch="gpt2", tie_embeddings=False),
    "llama-tied": dict(arch="llama", tie_embeddings=True),
    "gpt2-no-bias": dict(arch="gpt2", bias=False),
    "llama-bias": dict(arch="llama", bias=True),
    "gpt2-qknorm-rope-swiglu": dict(arch="gpt2", qk_norm=True, position="rope", mlp="swiglu"),
    "llama-qknorm-layernorm-dff": dict(arch="llama", qk_norm=True, norm="layernorm", d_ff=48),
}


@pytest.mark.parametrize("overrides", COUNT_CASES.values(), ids=COUNT_CASES.keys())
def test_param_count_matches_accounting(overrides):
    cfg = tiny(**overrides)
    model = nnx.eval_shape(lambda: build_model(cfg, VOCAB, SEQ, seed=0))
    assert n_params(model) == param_counts(cfg, VOCAB, SEQ).total


def test_gpt2_124m_has_hugging_face_parameter_count():
    cfg = resolve_model(ModelConfig(arch="gpt2", d_model=768, n_layers=12, n_heads=12))
    model = nnx.eval_shape(lambda: build_model(cfg, 50257, 1024, seed=0))
    assert n_params(model) == 124_439_808 == param_counts(cfg, 50257, 1024).total


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_model_holds_only_params(arch):
    model = build_model(tiny(arch=arch, qk_norm=True), VOCAB, SEQ, seed=0)
    assert len(jax.tree.leaves(nnx.state(model, nnx.Not(nnx.Param)))) == 0
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(nnx.state(model)))


def test_residual_projections_use_scaled_init():
    # GPT-2: projections into the residual stream start at init_std / sqrt(2 * n_layers).
    cfg = tiny(arch="gpt2", d_model=256, n_heads=4, n_layers=1, init_std=0.02)
    block = build_model(cfg, VOCAB, SEQ, seed=0).blocks[0]
    np.testing.assert_allclose(np.std(block.attn.qkv.kernel[...]), 0.02, rtol=0.05)
    np.testing.assert_allclose(np.std(block.attn.out.kernel[...]), 0.02 / 2**0.5, rtol=0.05)
    np.testing.assert_allclose(np.std(block.mlp.down.kernel[...]), 0.02 / 2**0.5, rtol=0.05)
    np.testing.assert_allclose(np.std(block.mlp.up.kernel[...]), 0.02, rtol=0.05)


def test_remat_recomputes_blocks_without_changing_results():
    x_BxT = tokens(seed=5)
    outs = []
    for remat in (False, True):
        graphdef, params = nnx.split(build_model(tiny(remat=remat), VOCAB, SEQ, seed=0))
        jaxpr = jax.make_jaxpr(_apply.__wrapped__, static_argnums=0)(graphdef, params, x_BxT)
        assert ("remat" in str(jaxpr)) == remat
        outs.append(_apply(graphdef, params, x_BxT))
    np.testing.assert_allclose(outs[0], outs[1], atol=1e-6)


def test_dtype_and_attention_resolution():
    auto = tiny()
    assert jax.default_backend() == "cpu"  # the test machine; accelerators resolve to bf16
    assert compute_dtype(auto) == jnp.float32
    assert attention_impl(auto, compute_dtype(auto)) == "chunked"
    bf16 = dataclasses.replace(auto, compute_dtype="bfloat16")
    assert compute_dtype(bf16) == jnp.bfloat16
    assert attention_impl(bf16, jnp.bfloat16) == "chunked"  # cuDNN only on GPU
    assert attention_impl(dataclasses.replace(auto, attention="cudnn"), jnp.float32) == "cudnn"
    # bf16 compute keeps fp32 params and returns fp32 logits.
    model = build_model(dataclasses.replace(bf16, arch="llama"), VOCAB, SEQ, seed=0)
    logits_BxTxV = forward(model, tokens())
    assert logits_BxTxV.dtype == jnp.float32 and bool(jnp.isfinite(logits_BxTxV).all())
    assert model.embed.embedding[...].dtype == jnp.float32


@pytest.mark.parametrize("seq_len", [16, 6])  # 6: not a multiple of the chunk count
def test_chunked_attention_matches_jax_attention_and_its_gradients(seq_len):
    q, k, v = jax.random.normal(jax.random.key(0), (3, 2, seq_len, 3, 8))
    reference = functools.partial(jax.nn.dot_product_attention, is_causal=True)

    def total(attend, q, k, v):
        return jnp.sum(attend(q, k, v) * jnp.cos(jnp.arange(8.0))[None, None, None, :])

    np.testing.assert_allclose(causal_attention(q, k, v), reference(q, k, v), atol=1e-5)
    ours = jax.grad(functools.partial(total, causal_attention), argnums=(0, 1, 2))(q, k, v)
    theirs = jax.grad(functools.partial(total, reference), argnums=(0, 1, 2))(q, k, v)
    for g_ours, g_theirs in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(g_ours, g_theirs, atol=1e-5)


def test_attention_kernels_give_one_model():
    cfg = tiny(arch="llama", qk_norm=True)
    x_BxT = tokens()
    logits = [
        forward(build_model(dataclasses.replace(cfg, attention=impl), VOCAB, SEQ, seed=0), x_BxT)
        for impl in ("xla", "chunked")
    ]
    np.testing.assert_allclose(logits[0], logits[1], atol=1e-5)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_jit_of_merged_params_trains(arch):
    cfg = tiny(arch=arch, z_loss=1e-4, remat=arch == "llama")
    graphdef, params = nnx.split(build_model(cfg, VOCAB, SEQ, seed=0))
    optimizer = optax.adamw(1e-2, weight_decay=0.1)
    opt_state = optimizer.init(params)
    pattern = jnp.arange(SEQ + 1) % 5  # a short repeating pattern the model can learn fast
    batch_Bx_T1 = jnp.tile(pattern, (4, 1))
    inputs_BxT, targets_BxT = batch_Bx_T1[:, :-1], batch_Bx_T1[:, 1:]

    def loss_fn(params):
        logits = nnx.merge(graphdef, params)(inputs_BxT)
        return lm_loss(logits, targets_BxT, cfg.z_loss)[0]

    @jax.jit
    def step(params, opt_state):
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    losses = []
    for _ in range(10):
        params, opt_state, loss = step(params, opt_state)
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]
