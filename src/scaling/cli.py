"""What the Hydra entry points share: one clear line for a bad config, isolation in sweeps."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from scaling.config import ConfigError

log = logging.getLogger(__name__)

# Records a failed sweep point (e.g. scaling.sweep.record_failure); returns where, if anywhere.
FailureRecorder = Callable[[DictConfig, BaseException], Path | None]


# sysexits.h EX_TEMPFAIL: a temporary failure, worth retrying (SLURM --requeue, a rerun).
EXIT_PREEMPTED = 75


def main(hydra_main: Callable[[], Any]) -> None:
    """Run a `@hydra.main` entry point: a bad command line (an unknown key, a value of the wrong
    type, a missing group option, a bad sweep grid) exits with status 2 and one line, as a bad
    value does.

    Hydra prints its own composition errors over several lines and exits 1; it raises them
    instead when HYDRA_FULL_ERROR=1, so that is set here (a user who set it gets the trace).
    """
    full_trace = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        hydra_main()
    except (HydraException, OmegaConfBaseException, ConfigError) as err:
        if full_trace:
            raise
        cause = err.__cause__
        detail = f": {_one_line(cause)}" if isinstance(cause, OmegaConfBaseException) else ""
        print(f"error: {_one_line(err)}{detail}", file=sys.stderr)
        sys.exit(2)


def exit_if_preempted(record: dict[str, Any]) -> None:
    """A single run stopped by a preemption signal exits 75 after saving; sweeps go on."""
    if record.get("status") == "preempted" and not in_multirun():
        print(f"preempted: {record.get('reason')}", file=sys.stderr)
        sys.exit(EXIT_PREEMPTED)


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def run_entry(
    fn: Callable[[DictConfig], Any], cfg: DictConfig, on_failure: FailureRecorder | None = None
) -> Any:
    """Call `fn(cfg)`.

    Single run: a bad config value exits with status 2 and one line, no traceback. Multirun
    (`-m`, a sweep): any exception is recorded by `on_failure`, logged in one line, and the job
    returns normally, so one bad point never stops the points after it.
    """
    # Orbax logs every save through absl at INFO; Hydra's stdout logging would print it all.
    logging.getLogger("absl").setLevel(logging.WARNING)
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


def _one_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__
