"""The throughput benchmark at tiny size: our side always, the PyTorch peer when installed."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scaling.bench import measure, runner, tables, variants
from scaling.bench.shapes import Shape

TINY = Shape("tiny", n_layers=1, d_model=32, n_heads=2, vocab_size=64, batch_size=2, seq_len=16)
BENCH = Path(__file__).resolve().parents[1] / "experiments" / "bench.py"


@pytest.mark.slow
def test_our_side_measured_and_tabled():
    """The Trainer's step (scaling.bench.ours) timed in interleaved blocks, then the table."""
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
        "date": runner.now_utc(),
        "reps": 2,
        "block_s": 0.01,
        "machine": measure.machine(),
        "shapes": [row, {"shape": row["shape"], "error": "out of memory", "oom": True}],
    }
    table = tables.markdown(report)
    assert "| tiny | 1 | 32 | 64 | 2x16 | ours | 1 |" in table  # 32 tokens: one micro-batch
    assert "| failed | | out of memory |" in table


def test_matmul_ceiling_measured_and_stated():
    """The bf16 matmul rate (on a GPU, the ceiling MFU is read against) is a finite positive
    rate here at a tiny size, and the table states it when the machine has one."""
    rate = measure.matmul_tflops(n=64, groups=2, per_group=2)
    assert 0 < rate < math.inf
    report = {"command": "c", "date": "d", "reps": 1, "block_s": 0.01, "shapes": []}
    report["machine"] = {**measure.machine(), "matmul_tflops": 788.4}
    assert "- bf16 matmul measured on this device: 788 TFLOP/s" in tables.markdown(report)
    report["machine"] = measure.machine()
    assert "matmul measured" not in tables.markdown(report)


@pytest.mark.slow
def test_grad_accum_sets_our_micro_batches():
    """--grad-accum: our step in that many micro-batches (their losses match the whole batch's:
    tests/test_train.py)."""
    whole, split = (
        measure.measure_shape(TINY, (measure.OURS,), 1, 0.01, 1, grad_accum=n)["sides"]["ours"]
        for n in (None, 2)
    )
    assert (whole["microbatches"], split["microbatches"]) == (1, 2)
    assert 0 < split["final_loss"] < math.log(TINY.vocab_size)


@pytest.mark.slow
def test_peer_has_our_shape_and_trains():
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from scaling.bench.peer import PeerStep

    peer = PeerStep(TINY, device="cpu", compiled=False)
    assert peer.n_params == TINY.n_params()  # HF GPT-2 and our gpt2 preset: same parameters
    assert peer.run(2) > 0
    assert abs(peer.loss - math.log(TINY.vocab_size)) < 0.5
    split = PeerStep(TINY, device="cpu", compiled=False, grad_accum=2)  # --grad-accum 2
    assert split.run(2) > 0
    assert abs(split.loss - math.log(TINY.vocab_size)) < 0.5


def test_variant_parsing_and_its_errors():
    """`--variant NAME:key=value,...`: values parsed to the ModelConfig field's type, and every
    bad one refused with a message naming it, before anything is built."""
    assert variants.parse_variant("xla:attention=xla") == ("xla", {"attention": "xla"})
    assert variants.parse_variant("r:remat=true,z_loss=1e-4,d_ff=none,n_layers=3") == (
        "r",
        {"remat": True, "z_loss": 1e-4, "d_ff": None, "n_layers": 3},
    )
    for text, named in [
        ("xla", "NAME:key=value"),  # no colon
        ("a/b:remat=true", "NAME:key=value"),  # a name that is no table cell
        ("x:remat", "'remat' is not key=value"),
        ("x:nope=1", "'nope' is not a ModelConfig field"),
        ("x:remat=maybe", "remat='maybe' is not a valid bool"),
        ("x:n_layers=1.5", "n_layers='1.5' is not a valid int"),
        ("x:z_loss=big", "z_loss='big' is not a valid float"),
        ("x:remat=true,remat=false", "'remat' given twice"),
    ]:
        with pytest.raises(ValueError, match=re.escape(named)):
            variants.parse_variant(text)
    # Values of the right type that cannot train: scaling.config.validate's message, per shape.
    with pytest.raises(ValueError, match=r"x on tiny: model.attention='flash' is not one of"):
        variants.parse_variants(["x:attention=flash"], [TINY])
    with pytest.raises(ValueError, match=r"d_model=32 is not divisible by model.n_heads=3"):
        variants.parse_variants(["x:n_heads=3"], [TINY])
    with pytest.raises(ValueError, match=r"the name 'x' is given twice"):
        variants.parse_variants(["x:remat=true", "x:attention=xla"], [TINY])
    assert variants.parse_variants(["f32:compute_dtype=float32"], [TINY]) == {
        "f32": {"compute_dtype": "float32"}
    }


