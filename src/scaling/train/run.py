"""One run: what it needs to train (model, optimizer, data, checkpoints, record) and its run dir.

A `Trainer` holds a run's state and its place in the loop (`scaling.train.loop`, which trains
K >= 1 of them). What a kind of run changes comes in as `Hooks` (fine-tuning's task eval, its
source's parameters, its record fields), never as a subclass. `open_run` makes a run dir ready
and records the failure of whatever runs inside it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax
import numpy as np

from scaling import records
from scaling.config import PretrainConfig, to_dict
from scaling.data.corpus import Corpus
from scaling.model.transformer import build_model
from scaling.train import rundir, shard, tracking
from scaling.train.checkpoint import Checkpointer
from scaling.train.evaluate import evaluate, make_eval_step, mean_and_se, validation_sample
from scaling.train.optim import Plan, lr_table, make_optimizer, make_schedule, microbatches
from scaling.train.record import static_record
from scaling.train.step import init_state

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Hooks:
    """What a kind of run changes in the loop; every default is pre-training's."""

    # Batches are (tokens, answer_mask) pairs: the step is compiled for the mask too.
    masked: bool = False
    # The eval step for the run's graphdef and layout (default: `make_eval_step`).
    make_eval_step: Callable[[Any, shard.Layout], Any] | None = None
    # The eval fields of a metrics row for these parameters (default: `Trainer.evaluate_lm`).
    evaluate: Callable[[Trainer, Any], dict[str, Any]] | None = None
    # Fields the run's record has beyond pre-training's, or in place of them, from the start.
    record: Callable[[Trainer], dict[str, Any]] | None = None
    # After the run's own checkpoint is restored at this step (0: none), before it trains.
    restored: Callable[[Trainer, int], None] | None = None
    # Once the steps are compiled, before the first one, at this step.
    started: Callable[[Trainer, int], None] | None = None
    # The record's fields beyond the loop's when the run ends, from its metrics rows.
    finished: Callable[[Trainer, list[dict[str, Any]]], dict[str, Any]] | None = None


PRETRAIN = Hooks()


class Trainer:
    """Holds what one run needs: model, optimizer, data, checkpoints, and its record; and,
    while the loop trains it, its place there (step, pending metrics, how it ended)."""

    def __init__(self, cfg: PretrainConfig, corpus: Corpus, run_dir: Path, hooks: Hooks = PRETRAIN):
        self.cfg, self.corpus, self.run_dir, self.hooks = cfg, corpus, run_dir, hooks
        t, seq_len = cfg.train, cfg.data.seq_len
        self.plan = Plan.from_config(t, seq_len)
        self.schedule = make_schedule(t, self.plan)
        self.tx = make_optimizer(t, self.schedule)
        self.lr_S = np.asarray(lr_table(self.schedule, self.plan.total_steps))  # per step
        self.layout = shard.make_layout(cfg.parallel, t.batch_size, t.grad_accum)
        self.grad_accum = microbatches(
            t, cfg.model, corpus.vocab_size, seq_len, self.layout.n_devices
        )
        self.graphdef, self.state = init_state(
            lambda: build_model(cfg.model, corpus.vocab_size, seq_len, seed=t.seed),
            self.tx,
            self.layout,
        )
        self.eval_step = (hooks.make_eval_step or make_eval_step)(self.graphdef, self.layout)
        val, self.val_sequences = validation_sample(
            corpus, t.eval_batches, seq_len, self.layout.n_devices
        )
        self.val_batches = jax.tree.map(self.layout.put_batch, val)
        self.ckpt = Checkpointer(run_dir / rundir.CKPT_DIR, t.keep_ckpts, t.async_ckpt)
        self.record = static_record(self)
        self.tracker: tracking.Tracker | None = None  # opened by `loop._begin`, once resumed
        # The run's place in the loop (scaling.train.loop).
        self.step = 0  # the last step taken (the record of a run stopped at once says it)
        self.stop = self.plan.total_steps
        self.best_val = math.inf
        # Metrics since the last row: (a step's metrics, this run's index in them or None).
        self.pending: list[tuple[dict, int | None]] = []
        self.steady_steps = 0
        self.end: tuple[str, str | None] | None = None  # (status, reason) once it has ended
        self.losses: tuple[float | None, float | None] = (None, None)  # latest (train, val)
        self.final: dict[str, Any] | None = None  # its record once ended

    def restore(self) -> int:
        """Restore the latest checkpoint (and the steps of a window a stop cut short, as
        `pending`); the step it resumes from, 0 for a new run. Calls `hooks.restored`."""
        restored = self.ckpt.restore_latest(self.state)
        self.pending = []
        if restored is None:
            records.truncate_metrics(self.run_dir, 0)
            step = 0
        else:
            step, self.state = restored
            log.info("resuming %s from step %d", self.run_dir.name, step)
            cut = [
                r
                for r in records.read_metrics(self.run_dir)
                if r["step"] == step and "partial" in r
            ]
            self.pending = [(m, None) for m in unwindow(cut[-1]["partial"])] if cut else []
            records.truncate_metrics(self.run_dir, step)  # keeps the partial row until the end
        if self.hooks.restored is not None:
            self.hooks.restored(self, step)
        self.step = step
        return step

    def open_tracker(self, start_step: int) -> None:
        """The run's tracker (train.tracking), its id in the record so a resume continues it."""
        self.tracker = tracking.open_tracker(self.cfg, self.run_dir, start_step)
        if self.tracker is not None:
            self.record["tracker"] = self.tracker.describe()

    def close(self) -> None:
        """Close the tracker and the checkpointer (waiting for its writes)."""
        if self.tracker is not None:
            self.tracker.close()
            self.tracker = None
        self.ckpt.close()

    def append(self, row: dict[str, Any]) -> None:
        """A metrics row to metrics.jsonl and to the tracker."""
        records.append_metrics(self.run_dir, row)
        if self.tracker is not None:
            self.tracker.log(row)

    def evaluate(self, params: Any) -> dict[str, Any]:
        """The eval fields of a metrics row for `params` (`hooks.evaluate`, else `evaluate_lm`)."""
        if self.hooks.evaluate is not None:
            return self.hooks.evaluate(self, params)
        return self.evaluate_lm(params)

    def evaluate_lm(self, params: Any) -> dict[str, Any]:
        """The validation sample's loss, its standard error, and its bits per byte."""
        ce_E = evaluate(self.eval_step, params, self.val_batches)
        ce_E = ce_E[: self.val_sequences]  # without the padding rows
        val_loss, se = mean_and_se(ce_E, np.ones_like(ce_E))
        return {"val_loss": val_loss, "val_loss_se": se, "val_bpb": self.bits_per_byte(val_loss)}

    def bits_per_byte(self, loss_nats: float) -> float | None:
        """None where the bytes behind a token are unknown (pre-tokenised corpora)."""
        bytes_per_token = self.record["bytes_per_token"]
        return loss_nats / math.log(2) / bytes_per_token if bytes_per_token else None

    def best_val_so_far(self) -> float:
        """The lowest validation loss logged after a step (a row at step 0 is the start)."""
        rows = records.read_metrics(self.run_dir)
        vals = [r["val_loss"] for r in rows if r["step"] > 0 and "val_loss" in r]
        return min(vals, default=math.inf)

    def log_row(self, fetched: list[dict]) -> dict[str, Any]:
        """The metrics row at `self.step` of the steps since the last one (on the host)."""
        return {
            "step": self.step,
            "tokens": self.step * self.plan.tokens_per_step,
            "lr": float(self.lr_S[self.step - 1]),
            "train_loss": float(np.mean([m["loss"] for m in fetched])),
            "train_ce": float(np.mean([m["ce"] for m in fetched])),
            "grad_norm": float(fetched[-1]["grad_norm"]),
            "time": time.time(),
        }


