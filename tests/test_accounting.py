"""Parameter and FLOP conventions against hand counts, device peaks, MFU, and the model ladder."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from scaling.config import ModelConfig, PretrainConfig, validate
from scaling.model.accounting import (
    FLOPS_6N,
    FLOPS_6N_ATTN,
    FLOPS_CHINCHILLA,
    ParamCounts,
    activation_bytes_per_token,
    device_peak_flops,
    flops_per_token,
    mfu,
    param_counts,
)
from scaling.sweep import ladder

ROOT = Path(__file__).resolve().parents[1]
GPT2_124M = ModelConfig(arch="gpt2", d_model=768, n_layers=12, n_heads=12)


def test_kaplan_and_porian_counts_by_hand():
    counts = param_counts(ModelConfig(d_model=96, n_layers=3, n_heads=3), 50432, 1024)
    assert counts.nonembedding == 12 * 3 * 96**2 == 331_776
    assert counts.with_head == 331_776 + 96 * 50432 == 5_173_248


def test_gpt2_124m_counts():
    counts = param_counts(GPT2_124M, 50257, 1024)
    assert counts == ParamCounts(
        total=124_439_808, nonembedding=84_934_656, with_head=84_934_656 + 768 * 50257
    )


def test_swiglu_counts_three_matrices():
    # Llama preset at d=64: d_ff = ceil(8*64/3) = 171, rounded up to a multiple of 32 = 192.
    counts = param_counts(ModelConfig(arch="llama", d_model=64, n_layers=2, n_heads=2), 256, 128)
    assert counts.nonembedding == 2 * (4 * 64 * 64 + 3 * 64 * 192)
    # Untied head, no biases, RMSNorm gains (2 per block + final), rope (no position table).
    assert counts.total == counts.nonembedding + 2 * 256 * 64 + (2 * 2 + 1) * 64


def test_mfu_of_gpt2_124m_on_h100():
    flops = flops_per_token(GPT2_124M, 50257, 1024)[FLOPS_6N_ATTN]
    assert flops == 6 * 123_532_032 + 12 * 12 * 768 * 1024
    util = mfu(403.8e3, flops, device_peak_flops("NVIDIA H100 80GB HBM3"))
    assert util is not None and round(100 * util, 1) == 34.9


def test_a_fused_loss_keeps_no_logits_per_token():
    """The microbatch estimate counts the logits and their gradient per token (2·V floats),
    except where the loss is fused with the head: then they are one chunk's, whatever the batch."""
    fused = dataclasses.replace(GPT2_124M, loss_chunk_tokens=8192)
    whole, chunked = (activation_bytes_per_token(m, 50257, 1024, 2) for m in (GPT2_124M, fused))
    assert whole - chunked == 2 * 2 * 50257


def test_six_n_is_kaplan():
    cfg = ModelConfig(d_model=96, n_layers=3, n_heads=3)
    assert flops_per_token(cfg, 50432, 1024)[FLOPS_6N] == 6 * 331_776


def test_chinchilla_appendix_f_by_hand():
    # d=64, L=2, H=2 (dh=32), V=256, T=16, GELU d_ff=256; every term of Hoffmann et al. table A4.
    cfg = ModelConfig(arch="gpt2", d_model=64, n_layers=2, n_heads=2)
    embeddings = 2 * 16 * 256 * 64  # 524,288
    qkv = 2 * 3 * 16 * 64 * 64  # 393,216
    logits = 2 * 16 * 16 * 64  # 32,768
    softmax = 3 * 2 * 16 * 16  # 1,536
    values = 2 * 16 * 16 * 64  # 32,768
    out_proj = 2 * 16 * 64 * 64  # 131,072
    dense = 2 * 16 * (2 * 64 * 256)  # 1,048,576
    final = 2 * 16 * 64 * 256  # 524,288
    forward = embeddings + 2 * (qkv + logits + softmax + values + out_proj + dense) + final
    assert forward == 4_328_448
    assert flops_per_token(cfg, 256, 16)[FLOPS_CHINCHILLA] == 3 * forward / 16 == 811_584


@pytest.mark.parametrize(
    "kind, peak",
    [
        ("NVIDIA H100 80GB HBM3", 989.4e12),
        ("NVIDIA H100 PCIe", 756e12),
        ("NVIDIA H200", 989.4e12),
        ("NVIDIA A100-SXM4-80GB", 312e12),
        ("NVIDIA A100-PCIE-40GB", 312e12),
        ("NVIDIA A10G", 70e12),
        ("NVIDIA L4", 121e12),
        ("Tesla V100-SXM2-16GB", 125e12),
        ("TPU v4", 275e12),
        ("TPU v5 lite", 197e12),
        ("TPU v5", 459e12),
        ("TPU v6 lite", 918e12),
        # Unknown or different-peak variants are None, never the nearest guess.
        ("cpu", None),
        ("NVIDIA H100 NVL", None),
        ("NVIDIA L40S", None),
        ("TPU v4 lite", None),
        ("NVIDIA GeForce RTX 4090", None),
        ("", None),
    ],
)
def test_device_peak_lookup(kind, peak):
    assert device_peak_flops(kind) == peak


