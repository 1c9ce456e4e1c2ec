"""Run records: record.json (a typed `Record`) and metrics.jsonl, written and read; the runs table.

The training side writes a run's files through this module, atomically (temp file in the same
directory, fsync, rename: a run killed at any instant leaves the old or the new version, never
half of one); the metrics log is append-only and cut back to the restored step on resume. The
analysis side reads only these files or the table built from them, never model code, so a
laptop can re-fit what a cluster trained. A record holds only the fields `Record` declares: one
with another field or without its run name and status is refused, naming the file and the field,
on write and on read; the file carries the schema version it was written in.

    python -m scaling.records runs/            # writes runs/records.csv and runs/records.parquet
"""

import argparse
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Required, TypedDict

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


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call write(tmp) on a temp file in path's directory, then rename it onto path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    atomic_write(path, write)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def writes_enabled() -> bool:
    return _writes_enabled


SCHEMA_VERSION = 1


class Record(TypedDict, total=False):
    """A run's record.json, field by field. A run writes it when it starts (status running) and
    again when it ends; a point that failed before its run started has only a few fields."""

    # The table's leading columns, in this order (`TABLE_COLUMNS`); counting conventions are named,
    # never implicit: N in three conventions, FLOPs in three.
    run_name: Required[str]
    status: Required[str]  # one of the STATUS_* above
    reason: str | None  # why it stopped, failed or diverged; None when it completed
    model: str | None
    arch: str
    d_model: int
    n_layers: int
    n_heads: int
    n_params_total: int
    n_params_nonembedding: int
    n_params_with_head: int
    corpus: str
    tokenizer: str
    vocab_size: int
    seq_len: int
    tokens_target: int | None
    tokens_seen: int
    unique_tokens: int | None  # distinct training tokens (None: a stream without repeats)
    epochs: float | None
    steps: int
    flops_6n: float
    flops_6n_attn: float
    flops_chinchilla: float
    lr: float | None
    batch_size: int | None
    schedule: str
    seed: int | None
    final_train_loss: float | None
    final_val_loss: float | None
    best_val_loss: float | None
    final_val_bpb: float | None
    entropy_nats_per_token: float | None  # the corpus's known entropy, where it has one
    wall_time_s: float
    compile_time_s: float
    tokens_per_s: float | None
    mfu: float | None
    device_kind: str
    # The rest of the model, data and plan.
    d_ff: int
    flops_per_token_6n: float
    flops_per_token_6n_attn: float
    flops_per_token_chinchilla: float
    bytes_per_token: float
    data: dict[str, Any]  # the corpus's own description
    val_sequences: int
    val_tokens_evaluated: int
    grad_accum: int
    total_steps: int
    warmup_steps: int
    final_val_loss_se: float | None
    step_time_s: float | None
    # Where it ran, and on what code.
    backend: str
    n_devices: int
    n_processes: int
    parallel: str
    state_bytes_per_device: int
    peak_flops_per_s: float | None
    versions: dict[str, str | None]
    git_commit: str | None
    tracker: dict[str, Any]
    # How it got here: resumed, diverged, trained in a group of runs of one shape.
    resumed_from_step: int | None
    diverged_step: int
    group_id: str
    group_size: int
    group_runs: list[str]
    # A fine-tune or a from-scratch task run: the task, its source, and the task metrics at the
    # end and at step 0 (`tasks.metrics.METRICS`).
    task: str
    task_kind: str
    few_shot: int
    init_from: str | None
    source_run_name: str | None
    source_model: str | None
    source_status: str | None
    source_n_params_total: int | None
    source_n_params_nonembedding: int | None
    source_step: int | None
    source_tokens: int | None
    pretrain_final_val_loss: float | None
    task_exact_match: float
    task_token_accuracy: float
    task_edit_distance: float
    task_answer_logprob: float
    task_brier: float
    task_n_eval: int
    task_resolution: float
    initial_val_loss: float
    initial_val_loss_se: float
    initial_task_exact_match: float
    initial_task_token_accuracy: float
    initial_task_edit_distance: float
    initial_task_answer_logprob: float
    initial_task_brier: float
    initial_task_n_eval: int
    initial_task_resolution: float


RECORD_FIELDS = frozenset(Record.__annotations__)
_VERSION_KEY = "schema_version"  # in the file only: read_record checks it and drops it


class RecordError(ValueError):
    """A record.json that is not a `Record` of this schema version."""


def check_record(record: dict[str, Any], where: Path) -> dict[str, Any]:
    """`record` when its fields are a Record's; RecordError naming `where` and the field if not.

    Records travel as plain dicts (a run adds its fields as it goes); this check at every write
    and read is what holds them to the schema."""
    unknown = sorted(set(record) - RECORD_FIELDS)
    if unknown:
        raise RecordError(f"{where}: unknown record field {', '.join(unknown)}")
    missing = sorted(Record.__required_keys__ - set(record))
    if missing:
        raise RecordError(f"{where}: record lacks {', '.join(missing)}")
    return record


def write_record(run_dir: Path, record: dict[str, Any]) -> None:
    if not _writes_enabled:
        return
    path = Path(run_dir) / RECORD_FILE
    check_record(record, path)
    text = json.dumps(
        {_VERSION_KEY: SCHEMA_VERSION, **record}, indent=2, sort_keys=False, default=_json_default
    )
    atomic_write_text(path, text + "\n")


def read_record(run_dir: Path) -> dict[str, Any] | None:
    """The run's record, or None when it has none (never started) or it is unreadable JSON;
    RecordError when it is JSON but not a Record of this schema version."""
    path = Path(run_dir) / RECORD_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(record, dict):
        return None
    # Records written before the version was stored are version 1.
    version = record.pop(_VERSION_KEY, 1)
    if version != SCHEMA_VERSION:
        raise RecordError(
            f"{path}: schema version {version!r}, this code reads version {SCHEMA_VERSION}"
        )
    return check_record(record, path)


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


# The table's leading columns: Record's own up to device_kind, with where the run dir is; any
# other field follows, sorted by name.
_LEADING = list(Record.__annotations__)
TABLE_COLUMNS = ["run_name", "run_dir", *_LEADING[1 : _LEADING.index("device_kind") + 1]]


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
    """One row per run under `root`, the leading columns first; empty (with them) if none."""
    root = Path(root)
    rows = []
    for run_dir in find_run_dirs(root):
        record = read_record(run_dir)
        if record is None:
            continue
        rows.append({**flatten(record), "run_dir": str(run_dir.relative_to(root))})
    table = pd.DataFrame(rows)
    extra = sorted(c for c in table.columns if c not in TABLE_COLUMNS)
    return table.reindex(columns=TABLE_COLUMNS + extra)


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