@pytest.mark.slow
def test_bench_cli_refuses_a_bad_variant_before_any_child():
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--shapes", "L2-d128-v256", "--variant", "x:nope=1"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "error: --variant 'x:nope=1': 'nope' is not a ModelConfig field" in proc.stderr


@pytest.mark.slow
def test_variant_sides_measured_next_to_ours():
    """Each variant is a side ours-NAME, interleaved with ours in the same process: its own row,
    its ModelConfig fields recorded, and the ratio ours/ours-NAME."""
    found = {"xla": {"attention": "xla"}, "remat": {"remat": True}}
    row = measure.measure_shape(TINY, (measure.OURS,), 2, 0.01, 1, variants=found)
    assert [b["side"] for b in row["blocks"]] == [
        "ours", "ours-xla", "ours-remat", "ours-remat", "ours-xla", "ours"
    ]  # fmt: skip
    assert row["sides"]["ours-xla"]["overrides"] == {"attention": "xla"}
    assert "overrides" not in row["sides"]["ours"]
    for side in row["sides"].values():  # every variant trains the same model
        assert 0 < side["final_loss"] < math.log(TINY.vocab_size)
    assert set(row["ratios"]) == {"ours/ours-xla", "ours/ours-remat"}
    report = {"command": "bench", "date": runner.now_utc(), "reps": 2, "block_s": 0.01}
    report.update(machine=measure.machine(), shapes=[row], variants=found)
    table = tables.markdown(report)
    assert "| tiny | 1 | 32 | 64 | 2x16 | ours-xla | 1 |" in table
    assert "ours-remat: remat=True" in table


@pytest.mark.slow
def test_a_deadline_leaves_out_the_sides_it_cannot_afford():
    """A child near the end of its budget reports the sides it set up, ours first, and lists
    the rest as skipped instead of timing out with nothing."""
    found = {"xla": {"attention": "xla"}}
    row = measure.measure_shape(TINY, ("ours",), 1, 0.01, 1, variants=found, deadline=time.time())
    assert list(row["sides"]) == ["ours"] and row["sides"]["ours"]["tokens_per_s"] > 0
    assert "not set up" in row["skipped_sides"]["ours-xla"]
    report = {"command": "bench", "date": runner.now_utc(), "reps": 1, "block_s": 0.01}
    report.update(machine=measure.machine(), shapes=[row])
    assert "| tiny | 1 | 32 | 64 | 2x16 | ours-xla | | skipped: not set up" in tables.markdown(
        report
    )


@pytest.mark.slow
def test_a_variant_that_fails_leaves_ours_measured():
    """A lever that does not run here (cuDNN attention on a CPU) is a failed side of the shape,
    not a failed shape: ours is still measured and tabled."""
    row = measure.measure_shape(
        TINY, ("ours",), 1, 0.01, 1, variants={"cudnn": {"attention": "cudnn"}}
    )
    assert list(row["sides"]) == ["ours"] and row["sides"]["ours"]["tokens_per_s"] > 0
    assert "ours-cudnn" in row["failed_sides"]
    report = {"command": "bench", "date": runner.now_utc(), "reps": 1, "block_s": 0.01}
    report.update(machine=measure.machine(), shapes=[row])
    assert "| tiny | 1 | 32 | 64 | 2x16 | ours-cudnn | | failed: " in tables.markdown(report)


@pytest.mark.slow
def test_variants_keep_to_their_share_of_the_budget():
    """A shape's variants are left out once its share of the budget is spent (later shapes
    need the rest for ours and the peer), even where the budget itself has time left."""
    found = {"xla": {"attention": "xla"}}
    row = measure.measure_shape(
        TINY, ("ours",), 1, 0.01, 1, variants=found, deadline=time.time() + 600,
        variants_deadline=time.time(),
    )  # fmt: skip
    assert list(row["sides"]) == ["ours"]
    assert "of this shape's share" in row["skipped_sides"]["ours-xla"]


