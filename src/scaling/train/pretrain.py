"""Pre-training from configs: one run, or the runs of a sweep job trained together.

Every run writes its own run dir (config.yaml, record.json, metrics.jsonl, its own orbax
checkpoints), whether it trains alone or in a group; a grouped run's record adds `group_id`,
`group_size` and `group_runs`, and either way of training restores the other's checkpoints.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Sequence
from typing import Any, cast

from omegaconf import OmegaConf

from scaling import records
from scaling.config import ConfigError, PretrainConfig, group_key, run_dir_of, to_dict, validate
from scaling.data.build import build_corpus
from scaling.train import loop, rundir
from scaling.train.run import Trainer, enable_compilation_cache, open_run
from scaling.train.rundir import record_failure

log = logging.getLogger(__name__)


def pretrain(cfg: PretrainConfig) -> dict[str, Any]:
    """Train or resume the run in <out_dir>/<run_name>; return its record (as in record.json)."""
    with open_pretrain(validate(cfg)) as opened:
        return opened if isinstance(opened, dict) else loop.train([opened])[0]


def open_pretrain(cfg: PretrainConfig) -> contextlib.AbstractContextManager[Trainer | dict]:
    """The run dir of a validated pre-training config, opened (see `open_run`)."""
    enable_compilation_cache(cfg.data.cache_dir)
    run_dir = run_dir_of(cfg)
    rundir.check_same_run(run_dir, to_dict(cfg))
    return open_run(
        cfg,
        run_dir,
        make_corpus=lambda: build_corpus(cfg.data, seed=cfg.train.seed),
    )


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
                        "that runs trained together must share (see scaling.config.group_key)"
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
    return cast(list[dict[str, Any]], results)  # every run has its record


def _train(trainers: list[Trainer]) -> list[dict[str, Any]]:
    """Their records: trained as a group, or one after another where each spreads over several
    devices (a `parallel` layout with a mesh). A failure is in the records, not raised."""
    if not trainers:
        return []
    groups = [[t] for t in trainers] if trainers[0].layout.mesh is not None else [trainers]
    if len(groups) == 1:
        names = [t.cfg.run_name for t in trainers]
        group_id = hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()[:12]
        for t in trainers:
            t.record.update(group_id=group_id, group_size=len(trainers), group_runs=names)
    results = []
    for group in groups:
        try:
            results += loop.train(group)
        except Exception as err:  # recorded in every unfinished run dir; the others go on
            what = group[0].run_dir if len(group) == 1 else f"group of {len(group)}"
            log.error("%s failed: %s", what, rundir.failure_reason(err))
            for t in group:
                if t.final is None:
                    t.final = rundir.failed_record(t.record, err)
                    records.write_record(t.run_dir, t.final)
            results += [cast(dict[str, Any], t.final) for t in group]
    return results


def _failed(cfg: PretrainConfig, err: BaseException) -> dict[str, Any]:
    """Record a run that could not start, as a sweep records a failed point; its record."""
    run_dir = record_failure(OmegaConf.structured(cfg), err)
    log.error("%s failed: %s", run_dir or cfg.run_name, rundir.failure_reason(err))
    return (records.read_record(run_dir) if run_dir else None) or rundir.failed_record(
        {"run_name": cfg.run_name}, err
    )
