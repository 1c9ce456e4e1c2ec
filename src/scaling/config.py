"""Config schemas (Hydra structured configs) and their validation.

Every entry point composes a `PretrainConfig` through Hydra, then calls `validate` before
anything is compiled: a bad value fails with one `ConfigError` line naming the key and value.
Architecture options left as `None` are filled from the chosen preset (`gpt2` or `llama`) by
`resolve_model`, so `model.arch=llama` switches every option at once while any single option can
still be overridden.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key and the value."""


ARCH_PRESETS: dict[str, dict[str, Any]] = {
    # GPT-2 (Radford et al. 2019): the shape of Hugging Face's GPT2LMHeadModel.
    "gpt2": dict(norm="layernorm", position="learned", mlp="gelu", bias=True, tie_embeddings=True),
    # Llama (Touvron et al. 2023): pre-RMSNorm, rotary positions, SwiGLU, no biases, untied head.
    "llama": dict(norm="rmsnorm", position="rope", mlp="swiglu", bias=False, tie_embeddings=False),
}
NORMS = ("layernorm", "rmsnorm")
POSITIONS = ("learned", "rope")
MLPS = ("gelu", "swiglu")
DTYPES = ("float32", "bfloat16", "float16")
ATTENTION_IMPLS = ("auto", "xla", "cudnn", "chunked")
CORPORA = ("synthetic", "text", "pystdlib", "memmap", "hf")
TOKENIZERS = ("byte", "bpe")
SCHEDULES = ("cosine", "wsd", "constant")
PROGRESS = ("auto", "bar", "lines", "off", "on")  # "on": the bar (an older name)
PARALLEL_STRATEGIES = ("auto", "single", "dp", "fsdp")
TRACKERS = ("tensorboard", "wandb", "off")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=+,-]*$")


def is_safe_run_name(name: str) -> bool:
    """One path component that cannot climb out of out_dir."""
    return bool(_SAFE_NAME.match(name)) and ".." not in name


@dataclass
class ModelConfig:
    """The transformer: its size, its architecture options, dtypes and attention kernel."""

    name: str = "custom"  # rung name from conf/model/, or "custom"
    arch: str = "gpt2"  # preset filling the options left as None below
    d_model: int = 96
    n_layers: int = 2
    n_heads: int = 3
    n_kv_heads: int | None = None  # key/value heads (grouped-query attention); None: n_heads
    d_ff: int | None = None  # None: 4*d (gelu), 8/3*d rounded up to a multiple of 32 (swiglu)
    norm: str | None = None
    position: str | None = None
    mlp: str | None = None
    bias: bool | None = None
    tie_embeddings: bool | None = None
    qk_norm: bool = False
    z_loss: float = 0.0  # coefficient of log(Z)^2 (PaLM); 0 disables
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5  # GPT-2's LayerNorm and HF Llama's RMSNorm default (1e-6 in Llama 2+)
    # Rows of the learned position table; None: data.seq_len. An imported GPT-2 keeps its own
    # (scaling.model.hf), so a run may use fewer positions than the model has.
    max_positions: int | None = None
    init_std: float = 0.02
    param_dtype: str = "float32"
    compute_dtype: str = "auto"  # auto: bfloat16 on accelerators, float32 on CPU
    attention: str = "auto"  # auto: cudnn on GPU with 16-bit compute, chunked on CPU, else xla
    remat: bool = False  # recompute block activations in the backward pass
    # > 0: the training loss fused with the LM head, this many tokens' logits at a time
    # (scaling.train.loss.fused_lm_loss), never the whole batch's; 0: the whole batch's at once
    loss_chunk_tokens: int = 0


@dataclass
class SyntheticConfig:
    """The embedded corpus: Zipf-distributed facts with known entropy (see data/synthetic.py)."""

    # 2^20: keeps loss falling to ~20M parameters (docs/synthetic_corpus.md)
    n_facts: int = 1_048_576
    zipf_exponent: float = 1.25
    fact_len: int = 6  # value tokens per fact
    noise: float = 0.1  # probability a value token is replaced by a uniform draw
    key_alphabet: int = 32
    value_alphabet: int = 64
    world_seed: int = 1234  # seeds the fact table, independent of the training seed


@dataclass
class TaskMixConfig:
    """Task-formatted text mixed into pre-training (scaling.data.taskmix); off at fraction 0."""

    tasks: list[str] = field(default_factory=list)  # conf/task/<name> names, or task kinds
    fraction: float = 0.0  # share of training rows replaced by solved train-split examples


