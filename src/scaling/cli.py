"""What the Hydra entry points share: one clear line for a bad config, isolation in sweeps,
integer settings written as 5e6, and the exit of a run stopped by a signal."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import shlex
import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException, MissingConfigException
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from scaling.config import ConfigError, FinetuneConfig, did_you_mean
from scaling.train.signals import EXIT_INTERRUPTED, exit_on_interrupt

log = logging.getLogger(__name__)

# Records a failed sweep point (e.g. scaling.train.rundir.record_failure); returns where, if any.
FailureRecorder = Callable[[DictConfig, BaseException], Path | None]


# sysexits.h EX_TEMPFAIL: a temporary failure, worth retrying (SLURM --requeue, a rerun).
EXIT_PREEMPTED = 75


class Interrupted(KeyboardInterrupt):
    """A sweep point stopped by Ctrl-C and saved: ends the whole sweep (Hydra's launchers pass a
    KeyboardInterrupt on, where they record any Exception as a failed job and go on)."""


def main(hydra_main: Callable[[], Any]) -> None:
    """Run a `@hydra.main` entry point: a bad command line (an unknown key, a value of the wrong
    type, a missing group option, a bad sweep grid) exits with status 2 and one line, as a bad
    value does; Ctrl-C exits 130 with one line and no traceback.

    Hydra prints its own composition errors over several lines and exits 1; it raises them
    instead when HYDRA_FULL_ERROR=1, so that is set here (a user who set it gets the trace).
    """
    exit_on_interrupt(f"interrupted; rerun the same command to resume: {_command()}")
    full_trace = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        sys.argv[1:] = integer_overrides(sys.argv[1:])
        hydra_main()
    except (HydraException, OmegaConfBaseException, ConfigError) as err:
        if full_trace:
            raise
        cause = err.__cause__
        detail = f": {_one_line(cause)}" if isinstance(cause, OmegaConfBaseException) else ""
        print(f"error: {_one_line(err)}{detail}{hint(err)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as err:
        # A sweep stopped after saving its point (Interrupted). Nothing is left to save: leave
        # at once, since Python's teardown with library threads still running (a launcher's)
        # can abort with a C++ message.
        message = str(err) or f"interrupted; rerun the same command to resume: {_command()}"
        print(message, file=sys.stderr)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)


def hint(err: BaseException) -> str:
    """What to add to a bad command line's error: for a missing group option the close matches
    ("did you mean model=n110k?") and every valid choice; for an unknown key the close matches
    among the keys of its section. Empty when there is nothing to suggest."""
    if isinstance(err, MissingConfigException) and err.missing_cfg_file and err.options:
        group, _, option = err.missing_cfg_file.rpartition("/")
        choices = sorted(err.options)
        mean = did_you_mean(option, choices, f"{group}=")  # "; did you mean model=x?" or ""
        return f"{mean or ';'} valid choices of {group}: {', '.join(choices)}"
    text = f"{err} {err.__cause__}"  # Hydra names the override, its cause the unknown key
    found = re.search(r"Could not override '([^']+)'", text)
    if found is None:
        return ""
    *parents, key = parts = found.group(1).lstrip("+~").split(".")
    unknown = re.search(r"Key '([^']+)' not in", text)
    if unknown and unknown.group(1) in parts:  # the first unknown part, e.g. moddel.d_model
        i = parts.index(unknown.group(1))
        parents, key = parts[:i], parts[i]
    return did_you_mean(key, _keys_under(parents), "".join(f"{p}." for p in parents))


def _keys_under(parents: list[str]) -> list[str]:
    """The settings of the run schema at a dotted path (the top level: its sections and keys)."""
    schema = _setting_type(FinetuneConfig, parents)
    if not dataclasses.is_dataclass(schema):
        return []
    return [f.name for f in dataclasses.fields(schema)]


def exit_if_stopped(record: dict[str, Any], run_dir: Path) -> None:
    """After a run stopped by a signal and saved: a single run exits 75 (preempted: SIGTERM,
    SIGUSR1) or 130 (interrupted: Ctrl-C) with one line saying how to resume. In a sweep a
    preempted point lets the sweep go on; an interrupted one stops the sweep."""
    status = record.get("status")
    if status == "interrupted":
        where = f"{run_dir} saved at step {record.get('steps')}"
        if in_multirun():
            raise Interrupted(f"sweep interrupted: {where}; rerun to resume it: {_command()}")
        print(f"interrupted: {where}; rerun to resume: {_command()}", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    if status == "preempted" and not in_multirun():
        print(f"preempted: {record.get('reason')}", file=sys.stderr)
        sys.exit(EXIT_PREEMPTED)


def in_multirun() -> bool:
    """Whether this process is a job of a Hydra sweep (`-m`)."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def run_entry(
    fn: Callable[[DictConfig], Any], cfg: DictConfig, on_failure: FailureRecorder | None = None
) -> Any:
    """Call `fn(cfg)`.

    Single run: a bad config value exits with status 2 and one line, no traceback. Multirun
    (`-m`, a sweep): any exception is recorded by `on_failure`, logged in one line, and the job
    returns normally, so one bad point never stops the points after it.
    """
    # Hydra's job logging shows INFO from every logger; the libraries' INFO notes are not for
    # the researcher (orbax logs every save through absl; JAX says which backends it could not
    # load, e.g. "Unable to initialize backend 'tpu'" on a machine without one, then uses the
    # CPU as intended). Their warnings still show.
    for name in ("absl", "jax"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if in_multirun():
        return _run_isolated(fn, cfg, on_failure)
    try:
        return fn(cfg)
    except (ConfigError, OmegaConfBaseException) as err:
        print(f"error: {_one_line(err)}", file=sys.stderr)
        sys.exit(2)


def _run_isolated(
    fn: Callable[[DictConfig], Any], cfg: DictConfig, on_failure: FailureRecorder | None
) -> Any:
    try:
        return fn(cfg)
    except Exception as err:
        where = None
        if on_failure is not None:
            try:
                where = on_failure(cfg, err)
            except Exception as record_err:  # never let bookkeeping stop the sweep
                log.error("could not record the failure: %s", _one_line(record_err))
        job = where or f"job {HydraConfig.get().job.num}"
        log.error("%s failed: %s: %s", job, type(err).__name__, _one_line(err))
        return None


def integer_overrides(args: list[str]) -> list[str]:
    """The command line with every number given to an integer setting written as an integer:
    `train.tokens=5e6` -> `train.tokens=5000000`, also in lists and `a,b` sweeps. Hydra reads
    5e6 as a float, which an integer setting refuses. A fractional value (2.5 for a batch size)
    raises ConfigError naming the key; anything else is left for Hydra to judge."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ChoiceSweep

    parser = OverridesParser.create()
    out = []
    for arg in args:
        if arg.startswith("-") or "=" not in arg:  # Hydra's flags and their values
            out.append(arg)
            continue
        try:
            override = parser.parse_override(arg)
        except HydraException:  # malformed: Hydra reports it in its turn
            out.append(arg)
            continue
        key = override.key_or_group
        if override.is_delete() or not _integer_setting(key):
            out.append(arg)
            continue
        value = override.value()
        raw = arg.split("=", 1)[1]
        if isinstance(value, float):
            text = str(_whole(key, raw, value))
        elif isinstance(value, list):
            text = "[" + ",".join(str(_whole(key, raw, v)) for v in value) + "]"
        elif isinstance(value, ChoiceSweep) and value.simple_form:  # a, b, c: a sweep
            text = ",".join(str(_whole(key, raw, v)) for v in value.list)
        else:
            out.append(arg)
            continue
        out.append(f"{arg.split('=', 1)[0]}={text}")
    return out


def _whole(key: str, raw: str, value: Any) -> Any:
    if not isinstance(value, float):
        return value
    if not value.is_integer():
        raise ConfigError(f"{key}={raw} must be a whole number")
    return int(value)


def _integer_setting(key: str) -> bool:
    """Whether `key` (dotted) is an integer setting (or a list of them) of the run schema or of
    the sweep grid (hydra.sweeper.grid)."""
    parts = key.lstrip("+~").split(".")
    schema: Any = FinetuneConfig
    if parts[0] == "hydra":
        if parts[1:3] != ["sweeper", "grid"]:
            return False
        from scaling.sweep.grid import GridSpec

        schema, parts = GridSpec, parts[3:]
    return _setting_type(schema, parts) is int


def _setting_type(schema: Any, parts: list[str]) -> Any:
    """The type (unwrapped) of the setting at the dotted path `parts` of the dataclass `schema`,
    or None where there is no such setting. FinetuneConfig as `schema` holds every
    pre-training setting and the fine-tuning ones."""
    for part in parts:
        if not dataclasses.is_dataclass(schema):
            return None
        annotation = typing.get_type_hints(schema).get(part)
        if annotation is None:
            return None
        schema = _unwrap(annotation)
    return schema


def _unwrap(hint: Any) -> Any:
    """int from `int | None`, `list[int]` and `list[int] | None`."""
    if isinstance(hint, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if typing.get_origin(hint) is list:
        hint = typing.get_args(hint)[0]
    return hint


def _command() -> str:
    """The command line as typed (interpreter included), to run again."""
    return shlex.join(sys.orig_argv)


def _one_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__
