"""The fused, chunked LM loss against the loss of the whole batch's logits."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scaling import records
from scaling.config import ConfigError, run_dir_of, validate
from scaling.train.loss import fused_lm_loss, lm_loss
from scaling.train.pretrain import pretrain

B, T, D, V = 3, 10, 16, 50  # 30 tokens: chunks of 8 leave a padded last chunk


def _inputs(seed: int = 0):
    kx, kw, kt, km = jax.random.split(jax.random.key(seed), 4)
    x_BxTxD = jax.random.normal(kx, (B, T, D))
    w_VxD = jax.random.normal(kw, (V, D)) * 0.5
    targets_BxT = jax.random.randint(kt, (B, T), 0, V)
    mask_BxT = jax.random.bernoulli(km, 0.6, (B, T))
    return x_BxTxD, w_VxD, targets_BxT, mask_BxT


@pytest.mark.parametrize("chunk", [8, 30, 1000])
@pytest.mark.parametrize("masked", [False, True])
def test_fused_loss_and_gradients_equal_the_unfused(chunk, masked):
    x_BxTxD, w_VxD, targets_BxT, mask_BxT = _inputs()
    mask_BxT = mask_BxT if masked else None
    z_loss = 1e-2

    def unfused(x, w):
        logits_BxTxV = jnp.einsum("btd,vd->btv", x, w)
        return lm_loss(logits_BxTxV, targets_BxT, z_loss, mask_BxT)

    def fused(x, w):
        return fused_lm_loss(x, w, targets_BxT, z_loss, chunk, mask_BxT)

    (want, want_aux), want_grads = jax.value_and_grad(unfused, (0, 1), has_aux=True)(x_BxTxD, w_VxD)
    (got, got_aux), got_grads = jax.jit(jax.value_and_grad(fused, (0, 1), has_aux=True))(
        x_BxTxD, w_VxD
    )
    np.testing.assert_allclose(got, want, rtol=1e-5)
    for key in ("ce", "z"):
        np.testing.assert_allclose(got_aux[key], want_aux[key], rtol=1e-5)
    for g, w in zip(got_grads, want_grads, strict=True):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6)
    # Undifferentiated, the forward alone gives the same loss.
    np.testing.assert_allclose(jax.jit(fused)(x_BxTxD, w_VxD)[0], want, rtol=1e-5)


def test_fused_loss_scales_with_its_cotangent_and_under_vmap():
    """Gradients of 3·loss are 3x (the backward pass scales what the forward computed), and a
    vmap over stacked inputs (scaling.train.loop) gives each slice its own gradient."""
    x_BxTxD, w_VxD, targets_BxT, _ = _inputs()

    def loss(x, w):
        return fused_lm_loss(x, w, targets_BxT, 0.0, 8)[0]

    g1 = jax.grad(loss)(x_BxTxD, w_VxD)
    g3 = jax.grad(lambda x, w: 3.0 * loss(x, w))(x_BxTxD, w_VxD)
    np.testing.assert_allclose(g3, 3.0 * g1, rtol=1e-5)
    x2_KxBxTxD = jnp.stack([x_BxTxD, 2.0 * x_BxTxD])
    g_KxBxTxD = jax.vmap(jax.grad(loss), (0, None))(x2_KxBxTxD, w_VxD)
    np.testing.assert_allclose(g_KxBxTxD[0], g1, rtol=1e-5)
    np.testing.assert_allclose(g_KxBxTxD[1], jax.grad(loss)(2.0 * x_BxTxD, w_VxD), rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("tie", ["true", "false"])
def test_training_with_the_fused_loss_logs_the_same_losses(tiny_config, tie):
    """model.loss_chunk_tokens trains the same run: every logged loss and the val loss equal
    those of the whole batch's logits to float32 rounding (tied head and untied)."""
    overrides = (f"model.tie_embeddings={tie}", "model.z_loss=1e-4")
    runs = {
        name: pretrain(tiny_config(f"run_name={name}", *overrides, f"model.loss_chunk_tokens={n}"))
        for name, n in (("whole", 0), ("fused", 48))  # 4 x 32 tokens: 3 chunks, the last padded
    }
    losses = [
        [r["train_loss"] for r in records.read_metrics(run_dir_of(tiny_config(f"run_name={n}")))]
        for n in runs
    ]
    assert len(losses[0]) == 6
    np.testing.assert_allclose(*losses, rtol=2e-5)
    assert runs["fused"]["final_val_loss"] == pytest.approx(
        runs["whole"]["final_val_loss"], rel=2e-5
    )


def test_a_negative_chunk_is_refused_by_name(tiny_config):
    with pytest.raises(ConfigError, match="model.loss_chunk_tokens=-1"):
        validate(tiny_config("model.loss_chunk_tokens=-1"))
