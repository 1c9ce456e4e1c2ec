"""Run dirs -> one tidy table (one row per run), the input of every analysis.

The analysis side reads only this table (or the record.json files behind it), never model
code, so a laptop can re-fit what a cluster trained:

    python -m scaling.records runs/            # writes runs/records.csv and runs/records.parquet
"""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from scaling.train.rundir import (
    RECORD_FILE,
    atomic_write_bytes,
    atomic_write_text,
    read_metrics,
    read_record,
)

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
