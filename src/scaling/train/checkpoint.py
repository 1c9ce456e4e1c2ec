"""Orbax checkpoints of the train state: periodic (async) saves, keep policy, resume.

Checkpoints hold only arrays (parameters, optimizer state, step counters) and are read only
through orbax against the expected tree structure, never unpickled. If the latest step cannot
be restored (a half-written or corrupted directory), the previous good step is used and the
fallback is reported. A read-only Checkpointer (another run's checkpoints, e.g. a fine-tune's
init_from) only reads: it never creates, saves or moves anything there.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from scaling.train.step import TrainState

log = logging.getLogger(__name__)


class Checkpointer:
    """Saves and restores one run's train state under `<run_dir>/ckpt`."""

    def __init__(self, directory: Path, keep: int, use_async: bool = True, read_only: bool = False):
        self.directory = Path(directory).absolute()  # orbax wants absolute paths
        self.read_only = read_only
        options = ocp.CheckpointManagerOptions(
            max_to_keep=None if read_only else keep,
            save_interval_steps=0 if read_only else 1,
            enable_async_checkpointing=use_async,
            create=not read_only,
            read_only=read_only,
        )
        with _without_read_only_note():
            self._manager = ocp.CheckpointManager(self.directory, options=options)
        self.damaged: dict[int, str] = {}  # step -> why it could not be restored

    def steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def save(self, step: int, state: TrainState) -> None:
        # Saved as a dict of its fields: the tree on disk does not depend on the Python type.
        self._manager.save(step, args=ocp.args.StandardSave(state._asdict()), force=True)

    def restore_latest(self, template: TrainState) -> tuple[int, TrainState] | None:
        """The newest restorable (step, state), or None when there is no checkpoint.

        `template` is a pytree of arrays or ShapeDtypeStructs with the state's structure; the
        arrays come back with the template's shardings, whatever mesh they were saved from.
        """
        abstract = jax.tree.map(_target, template._asdict())
        failures = []
        for step in reversed(self.steps()):
            try:
                with _quiet_asyncio():
                    state = self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
            except Exception as err:  # orbax raises many types for a damaged step
                failures.append(step)
                self.damaged[step] = _first_line(err)
                log.warning(
                    "checkpoint step %d in %s is unreadable (%s)",
                    step,
                    self.directory,
                    self.damaged[step],
                )
                continue
            if failures:
                log.warning("restored step %d instead of the damaged step(s) %s", step, failures)
                self._set_aside(failures)
            return step, TrainState(**state)
        if failures:
            log.warning("no readable checkpoint in %s", self.directory)
            self._set_aside(failures)
        return None

    def _set_aside(self, steps: list[int]) -> None:
        # Keep damaged steps for inspection, out of the way of the saves that will replace them.
        if self.read_only:
            return
        aside = self.directory.parent / "ckpt_damaged"
        aside.mkdir(exist_ok=True)
        for step in steps:
            for path in self.directory.iterdir():
                if path.name == str(step) or path.name.startswith(f"{step}."):
                    path.rename(aside / f"{path.name}-{len(list(aside.iterdir()))}")
        self._manager.reload()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()


def _target(leaf: Any) -> jax.ShapeDtypeStruct:
    """What orbax restores one leaf into: the leaf's own sharding, or the first local device
    for a leaf without one (orbax would otherwise insist on the mesh it was saved from)."""
    struct = ocp.utils.to_shape_dtype_struct(leaf)
    if getattr(struct, "sharding", None) is not None:
        return struct
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    return jax.ShapeDtypeStruct(struct.shape, struct.dtype, sharding=device)


class _ReadOnlyNote(logging.Filter):
    """Orbax warns "Given directory is read only" for every read-only manager: here that is how
    another run's checkpoints are read (a fine-tune's source), on purpose, not a problem."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Given directory is read only")


@contextlib.contextmanager
def _without_read_only_note() -> Iterator[None]:
    logger, note = logging.getLogger("absl"), _ReadOnlyNote()  # orbax logs through absl
    logger.addFilter(note)
    try:
        yield
    finally:
        logger.removeFilter(note)


@contextlib.contextmanager
def _quiet_asyncio() -> Iterator[None]:
    # A damaged step fails one read; asyncio then logs every other read orbax cancels, each with
    # a long traceback, at shutdown of orbax's loop. The one failure is reported above instead.
    logger = logging.getLogger("asyncio")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _first_line(err: BaseException) -> str:
    # TensorStore appends a long repr of its spec after this phrase; the line before says it.
    text = f"{type(err).__name__}: {err}".splitlines()[0]
    return text.split(" See full TensorStore details")[0][:300]