def test_ratios_of_each_variant_against_each_peer():
    blocks = [
        {"rep": r, "side": side, "tokens_per_s": tps}
        for r in range(3)
        for side, tps in (("ours", 200.0), ("ours-x", 300.0), ("peer_compiled", 100.0))
    ]
    assert measure.ratios(blocks, ("ours", "ours-x", "peer_compiled")) == {
        "ours/peer_compiled": 2.0,
        "ours-x/peer_compiled": 3.0,
        "ours/ours-x": pytest.approx(2 / 3),
    }


def test_rung_verdict_against_the_cap():
    """The ladder judges a rung by its step's measured peak against the cap, not by whether the
    card (which may be larger) ran out of memory; without a peak count, a step that ran fits."""
    gib = 2**30

    def ran(peak):
        return {"shape": {"name": "r"}, "sides": {"ours": {"peak_memory_bytes": peak}}}

    assert runner.rung_verdict(ran(79 * gib), 80 * gib) == "fits"
    assert runner.rung_verdict(ran(81 * gib), 80 * gib) == "over"
    assert runner.rung_verdict(ran(81 * gib), None) == "fits"
    assert runner.rung_verdict(ran(None), 80 * gib) == "fits"
    assert runner.rung_verdict({"error": "RESOURCE_EXHAUSTED", "oom": True}, 80 * gib) == "oom"
    assert runner.rung_verdict({"error": "timed out after 9 s", "oom": False}, None) == "error"
    assert runner.rung_verdict({"skipped": "not run"}, None) == "skipped"
    rows = [{"shape": {"name": n}, "n_params_total": p, "verdict": v} for n, p, v in [
            ("d", 4, "over"), ("c", 3, "fits"), ("b", 2, "fits"), ("a", 1, "skipped")]]  # fmt: skip
    assert runner.largest_rung(rows) == "c"  # the ladder runs the largest rung first
    assert runner.largest_rung([]) is None


@pytest.mark.slow
def test_budget_spent_skips_the_rest_and_writes_the_tables(tmp_path):
    """A budget spent after the first shape: the second shape and the ladder's rung are rows
    saying they were skipped, and the tables hold every row."""
    budget = measure.Budget(600)

    def spend_after_first(rows):
        for row in rows:
            yield row
            budget.seconds = 0  # as if the first shape had taken the whole budget

    other = dataclasses.replace(TINY, name="tiny2")
    shape_rows = spend_after_first(
        runner.bench_shapes([TINY, other], "cpu", ("ours",), 1, 0.01, 1, budget=budget)
    )
    ladder_rows = runner.ladder_memory([TINY], "cpu", 1, 0.01, 1, cap_gib=80, budget=budget)
    report = {"command": "bench", "date": runner.now_utc(), "device": "cpu", "reps": 1}
    report.update(block_s=0.01, budget_s=600, ladder_seq_len=16, ladder_batch_size=2)
    report["ladder_memory_cap_gib"] = 80
    assert runner.run_report(report, tmp_path / "t", shape_rows, ladder_rows)
    first, second = report["shapes"]
    assert first["sides"]["ours"]["tokens_per_s"] > 0
    assert "skipped" in second and "skipped" in report["ladder"][0]
    assert report["largest_rung"] is None
    table = (tmp_path / "t.md").read_text()
    assert "| tiny2 | 1 | 32 | 64 | 2x16 | skipped | | not run: the 0 s budget" in table
    assert "The budget ran out before the rungs marked skipped" in table
    assert json.loads((tmp_path / "t.json").read_text())["shapes"][1] == second


@pytest.mark.slow
def test_bench_cli_with_no_budget_writes_skipped_rows(tmp_path):
    """`bench.py --budget-s 0`: nothing runs, yet the tables are written and say why."""
    out = tmp_path / "gpu"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--device", "cpu", "--shapes", "L2-d128-v256", "--ladder",
         "n110k", "--budget-s", "0", "--out", str(out)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    table = out.with_suffix(".md").read_text()
    assert "| L2-d128-v256 | 2 | 128 | 256 | 32x128 | skipped |" in table
    assert "| n110k |  |  | n/a |  |  | n/a | not run: the 0 s budget was spent" in table
    assert json.loads(out.with_suffix(".json").read_text())["machine"]["backend"] == "cpu"
