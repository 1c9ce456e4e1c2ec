"""Fine-tuning: continue any pre-training run on task data with a token budget D_F.

`finetune(cfg)` trains through the training loop (`scaling.train.loop`) with a task corpus whose
batches carry an answer mask, so the loss counts answer tokens only; what differs from
pre-training comes in as `scaling.train.run.Hooks`. With `cfg.init_from` set, only the
parameters come from the source run's latest checkpoint (`scaling.train.source`); the optimizer
state and the schedule are new. With `init_from=None` the same model trains from its random
initialisation on the same data (the from-scratch baseline). `train.tokens=0` trains nothing
and only evaluates (pre-train-only, few-shot with `task.few_shot` shots), so the three arms of
a comparison are one function with three configs.

Every evaluation is one teacher-forced pass over the task's fixed eval set: the answer-only
loss plus the task metrics of `scaling.tasks.metrics` (greedy argmax at the answer positions, so
exact match equals greedy decoding's), in metrics.jsonl rows and record.json (`task_*`). A row at
step 0 holds the model as it starts, before any update.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from pathlib import Path
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from scaling import records
from scaling.config import (
    ConfigError,
    DataConfig,
    FinetuneConfig,
    ModelConfig,
    resolve_model,
    run_dir_of,
    to_dict,
    validate,
)
from scaling.data.corpus import Corpus
from scaling.model import hf
from scaling.tasks import metrics
from scaling.tasks.examples import PAD_ID
from scaling.tasks.generators import build_task
from scaling.tasks.task import Task
from scaling.train import loop, rundir
from scaling.train.evaluate import mean_and_se
from scaling.train.run import Hooks, Trainer, enable_compilation_cache, open_run
from scaling.train.source import BYTE_VOCAB, Source, load_source, restore_params

# Model settings that change how it runs, not its parameters: a fine-tune may set its own.
RUNTIME_MODEL_KEYS = ("compute_dtype", "attention", "remat", "z_loss", "loss_chunk_tokens")
Batch = tuple[np.ndarray, np.ndarray]  # tokens (B, T+1) int32, answer_mask (B, T+1) bool


class TaskCorpus:
    """A task as the training loop's corpus: (tokens, answer_mask) batches, deterministic by step.

    `train_batch` draws train-split problems (`Task.train_batch`); `val_batches` is the task's
    whole fixed eval set in batches of the training batch size, the last one padded with rows
    that have no answer (they count in neither the loss nor the metrics).
    """

    tokenizer = "byte"

    def __init__(self, task: Task, seed: int, vocab_size: int = BYTE_VOCAB):
        # A model with a larger vocabulary (one imported from HF) reads the bytes as its ids 0-255.
        self.task, self.seed, self.vocab_size = task, seed, vocab_size
        self.name = f"task:{task.name}"
        self._eval_set = task.eval_set()

    def train_batch(self, step: int, batch_size: int, seq_len: int) -> Batch:
        batch = self.task.train_batch(self.seed, step, batch_size, seq_len)
        return batch.tokens, batch.answer_mask

    def val_batches(self, n_batches: int, batch_size: int, seq_len: int) -> list[Batch]:
        """The whole eval set, whatever n_batches: task metrics need every eval problem."""
        full = self.task.batch(self._eval_set, seq_len)
        rows = -(-len(self._eval_set) // batch_size) * batch_size
        tokens = np.full((rows, seq_len + 1), PAD_ID, dtype=np.int32)
        mask = np.zeros((rows, seq_len + 1), dtype=bool)
        tokens[: len(full.tokens)], mask[: len(full.answer_mask)] = full.tokens, full.answer_mask
        return [
            (tokens[i : i + batch_size], mask[i : i + batch_size])
            for i in range(0, rows, batch_size)
        ]

    def entropy_nats_per_token(self, seq_len: int) -> float | None:
        return None

    def bytes_per_token(self) -> float:
        return 1.0

    def token_accounting(self, steps: int, batch_size: int, seq_len: int) -> dict[str, Any]:
        # D_F counts the sequence positions trained on, as pre-training does (padding included).
        return {"tokens_seen": steps * batch_size * seq_len, "unique_tokens": None, "epochs": None}

    def describe(self) -> dict[str, Any]:
        cfg = self.task.cfg
        return {
            "corpus": self.name,
            "tokenizer": self.tokenizer,
            "vocab_size": self.vocab_size,
            "task": dataclasses.asdict(cfg),
            "n_eval": len(self._eval_set),
        }

    def require(self, batch_size: int, seq_len: int) -> None:
        """ConfigError (naming the task) when a few-shot example does not fit seq_len."""
        self.train_batch(0, batch_size, seq_len)
        self.val_batches(1, batch_size, seq_len)


def prepare(cfg: FinetuneConfig) -> tuple[FinetuneConfig, Source | None]:
    """Validate; with init_from, take the model and data.seq_len from the source run."""
    _check_task_fields(cfg)
    source = load_source(cfg.init_from) if cfg.init_from else None
    if source is not None and source.hf:
        # An HF model brings its architecture, not a corpus: the run's own data.seq_len stands.
        cfg = dataclasses.replace(
            cfg, init_from=f"{hf.PREFIX}{source.run_dir}", model=_source_model(cfg.model, source)
        )
    elif source is not None:
        build_task(cfg.task).check_source(source.config.data)  # e.g. facts of another world
        cfg = dataclasses.replace(
            cfg,
            init_from=str(source.run_dir),
            model=_source_model(cfg.model, source),
            data=_source_data(cfg.data, source),
        )
    # train.tokens=0 (evaluate only) is valid here; validate checks the rest as for pretrain.
    budget = max(cfg.train.tokens, 1)
    checked = validate(
        dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, tokens=budget))
    )
    return dataclasses.replace(checked, train=cfg.train), source


def _check_task_fields(cfg: FinetuneConfig) -> None:
    tokens = cfg.train.tokens
    if not (isinstance(tokens, int) and tokens >= 0):
        raise ConfigError(f"train.tokens={tokens!r} must be >= 0 (0: evaluate only)")


def _source_model(model: ModelConfig, source: Source) -> ModelConfig:
    theirs = source.config.model
    if model == ModelConfig():  # no model given: the source's
        return theirs
    mine = resolve_model(model)
    skip = {"name", *RUNTIME_MODEL_KEYS}
    differing = [
        f.name
        for f in dataclasses.fields(ModelConfig)
        if f.name not in skip and getattr(mine, f.name) != getattr(theirs, f.name)
    ]
    if differing:
        key = differing[0]
        raise ConfigError(
            f"model.{key}={getattr(mine, key)!r} differs from the init_from run's "
            f"{getattr(theirs, key)!r} ({source.run_dir}); leave model unset to use its model"
        )
    return dataclasses.replace(theirs, **{k: getattr(mine, k) for k in RUNTIME_MODEL_KEYS})


def _source_data(data: DataConfig, source: Source) -> DataConfig:
    seq_len = source.config.data.seq_len
    if data.seq_len not in (DataConfig().seq_len, seq_len):
        raise ConfigError(
            f"data.seq_len={data.seq_len} differs from the init_from run's {seq_len} "
            f"({source.run_dir}); leave it unset"
        )
    return dataclasses.replace(data, seq_len=seq_len)


# ---------------------------------------------------------------- evaluation


@functools.lru_cache(maxsize=16)  # one jitted function per model shape (train.make_eval_step)
def make_task_eval_step(graphdef: Any) -> Any:
    """One teacher-forced pass: greedy predictions, target log-probs and sum_v p_v^2 (Brier)."""

    def step(params: Any, tokens_BxTp1: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        model = nnx.merge(graphdef, params)
        logits_BxTxV = model(tokens_BxTp1[:, :-1]).astype(jnp.float32)
        logp_BxTxV = jax.nn.log_softmax(logits_BxTxV, axis=-1)
        target_BxT = jnp.take_along_axis(logp_BxTxV, tokens_BxTp1[:, 1:, None], axis=-1)[..., 0]
        sum_sq_BxT = jnp.sum(jnp.exp(2.0 * logp_BxTxV), axis=-1)
        return jnp.argmax(logits_BxTxV, axis=-1), target_BxT, sum_sq_BxT

    return jax.jit(step)


def evaluate_task(eval_step: Any, params: Any, batches: list[Batch]) -> dict[str, Any]:
    """Answer-only val loss and the task metrics (means) of one pass over the eval batches."""
    outs = jax.device_get([eval_step(params, jnp.asarray(tokens)) for tokens, _ in batches])
    pred, logprob, sum_sq = (np.concatenate(parts) for parts in zip(*outs, strict=True))
    tokens = np.concatenate([t for t, _ in batches])[:, 1:]
    mask = np.concatenate([m for _, m in batches])[:, 1:]
    keep = mask.any(axis=1)  # padding rows have no answer
    pred, logprob, sum_sq, tokens, mask = (x[keep] for x in (pred, logprob, sum_sq, tokens, mask))
    # Mean over every answer token; its standard error with the problem as the sampled unit.
    val_loss, se = mean_and_se(-(logprob * mask).sum(axis=1), mask.sum(axis=1))
    summary = metrics.summarise(
        metrics.per_example(pred, tokens, mask, logprob, sum_sq_prob=sum_sq)
    )
    row: dict[str, Any] = {
        "val_loss": val_loss,
        "val_loss_se": se,
        "val_bpb": val_loss / math.log(2),
    }
    row.update({f"task_{m}": summary[m]["mean"] for m in metrics.METRICS})
    row.update(task_n_eval=summary["n"], task_resolution=summary["resolution"])
    return row


# ---------------------------------------------------------------- the run


def finetune_hooks(cfg: FinetuneConfig, source: Source | None, start: tuple | None) -> Hooks:
    """How a fine-tune differs from pre-training: masked batches, the task eval (also of the
    starting model, at step 0), the source's parameters, and its record fields.

    `start` is the source's (step, params) when already read (`restore_params`).
    """
    unread = {"start": start}

    def restored(trainer: Trainer, step: int) -> None:
        if source is None:
            return
        if step > 0:  # this run's own checkpoint: resume it
            previous = records.read_record(trainer.run_dir) or {}
            trainer.record["source_step"] = previous.get("source_step")
            return
        source_step, params = unread.pop("start", None) or restore_params(source)
        _check_same_tree(params, trainer.state.params, source.run_dir)
        # Parameters only: the optimizer state and schedule stay this run's fresh ones.
        trainer.state = trainer.state._replace(params=trainer.layout.place(params))
        trainer.record["source_step"] = source_step

    def started(trainer: Trainer, step: int) -> None:
        if step == 0:  # the model as it starts, before any update
            fields = trainer.evaluate(trainer.state.params)
            row = {"step": 0, "tokens": 0, **fields, "time": time.time()}
            records.append_metrics(trainer.run_dir, row)

    return Hooks(
        masked=True,
        make_eval_step=lambda graphdef, layout: make_task_eval_step(graphdef),
        evaluate=lambda trainer, params: evaluate_task(
            trainer.eval_step, params, trainer.val_batches
        ),
        record=functools.partial(_finetune_record, cfg, source),
        restored=restored,
        started=started,
        finished=_task_fields,
    )


def _finetune_record(cfg: FinetuneConfig, source: Source | None, trainer: Trainer) -> dict:
    """The record fields of a fine-tune: its task, its source, the eval set's size."""
    src = source.record if source else {}
    fields: dict[str, Any] = {}
    if cfg.train.tokens == 0:
        fields.update(total_steps=0, warmup_steps=0)
    # The task's whole eval set: its problems and their answer tokens (padding rows aside).
    masks_ExT = np.concatenate([np.asarray(m) for _, m in trainer.val_batches])[:, 1:]
    return {
        **fields,
        "val_sequences": int(masks_ExT.any(axis=1).sum()),
        "val_tokens_evaluated": int(masks_ExT.sum()),
        "task": cfg.task.name,
        "task_kind": cfg.task.kind,
        "few_shot": cfg.task.few_shot,
        "init_from": cfg.init_from,
        "source_run_name": src.get("run_name"),
        "source_model": src.get("model"),
        "source_n_params_nonembedding": src.get("n_params_nonembedding"),
        "source_n_params_total": src.get("n_params_total"),
        "source_tokens": src.get("tokens_seen"),
        "source_status": src.get("status"),
        "source_step": None,
        "pretrain_final_val_loss": src.get("final_val_loss"),
    }