def test_mfu_is_none_without_a_peak():
    assert mfu(1e5, 1e9, None) is None
    assert mfu(1e5, 1e9, device_peak_flops("cpu")) is None
    assert mfu(1e5, 1e9, 1e15) == pytest.approx(0.1)


def test_accounting_and_ladder_import_without_jax():
    code = (
        "import sys, scaling.model.accounting, scaling.sweep.ladder; "
        "assert 'jax' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def load_model_yaml(path: Path) -> ModelConfig:
    merged = OmegaConf.merge(OmegaConf.structured(ModelConfig), OmegaConf.load(path))
    cfg = OmegaConf.to_object(merged)
    assert isinstance(cfg, ModelConfig)
    return cfg


def test_ladder_rule():
    rungs = ladder.ladder()
    assert len(rungs) == 14
    counts = [param_counts(r, 256, 1024) for r in rungs]
    kaplan = [c.nonembedding for c in counts]
    assert all(a < b for a, b in zip(kaplan, kaplan[1:], strict=False))
    assert all(a.total < b.total for a, b in zip(counts, counts[1:], strict=False))
    assert len({r.name for r in rungs}) == 14
    assert [r.name for r in rungs][:2] == ["n110k", "n221k"]
    assert {"n1m8", "n25m", "n201m"} <= {r.name for r in rungs}
    for i, (rung, n) in enumerate(zip(rungs, kaplan, strict=True)):
        assert rung.name == ladder.rung_name(n)
        assert 0.7 < n / (1e5 * 2**i) < 1.45  # near its target N_i
        head_dim = rung.d_model // rung.n_heads
        assert head_dim == (64 if rung.d_model >= 256 else 32)
        assert rung.d_model % (64 if rung.d_model >= 256 else 32) == 0


def test_cpu_ladder_rule():
    rungs = ladder.cpu_ladder()
    assert [r.name for r in rungs] == ["n24k", "n55k", "n98k", "n221k", "n393k", "n884k"]
    kaplan = [param_counts(r, 256, 128).nonembedding for r in rungs]
    assert all(1.3 < b / a < 2.3 for a, b in zip(kaplan, kaplan[1:], strict=False))
    assert kaplan[-1] / kaplan[0] > 16  # the span a scaling fit needs
    for rung, n in zip(rungs, kaplan, strict=True):
        assert rung.n_layers == 2 and rung.name == ladder.rung_name(n)
        assert rung.d_model // rung.n_heads in (16, 32)
    # the rungs both ladders hold are one model
    main = {r.name: r for r in ladder.ladder()}
    assert all(main[r.name] == r for r in rungs if r.name in main)
    assert {"n221k", "n393k"} <= set(main)


@pytest.mark.parametrize("name", [r.name for r in ladder.all_rungs()])
def test_model_yaml_is_current_and_validates(name):
    cfg = load_model_yaml(ROOT / "conf" / "model" / f"{name}.yaml")
    expected = {r.name: r for r in ladder.all_rungs()}[name]
    assert cfg == expected  # the files are what the CLI writes now
    for arch in ("gpt2", "llama"):
        full = PretrainConfig(model=ModelConfig(**{**vars(cfg), "arch": arch}), run_name="t")
        model = validate(full).model
        assert model.d_model == cfg.d_model and model.d_ff is not None


def test_cli_writes_configs_and_replaces_readme_between_markers(tmp_path, capsys):
    readme = tmp_path / "README.md"
    before, after = "# Title\n\nintro\n", "\n## Next\nkept\n"
    readme.write_text(f"{before}{ladder.MARKER_START}\nold table\n{ladder.MARKER_END}{after}")
    conf_dir = tmp_path / "model"
    assert ladder.main(["--conf-dir", str(conf_dir), "--readme", str(readme)]) == 0
    assert len(list(conf_dir.glob("*.yaml"))) == len(ladder.all_rungs()) == 19
    table = ladder.ladder_table()
    assert capsys.readouterr().out == table
    assert "vocab 256" in table and "seq_len 1024" in table and "`n798m`" in table
    assert "CPU ladder" in table and "`n24k`" in table
    text = readme.read_text()
    assert text == f"{before}{ladder.MARKER_START}\n{table}{ladder.MARKER_END}{after}"
    # Idempotent: running again leaves the file as it is.
    assert ladder.main(["--no-write", "--readme", str(readme)]) == 0
    assert readme.read_text() == text


def test_cli_refuses_a_readme_without_markers(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# no markers here\n")
    assert ladder.main(["--no-write", "--readme", str(readme)]) == 1
    assert "markers" in capsys.readouterr().err
    assert readme.read_text() == "# no markers here\n"
