"""The throughput benchmark at tiny size: our side always, the PyTorch peer when installed."""

from __future__ import annotations

import math

import pytest

from scaling.perf import measure
from scaling.perf.shapes import Shape

TINY = Shape("tiny", n_layers=1, d_model=32, n_heads=2, vocab_size=64, batch_size=2, seq_len=16)


def test_our_side_measured_and_tabled():
    """The Trainer's step (scaling.perf.ours) timed in interleaved blocks, then the table."""
    row = measure.measure_shape(TINY, (measure.OURS,), reps=2, block_s=0.01, warmup_steps=1)
    assert [b["side"] for b in row["blocks"]] == ["ours", "ours"]
    ours = row["sides"]["ours"]
    assert ours["tokens_per_s"] > 0 and ours["setup_s"] > 0
    # Uniform random tokens start near ln(vocab); at the peak learning rate (the peer's
    # constant one) the model learns the 4 cycled batches by heart and falls below it.
    assert 0 < ours["final_loss"] < math.log(TINY.vocab_size)
    assert row["sides"]["ours"]["mfu"] is None  # a CPU has no known peak: no MFU guessed
    assert row["ratios"] == {}
    report = {
        "command": "python experiments/bench.py",
        "date": measure.now_utc(),
        "reps": 2,
        "block_s": 0.01,
        "machine": measure.machine(),
        "shapes": [row, {"shape": row["shape"], "error": "out of memory", "oom": True}],
    }
    table = measure.markdown(report)
    assert "| tiny | 1 | 32 | 64 | 2x16 | ours | 1 |" in table  # 32 tokens: one micro-batch
    assert "| failed | | out of memory |" in table


def test_grad_accum_sets_our_micro_batches():
    """--grad-accum: our step in that many micro-batches (their losses match the whole batch's:
    tests/test_train.py)."""
    whole, split = (
        measure.measure_shape(TINY, (measure.OURS,), 1, 0.01, 1, grad_accum=n)["sides"]["ours"]
        for n in (None, 2)
    )
    assert (whole["microbatches"], split["microbatches"]) == (1, 2)
    assert 0 < split["final_loss"] < math.log(TINY.vocab_size)


def test_peer_has_our_shape_and_trains():
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from scaling.perf.peer import PeerStep

    peer = PeerStep(TINY, device="cpu", compiled=False)
    assert peer.n_params == TINY.n_params()  # HF GPT-2 and our gpt2 preset: same parameters
    assert peer.run(2) > 0
    assert abs(peer.loss - math.log(TINY.vocab_size)) < 0.5
    split = PeerStep(TINY, device="cpu", compiled=False, grad_accum=2)  # --grad-accum 2
    assert split.run(2) > 0
    assert abs(split.loss - math.log(TINY.vocab_size)) < 0.5
