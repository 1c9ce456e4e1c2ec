"""Many small models at once: runs of one shape trained together, one jitted step for all.

A small rung leaves an accelerator mostly idle, so K runs that share a model shape and an
optimizer structure (`scaling.sweep.grid.group_key`) are stacked, every state leaf with a leading
axis K, and one `jax.vmap` of the single-run step (`scaling.train.trainer.make_train_step`)
advances all
of them per dispatch. Each run keeps its own seed (init and data order), learning rate, schedule
and token budget: its schedule is tabulated per step and read at the optimizer's own step count,
so each slice of the vmapped step computes what the run's own step would. A run that ends
(finished, stopped, diverged) is finalised in its own run dir and dropped from the stack, which
is recompiled for the K left, so runs of different lengths waste no steps.

Every run writes its own run dir exactly as `scaling.train.trainer.pretrain` does (config.yaml,
record.json, metrics.jsonl, its own orbax checkpoints, which the single-run path restores too),
with `group_id`, `group_size` and `group_runs` added to the record. Each run's bookkeeping is a
`scaling.train.trainer.Trainer`, so records, evaluation and checkpoints come from the same code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import signal
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from omegaconf import OmegaConf

from scaling import records
from scaling.config import ConfigError, PretrainConfig, TrainConfig, validate
from scaling.sweep.groups import group_key
from scaling.train import rundir
from scaling.train.progress import Progress
from scaling.train.rundir import record_failure
from scaling.train.signals import SignalWatch, end_status
from scaling.train.trainer import (
    Trainer,
    TrainState,
    _window,
    lr_table,
    make_train_step,
    open_pretrain,
)

log = logging.getLogger(__name__)


def make_group_step(graphdef: Any, train: TrainConfig, z_loss: float, grad_accum: int) -> Any:
    """The single-run step vmapped over (state, batch, lr table); the stacked state is donated.

    `train` gives the settings the runs share (`group_key`); each run's learning rate comes
    from its own row of the table, indexed by its optimizer's step count.
    """

    def one(state: TrainState, batch_BxTp1: jax.Array, lr_S: jax.Array) -> tuple:
        # The run's step count is its optimizer's count: the row of its table to read.
        step = make_train_step(graphdef, train, z_loss, grad_accum)
        return step(state, lr_S[state["step"]], batch_BxTp1)

    return jax.jit(jax.vmap(one), donate_argnums=0)


def stack(trees: Sequence[Any]) -> Any:
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def take(stacked: Any, index: int | np.ndarray) -> Any:
    """Run `index` of a stacked tree (an int), or the stack of the runs listed (an array)."""
    return jax.tree.map(lambda x: x[index], stacked)


@dataclasses.dataclass
class _Run:
    """One run's place in the group loop: its Trainer and what its own loop would hold."""

    trainer: Trainer
    step: int
    stop: int
    best_val: float
    # Metrics since the last row: (the group step's, this run's index in them) or (its own, None).
    pending: list[tuple[dict, int | None]] = dataclasses.field(default_factory=list)
    steady_steps: int = 0
    end: tuple[str, str | None] | None = None  # (status, reason) once it has ended
    losses: tuple[float | None, float | None] = (None, None)  # latest logged (train, val)
    record: dict[str, Any] | None = None