def _task_fields(trainer: Trainer, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The end-of-run record fields of a fine-tune: the last and the first task eval's (every
    eval row is a task eval, so `end_record`'s final_val_* are the last one's already)."""
    evals = [r for r in rows if "task_exact_match" in r]
    fields: dict[str, Any] = {}
    if evals:
        fields.update({k: v for k, v in evals[-1].items() if k.startswith("task_")})
    initial = [r for r in evals if r["step"] == 0]
    if initial:
        fields.update(
            {
                f"initial_{k}": v
                for k, v in initial[0].items()
                if k.startswith(("task_", "val_loss"))
            }
        )
    return fields


def _check_same_tree(restored: Any, expected: Any, where: Path) -> None:
    shapes = jax.tree.map(lambda x: (x.shape, x.dtype), restored)
    wanted = jax.tree.map(lambda x: (x.shape, x.dtype), expected)
    if shapes != wanted:
        raise ConfigError(f"init_from: the parameters in {where} do not fit this model")


def _check_same_finetune(run_dir: Path, config: dict[str, Any]) -> None:
    """check_same_run, plus the fields it does not compare (the task's absence, init_from)."""
    if not (run_dir / rundir.CONFIG_FILE).exists():
        return
    old = rundir.read_config(run_dir)
    if "task" not in old or old.get("init_from") != config["init_from"]:
        raise ConfigError(
            f"{run_dir} holds a run with different settings (task or init_from); "
            "choose another run_name or out_dir"
        )
    rundir.check_same_run(run_dir, config)


def finetune(cfg: FinetuneConfig) -> dict[str, Any]:
    """Fine-tune (or, with train.tokens=0, only evaluate) in <out_dir>/<run_name>; its record."""
    cfg, source = prepare(cfg)
    enable_compilation_cache(cfg.data.cache_dir)
    run_dir = run_dir_of(cfg)
    _check_same_finetune(run_dir, to_dict(cfg))
    # A new run reads its source first: a damaged one fails in one line before any compile.
    new = source is not None and records.read_record(run_dir) is None
    start = restore_params(source) if source is not None and new else None
    vocab = source.vocab_size if source else BYTE_VOCAB
    hooks = finetune_hooks(cfg, source, start)
    with open_run(
        cfg,
        run_dir,
        # Its batches are (tokens, answer_mask) pairs, which the loop takes under `hooks.masked`.
        make_corpus=lambda: cast(
            Corpus, TaskCorpus(build_task(cfg.task), seed=cfg.train.seed, vocab_size=vocab)
        ),
        hooks=hooks,
    ) as opened:
        if isinstance(opened, dict):
            return opened
        return loop.evaluate_only(opened) if cfg.train.tokens == 0 else loop.train([opened])[0]
