"""Seeded resampling with replacement: of rows, of whole groups (runs), or within groups."""

from __future__ import annotations

from typing import Any

import numpy as np


def resample_indices(n: int, n_resamples: int, seed: int = 0) -> np.ndarray:
    """(n_resamples, n) row indices drawn with replacement."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(n_resamples, n))


def counts(indices: np.ndarray, n: int) -> np.ndarray:
    """(B, n) multiplicity of each row in each resample: a weighted fit on these counts is the
    fit on the resampled rows, without materialising them."""
    out = np.zeros((len(indices), n))
    np.add.at(out, (np.arange(len(indices))[:, None], indices), 1.0)
    return out


def resample_counts(n: int, n_resamples: int, seed: int = 0) -> np.ndarray:
    """(n_resamples, n) row multiplicities of `resample_indices(n, n_resamples, seed)`."""
    return counts(resample_indices(n, n_resamples, seed), n)


def bootstrap_info(n_resamples: int, seed: int, level: float, **extra: Any) -> dict[str, Any]:
    """A fit's `info["bootstrap"]`: percentile intervals over rows resampled with replacement."""
    return {
        "n_resamples": n_resamples,
        "seed": seed,
        "level": level,
        "interval": "percentile",
        "resampling": "rows with replacement",
        **extra,
    }


def resample_groups(groups: np.ndarray, n_resamples: int, seed: int = 0) -> list[np.ndarray]:
    """Cluster bootstrap: draw whole groups (e.g. runs) with replacement; row indices of each
    resample, a group drawn twice contributing its rows twice."""
    labels, inverse = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inverse == i) for i in range(len(labels))]
    picks = resample_indices(len(labels), n_resamples, seed)
    return [np.concatenate([members[g] for g in row]) for row in picks]


def resample_within(groups: np.ndarray, n_resamples: int, seed: int = 0) -> np.ndarray:
    """Stratified bootstrap: (n_resamples, n) row indices, each row drawn from its own group,
    so every group keeps its size (every IsoFLOP budget stays in every resample)."""
    rng = np.random.default_rng(seed)
    groups = np.asarray(groups)
    out = np.empty((n_resamples, len(groups)), dtype=np.int64)
    for label in np.unique(groups):
        members = np.flatnonzero(groups == label)
        out[:, members] = members[rng.integers(0, len(members), (n_resamples, len(members)))]
    return out
