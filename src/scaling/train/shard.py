"""Meshes and shardings (data parallel, FSDP) and multi-host start-up.

All strategies use one mesh axis, `data`, over the devices in use:
- `single`: no mesh at all; the state and batches live on the default device, exactly as a
  plain `jax.jit` program (the reference every other strategy is compared against).
- `dp`: parameters and optimizer state replicated, each batch split along its rows; GSPMD
  all-reduces the gradients.
- `fsdp`: batches split as in dp, and every parameter and optimizer buffer split along its
  largest dimension the data axis divides (ZeRO-3 style). The step gathers the parameters for
  the forward and backward passes and puts the gradients back onto the parameter shards, so
  XLA can reduce-scatter them.
- `auto`: `single` on one device, `dp` on more.

The axes are `AxisType.Auto`: shardings are placed on the inputs and constrained inside the
step, and XLA propagates the rest; the model code carries no annotations.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from scaling import records
from scaling.config import ConfigError, ParallelConfig

log = logging.getLogger(__name__)

DATA_AXIS = "data"


def initialize_distributed() -> bool:
    """Join the other processes of a multi-process job; True when there are several.

    Called at the start of the entry points, before JAX touches a device. A process is one of
    several under `srun` with more than one task (SLURM_NTASKS > 1: coordinator, count and rank
    come from SLURM's variables) or when JAX_COORDINATOR_ADDRESS is set (then JAX_NUM_PROCESSES
    and JAX_PROCESS_ID must be set too). Otherwise nothing is initialised. Only process 0 writes
    the run dir; orbax coordinates the checkpoint writes of all processes itself.
    """
    env = os.environ
    if jax.distributed.is_initialized():
        return jax.process_count() > 1
    if "JAX_COORDINATOR_ADDRESS" in env:
        missing = [k for k in ("JAX_NUM_PROCESSES", "JAX_PROCESS_ID") if k not in env]
        if missing:
            raise ConfigError(f"JAX_COORDINATOR_ADDRESS is set but {', '.join(missing)} is not")
        jax.distributed.initialize(
            num_processes=int(env["JAX_NUM_PROCESSES"]), process_id=int(env["JAX_PROCESS_ID"])
        )
    elif int(env.get("SLURM_NTASKS", "1")) > 1 and "SLURM_STEP_NODELIST" in env:
        # Inside an srun step (a batch script itself has no SLURM_STEP_NODELIST).
        jax.distributed.initialize()
    else:
        return False
    records.set_writer(jax.process_index() == 0)
    log.info(
        "process %d of %d, %d of %d devices local",
        jax.process_index(),
        jax.process_count(),
        jax.local_device_count(),
        jax.device_count(),
    )
    return True


def max_over_processes(value: int) -> int:
    """The largest of every process's `value`, on every process (a collective: all must call)."""
    if jax.process_count() == 1:
        return value
    return int(np.max(multihost_utils.process_allgather(np.asarray(value, np.int32))))


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where the train state and the batches live: a strategy and its mesh (None: single)."""

    strategy: str
    mesh: Mesh | None = None

    @property
    def n_devices(self) -> int:
        return 1 if self.mesh is None else self.mesh.size

    def shardings(self, tree: Any) -> Any:
        """The sharding of every array (or ShapeDtypeStruct) leaf of a state-like tree."""
        mesh = self._sharded_mesh()
        return jax.tree.map(lambda x: NamedSharding(mesh, self._spec(x.shape)), tree)

    def _sharded_mesh(self) -> Mesh:
        """The mesh, for what only a sharded layout (dp, fsdp: always on a mesh) does."""
        assert self.mesh is not None, "a single-device layout has no shardings"
        return self.mesh

    def _spec(self, shape: tuple[int, ...]) -> PartitionSpec:
        if self.strategy != "fsdp":
            return PartitionSpec()
        n = self._sharded_mesh().size
        # The largest dimension the data axis divides; the first of equals. None: replicate.
        dims = [i for i, size in enumerate(shape) if size % n == 0]
        if not dims:
            return PartitionSpec()
        best = max(dims, key=lambda i: (shape[i], -i))
        return PartitionSpec(*(DATA_AXIS if i == best else None for i in range(len(shape))))

    def place(self, tree: Any) -> Any:
        """Outside jit: move a state-like tree onto its shardings (a no-op where it already is)."""
        if self.mesh is None:
            return tree
        return jax.device_put(tree, self.shardings(tree))

    def constrain(self, tree: Any) -> Any:
        """Inside a jitted function: pin a state-like tree to its shardings."""
        if self.mesh is None:
            return tree
        return jax.lax.with_sharding_constraint(tree, self.shardings(tree))

    def gather(self, params: Any) -> Any:
        """Inside a jitted function: whole parameters for the compute (FSDP's all-gather)."""
        if self.strategy != "fsdp":
            return params
        replicated = NamedSharding(self._sharded_mesh(), PartitionSpec())
        return jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, replicated), params)

    def batch_sharding(self, ndim: int) -> NamedSharding:
        return NamedSharding(self._sharded_mesh(), PartitionSpec(DATA_AXIS, *([None] * (ndim - 1))))

    def put_batch(self, x: np.ndarray) -> jax.Array:
        """A host batch (the same global batch on every process) as a device array split by rows."""
        if self.mesh is None:
            return jnp.asarray(x)
        # Each process hands over only the rows its own devices hold.
        return jax.make_array_from_callback(x.shape, self.batch_sharding(x.ndim), lambda i: x[i])

    def batch_spec(self, shape: tuple[int, ...], dtype: Any) -> jax.ShapeDtypeStruct:
        """The abstract batch the steps are compiled for."""
        if self.mesh is None:
            return jax.ShapeDtypeStruct(shape, dtype)
        return jax.ShapeDtypeStruct(shape, dtype, sharding=self.batch_sharding(len(shape)))


