"""Least squares in log space, with bootstrap refits."""

from __future__ import annotations

import numpy as np

from scaling.analysis.fit.bootstrap import resample_indices


def lstsq(design: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Ordinary least squares coefficients; NaN where the design is rank deficient."""
    coef, _, rank, _ = np.linalg.lstsq(design, y, rcond=None)
    return coef if rank == design.shape[1] else np.full(design.shape[1], np.nan)


def lstsq_bootstrap(
    design: np.ndarray, y: np.ndarray, n_resamples: int, seed: int = 0
) -> np.ndarray:
    """(n_resamples, p) coefficients refitted on rows resampled with replacement."""
    idx = resample_indices(len(y), n_resamples, seed)
    return np.stack([lstsq(design[i], y[i]) for i in idx]) if n_resamples else np.empty((0, 0))


def log_design(*columns: np.ndarray) -> np.ndarray:
    """[1, log x1, log x2, ...]: the design of log y = c0 + c1 log x1 + ..."""
    return np.column_stack([np.ones(len(columns[0]))] + [np.log(c) for c in columns])
