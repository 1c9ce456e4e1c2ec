"""The run directory contract: config.yaml, record.json, metrics.jsonl, ckpt/.

Every file is written atomically (temp file in the same directory, fsync, rename), so a run
killed at any instant leaves either the old or the new version, never half of one. The metrics
log is append-only; on resume it is cut back to the restored step so no step appears twice.
One process at a time holds a run dir (`hold`), so overlapping sweeps never train a point twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from scaling.config import ConfigError, PretrainConfig

log = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
RECORD_FILE = "record.json"
METRICS_FILE = "metrics.jsonl"
CKPT_DIR = "ckpt"
LOCK_FILE = ".lock"

STATUS_RUNNING = "running"
STATUS_COMPLETED = "completed"
STATUS_FAILED = "failed"
STATUS_DIVERGED = "diverged"
STATUS_STOPPED = "stopped"  # stopped early on purpose (train.stop_at_step): resumable
STATUS_PREEMPTED = "preempted"  # SIGTERM/SIGUSR1: checkpointed and stopped, resumable
STATUS_INTERRUPTED = "interrupted"  # SIGINT (Ctrl-C): checkpointed and stopped, resumable

# In a multi-process run only process 0 writes the run dir (scaling.train.shard turns the others
# off).
_writes_enabled = True


def set_writer(enabled: bool) -> None:
    """Whether this process writes config, record and metrics (the others only read them)."""
    global _writes_enabled
    _writes_enabled = enabled


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_config(run_dir: Path, config: dict[str, Any]) -> None:
    if not _writes_enabled:
        return
    atomic_write_text(Path(run_dir) / CONFIG_FILE, yaml.safe_dump(config, sort_keys=False))


def read_config(run_dir: Path) -> dict[str, Any]:
    """The stored config; ConfigError naming the file when it is not a YAML mapping."""
    path = Path(run_dir) / CONFIG_FILE
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"{path}: not readable YAML ({first})") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a YAML mapping, got {type(config).__name__}")
    return config


def write_record(run_dir: Path, record: dict[str, Any]) -> None:
    if not _writes_enabled:
        return
    text = json.dumps(record, indent=2, sort_keys=False, default=_json_default)
    atomic_write_text(Path(run_dir) / RECORD_FILE, text + "\n")


def read_record(run_dir: Path) -> dict[str, Any] | None:
    """The run's record, or None when it has none (never started) or it is unreadable."""
    path = Path(run_dir) / RECORD_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None


def append_metrics(run_dir: Path, row: dict[str, Any]) -> None:
    if not _writes_enabled:
        return
    # One write of one whole line: a kill can at worst leave a partial last line, which
    # read_metrics skips and truncate_metrics removes.
    line = json.dumps(row, default=_json_default) + "\n"
    with open(Path(run_dir) / METRICS_FILE, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    rows = []
    # A damaged byte spoils only its own line, which is skipped like a half-written one.
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def truncate_metrics(run_dir: Path, last_step: int) -> None:
    """Keep only the rows up to `last_step` (the step a resumed run restarts after, or the step
    a run ended at), less the `partial` rows of stops between log rows before it: their steps
    were carried into the row after them. The partial row at `last_step` itself is kept, so
    that a run resumed from that checkpoint and killed before its next one can still carry its
    steps when it is resumed from there again; the run drops it when it ends (Trainer._finish)."""
    if not _writes_enabled:
        return
    rows = [
        r
        for r in read_metrics(run_dir)
        if r.get("step", 0) <= last_step and ("partial" not in r or r["step"] == last_step)
    ]
    text = "".join(json.dumps(r) + "\n" for r in rows)
    atomic_write_text(Path(run_dir) / METRICS_FILE, text)


# Settings that may change between a run and its resumption without changing the run.
_RESUMABLE_KEYS = {
    ("train", "stop_at_step"),
    ("train", "progress"),
    ("train", "progress_every_s"),
    ("train", "async_ckpt"),
    # Microbatches change how a step is computed, not the step: the same loss and gradient up
    # to float32 rounding, as a different mesh would (its default became per-device auto).
    ("train", "grad_accum"),
    ("parallel", "strategy"),  # a checkpoint restores onto any mesh
    ("parallel", "devices"),
}


def check_same_run(run_dir: Path, config: dict[str, Any]) -> None:
    """Refuse to resume a run dir that holds a run of another config.

    A setting the stored config lacks (one added to the schema since the run started) counts as
    the same when the new value is the schema's default, so old runs stay resumable.
    """
    if not (run_dir / CONFIG_FILE).exists():
        return
    old = read_config(run_dir)
    defaults = dataclasses.asdict(PretrainConfig())
    differing = []
    for section, values in config.items():
        if not isinstance(values, dict):
            continue
        stored = old.get(section) or {}
        for key, value in values.items():
            if (section, key) in _RESUMABLE_KEYS:
                continue
            reference = stored[key] if key in stored else defaults.get(section, {}).get(key)
            if reference != value:
                differing.append(f"{section}.{key}")
    if differing:
        raise ConfigError(
            f"{run_dir} holds a run with different settings ({', '.join(differing[:5])}); "
            "choose another run_name or out_dir"
        )


@contextlib.contextmanager
def file_lock(path: Path, wait: bool = True) -> Iterator[bool]:
    """Hold an exclusive lock on `path` (created if absent) for the `with` block.

    The kernel drops the lock when its process dies, SIGKILL included, so no lock outlives its
    holder. wait=False never blocks: the block runs at once and is told False when another
    process holds the lock.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                yield False
                return
            f.seek(0)
            log.info("waiting for %s, held by %s", path, f.read().strip() or "another process")
            fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()}\n")  # for the message above
        f.flush()
        yield True


def hold(run_dir: Path, wait: bool = True) -> contextlib.AbstractContextManager[bool]:
    """The run dir's lock (see file_lock): whoever holds it may write the run dir.

    A second worker on the same point (overlapping sweeps) waits, then finds the run completed
    or resumes it where the first stopped. Processes that do not write (set_writer) never lock,
    so the processes of one multi-host run do not wait on each other.
    """
    if not _writes_enabled:
        return contextlib.nullcontext(True)
    return file_lock(Path(run_dir) / LOCK_FILE, wait)


def failure_reason(err: BaseException) -> str:
    """One line (at most 500 characters) saying why a run failed, for its record."""
    text = f"{type(err).__name__}: {err}".strip()
    return text.splitlines()[0][:500]


def _json_default(value: Any) -> Any:
    # numpy and jax scalars
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