SINGLE = Layout("single")  # the default device, no mesh


def bytes_per_device(tree: Any) -> int:
    """Bytes of a tree's arrays held by one device (dp: all of them; fsdp: about 1/n)."""
    return sum(x.addressable_shards[0].data.nbytes for x in jax.tree.leaves(tree))


def make_layout(parallel: ParallelConfig, batch_size: int, grad_accum: int | None) -> Layout:
    """The layout a config asks for on the devices there are; a ConfigError if it cannot work.

    Checked before anything is compiled: the device count is only known at run time, and every
    micro-batch (`batch_size / grad_accum` rows) must split evenly over the data axis. With
    grad_accum None (chosen per device, scaling.train.optim.microbatches) the batch must, and the
    chosen micro-batches then do.
    """
    available = jax.device_count()
    n = available if parallel.devices == -1 else parallel.devices
    if n > available:
        raise ConfigError(f"parallel.devices={n} but only {available} devices are visible")
    strategy = parallel.strategy
    if strategy == "auto":
        strategy = "single" if n == 1 else "dp"
    if strategy == "single":
        if parallel.devices not in (-1, 1):
            raise ConfigError(f"parallel.strategy=single uses 1 device, not {parallel.devices}")
        return SINGLE
    if jax.process_count() > 1 and n != available:
        raise ConfigError(
            f"parallel.devices={n}: a multi-process run uses all {available} devices (-1)"
        )
    micro = batch_size // (grad_accum or 1)
    if micro % n:
        what = f"train.batch_size={batch_size}"
        if grad_accum is not None:
            what += f" (micro-batch {micro} with train.grad_accum={grad_accum})"
        raise ConfigError(
            f"{what} does not split over parallel.devices={n} ({strategy}); "
            "use a multiple of the device count"
        )
    devices = jax.devices()[:n]
    mesh = Mesh(np.asarray(devices), (DATA_AXIS,), axis_types=(AxisType.Auto,))
    return Layout(strategy, mesh)
