"""One row of the claims ledger: a claim, the experiment that tests it, its figures and verdict."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scaling.analysis.verdicts import NOT_RESOLVED, OUTCOMES, Verdict

NOT_MEASURED = "not measured"  # a reason, never a verdict: the claim's runs are missing


@dataclass
class Claim:
    number: int
    claim: str
    experiment: str
    measured: str
    interval: str
    verdict: str  # one of scaling.analysis.verdicts.OUTCOMES
    reason: str  # why, in full (the ledger's notes)
    summary: str = ""  # a few words beside the verdict in the table, e.g. per task
    note: str = ""  # context for reading the figures
    extra: dict[str, Any] = field(default_factory=dict)  # further figures for claims.json

    def __post_init__(self) -> None:
        if self.verdict not in OUTCOMES:
            raise ValueError(f"claim {self.number}: verdict {self.verdict!r} not in {OUTCOMES}")


def missing(number: int, claim: str, experiment: str, why: str) -> Claim:
    return Claim(number, claim, experiment, "–", "–", NOT_RESOLVED, f"{NOT_MEASURED}: {why}")


def from_verdict(
    number: int,
    claim: str,
    experiment: str,
    measured: str,
    interval: str,
    verdict: Verdict,
    **kwargs: Any,
) -> Claim:
    return Claim(
        number, claim, experiment, measured, interval, verdict.verdict, verdict.reason, **kwargs
    )
