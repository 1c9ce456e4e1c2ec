"""The language-model loss: from logits (`lm_loss`), or fused with the LM head (`fused_lm_loss`).

`fused_lm_loss` takes the final hidden states and the unembedding instead of the logits and
works through the tokens in chunks, so the (tokens x vocab) float32 logits are never held at
once: with GPT-2's 50k vocabulary a 32 x 1024 batch has 6.6 GB of them, and their gradient as
much again. Its forward pass also computes the gradient (the loss is the end of the graph, so
the only thing the backward pass adds is the scalar cotangent): no chunk is computed twice,
and the head costs the same three matmuls as unfused. Losses and gradients equal `lm_loss`'s
to float rounding (tests/test_loss.py).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def lm_loss(
    logits_BxTxV: jax.Array,
    targets_BxT: jax.Array,
    z_loss: float,
    mask_BxT: jax.Array | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Mean next-token cross-entropy plus `z_loss * mean(logsumexp^2)` (PaLM's z-loss).

    `targets_BxT` are already shifted (targets[t] is the token after tokens[t]). An optional
    `mask_BxT` (1 where a position counts) restricts the means, e.g. to answer tokens when
    fine-tuning. Returns (loss, {"ce": ..., "z": ...}), all float32 scalars.
    """
    logits_BxTxV = logits_BxTxV.astype(jnp.float32)
    lse_BxT = jax.nn.logsumexp(logits_BxTxV, axis=-1)
    target_logit_BxT = jnp.take_along_axis(logits_BxTxV, targets_BxT[..., None], axis=-1)[..., 0]
    ce_BxT = lse_BxT - target_logit_BxT
    z_BxT = jnp.square(lse_BxT)
    if mask_BxT is None:
        ce, z = ce_BxT.mean(), z_BxT.mean()
    else:
        weight_BxT = mask_BxT.astype(jnp.float32)
        denom = jnp.maximum(weight_BxT.sum(), 1.0)
        ce, z = (ce_BxT * weight_BxT).sum() / denom, (z_BxT * weight_BxT).sum() / denom
    return ce + z_loss * z, {"ce": ce, "z": z}


def fused_lm_loss(
    x_BxTxD: jax.Array,
    w_VxD: jax.Array,
    targets_BxT: jax.Array,
    z_loss: float,
    chunk_tokens: int,
    mask_BxT: jax.Array | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """`lm_loss` of the logits `x_BxTxD @ w_VxDᵀ` (accumulated in float32), `chunk_tokens`
    tokens at a time. `x_BxTxD` and `w_VxD` share the compute dtype. "ce" and "z" are reported,
    not differentiated (as `has_aux` treats them): only the loss carries a gradient.
    """
    b, t, d = x_BxTxD.shape
    n = b * t
    chunk = min(chunk_tokens, n)
    pad = -n % chunk  # padded tokens have weight 0: they count in neither sum nor mean
    weight_BT = jnp.ones((n,), jnp.float32) if mask_BxT is None else mask_BxT.reshape(n)
    weight_BT = weight_BT.astype(jnp.float32)
    denom = jnp.maximum(weight_BT.sum(), 1.0)
    x_GxCxD, target_GxC, weight_GxC = (
        jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1)).reshape(-1, chunk, *a.shape[1:])
        for a in (x_BxTxD.reshape(n, d), targets_BxT.reshape(n), weight_BT / denom)
    )
    loss, ce, z = _chunked_loss(z_loss, x_GxCxD, w_VxD, target_GxC, weight_GxC)
    return loss, {"ce": jax.lax.stop_gradient(ce), "z": jax.lax.stop_gradient(z)}


