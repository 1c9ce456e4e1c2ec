"""Reading (N, D, C, loss) points from a CSV with named columns, with one clear error per
problem (the file, the column, what is wrong)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


class FitInputError(ValueError):
    """Input that cannot be fitted; the message names the file and column."""


def _read(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise FitInputError(f"{path}: no such file")
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise FitInputError(f"{path}: not a readable CSV ({err})") from err


def _column(frame: pd.DataFrame, path: Path, name: str) -> np.ndarray:
    if name not in frame.columns:
        available = ", ".join(repr(c) for c in frame.columns)
        raise FitInputError(f"{path}: no column {name!r} (columns: {available})")
    values = pd.to_numeric(frame[name], errors="coerce").to_numpy(float)
    bad = ~(np.isfinite(values) & (values > 0))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise FitInputError(
            f"{path}: column {name!r} has {int(bad.sum())} non-positive, missing or non-numeric "
            f"values (first in data row {first + 1}: {frame[name].tolist()[first]!r})"
        )
    return values


def load_points(
    path: str | Path,
    *,
    n_col: str,
    loss_col: str,
    d_col: str | None = None,
    c_col: str | None = None,
    drop_highest: int = 0,
    unique_col: str | None = None,
) -> pd.DataFrame:
    """Columns N, D, C, loss from a CSV: D from d_col, else C/(6N) from c_col; C from c_col, else
    6ND; with unique_col also U, the unique tokens of each run (repeated data). The
    drop_highest rows of highest loss are dropped (the Epoch replication drops 5)."""
    path = Path(path)
    if d_col is None and c_col is None:
        raise FitInputError(f"{path}: give a tokens column (D) or a compute column (C)")
    frame = _read(path)
    n = _column(frame, path, n_col)
    loss = _column(frame, path, loss_col)
    c = _column(frame, path, c_col) if c_col is not None else None
    if d_col is not None:
        d = _column(frame, path, d_col)
    else:
        assert c is not None  # checked above: without a tokens column there is a compute one
        d = c / (6.0 * n)
    out = pd.DataFrame({"N": n, "D": d, "C": 6.0 * n * d if c is None else c, "loss": loss})
    if unique_col is not None:
        out["U"] = _column(frame, path, unique_col)
    if not 0 <= drop_highest <= len(out) - 1:
        raise FitInputError(f"{path}: cannot drop {drop_highest} of {len(out)} rows")
    keep = np.sort(np.argsort(out["loss"].to_numpy(), kind="stable")[: len(out) - drop_highest])
    return out.iloc[keep].reset_index(drop=True)
