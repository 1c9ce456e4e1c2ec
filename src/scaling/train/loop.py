"""The training loop, written once for K >= 1 runs trained together (a single run is K = 1).

Data order is a pure function of (seed, step), so a run restored from a checkpoint at step k
continues exactly as if it had never stopped. K = 1 steps with the run's own jitted step (on
its mesh, if it has one); K > 1 runs share a model shape and optimizer structure
(`scaling.config.group_key`) and are stacked, every state leaf with a leading axis K, and
one vmapped step advances all of them per dispatch. Each keeps its own seed, learning rate,
schedule and token budget, and its own run dir, exactly as when it trains alone. A run that
ends (finished, stopped, diverged) is finalised and dropped from the stack, which is recompiled
for the K left, so runs of different lengths waste no steps.

After each step `after_step` does one run's bookkeeping (its log row, divergence check, eval,
checkpoint and end status) for each run; a run's record is built when it ends
(`scaling.train.record`).
"""

from __future__ import annotations

import signal
import time
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np

from scaling import records
from scaling.train import shard
from scaling.train.optim import lr_table
from scaling.train.progress import Progress
from scaling.train.record import abort_record, end_record, progress_fields
from scaling.train.run import Trainer, window
from scaling.train.signals import SignalWatch, end_status
from scaling.train.step import TrainState, build_step, stack, take


def train(runs: list[Trainer]) -> list[dict[str, Any]]:
    """Train every run to its end, together; their records, in order.

    An exception propagates once every run is closed; whoever opened the runs writes the failed
    record of each that had not ended (`run.open_run`, `pretrain.pretrain_group`), once. A stop
    signal ends every run at the current step (checkpointed).
    """
    # Watched from the start: a Ctrl-C during the restore or the compile stops the runs
    # before their first step, as one during training stops them after the current step.
    watch = SignalWatch(on_abort=lambda: _record_abort(runs))
    progress = None
    try:
        for run in runs:
            _begin(run)
        wall_start = time.perf_counter()
        steps = SoloSteps(runs[0]) if len(runs) == 1 else GroupSteps(runs)
        steps.compile_s += compile_eval(runs)
        for run in runs:
            if run.hooks.started is not None:
                run.hooks.started(run, run.step)
        progress = _progress(runs)
        _loop(runs, steps, watch, progress, wall_start)
    finally:
        watch.restore()
        if progress is not None:
            progress.close()
        for run in runs:
            if run.final is None:  # _finalise closed the others
                run.close()
    return [cast(dict[str, Any], run.final) for run in runs]  # _loop ended every run


def evaluate_only(run: Trainer) -> dict[str, Any]:
    """Evaluate the run's starting model (`hooks.started`) and record it as a completed run of
    0 steps; its record."""
    try:
        run.restore()
        compile_s = compile_eval([run])
        if run.hooks.started is not None:
            run.hooks.started(run, 0)
    finally:
        run.ckpt.close()
    run.step = 0
    run.final = end_record(
        run, records.STATUS_COMPLETED, None, compile_s, time.perf_counter(), None
    )
    return run.final


def compile_eval(runs: list[Trainer]) -> float:
    """One compiled eval step for every run (they share the graphdef and batch shape); the
    seconds it took."""
    start = time.perf_counter()
    first = runs[0]
    tokens = jax.tree.leaves(first.val_batches[0])[0]
    batch = first.layout.batch_spec(tokens.shape, jnp.int32)
    compiled = first.eval_step.lower(first.state.params, batch).compile()
    for run in runs:
        run.eval_step = compiled
    return time.perf_counter() - start


class SoloSteps:
    """K = 1: the run's own jitted step on its own state (sharded where it has a mesh)."""

    def __init__(self, run: Trainer):
        self.run = run
        self.compile_s = 0.0

    def start(self, active: list[Trainer]) -> None:
        """Compile the step for the run's batches."""
        run, t = self.run, self.run.cfg.train
        shape = (t.batch_size, run.cfg.data.seq_len + 1)
        dtypes = (jnp.int32, jnp.bool_) if run.hooks.masked else (jnp.int32,)
        specs = [run.layout.batch_spec(shape, dtype) for dtype in dtypes]
        self.step_fn, seconds = _build_step(run, run.state, specs, layout=run.layout)
        self.compile_s += seconds

    def advance(self, active: list[Trainer]) -> list[tuple[dict, int | None]]:
        """One step; the metrics of it, (metrics, None)."""
        run, t = self.run, self.run.cfg.train
        batch = run.corpus.train_batch(run.step, t.batch_size, run.cfg.data.seq_len)
        # A task corpus gives (tokens, answer_mask); a pre-training corpus tokens alone.
        arrays = batch if isinstance(batch, tuple) else (batch,)
        run.state, metrics = self.step_fn(
            run.state, run.lr_S[run.step], *map(run.layout.put_batch, arrays)
        )
        return [(metrics, None)]

    def sync(self) -> None:
        jax.block_until_ready(self.run.state.step)

    def state_of(self, j: int) -> TrainState:
        return self.run.state

    def first_bad_step(self, j: int) -> int:
        return int(self.run.state.first_bad_step)

    def keep(self, keep: np.ndarray) -> None:
        """Nothing to drop: the run's end is the loop's."""