class GroupTrainer:
    """Trains several Trainers' runs as one stacked state; each keeps its own run dir."""

    def __init__(self, trainers: list[Trainer]):
        self.trainers = trainers
        first = trainers[0]
        if first.layout.mesh is not None:
            raise ConfigError(
                f"parallel.strategy={first.layout.strategy}: runs are grouped on one device only"
            )
        self.step_fn = make_group_step(
            first.graphdef, first.cfg.train, first.cfg.model.z_loss, first.grad_accum
        )
        self.n_steps = max(t.plan.total_steps for t in trainers)
        names = [t.cfg.run_name for t in trainers]
        group_id = hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()[:12]
        for t in trainers:
            t.record.update(group_id=group_id, group_size=len(trainers), group_runs=names)
        self.compile_s = 0.0
        self._compiled: dict[int, Any] = {}

    def run(self) -> list[dict[str, Any]]:
        """Train every run to its end; their records, in the order of the trainers."""
        runs: list[_Run] = []
        # Watched from the start, as a single run is (Trainer.run).
        watch = SignalWatch(on_abort=lambda: _record_abort(runs))
        progress = None
        try:
            for t in self.trainers:
                start = t.at_step = t._restore()
                t._open_tracker(start)
                t.record.update(resumed_from_step=start or None)
                records.write_record(t.run_dir, {**t.record, **t._progress_fields(start)})
                stop = min(t.plan.total_steps, t.cfg.train.stop_at_step or t.plan.total_steps)
                run = _Run(t, start, stop, t._best_val_so_far())
                # The steps of a window a stop cut short.
                run.pending = [(m, None) for m in t.carried]
                runs.append(run)
            wall_start = time.perf_counter()
            self._compile_eval()
            first = self.trainers[0]
            tokens_per_step = first.plan.tokens_per_step
            progress = Progress(
                first.cfg.train.progress,
                first.cfg.train.progress_every_s,
                f"{len(runs)} runs of {first.cfg.model.name}",
                max(r.stop for r in runs),
                min(r.step for r in runs),
                sum(r.stop for r in runs) * tokens_per_step,
                sum(r.step for r in runs) * tokens_per_step,
            )
            self._loop(runs, watch, progress, wall_start)
        except Exception as err:
            ended = {id(run.trainer) for run in runs if run.record is not None}
            for t in self.trainers:
                if id(t) not in ended:
                    failed = {"status": records.STATUS_FAILED, "reason": rundir.failure_reason(err)}
                    records.write_record(t.run_dir, {**t.record, **failed})
            raise
        finally:
            watch.restore()
            if progress is not None:
                progress.close()
            finalised = {id(run.trainer) for run in runs if run.record is not None}
            for t in self.trainers:
                if id(t) not in finalised:  # _finalise closed the others
                    t._close_tracker()
                    t.ckpt.close()
        return [run.record for run in runs]

    def _loop(
        self, runs: list[_Run], watch: SignalWatch, progress: Progress, wall_start: float
    ) -> None:
        shape = (self.trainers[0].cfg.train.batch_size, self.trainers[0].cfg.data.seq_len)
        active = [r for r in runs if r.step < r.stop]
        for run in runs:
            if run.step >= run.stop:  # stopped earlier at this step: nothing left to train
                self._finalise(run, watch, None, wall_start)
        if not active:
            return
        state = stack([r.trainer.state for r in active])
        lr_KxS = stack([lr_table(r.trainer.schedule, self.n_steps) for r in active])
        for run in runs:
            run.trainer.state = None  # while training, the stacked state is the only copy
        steady_start, compile_before = None, 0.0
        watch.poll(boundary=True)  # a signal caught before the first step stops every run there
        if watch.signal is not None:
            for run in active:
                self._finalise(run, watch, None, wall_start)
            return
        while active:
            step_fn = self._step_for(state, lr_KxS, shape)
            batch = np.stack([r.trainer.corpus.train_batch(r.step, *shape) for r in active])
            state, metrics = step_fn(state, jnp.asarray(batch), lr_KxS)
            for j, run in enumerate(active):
                run.pending.append((metrics, j))
                run.step = run.trainer.at_step = run.step + 1
                run.steady_steps += steady_start is not None
            watch.poll(boundary=True)
            if steady_start is None:
                # Time steady-state steps only, as a single run does: the first has warm-up.
                jax.block_until_ready(state["step"])
                steady_start, compile_before = time.perf_counter(), self.compile_s
            for j, run in enumerate(active):
                self._after_step(run, j, state, watch.signal)
            progress.note(*_mean_losses(active))
            progress.advance(1, len(active) * shape[0] * shape[1])
            ended = [r for r in active if r.end is not None]
            if not ended:
                continue
            # Recompiles for a smaller K are not steady-state time.
            steady_s = time.perf_counter() - steady_start - (self.compile_s - compile_before)
            for run in ended:
                self._finalise(run, watch, steady_s, wall_start)
            keep = np.asarray([j for j, r in enumerate(active) if r.end is None])
            active = [active[j] for j in keep]
            if active:
                state, lr_KxS = take(state, keep), take(lr_KxS, keep)

    def _after_step(
        self, run: _Run, j: int, state: TrainState, caught: signal.Signals | None
    ) -> None:
        """What a single run's loop (Trainer.run) does after a step: log, check, evaluate,
        checkpoint."""
        t, step, every = run.trainer, run.step, run.trainer.cfg.train
        last = step == run.stop or caught is not None
        end = step == t.plan.total_steps
        on_grid = step % every.log_every == 0 or step % every.eval_every == 0
        if on_grid or last:
            fetched = [_own(metrics, i) for metrics, i in run.pending]
            row = t._log_row(step, fetched)
            if not (on_grid or end):
                # A stop between log rows keeps the window's steps, as a single run does.
                row["partial"] = _window(fetched)
            run.pending = []
            bad = int(state["first_bad_step"][j])
            if bad >= 0:
                run.end = (
                    records.STATUS_DIVERGED,
                    f"non-finite loss or gradient at step {bad + 1}",
                )
                t.record["diverged_step"] = bad + 1
                t._append(row)
                return
            if step % every.eval_every == 0 or end:  # a stop evaluates only on the grid
                t.state = take(state, j)
                row.update(t._evaluate())
                t.state = None
                run.best_val = min(run.best_val, row["val_loss"])
            t._append(row)
            run.losses = (row["train_loss"], row.get("val_loss", run.losses[1]))
        if step % every.ckpt_every == 0 or last:
            t.ckpt.save(step, take(state, j))
        if last:
            run.end = _end_status(step, t.plan.total_steps, caught)

    def _finalise(
        self,
        run: _Run,
        watch: SignalWatch,
        steady_s: float | None,
        wall_start: float,
    ) -> None:
        if run.end is None:
            run.end = _end_status(run.step, run.trainer.plan.total_steps, watch.signal)
        run.trainer._close_tracker()
        run.trainer.ckpt.close()
        status, reason = run.end
        run.record = run.trainer._finish(
            run.step,
            status,
            reason,
            run.best_val,
            self.compile_s,
            wall_start,
            steady_s,
            run.steady_steps,
        )

    def _compile_eval(self) -> None:
        """One compiled eval step for every run: they share the graphdef and batch shape."""
        start = time.perf_counter()
        first = self.trainers[0]
        batch = jax.ShapeDtypeStruct(first.val_batches[0].shape, jnp.int32)
        compiled = first.eval_step.lower(first.state["params"], batch).compile()
        for t in self.trainers:
            t.eval_step = compiled
        self.compile_s += time.perf_counter() - start

    def _step_for(self, state: TrainState, lr_KxS: jax.Array, shape: tuple[int, int]) -> Any:
        """The group step compiled for the current number of runs (once per K)."""
        k = len(lr_KxS)
        if k not in self._compiled:
            start = time.perf_counter()
            batch = jax.ShapeDtypeStruct((k, shape[0], shape[1] + 1), jnp.int32)
            self._compiled[k] = self.step_fn.lower(state, batch, lr_KxS).compile()
            self.compile_s += time.perf_counter() - start
        return self._compiled[k]