@dataclass
class DataConfig:
    """The corpus, its tokenizer and sequence length, and the validation split."""

    corpus: str = "synthetic"
    tokenizer: str = "byte"
    bpe_vocab_size: int = 4096
    seq_len: int = 128
    paths: list[str] = field(default_factory=list)  # text/memmap/hf: files or globs
    val_paths: list[str] = field(default_factory=list)  # optional explicit validation files
    val_fraction: float = 0.05  # share held out for validation (by file where there are files)
    memmap_dtype: str = "uint16"
    vocab_size: int | None = None  # memmap: size of the pre-tokenised vocabulary
    hf_builder: str = "text"  # hf: dataset builder or hub name, loaded with datasets.load_dataset
    hf_split: str = "train"
    hf_text_field: str = "text"
    cache_dir: str = "~/.cache/scaling"  # BPE tokenisers and tokenised corpora
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    task_mix: TaskMixConfig = field(default_factory=TaskMixConfig)
    unique_tokens: int | None = None  # cap on distinct training tokens, repeated (data/repeat.py)
    corrupt_fraction: float = 0.0  # share of training rows replaced by noise (data/corrupt.py)


@dataclass
class TrainConfig:
    """The optimization: tokens, batch, schedule, AdamW, and the eval/log/checkpoint cadence."""

    tokens: int = 1_000_000  # D: training tokens (rounded up to whole steps)
    batch_size: int = 16  # sequences per optimizer step
    # Microbatches per step; batch_size must divide evenly. None: chosen for the device
    # (scaling.train.optim.microbatches: on a CPU, ~512-token microbatches once a batch
    # outgrows the cache; 1 on accelerators). Same step either way, to float32 rounding.
    grad_accum: int | None = None
    lr: float = 3e-3
    schedule: str = "cosine"
    warmup_tokens: int | None = None  # None: 5% of the run
    min_lr_ratio: float = 0.1  # final LR as a share of the peak (cosine, wsd)
    decay_fraction: float = 0.2  # wsd: share of the run spent decaying
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0  # global-norm clip; 0 disables
    eval_every: int = 50  # steps; the final step always evaluates
    # The validation sample: this many batches of 16 sequences (scaling.train.evaluate.VAL_ROWS),
    # the same sequences for every run on a corpus and seq_len, whatever its batch_size; the
    # record states its size (val_sequences, val_tokens_evaluated) and the loss's standard error.
    eval_batches: int = 8
    log_every: int = 10
    ckpt_every: int = 100  # steps; the final step always saves
    keep_ckpts: int = 2
    async_ckpt: bool = True
    stop_at_step: int | None = None  # stop early as if preempted (checkpoint kept, run resumable)
    # auto: a bar (tokens/s, loss, val loss, time left) when stderr is a terminal, else a line
    # of the same fields every progress_every_s seconds (logs, SLURM, pipes); bar; lines; off
    progress: str = "auto"
    progress_every_s: float = 30.0
    seed: int = 0


@dataclass
class ParallelConfig:
    """How a run spreads over devices (scaling.train.shard); it may change when a run resumes."""

    strategy: str = "auto"  # single, dp, fsdp; auto: single on one device, dp on more
    devices: int = -1  # how many of the visible devices; -1: all


@dataclass
class TrackingConfig:
    """Where a run's curves go (scaling.train.tracking); `tracking=wandb` picks its conf."""

    backend: str = "tensorboard"  # tensorboard (event files in the run dir), wandb, off
    project: str = "scaling"  # wandb project
    group: str | None = None  # wandb group; None: the sweep's name (hydra.sweeper.grid.name)