def window(fetched: list[dict]) -> dict[str, list[float]]:
    """The per-step metrics of a log window, for a metrics row (JSON)."""
    return {key: [float(m[key]) for m in fetched] for key in ("loss", "ce", "grad_norm")}


def unwindow(window: dict[str, list[float]]) -> list[dict]:
    """A window's per-step metrics as the step returned them."""
    # float32, as the step returned them: the window's mean is then the same to the bit.
    n = len(window["loss"])
    return [{key: np.float32(values[i]) for key, values in window.items()} for i in range(n)]


@contextlib.contextmanager
def open_run(
    cfg: PretrainConfig,
    run_dir: Path,
    make_corpus: Callable[[], Corpus],
    hooks: Hooks = PRETRAIN,
) -> Iterator[Trainer | dict[str, Any]]:
    """The run dir made ready to train: its Trainer (with `hooks`), or the record of a run
    already complete.

    A completed run is returned as recorded (its corpus is never built); otherwise the corpus
    is checked, the config written, and an exception inside leaves a failed record with its
    reason. Only the holder of the run dir's lock writes it (a second worker waits, see
    rundir.hold); the lock is held while open. A sweep job opens several at once.
    """
    previous = _completed(run_dir)
    if previous is not None:
        yield previous
        return
    # A layout the devices cannot hold fails before anything is built or written.
    shard.make_layout(cfg.parallel, cfg.train.batch_size, cfg.train.grad_accum)
    corpus = make_corpus()
    corpus.require(cfg.train.batch_size, cfg.data.seq_len)
    run_dir.mkdir(parents=True, exist_ok=True)
    with rundir.hold(run_dir):
        previous = _completed(run_dir)  # by a worker that held the lock before us
        if previous is not None:
            yield previous
            return
        rundir.check_same_run(run_dir, to_dict(cfg))  # that worker may have had other settings
        rundir.write_config(run_dir, to_dict(cfg))
        trainer = Trainer(cfg, corpus, run_dir, hooks)
        try:
            yield trainer
        except Exception as err:
            # Keep what the run had written; say why it failed so a sweep can go on and report it.
            records.write_record(run_dir, rundir.failed_record(trainer.record, err))
            raise


def _completed(run_dir: Path) -> dict[str, Any] | None:
    previous = rundir.completed_record(run_dir)
    if previous is not None:
        log.info("%s is already complete", run_dir)
    return previous


def enable_compilation_cache(cache_dir: str) -> None:
    """Persist compiled steps across processes: each distinct shape compiles once per machine.

    JAX_COMPILATION_CACHE_DIR, when set, wins over the configured cache dir.
    """
    if jax.config.jax_compilation_cache_dir:
        return
    directory = Path(cache_dir).expanduser() / "jax"
    jax.config.update("jax_compilation_cache_dir", str(directory))
    # Small models compile in well under a second; cache those too.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