def _own(metrics: dict, index: int | None) -> dict:
    """One run's metrics of one step, on the host."""
    fetched = jax.device_get(metrics)
    return fetched if index is None else {key: v[index] for key, v in fetched.items()}


def _end_status(step: int, total_steps: int, caught: signal.Signals | None) -> tuple:
    """(status, reason) of a run that reached its last step, as a single run words it."""
    if caught is not None:
        return end_status(caught, step)
    if step < total_steps:
        return records.STATUS_STOPPED, f"stopped at step {step} (train.stop_at_step)"
    return records.STATUS_COMPLETED, None


def _mean_losses(runs: list[_Run]) -> tuple[float | None, float | None]:
    """The mean over `runs` of their latest logged train and validation losses, for progress."""
    losses, vals = ([r.losses[i] for r in runs if r.losses[i] is not None] for i in (0, 1))
    return (
        float(np.mean(losses)) if losses else None,
        float(np.mean(vals)) if len(vals) == len(runs) else None,
    )


def _record_abort(runs: list[_Run]) -> None:
    """Each unfinished run's record when a second Ctrl-C stops the group at once."""
    for run in runs:
        if run.record is None:
            run.trainer._record_abort()


def pretrain_group(cfgs: Sequence[PretrainConfig]) -> list[dict[str, Any]]:
    """Train the runs of `cfgs` (one `group_key`) together; each run's record, in order.

    A completed run is returned as recorded. A run that cannot start (a bad value, a dir of
    another run), that fails or that diverges gets its record and the others go on. Each run
    resumes from its own latest checkpoint.
    """
    results: list[dict[str, Any] | None] = [None] * len(cfgs)
    trainers, where = [], []
    key = None
    with contextlib.ExitStack() as held:
        for i, cfg in enumerate(cfgs):
            try:
                cfg = validate(cfg)
                key = key or group_key(cfg)
                if group_key(cfg) != key:
                    raise ConfigError(
                        f"run_name={cfg.run_name} differs from {cfgs[0].run_name} in a setting "
                        "that runs trained together must share (see scaling.sweep.grid.group_key)"
                    )
                opened = held.enter_context(open_pretrain(cfg))
            except Exception as err:
                results[i] = _failed(cfg, err)
                continue
            if isinstance(opened, dict):
                results[i] = opened
            else:
                trainers.append(opened)
                where.append(i)
        for i, record in zip(where, _train(trainers), strict=True):
            results[i] = record
    return results


