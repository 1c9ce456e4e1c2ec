"""Content hashes and atomic cache writes: a killed process never leaves a half-written file."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from scaling.records import atomic_write


def cache_root(cache_dir: str) -> Path:
    return Path(os.path.expanduser(cache_dir))


def digest(parts: Iterable[str | bytes]) -> str:
    """SHA-256 over length-prefixed parts, so ("ab", "c") and ("a", "bc") differ."""
    h = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8") if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def save_npy(path: Path, array: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object, so np.save does not append ".npy"
            np.save(f, array)

    atomic_write(path, write)


def load_npy(path: Path) -> np.ndarray | None:
    """The cached array, or None when absent or unreadable (then it is rebuilt)."""
    try:
        return np.load(path)
    except (OSError, ValueError, EOFError):
        return None
