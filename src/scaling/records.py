"""Run records: record.json and metrics.jsonl written and read, and run dirs -> one tidy table.

The training side writes a run's files through this module, atomically (temp file in the same
directory, fsync, rename: a run killed at any instant leaves the old or the new version, never
half of one); the metrics log is append-only and cut back to the restored step on resume. The
analysis side reads only these files or the table built from them, never model code, so a
laptop can re-fit what a cluster trained:

    python -m scaling.records runs/            # writes runs/records.csv and runs/records.parquet
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

RECORD_FILE = "record.json"
METRICS_FILE = "metrics.jsonl"

STATUS_RUNNING = "running"
STATUS_COMPLETED = "completed"
STATUS_FAILED = "failed"
STATUS_DIVERGED = "diverged"
STATUS_STOPPED = "stopped"  # stopped early on purpose (train.stop_at_step): resumable
STATUS_PREEMPTED = "preempted"  # SIGTERM/SIGUSR1: checkpointed and stopped, resumable
STATUS_INTERRUPTED = "interrupted"  # SIGINT (Ctrl-C): checkpointed and stopped, resumable

# In a multi-process run only process 0 writes the run dir (train.shard turns the others off).
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


def writes_enabled() -> bool:
    return _writes_enabled


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


def _json_default(value: Any) -> Any:
    # numpy and jax scalars
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# The leading columns, in this order; any other record field follows, sorted by name.
# Counting conventions are named, never implicit: N in three conventions, FLOPs in three.
CORE_COLUMNS = [
    "run_name",
    "run_dir",
    "status",
    "reason",
    "model",
    "arch",
    "d_model",
    "n_layers",
    "n_heads",
    "n_params_total",
    "n_params_nonembedding",
    "n_params_with_head",
    "corpus",
    "tokenizer",
    "vocab_size",
    "seq_len",
    "tokens_target",
    "tokens_seen",
    "unique_tokens",
    "epochs",
    "steps",
    "flops_6n",
    "flops_6n_attn",
    "flops_chinchilla",
    "lr",
    "batch_size",
    "schedule",
    "seed",
    "final_train_loss",
    "final_val_loss",
    "best_val_loss",
    "final_val_bpb",
    "entropy_nats_per_token",
    "wall_time_s",
    "compile_time_s",
    "tokens_per_s",
    "mfu",
    "device_kind",
]


def find_run_dirs(root: Path) -> Iterator[Path]:
    """Every directory under `root` holding a record.json (checkpoint trees are not searched)."""
    root = Path(root)
    if (root / RECORD_FILE).is_file():
        yield root
        return
    for child in sorted(p for p in root.iterdir() if p.is_dir()):
        if child.name.startswith(".") or child.name in ("ckpt", "ckpt_damaged"):
            continue
        yield from find_run_dirs(child)


def flatten(record: dict[str, Any]) -> dict[str, Any]:
    """Nested dicts become prefixed columns (versions.jax -> versions_jax); lists become JSON."""
    row: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            for sub_key, sub_value in flatten(value).items():
                row[f"{key}_{sub_key}"] = sub_value
        elif isinstance(value, list | tuple):
            row[key] = json.dumps(value)
        else:
            row[key] = value
    return row


def collect(root: Path) -> pd.DataFrame:
    """One row per run under `root`, core columns first; empty (with the core columns) if none."""
    root = Path(root)
    rows = []
    for run_dir in find_run_dirs(root):
        record = read_record(run_dir)
        if record is None:
            continue
        rows.append({**flatten(record), "run_dir": str(run_dir.relative_to(root))})
    table = pd.DataFrame(rows)
    extra = sorted(c for c in table.columns if c not in CORE_COLUMNS)
    return table.reindex(columns=CORE_COLUMNS + extra)


def collect_curves(root: Path) -> pd.DataFrame:
    """Every evaluation of every run under `root`: run_name, step, tokens, train and val loss."""
    root = Path(root)
    frames = []
    for run_dir in find_run_dirs(root):
        rows = [r for r in read_metrics(run_dir) if "val_loss" in r]
        if rows:
            frame = pd.DataFrame(rows)[["step", "tokens", "train_loss", "val_loss"]]
            frames.append(frame.assign(run_dir=str(run_dir.relative_to(root))))
    columns = ["run_dir", "step", "tokens", "train_loss", "val_loss"]
    return (
        pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)
    )


def write(table: pd.DataFrame, stem: Path) -> list[Path]:
    """Write `<stem>.csv` and `<stem>.parquet`, each atomically; return the paths."""
    stem = Path(stem)
    csv_path, parquet_path = stem.with_suffix(".csv"), stem.with_suffix(".parquet")
    atomic_write_text(csv_path, table.to_csv(index=False))
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    atomic_write_bytes(parquet_path, buffer.getvalue())
    return [csv_path, parquet_path]


def read(path: Path) -> pd.DataFrame:
    """A records table from CSV or Parquet."""
    path = Path(path)
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="directory holding run dirs")
    parser.add_argument("--out", type=Path, help="output stem (default <root>/records)")
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        parser.error(f"{args.root} is not a directory")
    table = collect(args.root)
    paths = write(table, args.out or args.root / "records")
    print(f"{len(table)} runs -> {', '.join(map(str, paths))}")


if __name__ == "__main__":
    main()
