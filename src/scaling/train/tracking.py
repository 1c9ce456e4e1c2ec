"""Experiment tracking: each run's metrics rows to TensorBoard event files or to Weights & Biases.

- `tensorboard` (default): event files in `<run_dir>/tb/`, written by tensorboardX (a light
  writer, no TensorFlow), so `tensorboard --logdir runs/<sweep>` shows every run of a sweep.
  A resumed run purges the steps after its checkpoint (TensorBoard's purge_step), so curves
  never double back.
- `wandb`: one W&B run per run dir, grouped by the sweep's name; `WANDB_MODE=offline` works with
  no network (the files stay in `<run_dir>/wandb/` for `wandb sync`).
- `off`: nothing.

The tracker's run id is kept in `<run_dir>/ckpt/tracker.json` (beside the checkpoints) and in the
record, so a resumed run continues the same tracked run instead of starting a new one.
Rows are the run's metrics.jsonl rows: train and validation loss, learning rate, gradient norm,
and tokens/s (from the tokens and wall time between two rows).
"""

from __future__ import annotations

import json
import logging
import secrets
from pathlib import Path
from typing import Any

from scaling import records
from scaling.train import rundir

log = logging.getLogger(__name__)

TB_DIR = "tb"
ID_FILE = "tracker.json"
# metrics.jsonl keys -> tracked scalar names
SCALARS = {
    "train_loss": "train/loss",
    "val_loss": "val/loss",
    "lr": "train/lr",
    "grad_norm": "train/grad_norm",
}


def sweep_name() -> str | None:
    """The name of the sweep this process runs a point of (hydra.sweeper.grid.name), if any."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode
    except ImportError:
        return None
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    grid = HydraConfig.get().sweeper.get("grid") or {}
    return grid.get("name")


class Tracker:
    """One run's tracker: `log(row)` for each metrics row, `close()` at the end."""

    def __init__(self, backend: str, run_dir: Path, run_name: str, group: str | None,
                 config: dict[str, Any], start_step: int, project: str):  # fmt: skip
        self.backend, self.run_dir, self.group = backend, run_dir, group
        self.run_id = _stored_id(run_dir) or _new_id(backend)
        self._last: tuple[float, float] | None = None  # (tokens, time) of the previous row
        self._writer: Any = None
        self._wandb: Any = None
        if backend == "tensorboard":
            from tensorboardX import SummaryWriter

            # purge_step: TensorBoard drops what an earlier session logged at or after it.
            self._writer = SummaryWriter(
                str(run_dir / TB_DIR), purge_step=start_step or None, flush_secs=10
            )
        elif backend == "wandb":
            import wandb

            self._wandb = wandb.init(
                project=project,
                id=self.run_id,
                name=run_name,
                group=group,
                dir=str(run_dir),
                config=config,
                resume="allow",
                reinit="create_new",
            )
        _store_id(run_dir, {"backend": backend, "run_id": self.run_id, "group": group})

    def describe(self) -> dict[str, Any]:
        """The record's `tracker` field."""
        return {"backend": self.backend, "run_id": self.run_id, "group": self.group}

    def log(self, row: dict[str, Any]) -> None:
        scalars = {name: row[key] for key, name in SCALARS.items() if row.get(key) is not None}
        if "tokens" in row and "time" in row:
            if self._last is not None and row["time"] > self._last[1]:
                rate = (row["tokens"] - self._last[0]) / (row["time"] - self._last[1])
                scalars["train/tokens_per_s"] = rate
            self._last = (row["tokens"], row["time"])
        step = int(row["step"])
        if self._writer is not None:
            for name, value in scalars.items():
                self._writer.add_scalar(name, value, step)
        if self._wandb is not None:
            self._wandb.log(scalars, step=step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._wandb is not None:
            self._wandb.finish()


def open_tracker(cfg: Any, run_dir: Path, start_step: int) -> Tracker | None:
    """The tracker `cfg.tracking` asks for (None for "off"), continuing the run's stored id."""
    import jax

    t = cfg.tracking
    if t.backend == "off" or jax.process_index() != 0:  # one tracked run per run, not per host
        return None
    # TensorBoard groups by directory (a sweep's out_dir); only W&B needs the sweep's name.
    group = (t.group or sweep_name()) if t.backend == "wandb" else None
    from scaling.config import to_dict

    return Tracker(t.backend, run_dir, cfg.run_name, group, to_dict(cfg), start_step, t.project)


def _id_path(run_dir: Path) -> Path:
    return run_dir / rundir.CKPT_DIR / ID_FILE


def _stored_id(run_dir: Path) -> str | None:
    """The id a previous session of this run used: the checkpoint's copy, else the record's."""
    try:
        return json.loads(_id_path(run_dir).read_text())["run_id"]
    except (OSError, ValueError, KeyError):
        pass
    record = records.read_record(run_dir) or {}
    return (record.get("tracker") or {}).get("run_id")


def _store_id(run_dir: Path, ids: dict[str, Any]) -> None:
    records.atomic_write_text(_id_path(run_dir), json.dumps(ids) + "\n")


def _new_id(backend: str) -> str:
    # W&B ids are short and must be unique in a project; TensorBoard's run is its event
    # directory, named relative to the run dir (so a record does not depend on where it lives).
    return secrets.token_hex(4) if backend == "wandb" else TB_DIR
