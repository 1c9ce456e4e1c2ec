"""Input checks shared by the fits: equal-length, finite, positive 1-D float arrays."""

from __future__ import annotations

import numpy as np


def positive(names: str, *arrays: object) -> tuple[np.ndarray, ...]:
    """The arrays as flat float64; ValueError naming `names` (e.g. "N, D, loss") otherwise."""
    out = tuple(np.asarray(a, float).ravel() for a in arrays)
    if len({len(a) for a in out}) != 1:
        raise ValueError(f"{names} differ in length: {[len(a) for a in out]}")
    if len(out[0]) == 0:
        raise ValueError(f"{names} are empty")
    for name, a in zip(names.split(", "), out, strict=False):
        if not np.all(np.isfinite(a) & (a > 0)):
            raise ValueError(f"{name} must be finite and positive")
    return out
