"""Tests for scaling.model.hf: Hugging Face GPT-2 and Llama checkpoints in and out.

Without torch: the committed fixtures (tests/fixtures/hf, made by make_fixtures.py with
transformers) are imported and their reference logits matched, exported back bit for bit, and
fine-tuned through `init_from=hf:` then exported as a finished run. With a Python that has torch
and transformers (this one, or $SCALING_HF_PYTHON; `make test-hf` sets it up): random models
built by transformers in the test go both ways through `from_pretrained`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import load_file

from conftest import ROOT
from scaling.config import ConfigError, ModelConfig, resolve_model
from scaling.model import accounting, hf
from scaling.model.transformer import build_model
from scaling.train.source import export_run

FIXTURES = ROOT / "tests" / "fixtures" / "hf"
KINDS = ("gpt2", "llama")
TOL = 1e-5  # float32 logits, both ways


def logits_of(spec: hf.HFModel, params: dict, tokens: np.ndarray) -> np.ndarray:
    return np.asarray(hf.as_model(spec, params)(jnp.asarray(tokens, jnp.int32)))


@pytest.mark.parametrize("kind", KINDS)
def test_import_matches_the_reference_logits_and_parameter_count(kind):
    spec, params = hf.load(FIXTURES / kind)
    ref = load_file(str(FIXTURES / kind / "reference.safetensors"))
    got = logits_of(spec, params, ref["tokens"])
    assert np.max(np.abs(got - ref["logits"])) <= TOL
    n_params = json.loads((FIXTURES / kind / "reference.json").read_text())["n_params"]
    assert accounting.param_counts(spec.model, spec.vocab_size, spec.max_positions).total == (
        n_params
    )
    assert sum(np.size(x) for x in jax_leaves(params)) == n_params
    if kind == "llama":
        assert (spec.model.n_heads, spec.model.n_kv_heads) == (4, 2)  # grouped-query


def jax_leaves(tree: dict) -> list:
    return [x for v in tree.values() for x in (jax_leaves(v) if isinstance(v, dict) else [v])]


@pytest.mark.parametrize("kind", KINDS)
def test_export_writes_the_same_tensors_and_config(kind, tmp_path):
    spec, params = hf.load(FIXTURES / kind)
    out = hf.save(tmp_path / kind, spec.model, params, spec.vocab_size, spec.max_positions)
    theirs, ours = (
        load_file(str(FIXTURES / kind / hf.WEIGHTS_FILE)),
        load_file(str(out / hf.WEIGHTS_FILE)),
    )
    assert sorted(ours) == sorted(theirs)
    for name, x in theirs.items():
        np.testing.assert_array_equal(ours[name], x, err_msg=name)
    cfg_theirs = json.loads((FIXTURES / kind / hf.CONFIG_FILE).read_text())
    cfg_ours = json.loads((out / hf.CONFIG_FILE).read_text())
    unshared = {"torch_dtype", "transformers_version", "bos_token_id", "eos_token_id"}
    shared = set(cfg_theirs) & set(cfg_ours) - unshared
    assert {k: cfg_ours[k] for k in shared} == {k: cfg_theirs[k] for k in shared}
    assert hf.read_config(out) == dataclasses.replace(spec, model=dataclasses.replace(
        spec.model, name=f"hf-{kind}"))  # fmt: skip


def broken(tmp_path: Path, kind: str, **changes) -> Path:
    d = tmp_path / "broken"
    shutil.copytree(FIXTURES / kind, d)
    cfg = json.loads((d / hf.CONFIG_FILE).read_text())
    cfg.update(changes)
    (d / hf.CONFIG_FILE).write_text(json.dumps(cfg))
    return d


@pytest.mark.parametrize(
    ("kind", "changes", "named"),
    [
        ("gpt2", {"activation_function": "relu"}, "activation_function='relu'"),
        ("gpt2", {"n_embd": 48}, "transformer.wte.weight has shape (256, 32)"),
        ("llama", {"rope_parameters": {"rope_type": "yarn", "factor": 4.0}}, "rope_type='yarn'"),
        ("llama", {"attention_bias": True}, "attention_bias=True"),
        ("llama", {"head_dim": 16}, "head_dim=16"),
        ("llama", {"model_type": "t5"}, "model_type='t5'"),
    ],
)
def test_an_unsupported_config_is_one_line_naming_the_field(tmp_path, kind, changes, named):
    with pytest.raises(ConfigError) as err:
        hf.load(broken(tmp_path, kind, **changes))
    assert named in str(err.value) and "\n" not in str(err.value)


def test_export_refuses_what_neither_family_holds():
    with pytest.raises(ConfigError, match="model.qk_norm=True"):
        hf.export_kind(ModelConfig(arch="llama", qk_norm=True))
    with pytest.raises(ConfigError, match="model.position='rope'"):
        hf.export_kind(ModelConfig(arch="gpt2", position="rope"))
    with pytest.raises(ConfigError, match="model.n_kv_heads=1"):
        hf.export_kind(ModelConfig(arch="gpt2", n_heads=4, d_model=32, n_kv_heads=1))


@pytest.mark.slow
def test_finetune_from_hf_then_export_the_finished_run(tiny_config, tmp_path):
    from scaling.config import FinetuneConfig, TaskConfig
    from scaling.tasks.finetune import finetune

    base = tiny_config()
    cfg = FinetuneConfig(
        data=dataclasses.replace(base.data, seq_len=32),
        train=dataclasses.replace(base.train, tokens=256, eval_every=2, log_every=2),
        out_dir=str(tmp_path / "runs"),
        run_name="ft-hf",
        task=TaskConfig(
            name="addition1", kind="addition", params={"digits": 1}, n_eval=16, few_shot=0
        ),  # fmt: skip
        init_from=f"hf:{FIXTURES / 'llama'}",
    )
    record = finetune(cfg)
    assert record["status"] == "completed" and record["init_from"] == f"hf:{FIXTURES / 'llama'}"
    assert record["n_params_total"] == 34976 and record["vocab_size"] == 256
    # The run starts from the imported model: its step-0 evaluation is that model's.
    out = export_run(tmp_path / "runs" / "ft-hf", tmp_path / "exported")
    spec, params = hf.load(out)
    ref = load_file(str(FIXTURES / "llama" / "reference.safetensors"))
    moved = logits_of(spec, params, ref["tokens"])
    assert 0 < np.max(np.abs(moved - ref["logits"])) < 1.0  # trained a little, from the import
    cmd = [sys.executable, str(ROOT / "experiments" / "export_hf.py")]
    cmd += [str(tmp_path / "runs" / "ft-hf"), str(tmp_path / "x")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert load_file(str(tmp_path / "x" / hf.WEIGHTS_FILE)).keys() == load_file(
        str(out / hf.WEIGHTS_FILE)).keys()  # fmt: skip


# --- both ways through transformers (skip without torch) --------------------------------------


def torch_python() -> str | None:
    """A Python with torch and transformers: this one, or $SCALING_HF_PYTHON."""
    if importlib.util.find_spec("torch") and importlib.util.find_spec("transformers"):
        return sys.executable
    return os.environ.get("SCALING_HF_PYTHON") or None


needs_torch = pytest.mark.skipif(
    torch_python() is None,
    reason="needs torch and transformers (this Python, or SCALING_HF_PYTHON; make test-hf)",
)
HELPER = FIXTURES / "make_fixtures.py"


def hf_side(*args: str) -> None:
    proc = subprocess.run([torch_python(), str(HELPER), *args], capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.slow
@needs_torch
@pytest.mark.parametrize("kind", KINDS)
def test_a_random_transformers_model_imports_with_its_logits(kind, tmp_path):
    hf_side("build", kind, "7", str(tmp_path / kind))  # built and saved by transformers
    spec, params = hf.load(tmp_path / kind)
    ref = load_file(str(tmp_path / kind / "reference.safetensors"))
    assert np.max(np.abs(logits_of(spec, params, ref["tokens"]) - ref["logits"])) <= TOL
    n_params = json.loads((tmp_path / kind / "reference.json").read_text())["n_params"]
    assert accounting.param_counts(spec.model, spec.vocab_size, spec.max_positions).total == (
        n_params
    )


@pytest.mark.slow
@needs_torch
@pytest.mark.parametrize(
    "model",
    [
        ModelConfig(arch="gpt2", d_model=48, n_layers=2, n_heads=4, max_positions=64),
        ModelConfig(
            arch="llama",
            d_model=48,
            n_layers=2,
            n_heads=6,
            n_kv_heads=2,
            norm_eps=1e-6,
            rope_theta=5e5,
        ),  # fmt: skip
        ModelConfig(arch="llama", d_model=32, n_layers=1, n_heads=2, tie_embeddings=True),
    ],
    ids=["gpt2", "llama-gqa", "llama-tied"],
)
def test_an_exported_model_loads_with_from_pretrained_and_the_same_logits(model, tmp_path):
    from flax import nnx

    vocab, positions = 300, 64
    ours = build_model(dataclasses.replace(model, compute_dtype="float32"), vocab, positions, 3)
    params = hf.jax_to_numpy(nnx.to_pure_dict(nnx.split(ours)[1]))
    hf.save(tmp_path / "m", resolve_model(model), params, vocab, positions)
    tokens = np.random.default_rng(1).integers(0, vocab, (2, 24))
    np.save(tmp_path / "tokens.npy", tokens)
    hf_side("logits", str(tmp_path / "m"), str(tmp_path / "tokens.npy"), str(tmp_path / "l.npy"))
    want = np.asarray(ours(jnp.asarray(tokens, jnp.int32)))
    assert np.max(np.abs(np.load(tmp_path / "l.npy") - want)) <= TOL
