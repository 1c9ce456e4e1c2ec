"""An entry point's job: its K >= 1 pre-training runs, checked before JAX loads, then trained.

This module imports no JAX: an entry point imports it at the top, and a bad value of a single
run is refused before JAX takes seconds to load (a group records its bad runs and goes on).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from scaling.config import PretrainConfig, validate


def pretrain_job(cfgs: Sequence[PretrainConfig]) -> list[dict[str, Any]]:
    """The records of a job's runs, in order: one run as `pretrain` trains it (a failure
    raises), several together as `pretrain_group` does (a failure is in its run's record)."""
    if len(cfgs) == 1:
        validate(cfgs[0])
    # Here, not above (see the docstring), and so that a Ctrl-C while it loads is handled
    # by the entry point (scaling.cli.main).
    from scaling.train.pretrain import pretrain, pretrain_group
    from scaling.train.shard import initialize_distributed

    initialize_distributed()  # only under srun with several tasks, or JAX_COORDINATOR_ADDRESS
    return [pretrain(cfgs[0])] if len(cfgs) == 1 else pretrain_group(cfgs)