class GroupSteps:
    """K > 1: one vmapped step over the runs' states stacked on a leading axis."""

    def __init__(self, runs: list[Trainer]):
        self.runs = runs
        self.n_steps = max(run.plan.total_steps for run in runs)
        self.compile_s = 0.0
        self._compiled: dict[int, Any] = {}

    def start(self, active: list[Trainer]) -> None:
        """Stack the active runs' states and learning-rate tables."""
        self.state = stack([run.state for run in active])
        self.lr_KxS = stack([lr_table(run.schedule, self.n_steps) for run in active])
        for run in self.runs:
            # While training, the stacked state is the only copy.
            run.state = cast(TrainState, None)

    def advance(self, active: list[Trainer]) -> list[tuple[dict, int | None]]:
        """One step of every active run; each one's (the step's metrics, its index in them)."""
        first = active[0]
        shape = (first.cfg.train.batch_size, first.cfg.data.seq_len)
        step_fn = self._step_for(len(active), shape)
        batch = np.stack([run.corpus.train_batch(run.step, *shape) for run in active])
        self.state, metrics = step_fn(self.state, jnp.asarray(batch), self.lr_KxS)
        return [(metrics, j) for j in range(len(active))]

    def _step_for(self, k: int, shape: tuple[int, int]) -> Any:
        """The group step compiled for the current number of runs (once per K)."""
        if k not in self._compiled:
            batch = jax.ShapeDtypeStruct((k, shape[0], shape[1] + 1), jnp.int32)
            self._compiled[k], seconds = _build_step(self.runs[0], self.state, [batch], self.lr_KxS)
            self.compile_s += seconds
        return self._compiled[k]

    def sync(self) -> None:
        jax.block_until_ready(self.state.step)

    def state_of(self, j: int) -> TrainState:
        return take(self.state, j)

    def first_bad_step(self, j: int) -> int:
        return int(self.state.first_bad_step[j])

    def keep(self, keep: np.ndarray) -> None:
        """Drop the runs not listed in `keep` from the stack."""
        self.state, self.lr_KxS = take(self.state, keep), take(self.lr_KxS, keep)


Steps = SoloSteps | GroupSteps


def _build_step(
    run: Trainer,
    state: TrainState,
    batch_specs: list[Any],
    lr_KxS: Any = None,
    layout: shard.Layout = shard.SINGLE,
) -> tuple[Any, float]:
    """`build_step` for the model, optimizer and microbatches of `run` (a group's share them)."""
    t = run.cfg.train
    return build_step(
        run.graphdef, t, run.cfg.model.z_loss, run.grad_accum, state, batch_specs, lr_KxS, layout
    )


def _begin(run: Trainer) -> None:
    """Resume the run where it stopped, open its tracker and record it as running."""
    start = run.restore()
    run.open_tracker(start)
    run.record.update(resumed_from_step=start or None)
    records.write_record(run.run_dir, {**run.record, **progress_fields(run, start)})
    t = run.cfg.train
    run.stop = min(run.plan.total_steps, t.stop_at_step or run.plan.total_steps)
    run.best_val = run.best_val_so_far()


def _loop(
    runs: list[Trainer], steps: Steps, watch: SignalWatch, progress: Progress, wall_start: float
) -> None:
    watch.poll(boundary=True)  # a signal caught before the first step stops every run there
    for run in runs:
        if run.step >= run.stop or watch.signal is not None:  # nothing left to train
            _finalise(run, watch.signal, steps.compile_s, wall_start, None)
    active = [run for run in runs if run.final is None]
    if not active:
        return
    steps.start(active)
    steady_start, compile_before = None, 0.0
    while active:
        for run, metrics in zip(active, steps.advance(active), strict=True):
            run.pending.append(metrics)
            run.step += 1
            run.steady_steps += steady_start is not None
        # Processes of one run must take a signal up at the same step (SignalWatch.poll).
        watch.poll(boundary=all(run.step % run.cfg.train.log_every == 0 for run in active))
        if steady_start is None:
            # Time steady-state steps only: the first includes dispatch warm-up.
            steps.sync()
            steady_start, compile_before = time.perf_counter(), steps.compile_s
        for j, run in enumerate(active):
            after_step(run, steps, j, watch.signal)
        progress.note(*_mean_losses(active))
        progress.advance(1, len(active) * active[0].plan.tokens_per_step)
        ended = [run for run in active if run.end is not None]
        if not ended:
            continue
        # Recompiles for a smaller K are not steady-state time.
        steady_s = time.perf_counter() - steady_start - (steps.compile_s - compile_before)
        for run in ended:
            _finalise(run, watch.signal, steps.compile_s, wall_start, steady_s)
        kept = [j for j, run in enumerate(active) if run.end is None]
        active = [active[j] for j in kept]
        if active:
            steps.keep(np.asarray(kept))