@dataclass
class PretrainConfig:
    """One pre-training run, written to <out_dir>/<run_name>."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    out_dir: str = "runs"
    run_name: str = "${model.name}-${data.corpus}-D${train.tokens}-s${train.seed}"


@dataclass
class TaskConfig:
    """A task for fine-tuning and few-shot evaluation (conf/task/<name>.yaml).

    Its problems come from scaling.tasks.generators.
    """

    name: str = "addition3"
    kind: str = "addition"  # one of scaling.tasks.generators.TASKS
    params: dict[str, Any] = field(default_factory=dict)  # kind-specific; unset keys: defaults
    n_eval: int = 2000  # distinct eval-split problems (fewer when the eval split is smaller)
    few_shot: int = 3  # solved train-split examples before each query
    seed: int = 0  # picks the eval problems and their shots; never the split


def source_name(init_from: str | None, model_name: str = "") -> str:
    """What a fine-tuning run starts from, for run names: the source run's name, or
    "scratch-<model>" (the model is named so that sizes trained from scratch stay apart)."""
    if init_from:
        return Path(str(init_from)).name
    return f"scratch-{model_name}" if model_name else "scratch"


# Resolved in run names: ${source_name:${init_from},${model.name}}.
if not OmegaConf.has_resolver("source_name"):
    OmegaConf.register_new_resolver("source_name", source_name)


@dataclass
class FinetuneConfig(PretrainConfig):
    """Fine-tuning (scaling.tasks.finetune): the pre-training fields, the task, the source run.

    With `init_from` set, the model (and data.seq_len) come from the source run's config.yaml;
    with None the same model trains from scratch on the task data (the baseline).
    `train.tokens` is the fine-tuning budget D_F; `train.tokens=0` evaluates without training.
    """

    task: TaskConfig = field(default_factory=TaskConfig)
    init_from: str | None = None  # a pre-training run dir; None: from scratch
    run_name: str = (
        "ft-${task.name}-D${train.tokens}"
        "-from-${source_name:${init_from},${model.name}}-s${train.seed}"
    )


def register_configs() -> None:
    """Register the schemas in Hydra's ConfigStore (called by the entry points)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name="pretrain_schema", node=PretrainConfig)
    store.store(name="finetune_schema", node=FinetuneConfig)


@typing.overload
def to_dataclass(cfg: DictConfig | PretrainConfig) -> PretrainConfig: ...
@typing.overload
def to_dataclass[Schema: PretrainConfig](
    cfg: DictConfig | Schema, schema: type[Schema]
) -> Schema: ...
def to_dataclass(
    cfg: DictConfig | PretrainConfig, schema: type[PretrainConfig] = PretrainConfig
) -> PretrainConfig:
    """A composed Hydra config as the typed dataclass of `schema` (interpolations resolved)."""
    if isinstance(cfg, schema):
        return cfg
    _refuse_unknown_keys(typing.cast(DictConfig, cfg), schema)
    merged = OmegaConf.merge(OmegaConf.structured(schema), cfg)
    obj = OmegaConf.to_object(merged)
    assert isinstance(obj, schema)
    return obj


def _refuse_unknown_keys(cfg: DictConfig, schema: type, prefix: str = "") -> None:
    """A key the schema lacks is a typo: Hydra's `+key=value` adds it to a structured config
    without complaint, and the merge into the schema would then drop it silently."""
    hints = typing.get_type_hints(schema)
    for key in cfg:
        name = prefix + str(key)
        if key not in hints:
            raise ConfigError(f"unknown key {name}{did_you_mean(str(key), list(hints), prefix)}")
        node = cfg._get_node(key)
        if dataclasses.is_dataclass(hints[key]) and isinstance(node, DictConfig):
            _refuse_unknown_keys(node, hints[key], f"{name}.")


def did_you_mean(key: str, keys: list[str], prefix: str = "") -> str:
    """ "; did you mean <prefix><close key>?" for up to 3 close matches of a mistyped key, or ""."""
    close = difflib.get_close_matches(key, keys, n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(prefix + c for c in close)}?" if close else ""


def run_dir_of(cfg: PretrainConfig) -> Path:
    """Where the run lives: <out_dir>/<run_name>, absolute (validate run_name first)."""
    return Path(cfg.out_dir).expanduser().absolute() / cfg.run_name


def to_dict(cfg: PretrainConfig) -> dict[str, Any]:
    """The config as nested plain dicts (as stored in config.yaml)."""
    return dataclasses.asdict(cfg)


