"""`hydra/sweeper=scaling`: expand a scaling-study grid into runs for any Hydra launcher.

The basic sweeper only forms cartesian products of command-line values; an IsoFLOP grid is not
one (each budget has its own rungs and its own D), and per-size hyperparameters are functions
of N. This sweeper reads `hydra.sweeper.grid` (a `scaling.sweep.grid.GridSpec`), counts each
rung's N and FLOPs per token from the composed config (so `model.arch=llama` or
`data.seq_len=...` on the command line are counted as trained), expands the points, skips those
whose run dir already holds a completed run of the same config, groups points of one shape into
jobs that train them together (`scaling.sweep.groups`, `grid.group_models`), and passes the jobs
as override lists to the configured launcher (basic, joblib, submitit, ray, ...). Hydra finds it
by scanning the `hydra_plugins` namespace package, which the editable src-layout install puts on
sys.path.
"""

# No `from __future__ import annotations` here: Hydra's plugin scan executes this module without
# entering it in sys.modules, and dataclasses cannot resolve string annotations without that.
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import HydraException
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from scaling import records
from scaling.config import PretrainConfig, to_dataclass
from scaling.sweep.grid import GridSpec, Point, grid_spec, plan, write_manifest
from scaling.sweep.groups import group_points, job_overrides
from scaling.train.progress import format_duration
from scaling.train.rundir import completed_run, record_failure

log = logging.getLogger(__name__)


@dataclass
class ScalingSweeperConf:
    _target_: str = "hydra_plugins.scaling_sweeper.scaling_sweeper.ScalingSweeper"
    grid: GridSpec = field(default_factory=GridSpec)
    skip_completed: bool = True  # points whose run dir holds a completed run launch no job
    max_batch_size: int | None = None  # jobs handed to the launcher at once (None: all)


ConfigStore.instance().store(
    group="hydra/sweeper", name="scaling", node=ScalingSweeperConf, provider="scaling"
)