def _train(trainers: list[Trainer]) -> list[dict[str, Any]]:
    """Their records: trained as a group, or one after another where each spreads over several
    devices (a `parallel` layout with a mesh)."""
    if not trainers:
        return []
    if trainers[0].layout.mesh is not None:
        return [_alone(t) for t in trainers]
    try:
        return GroupTrainer(trainers).run()
    except Exception as err:  # GroupTrainer.run recorded it in every unfinished run dir
        log.error("group of %d failed: %s", len(trainers), rundir.failure_reason(err))
        return [records.read_record(t.run_dir) or {} for t in trainers]


def _alone(trainer: Trainer) -> dict[str, Any]:
    """`trainer.run()`, its failure recorded as `scaling.train.trainer.open_run` records one."""
    try:
        return trainer.run()
    except Exception as err:
        record = {
            **trainer.record,
            "status": records.STATUS_FAILED,
            "reason": rundir.failure_reason(err),
        }
        records.write_record(trainer.run_dir, record)
        log.error("%s failed: %s", trainer.run_dir, record["reason"])
        return record


def _failed(cfg: PretrainConfig, err: BaseException) -> dict[str, Any]:
    """Record a run that could not start, as a sweep records a failed point; its record."""
    run_dir = record_failure(OmegaConf.structured(cfg), err)
    log.error("%s failed: %s", run_dir or cfg.run_name, rundir.failure_reason(err))
    return (records.read_record(run_dir) if run_dir else None) or {
        "run_name": cfg.run_name,
        "status": records.STATUS_FAILED,
        "reason": rundir.failure_reason(err),
    }
