"""Runs the benchmark's shapes and ladder rungs, each in a child process (scaling.bench.measure)
under one budget, and fills the report as each row ends."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scaling.bench.measure import OURS, Budget, Variants, host_machine, ours_peak
from scaling.bench.shapes import Shape
from scaling.bench.tables import write_tables


def bench_shapes(
    shapes: list[Shape],
    device: str,
    sides: tuple[str, ...] | None,
    reps: int,
    block_s: float,
    warmup: int,
    grad_accum: int | None = None,
    variants: Variants | None = None,
    budget: Budget | None = None,
) -> Iterator[dict[str, Any]]:
    """One child process per shape, each row as it ends: a failed shape is a row with its
    error, one the budget leaves no time for a row saying it was skipped. A child gets what is
    left of the budget as its timeout, and its variants an even share of it among the shapes
    left (measure_shape's variants_deadline): ours and the peer on every shape come first."""
    budget = budget or Budget()
    for i, shape in enumerate(shapes):
        if not budget.has_time():
            row = budget.skipped_row(shape)
        else:
            spec: dict[str, Any] = {
                "shape": asdict(shape),
                "device": device,
                "sides": sides,
                "reps": reps,
            }
            # ceiling: the matmul rate MFU is read against, measured on an accelerator
            spec.update(block_s=block_s, grad_accum=grad_accum, variants=variants, ceiling=True)
            left = budget.left()
            if left is not None and variants:
                spec["variants_deadline"] = time.time() + left / (len(shapes) - i)
            child = budget.child({**spec, "warmup_steps": warmup})
            row = {"shape": asdict(shape), **child}
        print(f"{shape.name}: {_summary(row)}", file=sys.stderr)
        yield row


def rung_verdict(row: dict[str, Any], cap_bytes: float | None) -> str:
    """How a rung's row stands against the cap: fits, over (it ran, but its peak device memory
    is above the cap), oom, error or skipped. Without a cap, or where the backend keeps no peak
    count, a step that ran fits."""
    if "skipped" in row:
        return "skipped"
    if "error" in row:
        return "oom" if row.get("oom") else "error"
    peak = row["sides"][OURS]["peak_memory_bytes"]
    return "over" if cap_bytes is not None and peak is not None and peak > cap_bytes else "fits"


def ladder_memory(
    shapes: list[Shape],
    device: str,
    reps: int,
    block_s: float,
    warmup: int,
    cap_gib: float | None = None,
    budget: Budget | None = None,
) -> Iterator[dict[str, Any]]:
    """Peak memory of our step per rung, each row as it ends, in the order given (bench.py
    gives the largest first: under a budget the rung that answers "which is the largest that
    trains" comes first, and the smaller ones, which fit if it does, follow as time allows). A
    rung whose plain step runs out of memory or peaks above `cap_gib` is retried with remat.
    Rungs the budget leaves no time for are rows saying they were skipped; a rung that fails
    does not stop the others. Each row's "verdict" is `rung_verdict`'s."""
    budget = budget or Budget()
    cap = None if cap_gib is None else cap_gib * 2**30
    for shape in shapes:
        spec = {"shape": asdict(shape), "device": device, "sides": [OURS], "reps": reps}
        spec.update(block_s=block_s, warmup_steps=warmup)
        attempts, row, verdict = [], {}, "skipped"
        for remat in (False, True):
            if not budget.has_time():
                break
            child = budget.child({**spec, "remat": remat})
            row = {"shape": asdict(shape), "remat": remat, **child}
            verdict = rung_verdict(row, cap)
            attempts.append(
                {"remat": remat, "verdict": verdict, "peak_memory_bytes": ours_peak(row),
                 "error": row.get("error")}
            )  # fmt: skip
            if verdict not in ("oom", "over"):
                break
        if not attempts:
            row = budget.skipped_row(shape)
        else:
            row.update(attempts=attempts, verdict=verdict)
            if verdict in ("oom", "over") and len(attempts) == 1:
                row["note"] = "remat not tried: the budget was spent"
        print(f"{shape.name}: {_summary(row)}", file=sys.stderr)
        yield row


def largest_rung(rows: list[dict[str, Any]]) -> str | None:
    """The rung with the most parameters among those that fit."""
    fitting = [row for row in rows if row.get("verdict") == "fits"]
    if not fitting:
        return None
    return max(fitting, key=lambda row: row["n_params_total"])["shape"]["name"]


def _summary(row: dict[str, Any]) -> str:
    if "skipped" in row:
        return row["skipped"]
    if "error" in row:
        return f"failed: {row['error']}"
    return ", ".join(f"{k} {v['tokens_per_s']:,.0f} tok/s" for k, v in row["sides"].items())


def run_report(
    report: dict[str, Any],
    out_stem: Path,
    shape_rows: Iterable[dict[str, Any]],
    ladder_rows: Iterable[dict[str, Any]] | None = None,
) -> bool:
    """Fill `report["shapes"]`, then `report["ladder"]`, from the row iterators (bench_shapes,
    ladder_memory), rewriting the tables at `out_stem` first and after every row, so a kill
    loses at most the shape in flight. True when any row was measured."""

    def save() -> None:
        done = [r for r in report["shapes"] + report.get("ladder", []) if "machine" in r]
        report["machine"] = done[0]["machine"] if done else host_machine(report["device"])
        write_tables(out_stem, report)

    report["shapes"] = []
    if ladder_rows is not None:
        report["ladder"], report["largest_rung"] = [], None
    save()
    for row in shape_rows:
        report["shapes"].append(row)
        save()
    for row in ladder_rows or ():
        report["ladder"].append(row)
        report["largest_rung"] = largest_rung(report["ladder"])
        save()
    return any("machine" in r for r in report["shapes"] + report.get("ladder", []))


def now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
