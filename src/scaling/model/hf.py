"""Hugging Face checkpoints in and out: a local directory of `config.json` and
`model.safetensors` for GPT-2 (`GPT2LMHeadModel`) or a Llama-family model (`LlamaForCausalLM`:
RMSNorm, rotary positions, SwiGLU, grouped-query attention), read into this project's model and
written back from it. Nothing is downloaded, and neither torch nor transformers is needed: the
tensors are read and written with `safetensors.numpy`.

The mapping (ours <- theirs; torch's Linear stores (out, in), ours (in, out)):
  GPT-2: Conv1D weights are already (in, out); c_attn is our fused qkv as it is.
  Llama: qkv = [q_proj; k_proj; v_proj] transposed and stacked along the output; the rest
  one-to-one. HF Llama's rotary layout (rotate_half) is ours (`scaling.model.transformer._rope`).
A config this model cannot reproduce exactly (another activation, rope scaling, biases in a
Llama, a head dim that is not d/H, ...) is refused with one line naming the field.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from scaling.config import ConfigError, ModelConfig, kv_heads, resolve_model

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
PREFIX = "hf:"  # init_from=hf:<dir>


@dataclasses.dataclass(frozen=True)
class HFModel:
    """An HF checkpoint's shape as this project's model: the config, its vocabulary and
    position count (what `build_model` takes), and the HF model_type."""

    model: ModelConfig
    vocab_size: int
    max_positions: int
    model_type: str


def _unsupported(path: Path, field: str, value: Any, wanted: str) -> ConfigError:
    return ConfigError(f"{path / CONFIG_FILE}: {field}={value!r} is not supported ({wanted})")


def read_config(path: str | Path) -> HFModel:
    """The model a local HF directory holds; ConfigError naming the field it cannot take."""
    path = Path(path).expanduser()
    try:
        hf = json.loads((path / CONFIG_FILE).read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path / CONFIG_FILE}: not a readable HF config ({err})") from None
    kind = hf.get("model_type")
    if kind == "gpt2":
        return _gpt2_config(path, hf)
    if kind in ("llama", "mistral", "qwen2"):
        return _llama_config(path, hf)
    raise _unsupported(path, "model_type", kind, "gpt2 or llama")


def _get(path: Path, hf: dict, field: str) -> Any:
    if hf.get(field) is None:
        raise ConfigError(f"{path / CONFIG_FILE}: {field} is missing")
    return hf[field]


def _gpt2_config(path: Path, hf: dict) -> HFModel:
    act = hf.get("activation_function", "gelu_new")
    if act not in ("gelu_new", "gelu_pytorch_tanh"):
        raise _unsupported(path, "activation_function", act, "the tanh GELU: gelu_new")
    for field, ok in (("scale_attn_weights", True), ("scale_attn_by_inverse_layer_idx", False)):
        if hf.get(field, ok) != ok:
            raise _unsupported(path, field, hf[field], f"only {ok}")
    d = _get(path, hf, "n_embd")
    positions = _get(path, hf, "n_positions")
    model = ModelConfig(
        name=f"hf-{path.name}",
        arch="gpt2",
        d_model=d,
        n_layers=_get(path, hf, "n_layer"),
        n_heads=_get(path, hf, "n_head"),
        d_ff=hf.get("n_inner") or 4 * d,
        tie_embeddings=hf.get("tie_word_embeddings", True),
        norm_eps=hf.get("layer_norm_epsilon", 1e-5),
        max_positions=positions,
    )
    return HFModel(resolve_model(model), _get(path, hf, "vocab_size"), positions, "gpt2")


def _rope_theta(path: Path, hf: dict) -> float:
    # transformers 5 keeps rope settings in rope_parameters; earlier versions in rope_theta and
    # rope_scaling. Only the plain rotation is reproduced.
    params = hf.get("rope_parameters") or {}
    rope_type = params.get("rope_type", params.get("type", "default"))
    if rope_type != "default":
        raise _unsupported(path, "rope_parameters.rope_type", rope_type, "only default")
    if hf.get("rope_scaling"):
        raise _unsupported(path, "rope_scaling", hf["rope_scaling"], "only none")
    return float(params.get("rope_theta", hf.get("rope_theta", 10000.0)))


def _llama_config(path: Path, hf: dict) -> HFModel:
    act = hf.get("hidden_act", "silu")
    if act != "silu":
        raise _unsupported(path, "hidden_act", act, "SwiGLU's silu")
    for field in ("attention_bias", "mlp_bias"):
        if hf.get(field):
            raise _unsupported(path, field, hf[field], "a Llama without biases")
    if hf.get("pretraining_tp", 1) != 1:
        raise _unsupported(path, "pretraining_tp", hf["pretraining_tp"], "only 1")
    if hf.get("sliding_window") and hf.get("use_sliding_window", True):
        raise _unsupported(path, "sliding_window", hf["sliding_window"], "full attention only")
    d, heads = _get(path, hf, "hidden_size"), _get(path, hf, "num_attention_heads")
    if hf.get("head_dim") not in (None, d // heads):
        raise _unsupported(path, "head_dim", hf["head_dim"], f"hidden_size/heads = {d // heads}")
    model = ModelConfig(
        name=f"hf-{path.name}",
        arch="llama",
        d_model=d,
        n_layers=_get(path, hf, "num_hidden_layers"),
        n_heads=heads,
        n_kv_heads=hf.get("num_key_value_heads") or heads,
        d_ff=_get(path, hf, "intermediate_size"),
        tie_embeddings=hf.get("tie_word_embeddings", False),
        rope_theta=_rope_theta(path, hf),
        norm_eps=hf.get("rms_norm_eps", 1e-6),
    )
    positions = hf.get("max_position_embeddings", 2048)
    return HFModel(resolve_model(model), _get(path, hf, "vocab_size"), positions, "llama")


# --- weights ----------------------------------------------------------------------------------


def load(path: str | Path) -> tuple[HFModel, dict[str, Any]]:
    """The model config and its parameters (the nested dict of `nnx.to_pure_dict`, float32)."""
    path = Path(path).expanduser()
    spec = read_config(path)
    try:
        tensors = load_file(str(path / WEIGHTS_FILE))
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path / WEIGHTS_FILE}: cannot read the weights ({err})") from None
    convert = _from_gpt2 if spec.model_type == "gpt2" else _from_llama
    return spec, convert(_Reader(path, tensors), spec.model)


class _Reader:
    """Tensors by name, checked for shape; names may carry the wrapper prefix or not."""

    def __init__(self, path: Path, tensors: dict[str, np.ndarray]):
        self.path, self.tensors = path, tensors

    def __call__(self, name: str, shape: tuple[int, ...], *alternatives: str) -> np.ndarray:
        for key in (name, *alternatives):
            if key in self.tensors:
                x = np.asarray(self.tensors[key], np.float32)
                if x.shape != shape:
                    raise ConfigError(
                        f"{self.path / WEIGHTS_FILE}: {key} has shape {x.shape}, the config "
                        f"gives {shape}"
                    )
                return x
        raise ConfigError(f"{self.path / WEIGHTS_FILE}: {name} is missing")


def _from_gpt2(get: _Reader, m: ModelConfig) -> dict[str, Any]:
    d, f = m.d_model, m.d_ff
    assert f is not None and m.max_positions is not None  # both set by _gpt2_config

    def t(name: str, shape: tuple[int, ...]) -> np.ndarray:
        return get(f"transformer.{name}", shape, name)  # hub files lack the prefix

    def norm(name: str) -> dict[str, np.ndarray]:
        return {"scale": t(f"{name}.weight", (d,)), "bias": t(f"{name}.bias", (d,))}

    def linear(name: str, d_in: int, d_out: int) -> dict[str, np.ndarray]:
        return {"kernel": t(f"{name}.weight", (d_in, d_out)), "bias": t(f"{name}.bias", (d_out,))}

    wte_VxD = get.tensors.get("transformer.wte.weight", get.tensors.get("wte.weight"))
    v = 0 if wte_VxD is None else wte_VxD.shape[0]
    params: dict[str, Any] = {
        "embed": {"embedding": t("wte.weight", (v, d))},
        "pos_embed": {"embedding": t("wpe.weight", (m.max_positions, d))},
        "final_norm": norm("ln_f"),
        "blocks": {},
    }
    for i in range(m.n_layers):
        h = f"h.{i}"
        params["blocks"][i] = {
            "attn_norm": norm(f"{h}.ln_1"),
            "attn": {
                "qkv": linear(f"{h}.attn.c_attn", d, 3 * d),
                "out": linear(f"{h}.attn.c_proj", d, d),
            },
            "mlp_norm": norm(f"{h}.ln_2"),
            "mlp": {"up": linear(f"{h}.mlp.c_fc", d, f), "down": linear(f"{h}.mlp.c_proj", f, d)},
        }
    if not m.tie_embeddings:
        params["head"] = {"kernel": get("lm_head.weight", (v, d)).T}
    return params


def _from_llama(get: _Reader, m: ModelConfig) -> dict[str, Any]:
    d, f, dh = m.d_model, m.d_ff, m.d_model // m.n_heads
    assert f is not None  # set by _llama_config
    kv = kv_heads(m) * dh
    embed_VxD = get.tensors.get("model.embed_tokens.weight")
    v = 0 if embed_VxD is None else embed_VxD.shape[0]

    def w(name: str, d_out: int, d_in: int) -> np.ndarray:  # torch (out, in) -> ours (in, out)
        return get(name, (d_out, d_in)).T

    params: dict[str, Any] = {
        "embed": {"embedding": get("model.embed_tokens.weight", (v, d))},
        "final_norm": {"scale": get("model.norm.weight", (d,))},
        "blocks": {},
    }
    for i in range(m.n_layers):
        p = f"model.layers.{i}"
        qkv = [
            w(f"{p}.self_attn.{x}_proj.weight", n, d) for x, n in (("q", d), ("k", kv), ("v", kv))
        ]
        params["blocks"][i] = {
            "attn_norm": {"scale": get(f"{p}.input_layernorm.weight", (d,))},
            "attn": {
                "qkv": {"kernel": np.concatenate(qkv, axis=1)},
                "out": {"kernel": w(f"{p}.self_attn.o_proj.weight", d, d)},
            },
            "mlp_norm": {"scale": get(f"{p}.post_attention_layernorm.weight", (d,))},
            "mlp": {
                "gate": {"kernel": w(f"{p}.mlp.gate_proj.weight", f, d)},
                "up": {"kernel": w(f"{p}.mlp.up_proj.weight", f, d)},
                "down": {"kernel": w(f"{p}.mlp.down_proj.weight", d, f)},
            },
        }
    if not m.tie_embeddings:
        params["head"] = {"kernel": w("lm_head.weight", v, d)}
    return params


# --- export -----------------------------------------------------------------------------------


def export_kind(model: ModelConfig) -> str:
    """ "gpt2" or "llama": the HF family that reproduces `model` exactly; ConfigError naming the
    first setting that neither does."""
    m = resolve_model(model)
    if m.qk_norm:
        raise ConfigError("model.qk_norm=True has no GPT-2 or Llama equivalent")
    if m.norm == "layernorm":
        wanted = {"bias": True, "position": "learned", "mlp": "gelu", "tie_embeddings": True}
        family = "gpt2"
    else:
        wanted = {"bias": False, "position": "rope", "mlp": "swiglu"}
        family = "llama"
    for key, value in wanted.items():
        if getattr(m, key) != value:
            raise ConfigError(
                f"model.{key}={getattr(m, key)!r} with model.norm={m.norm} matches neither "
                f"GPT-2 nor Llama (a {family}-style export needs model.{key}={value!r})"
            )
    if family == "gpt2" and kv_heads(m) != m.n_heads:
        raise ConfigError(
            f"model.n_kv_heads={m.n_kv_heads} (grouped-query) is Llama's, not GPT-2's"
        )
    return family


def hf_config(model: ModelConfig, vocab_size: int, max_positions: int) -> dict[str, Any]:
    """The config.json of `model` as a GPT-2 or Llama checkpoint."""
    m = resolve_model(model)
    kind = export_kind(m)
    common = {"vocab_size": vocab_size, "torch_dtype": "float32", "use_cache": True}
    if kind == "gpt2":
        return {
            "model_type": "gpt2",
            "architectures": ["GPT2LMHeadModel"],
            "n_embd": m.d_model,
            "n_layer": m.n_layers,
            "n_head": m.n_heads,
            "n_inner": None if m.d_ff == 4 * m.d_model else m.d_ff,  # None: HF's 4d
            "n_positions": max_positions,
            "activation_function": "gelu_new",
            "layer_norm_epsilon": m.norm_eps,
            "tie_word_embeddings": True,
            "resid_pdrop": 0.0,
            "embd_pdrop": 0.0,
            "attn_pdrop": 0.0,
            **common,
        }
    return {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": m.d_model,
        "intermediate_size": m.d_ff,
        "num_hidden_layers": m.n_layers,
        "num_attention_heads": m.n_heads,
        "num_key_value_heads": kv_heads(m),
        "head_dim": m.d_model // m.n_heads,
        "hidden_act": "silu",
        "max_position_embeddings": max_positions,
        "rms_norm_eps": m.norm_eps,
        # Both spellings: transformers 5 reads rope_parameters, earlier versions rope_theta.
        "rope_theta": m.rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": m.rope_theta},
        "tie_word_embeddings": m.tie_embeddings,
        "attention_bias": False,
        "mlp_bias": False,
        **common,
    }


def to_tensors(model: ModelConfig, params: dict[str, Any]) -> dict[str, np.ndarray]:
    """The HF state dict (float32, contiguous) of our parameters."""
    m = resolve_model(model)
    kind = export_kind(m)
    a = lambda x: np.ascontiguousarray(np.asarray(x, np.float32))  # noqa: E731
    blocks = params["blocks"]
    out: dict[str, np.ndarray] = {}
    if kind == "gpt2":
        out["transformer.wte.weight"] = a(params["embed"]["embedding"])
        out["transformer.wpe.weight"] = a(params["pos_embed"]["embedding"])
        out["transformer.ln_f.weight"] = a(params["final_norm"]["scale"])
        out["transformer.ln_f.bias"] = a(params["final_norm"]["bias"])
        names = {
            "attn_norm": "ln_1",
            "mlp_norm": "ln_2",
            ("attn", "qkv"): "attn.c_attn",
            ("attn", "out"): "attn.c_proj",
            ("mlp", "up"): "mlp.c_fc",
            ("mlp", "down"): "mlp.c_proj",
        }
        for i in range(m.n_layers):
            b = blocks[i]
            for ours, theirs in names.items():
                leaf = b[ours] if isinstance(ours, str) else b[ours[0]][ours[1]]
                first = "scale" if "scale" in leaf else "kernel"
                out[f"transformer.h.{i}.{theirs}.weight"] = a(leaf[first])
                out[f"transformer.h.{i}.{theirs}.bias"] = a(leaf["bias"])
        return out
    d, dh = m.d_model, m.d_model // m.n_heads
    kv = kv_heads(m) * dh
    out["model.embed_tokens.weight"] = a(params["embed"]["embedding"])
    out["model.norm.weight"] = a(params["final_norm"]["scale"])
    for i in range(m.n_layers):
        b, p = blocks[i], f"model.layers.{i}"
        qkv_DxDqkv = np.asarray(b["attn"]["qkv"]["kernel"])
        for name, cols in (("q", slice(0, d)), ("k", slice(d, d + kv)), ("v", slice(d + kv, None))):
            out[f"{p}.self_attn.{name}_proj.weight"] = a(qkv_DxDqkv[:, cols].T)
        out[f"{p}.self_attn.o_proj.weight"] = a(np.asarray(b["attn"]["out"]["kernel"]).T)
        out[f"{p}.input_layernorm.weight"] = a(b["attn_norm"]["scale"])
        out[f"{p}.post_attention_layernorm.weight"] = a(b["mlp_norm"]["scale"])
        for name in ("gate", "up", "down"):
            out[f"{p}.mlp.{name}_proj.weight"] = a(np.asarray(b["mlp"][name]["kernel"]).T)
    if not m.tie_embeddings:
        out["lm_head.weight"] = a(np.asarray(params["head"]["kernel"]).T)
    return out


def save(
    path: str | Path, model: ModelConfig, params: dict[str, Any], vocab_size: int, positions: int
) -> Path:
    """Write `config.json` and `model.safetensors` of our model into directory `path`."""
    path = Path(path).expanduser()
    config = hf_config(model, vocab_size, positions)
    tensors = to_tensors(model, params)
    path.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path / WEIGHTS_FILE), metadata={"format": "pt"})
    (path / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    return path


def is_hf_source(init_from: str | None) -> bool:
    return bool(init_from) and str(init_from).startswith(PREFIX)


def hf_path(init_from: str) -> Path:
    """The directory of `init_from=hf:<dir>`, absolute."""
    return Path(init_from[len(PREFIX) :]).expanduser().absolute()


def jax_to_numpy(params: dict[str, Any]) -> dict[str, Any]:
    """A parameter tree with every leaf as a host float32 array."""
    if isinstance(params, dict):
        return {k: jax_to_numpy(v) for k, v in params.items()}
    return np.asarray(params, np.float32)


def as_model(spec: HFModel, params: dict[str, Any], compute_dtype: str = "float32") -> Any:
    """The `scaling.model.transformer.Transformer` holding `params` (as `load` returns them)."""
    from flax import nnx

    from scaling.model.transformer import build_model

    model = build_model(
        dataclasses.replace(spec.model, compute_dtype=compute_dtype),
        spec.vocab_size,
        spec.max_positions,
        seed=0,
    )
    graphdef, state = nnx.split(model)
    nnx.replace_by_pure_dict(state, params)
    return nnx.merge(graphdef, state)