def after_step(run: Trainer, steps: Steps, j: int, caught: signal.Signals | None) -> None:
    """One run's bookkeeping after a step (run `j` of `steps`): log, check, evaluate,
    checkpoint, and its end status once it has reached its last step or a signal stops it."""
    step, t = run.step, run.cfg.train
    last = step == run.stop or caught is not None
    end = step == run.plan.total_steps
    on_grid = step % t.log_every == 0 or step % t.eval_every == 0
    if on_grid or last:
        fetched = [_own(metrics, i) for metrics, i in run.pending]
        row = run.log_row(fetched)
        if not (on_grid or end):
            # A stop between log rows: keep the window's steps, so that the resumed run logs
            # the rows of an uninterrupted one (see Trainer.restore).
            row["partial"] = window(fetched)
        run.pending = []
        bad = steps.first_bad_step(j)
        if bad >= 0:
            run.end = (records.STATUS_DIVERGED, f"non-finite loss or gradient at step {bad + 1}")
            run.record["diverged_step"] = bad + 1
            run.append(row)
            return
        if step % t.eval_every == 0 or end:  # a stop evaluates only on the grid
            row.update(run.evaluate(steps.state_of(j).params))
            run.best_val = min(run.best_val, row["val_loss"])
        run.append(row)
        run.losses = (row["train_loss"], row.get("val_loss", run.losses[1]))
    if step % t.ckpt_every == 0 or last:
        run.ckpt.save(step, steps.state_of(j))
    if last:
        run.end = _end_status(run, caught)


def _finalise(
    run: Trainer,
    caught: signal.Signals | None,
    compile_s: float,
    wall_start: float,
    steady_s: float | None,
) -> None:
    if run.end is None:
        run.end = _end_status(run, caught)
    run.close()
    status, reason = run.end
    run.final = end_record(run, status, reason, compile_s, wall_start, steady_s)


def _end_status(run: Trainer, caught: signal.Signals | None) -> tuple[str, str | None]:
    """(status, reason) of a run that reached its last step, or that a signal stopped."""
    if caught is not None:
        return end_status(caught, run.step)
    if run.step < run.plan.total_steps:
        return records.STATUS_STOPPED, f"stopped at step {run.step} (train.stop_at_step)"
    return records.STATUS_COMPLETED, None


def _own(metrics: dict, index: int | None) -> dict:
    """One run's metrics of one step, on the host."""
    fetched = jax.device_get(metrics)
    return fetched if index is None else {key: v[index] for key, v in fetched.items()}


def _progress(runs: list[Trainer]) -> Progress:
    """The progress display: one run's steps, or a group's (to its longest run's stop)."""
    first = runs[0]
    t, tokens_per_step = first.cfg.train, first.plan.tokens_per_step
    if len(runs) == 1:
        name, ends = first.cfg.run_name, [first.plan.total_steps]
    else:
        name, ends = f"{len(runs)} runs of {first.cfg.model.name}", [run.stop for run in runs]
    return Progress(
        t.progress,
        t.progress_every_s,
        name,
        max(ends),
        min(run.step for run in runs),
        sum(ends) * tokens_per_step,
        sum(run.step for run in runs) * tokens_per_step,
    )


def _mean_losses(runs: list[Trainer]) -> tuple[float | None, float | None]:
    """The mean over `runs` of their latest logged train and validation losses, for progress."""
    losses = [loss for loss, _ in (run.losses for run in runs) if loss is not None]
    vals = [val for _, val in (run.losses for run in runs) if val is not None]
    return (
        float(np.mean(losses)) if losses else None,
        float(np.mean(vals)) if len(vals) == len(runs) else None,
    )


def _record_abort(runs: list[Trainer]) -> None:
    """Each unfinished run's record when a second Ctrl-C stops the loop at once."""
    for run in runs:
        if run.final is None:
            records.write_record(run.run_dir, abort_record(run))