class ScalingSweeper(Sweeper):
    def __init__(self, grid: DictConfig, skip_completed: bool, max_batch_size: int | None) -> None:
        self.spec = grid_spec(grid)
        self.skip_completed = skip_completed
        self.max_batch_size = max_batch_size
        self.hydra_context: HydraContext | None = None
        self.config: DictConfig | None = None
        self.launcher: Launcher | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> list[list[JobReturn]]:
        assert self.config is not None and self.launcher is not None
        base = self._base_overrides(arguments)
        base_cfg = self._compose(base)
        out_dir = Path(base_cfg.out_dir)
        points = plan(self.spec, lambda extra: self._compose([*base, *extra]))
        manifest = write_manifest(
            out_dir,
            self.spec.name,
            points,
            {"grid": OmegaConf.to_container(OmegaConf.structured(self.spec)), "overrides": base},
        )
        log.info(
            "sweep %s (%s): %d points, manifest %s",
            self.spec.name,
            self.spec.kind,
            len(points),
            manifest,
        )

        todo: list[Point] = []
        n_skipped = 0
        for point in points:
            try:
                cfg = self._compose([*base, *point.overrides])
            except Exception as err:  # a value the schema rejects: record it, go on
                self._record_compose_failure(point, out_dir, err)
                continue
            if self.skip_completed and completed_run(cfg):
                n_skipped += 1
                continue
            todo.append(point)
        # Longest first, so that parallel launchers are not left waiting on one big run at the end.
        todo.sort(key=lambda p: (-p.n_params * p.tokens, p.run_name))
        # Points of one shape train together, a job each group (grid.group_models).
        jobs = group_points(
            todo,
            lambda p: self._compose_job([*base, *p.overrides]),
            self.spec.group_models,
            self.spec.group_max_params,
        )
        log.info(
            "sweep %s: %d already completed, launching %d in %d jobs",
            self.spec.name,
            n_skipped,
            len(todo),
            len(jobs),
        )
        returns = self._launch(jobs, [job_overrides(base, job) for job in jobs])
        self._summarise(out_dir, points)
        return returns

    # --- helpers ---------------------------------------------------------------------------------

    def _base_overrides(self, arguments: list[str]) -> list[str]:
        """The command line's overrides, with out_dir made absolute for jobs run elsewhere."""
        assert self.hydra_context is not None and self.config is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        base: list[str] = []
        for override in parser.parse_overrides(arguments):
            if override.is_sweep_override():
                raise HydraException(
                    f"{override.input_line}: hydra/sweeper=scaling expands its grid from "
                    "hydra.sweeper.grid (rungs, tokens, budgets, seeds, hparams.lr_multipliers); "
                    "put the values there"
                )
            if override.key_or_group.lstrip("+~") != "out_dir":
                base.append(cast(str, override.input_line))  # the parser always sets it
        # Submitit and Ray jobs may start in another directory: never let them resolve out_dir.
        out_dir = Path(str(self.config.out_dir)).expanduser().absolute()
        quoted = str(out_dir).replace("\\", "\\\\").replace("'", "\\'")
        return [*base, f"out_dir='{quoted}'"]

    def _compose_job(self, overrides: list[str]) -> DictConfig:
        assert self.hydra_context is not None and self.config is not None
        cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(cfg):
            del cfg["hydra"]
        return cfg

    def _compose(self, overrides: list[str]) -> PretrainConfig:
        return to_dataclass(self._compose_job(overrides))

    def _record_compose_failure(self, point: Point, out_dir: Path, err: Exception) -> None:
        cfg = OmegaConf.create({"out_dir": str(out_dir), "run_name": point.run_name})
        run_dir = record_failure(cfg, err)
        message = str(err).strip().splitlines()[0]
        log.error("%s failed: %s: %s", run_dir or point.run_name, type(err).__name__, message)

    def _launch(self, points: list[list[Point]], jobs: list[list[str]]) -> list[list[JobReturn]]:
        """Launch the jobs (`points[i]` are job i's runs), saying before each batch which jobs
        of how many start and the sweep's time left. The basic launcher runs one job at a time
        anyway, so it is handed them one by one and each start is reported."""
        assert self.launcher is not None
        one_by_one = type(self.launcher).__name__ == "BasicLauncher"
        size = self.max_batch_size or (1 if one_by_one else len(jobs))
        # A job's cost, as the sort above: parameters x tokens of its runs (FLOPs up to a factor).
        costs = [sum(p.n_params * p.tokens for p in job) for job in points]
        started = time.monotonic()
        returns: list[list[JobReturn]] = []
        for start in range(0, len(jobs), max(size, 1)):
            batch = jobs[start : start + size]
            log.info(
                "sweep %s: %s",
                self.spec.name,
                sweep_progress(start, len(batch), points, costs, time.monotonic() - started),
            )
            results = list(self.launcher.launch(batch, initial_job_idx=start))
            for job, result in zip(batch, results, strict=True):
                if result.status == JobStatus.FAILED:
                    # The entry point records its own failures; this is a job that died in the
                    # launcher (a killed process, an unpicklable result, ...).
                    error: Any = result._return_value
                    log.error("job %s failed in the launcher: %s", job[-1], error)
            returns.append(results)
        return returns

    def _summarise(self, out_dir: Path, points: list[Point]) -> None:
        counts: Counter[str] = Counter()
        for point in points:
            record = records.read_record(out_dir / point.run_name) or {}
            status = record.get("status", "missing")
            counts[status] += 1
            if status != records.STATUS_COMPLETED:
                log.warning("%s: %s %s", point.run_name, status, record.get("reason") or "")
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        log.info("sweep %s: %s", self.spec.name, summary)


def sweep_progress(
    start: int, n: int, points: list[list[Point]], costs: Sequence[float], elapsed_s: float
) -> str:
    """Which jobs start (`n` from index `start`) of how many, and the sweep's time left: the
    time so far per unit of cost (parameters x tokens) of the jobs done, times the cost left."""
    total = len(points)
    which = f"job {start + 1} of {total}" if n == 1 else f"jobs {start + 1}-{start + n} of {total}"
    runs = [p.run_name for job in points[start : start + n] for p in job]
    names = ", ".join(runs[:3]) + (f" and {len(runs) - 3} more" if len(runs) > 3 else "")
    done = sum(costs[:start])
    if not done:
        return f"{which} ({names})"
    left = elapsed_s / done * sum(costs[start:])
    return (
        f"{which} ({names}); {start} done in {format_duration(elapsed_s)}, "
        f"about {format_duration(left)} left"
    )
