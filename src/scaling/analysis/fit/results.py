"""JSON-able results: every fitted quantity is an estimate with its interval."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np


@dataclass(frozen=True)
class Estimate:
    """A point estimate and its (percentile bootstrap) interval; None where not computed.

    `n_samples` resamples were drawn for the interval (0: none) and `n_failed` of them gave no
    value (a refit that did not converge, a law that does not fall); the interval is read from
    the rest, so a verdict must check `failed_share` before trusting it."""

    estimate: float
    ci_low: float | None = None
    ci_high: float | None = None
    n_samples: int = 0
    n_failed: int = 0

    @property
    def failed_share(self) -> float:
        return self.n_failed / self.n_samples if self.n_samples else 0.0

    def covers(self, value: float) -> bool:
        # An interval has both ends or neither.
        return (
            self.ci_low is not None
            and self.ci_high is not None
            and self.ci_low <= value <= self.ci_high
        )

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


@dataclass
class FitResult:
    """One fitted law: named parameters, derived tables (one dict per row) and fit details."""

    method: str
    params: dict[str, Estimate]
    n_points: int
    derived: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def value(self, name: str) -> float:
        return self.params[name].estimate

    def to_dict(self) -> dict[str, Any]:
        return jsonable(
            {
                "method": self.method,
                "n_points": self.n_points,
                "params": {k: v.to_dict() for k, v in self.params.items()},
                "derived": self.derived,
                "info": self.info,
            }
        )

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)


def jsonable(value: Any) -> Any:
    """Plain Python containers and numbers; non-finite floats become None (JSON has no NaN)."""
    if isinstance(value, Estimate):
        return jsonable(value.to_dict())
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [jsonable(v) for v in value]
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating | float):
        return float(value) if math.isfinite(value) else None
    return value


def estimates(
    point: Mapping[str, float | np.ndarray],
    samples: Mapping[str, np.ndarray] | None,
    level: float,
) -> dict[str, Estimate]:
    """Estimates for each named point value, with percentile intervals from its samples."""
    return {
        name: interval_estimate(value, None if samples is None else samples[name], level)
        for name, value in point.items()
    }


def interval_estimate(
    point: float | np.ndarray,
    samples: np.ndarray | None,
    level: float = 0.95,
    *,
    bounds_ok: bool = False,
) -> Estimate:
    """`point` with the percentile interval of its bootstrap `samples`, counting the failed ones.

    A NaN sample is a failed resample; so is an infinite one, unless `bounds_ok`: then +-inf is
    a legitimate value (e.g. data a curve never reaches within the runs) and the interval is read
    from order statistics, which need no arithmetic on infinities."""
    if samples is None:
        return Estimate(float(point))
    values = np.asarray(samples, float).ravel()
    failed = np.isnan(values) if bounds_ok else ~np.isfinite(values)
    low, high = percentile_interval(values[~failed], level, bounds_ok=bounds_ok)
    return Estimate(float(point), low, high, n_samples=values.size, n_failed=int(failed.sum()))


def percentile_interval(
    samples: np.ndarray, level: float = 0.95, *, bounds_ok: bool = False
) -> tuple[float, float] | tuple[None, None]:
    """Central percentile interval of the finite samples (None, None when there are none); with
    `bounds_ok`, of the non-NaN samples, +-inf included (see `interval_estimate`)."""
    values = np.asarray(samples, float)
    values = values[~np.isnan(values)] if bounds_ok else values[np.isfinite(values)]
    if values.size == 0:
        return None, None
    tail = (1 - level) / 2
    method: Literal["inverted_cdf", "linear"] = "inverted_cdf" if bounds_ok else "linear"
    low, high = np.quantile(values, [tail, 1 - tail], method=method)
    return float(low), float(high)
