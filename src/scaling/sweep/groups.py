"""Sweep jobs: points of one shape grouped to train together, and each job's launcher overrides.

Points whose configs differ only in per-run settings (`group_key`) train in one job, one jitted
step for all (`scaling.train.loop`). A job's overrides are its first point's, with the other
points carried in `group_runs`; the entry point turns them back into configs (`group_configs`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

from omegaconf import DictConfig, OmegaConf, open_dict

from scaling.config import PretrainConfig, group_key, to_dataclass, to_dict, validate
from scaling.sweep.grid import Point

# The override by which a sweep job carries the other runs of its group: a list of strings, each
# the dotted overrides (space-separated) that turn the job's own config into one more run's.
GROUP_KEY = "group_runs"


def member_overrides(point: Point) -> str:
    """A point's overrides but its model (which a group shares), as one `group_runs` entry."""
    return " ".join(o for o in point.overrides if not o.startswith("model="))


def group_configs(cfg: DictConfig) -> list[PretrainConfig] | None:
    """The runs a sweep job trains together (its own first), or None for a job of one run.

    Removes `group_runs` from `cfg`, so that what is left is the job's own run.
    """
    if GROUP_KEY not in cfg:
        return None
    with open_dict(cfg):
        entries = list(cfg.pop(GROUP_KEY))
    return [to_dataclass(cfg), *(to_dataclass(member_config(cfg, e)) for e in entries)]


def member_config(job_cfg: DictConfig, entry: str) -> DictConfig:
    """One more run of a group job: the job's config with a `group_runs` entry applied."""
    return cast(DictConfig, OmegaConf.merge(job_cfg, OmegaConf.from_dotlist(entry.split())))


def group_points(
    points: Sequence[Point],
    job_config: Callable[[Point], DictConfig],
    max_size: int,
    max_params: int,
) -> list[list[Point]]:
    """`points` in jobs: those sharing a group_key together (up to max_size), in order.

    `job_config(point)` is the point's composed config. A point joins a group only where its
    config, rebuilt from the group's first config and its `group_runs` entry, equals its own
    composed config; a point whose config is bad runs alone, to record its own failure.
    """

    def validated(cfg: DictConfig) -> PretrainConfig | None:
        try:
            return validate(to_dataclass(cfg))
        except Exception:  # a bad value: the point runs alone and records it as any point does
            return None

    composed: dict[str, DictConfig] = {}

    def config_of(point: Point) -> DictConfig:
        if point.run_name not in composed:
            composed[point.run_name] = job_config(point)
        return composed[point.run_name]

    jobs: list[list[Point]] = []
    open_jobs: dict[str, list[Point]] = {}
    for point in points:
        cfg = None
        if max_size > 1 and point.n_params <= max_params:
            cfg = validated(config_of(point))
        key = group_key(cfg) if cfg is not None else None
        job = open_jobs.get(key) if key is not None else None
        if job is not None:
            assert cfg is not None and key is not None  # only a config's key finds a job
            rebuilt = validated(member_config(config_of(job[0]), member_overrides(point)))
            if rebuilt is not None and to_dict(rebuilt) == to_dict(cfg):
                job.append(point)
                if len(job) == max_size:
                    del open_jobs[key]
                continue
        jobs.append([point])
        if key is not None:
            open_jobs[key] = jobs[-1]
    return jobs


def job_overrides(base: Sequence[str], job: Sequence[Point]) -> list[str]:
    """The launcher overrides of one job: the first point's, with the others in group_runs."""
    first = [*base, *job[0].overrides]
    if len(job) == 1:
        return first
    entries = ",".join(f"'{member_overrides(p)}'" for p in job[1:])
    return [*base, f"+{GROUP_KEY}=[{entries}]", *job[0].overrides]