def _chunk_stats(
    x_CxD: jax.Array, w_VxD: jax.Array, target_C: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One chunk's float32 logits, their logsumexp and each token's cross-entropy."""
    logits_CxV = jnp.einsum("cd,vd->cv", x_CxD, w_VxD, preferred_element_type=jnp.float32)
    lse_C = jax.nn.logsumexp(logits_CxV, axis=-1)
    target_logit_C = jnp.take_along_axis(logits_CxV, target_C[:, None], axis=-1)[:, 0]
    return logits_CxV, lse_C, lse_C - target_logit_C


def _sums(z_loss: float, lse_C: jax.Array, ce_C: jax.Array, weight_C: jax.Array) -> jax.Array:
    """This chunk's (loss, ce, z) contributions: weights already carry the 1/denominator."""
    ce, z = (ce_C * weight_C).sum(), (jnp.square(lse_C) * weight_C).sum()
    return jnp.stack([ce + z_loss * z, ce, z])


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _chunked_loss(
    z_loss: float,
    x_GxCxD: jax.Array,
    w_VxD: jax.Array,
    target_GxC: jax.Array,
    weight_GxC: jax.Array,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(loss, ce, z) summed over chunks; without differentiation, the forward pass alone."""

    def body(total: jax.Array, chunk: tuple) -> tuple[jax.Array, None]:
        x_CxD, target_C, weight_C = chunk
        _, lse_C, ce_C = _chunk_stats(x_CxD, w_VxD, target_C)
        return total + _sums(z_loss, lse_C, ce_C, weight_C), None

    total, _ = jax.lax.scan(body, jnp.zeros(3, jnp.float32), (x_GxCxD, target_GxC, weight_GxC))
    return total[0], total[1], total[2]


def _chunked_loss_fwd(
    z_loss: float,
    x_GxCxD: jax.Array,
    w_VxD: jax.Array,
    target_GxC: jax.Array,
    weight_GxC: jax.Array,
) -> tuple[tuple, tuple]:
    """The sums and, chunk by chunk, the loss's gradient in x and w (for a cotangent of 1)."""

    def body(carry: tuple, chunk: tuple) -> tuple[tuple, jax.Array]:
        total, dw_VxD = carry
        x_CxD, target_C, weight_C = chunk
        logits_CxV, lse_C, ce_C = _chunk_stats(x_CxD, w_VxD, target_C)
        # d(loss)/d(logits): softmax · weight · (1 + 2·z_loss·lse), minus weight at the target.
        p_CxV = jnp.exp(logits_CxV - lse_C[:, None])
        is_target_CxV = jnp.arange(logits_CxV.shape[1])[None, :] == target_C[:, None]
        scale_C = weight_C * (1.0 + 2.0 * z_loss * lse_C)
        dlogits_CxV = p_CxV * scale_C[:, None] - jnp.where(is_target_CxV, weight_C[:, None], 0.0)
        dlogits_CxV = dlogits_CxV.astype(x_CxD.dtype)  # the head's matmuls in the compute dtype
        dx_CxD = jnp.einsum("cv,vd->cd", dlogits_CxV, w_VxD)
        dw_VxD = dw_VxD + jnp.einsum(
            "cv,cd->vd", dlogits_CxV, x_CxD, preferred_element_type=jnp.float32
        )
        return (total + _sums(z_loss, lse_C, ce_C, weight_C), dw_VxD), dx_CxD

    init = (jnp.zeros(3, jnp.float32), jnp.zeros(w_VxD.shape, jnp.float32))
    (total, dw_VxD), dx_GxCxD = jax.lax.scan(body, init, (x_GxCxD, target_GxC, weight_GxC))
    residuals = (dx_GxCxD, dw_VxD.astype(w_VxD.dtype), target_GxC, weight_GxC)
    return (total[0], total[1], total[2]), residuals


def _chunked_loss_bwd(z_loss: float, residuals: tuple, cotangents: tuple) -> tuple:
    dx_GxCxD, dw_VxD, target_GxC, weight_GxC = residuals
    g_loss = cotangents[0]  # ce and z leave through stop_gradient: their cotangents are 0
    return (
        (g_loss * dx_GxCxD).astype(dx_GxCxD.dtype),
        (g_loss * dw_VxD).astype(dw_VxD.dtype),
        None,  # integer targets
        jnp.zeros_like(weight_GxC),  # the mask is data, not a parameter
    )


_chunked_loss.defvjp(_chunked_loss_fwd, _chunked_loss_bwd)
