"""The PyTorch peer: Hugging Face transformers' GPT-2, trained the way a strong baseline is.

SDPA attention, `torch.compile` (or eager), bf16 autocast and fused AdamW on a GPU, float32 on
a CPU; the same AdamW settings, weight-decay mask (matrices only) and gradient clipping as our
step, no dropout (ours has none). torch and transformers are the optional `bench` extra, so
they are imported only when a peer is built.
"""

from __future__ import annotations

import os
import time
from typing import Any

from scaling.bench.ours import N_BATCHES, random_batches
from scaling.bench.shapes import Shape
from scaling.config import TrainConfig


class PeerStep:
    """One shape's GPT2LMHeadModel, optimizer and step; `run(n)` times n steps."""

    def __init__(
        self, shape: Shape, device: str, compiled: bool, grad_accum: int = 1, seed: int = 0
    ) -> None:
        import torch
        import torch.nn.functional as F
        from transformers import GPT2Config, GPT2LMHeadModel

        torch.set_num_threads(len(os.sched_getaffinity(0)))
        torch.manual_seed(seed)
        self.torch, self.shape, self.device = torch, shape, torch.device(device)
        self.grad_accum = grad_accum  # micro-batches per step, gradients summed as ours
        self.name = "peer_compiled" if compiled else "peer_eager"
        cuda = self.device.type == "cuda"
        config = GPT2Config(
            vocab_size=shape.vocab_size,
            n_positions=shape.seq_len,
            n_embd=shape.d_model,
            n_layer=shape.n_layers,
            n_head=shape.n_heads,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            bos_token_id=None,
            eos_token_id=None,
            attn_implementation="sdpa",
        )
        model = GPT2LMHeadModel(config).to(self.device).train()
        self.n_params = sum(p.numel() for p in model.parameters())
        t = TrainConfig()
        params = [p for p in model.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": t.weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        self.params = params
        self.opt = torch.optim.AdamW(
            groups, lr=t.lr, betas=(t.beta1, t.beta2), eps=t.eps, fused=cuda or None
        )
        self.grad_clip = t.grad_clip
        # bf16 autocast on a GPU (as our compute dtype), none on a CPU (float32 both sides).
        self.autocast: dict[str, Any] = {"device_type": "cuda", "dtype": torch.bfloat16}
        self.autocast["enabled"] = cuda

        def loss_fn(inputs_BxT: Any, targets_BxT: Any) -> Any:
            logits_BxTxV = model(input_ids=inputs_BxT, use_cache=False).logits
            return F.cross_entropy(logits_BxTxV.flatten(0, 1), targets_BxT.flatten())

        self.loss_fn = torch.compile(loss_fn) if compiled else loss_fn
        self.batches = [torch.from_numpy(b).long() for b in random_batches(shape, seed)]
        if cuda:
            self.batches = [b.pin_memory() for b in self.batches]
        self.loss: float | None = None
        self._i = 0

    def run(self, n_steps: int) -> float:
        """Seconds for n steps, from the first step until the last loss is on the host."""
        torch = self.torch
        start = time.perf_counter()
        for _ in range(n_steps):
            batch_BxTp1 = self.batches[self._i % N_BATCHES].to(self.device, non_blocking=True)
            for micro_BmxTp1 in batch_BxTp1.chunk(self.grad_accum):
                with torch.autocast(**self.autocast):
                    loss = self.loss_fn(micro_BmxTp1[:, :-1], micro_BmxTp1[:, 1:]) / self.grad_accum
                loss.backward()
            if self.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
            self._i += 1
        self.loss = loss.item() * self.grad_accum  # the last micro-batch's mean
        return time.perf_counter() - start

    def peak_memory_bytes(self) -> int | None:
        if self.device.type != "cuda":
            return None
        return self.torch.cuda.max_memory_allocated(self.device)

    def device_kind(self) -> str:
        if self.device.type != "cuda":
            return "cpu"
        return self.torch.cuda.get_device_name(self.device)
