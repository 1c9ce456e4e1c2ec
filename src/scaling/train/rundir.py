"""One place opens a run dir: its config, its lock, the same-run check, and its failed record.

A run dir <out_dir>/<run_name> holds config.yaml, record.json and metrics.jsonl (both written
through `scaling.records`), and ckpt/. One process at a time holds a run dir (`hold`), so
overlapping sweeps never train a point twice; `check_same_run` refuses a dir that holds a run
of other settings; `completed_run` tells a sweep which points are done; `record_failure` leaves a
failed record for a point that could not start.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from scaling import records
from scaling.config import (
    ConfigError,
    PretrainConfig,
    is_safe_run_name,
    run_dir_of,
    to_dataclass,
    to_dict,
    validate,
)

log = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
CKPT_DIR = "ckpt"
LOCK_FILE = ".lock"


def write_config(run_dir: Path, config: dict[str, Any]) -> None:
    """Store the run's config as config.yaml (only in the process that writes the run dir)."""
    if not records.writes_enabled():
        return
    records.atomic_write_text(Path(run_dir) / CONFIG_FILE, yaml.safe_dump(config, sort_keys=False))


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
    if not records.writes_enabled():
        return contextlib.nullcontext(True)
    return file_lock(Path(run_dir) / LOCK_FILE, wait)


def failure_reason(err: BaseException) -> str:
    """One line (at most 500 characters) saying why a run failed, for its record."""
    text = f"{type(err).__name__}: {err}".strip()
    return text.splitlines()[0][:500]


def failed_record(record: dict[str, Any], err: BaseException) -> dict[str, Any]:
    """`record` (what the run had, or only its name) as failed, with the one-line reason."""
    return {**record, "status": records.STATUS_FAILED, "reason": failure_reason(err)}


def completed_record(run_dir: Path) -> dict[str, Any] | None:
    """The record of the completed run in `run_dir`, or None (no record, or not completed)."""
    record = records.read_record(run_dir)
    if record is not None and record.get("status") == records.STATUS_COMPLETED:
        return record
    return None


def completed_run(cfg: PretrainConfig) -> bool:
    """True when the run dir already holds a completed run of exactly this config."""
    try:
        cfg = validate(cfg)
        run_dir = run_dir_of(cfg)
        if completed_record(run_dir) is None:
            return False
        check_same_run(run_dir, to_dict(cfg))
    except ValueError:  # ConfigError: a bad value, or another run's dir
        return False
    return True


def record_failure(cfg: DictConfig, err: BaseException) -> Path | None:
    """Leave a failed record for a sweep point whose run could not record its own failure.

    `pretrain` records exceptions raised while training; a bad value (ConfigError) is raised
    before the run dir exists, so here the point still leaves <out_dir>/<run_name>/record.json
    with status failed and the one-line reason naming the key. A dir holding a completed run, or
    a run of other settings, or one another worker is running, is left alone. Returns the run
    dir, or None where there is none.
    """
    try:
        out_dir, run_name = str(cfg.out_dir), str(cfg.run_name)
    except Exception:  # an interpolation in the names themselves is what failed
        return None
    if not is_safe_run_name(run_name) or not out_dir:
        return None
    run_dir = Path(out_dir).expanduser().absolute() / run_name
    with hold(run_dir, wait=False) as held:
        if held:
            _record_failure(cfg, run_dir, run_name, failure_reason(err))
    return run_dir


def _record_failure(cfg: DictConfig, run_dir: Path, run_name: str, reason: str) -> None:
    old = records.read_record(run_dir) or {}
    if old.get("status") == records.STATUS_COMPLETED or _holds_other_run(run_dir, cfg):
        return
    if old.get("status") == records.STATUS_FAILED and old.get("reason") == reason:
        return  # pretrain has recorded it already
    record = {
        **old,
        "run_name": run_name,
        "status": records.STATUS_FAILED,
        "reason": reason,
        "model": _get(cfg, "model.name"),
        "tokens_target": _get(cfg, "train.tokens"),
        "batch_size": _get(cfg, "train.batch_size"),
        "lr": _get(cfg, "train.lr"),
        "seed": _get(cfg, "train.seed"),
    }
    records.write_record(run_dir, record)


def _holds_other_run(run_dir: Path, cfg: DictConfig) -> bool:
    if not (run_dir / CONFIG_FILE).exists():
        return False
    try:
        config = to_dict(validate(to_dataclass(cfg)))
    except Exception:  # this point's own config is bad: the stored one is an older attempt
        return False
    try:
        check_same_run(run_dir, config)
    except ValueError:
        return True
    return False


def _get(cfg: DictConfig, key: str) -> Any:
    """A value of a config that may not resolve (the failure being recorded), or None."""
    return OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False)