def resolve_model(model: ModelConfig) -> ModelConfig:
    """Fill the options left as None from the preset; the result has no None but d_ff set."""
    _one_of("model.arch", model.arch, tuple(sorted(ARCH_PRESETS)))
    preset = ARCH_PRESETS[model.arch]
    filled = {k: (preset[k] if getattr(model, k) is None else getattr(model, k)) for k in preset}
    resolved = dataclasses.replace(model, **filled)
    if resolved.d_ff is None:
        if resolved.mlp == "swiglu":
            d_ff = -(-8 * resolved.d_model // 3)
            d_ff = -(-d_ff // 32) * 32
        else:
            d_ff = 4 * resolved.d_model
        resolved = dataclasses.replace(resolved, d_ff=d_ff)
    return resolved


def kv_heads(model: ModelConfig) -> int:
    """Key/value heads: `n_kv_heads`, or `n_heads` (plain multi-head attention) when None.
    Read through this, not resolved into the config, so old run dirs (no such key) resume."""
    return model.n_kv_heads or model.n_heads


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _one_of(key: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value in allowed:
        return
    close = difflib.get_close_matches(str(value), allowed, n=1, cutoff=0.6)
    mean = f"; did you mean {key}={close[0]}?" if close else ""
    raise ConfigError(f"{key}={value!r} is not one of {list(allowed)}{mean}")


def _positive(key: str, value: Any) -> None:
    _check(isinstance(value, int | float) and value > 0, f"{key}={value!r} must be positive")


def validate[Config: PretrainConfig](cfg: Config) -> Config:
    """Check every value that could fail later; return the config with the model resolved.

    Files named by the data config are checked when the corpus is built (`scaling.data`), which
    also happens before any compile.
    """
    m = resolve_model(cfg.model)
    for key in ("d_model", "n_layers", "n_heads", "d_ff"):
        _positive(f"model.{key}", getattr(m, key))
    _check(
        m.d_model % m.n_heads == 0,
        f"model.d_model={m.d_model} is not divisible by model.n_heads={m.n_heads}",
    )
    if m.n_kv_heads is not None:
        _positive("model.n_kv_heads", m.n_kv_heads)
        _check(
            m.n_heads % m.n_kv_heads == 0,
            f"model.n_heads={m.n_heads} is not divisible by model.n_kv_heads={m.n_kv_heads}",
        )
    _positive("model.norm_eps", m.norm_eps)
    if m.max_positions is not None:
        _check(
            m.max_positions >= cfg.data.seq_len,
            f"data.seq_len={cfg.data.seq_len} exceeds the model's "
            f"model.max_positions={m.max_positions}",
        )
    head_dim = m.d_model // m.n_heads
    if m.position == "rope":
        # Name what the user set: the width and heads, and where rope came from (an explicit
        # model.position, or the arch preset when it was left unset).
        rope = "model.position=rope" if cfg.model.position else f"model.arch={m.arch} (rope)"
        _check(
            head_dim % 2 == 0,
            f"model.d_model={m.d_model} / model.n_heads={m.n_heads} gives head dim {head_dim}; "
            f"{rope} needs an even head dim",
        )
    _one_of("model.norm", m.norm, NORMS)
    _one_of("model.position", m.position, POSITIONS)
    _one_of("model.mlp", m.mlp, MLPS)
    _one_of("model.param_dtype", m.param_dtype, DTYPES)
    _one_of("model.compute_dtype", m.compute_dtype, ("auto", *DTYPES))
    _one_of("model.attention", m.attention, ATTENTION_IMPLS)
    _check(m.z_loss >= 0, f"model.z_loss={m.z_loss} must be >= 0")
    _check(
        isinstance(m.loss_chunk_tokens, int) and m.loss_chunk_tokens >= 0,
        f"model.loss_chunk_tokens={m.loss_chunk_tokens!r} must be an integer >= 0",
    )
    _positive("model.init_std", m.init_std)
    _positive("model.rope_theta", m.rope_theta)

    d = cfg.data
    _one_of("data.corpus", d.corpus, CORPORA)
    _one_of("data.tokenizer", d.tokenizer, TOKENIZERS)
    _positive("data.seq_len", d.seq_len)
    _check(0 < d.val_fraction < 1, f"data.val_fraction={d.val_fraction} must be in (0, 1)")
    if d.tokenizer == "bpe":
        _check(d.bpe_vocab_size >= 257, f"data.bpe_vocab_size={d.bpe_vocab_size} must be >= 257")
        _check(d.corpus != "memmap", "data.tokenizer=bpe does not apply to data.corpus=memmap")
    if d.corpus in ("text", "memmap"):
        _check(len(d.paths) > 0, f"data.corpus={d.corpus} needs data.paths (files or globs)")
    if d.corpus == "memmap":
        _check(d.vocab_size is not None, "data.corpus=memmap needs data.vocab_size")
        _positive("data.vocab_size", d.vocab_size)
        _one_of("data.memmap_dtype", d.memmap_dtype, ("uint8", "uint16", "uint32", "int32"))
    if d.unique_tokens is not None:
        _positive("data.unique_tokens", d.unique_tokens)
    _check(
        isinstance(d.corrupt_fraction, int | float) and 0 <= d.corrupt_fraction < 1,
        f"data.corrupt_fraction={d.corrupt_fraction!r} must be in [0, 1)",
    )
    if d.corpus == "synthetic":
        s = d.synthetic
        for key in ("n_facts", "fact_len", "key_alphabet", "value_alphabet", "zipf_exponent"):
            _positive(f"data.synthetic.{key}", getattr(s, key))
        _check(0 <= s.noise <= 1, f"data.synthetic.noise={s.noise} must be in [0, 1]")
        _check(
            s.key_alphabet + s.value_alphabet <= 256,
            "data.synthetic.key_alphabet + value_alphabet must fit in 256 byte values, got "
            f"{s.key_alphabet} + {s.value_alphabet}",
        )
        _check(
            d.tokenizer == "byte",
            f"data.corpus=synthetic emits bytes; data.tokenizer={d.tokenizer!r}",
        )

    t = cfg.train
    for key in ("tokens", "batch_size", "lr", "eval_every", "eval_batches"):
        _positive(f"train.{key}", getattr(t, key))
    for key in ("log_every", "ckpt_every", "keep_ckpts"):
        _positive(f"train.{key}", getattr(t, key))
    if t.grad_accum is not None:
        _positive("train.grad_accum", t.grad_accum)
        _check(
            t.batch_size % t.grad_accum == 0,
            f"train.batch_size={t.batch_size} is not divisible by train.grad_accum={t.grad_accum}",
        )
    _one_of("train.schedule", t.schedule, SCHEDULES)
    _one_of("train.progress", t.progress, PROGRESS)
    _positive("train.progress_every_s", t.progress_every_s)
    _check(0 <= t.min_lr_ratio <= 1, f"train.min_lr_ratio={t.min_lr_ratio} must be in [0, 1]")
    _check(0 < t.decay_fraction <= 1, f"train.decay_fraction={t.decay_fraction} must be in (0, 1]")
    _check(t.weight_decay >= 0, f"train.weight_decay={t.weight_decay} must be >= 0")
    _check(t.grad_clip >= 0, f"train.grad_clip={t.grad_clip} must be >= 0")
    _check(0 <= t.beta1 < 1, f"train.beta1={t.beta1} must be in [0, 1)")
    _check(0 <= t.beta2 < 1, f"train.beta2={t.beta2} must be in [0, 1)")
    if t.warmup_tokens is not None:
        _check(t.warmup_tokens >= 0, f"train.warmup_tokens={t.warmup_tokens} must be >= 0")
    if t.stop_at_step is not None:
        _positive("train.stop_at_step", t.stop_at_step)

    _one_of("tracking.backend", cfg.tracking.backend, TRACKERS)
    p = cfg.parallel
    _one_of("parallel.strategy", p.strategy, PARALLEL_STRATEGIES)
    _check(
        p.devices == -1 or p.devices >= 1,
        f"parallel.devices={p.devices} must be -1 (all) or positive",
    )
    _check(bool(cfg.out_dir), "out_dir must not be empty")
    _check(
        is_safe_run_name(cfg.run_name),
        f"run_name={cfg.run_name!r} must be one path component of letters, digits and ._=+,-",
    )
    return dataclasses.replace(cfg, model=m)


# Train settings each run of a group may set for itself (scaling.train.loop gives each run its
# own schedule, data order and cadence); every other setting must be equal across the group.
PER_RUN_TRAIN_KEYS = (
    "tokens",
    "lr",
    "schedule",
    "warmup_tokens",
    "min_lr_ratio",
    "decay_fraction",
    "seed",
    "eval_every",
    "eval_batches",
    "log_every",
    "ckpt_every",
    "keep_ckpts",
    "async_ckpt",
    "stop_at_step",
    "progress",
)


def group_key(cfg: PretrainConfig) -> str:
    """What runs trained together must share: every setting but the per-run ones and names."""
    shared = to_dict(cfg)
    for key in ("run_name", "out_dir"):
        shared.pop(key)
    for key in PER_RUN_TRAIN_KEYS:
        shared["train"].pop(key)
    return json.dumps(shared, sort_keys=True)
