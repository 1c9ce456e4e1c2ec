"""The claims ledger built from run records: every claim's evidence, judged by its rule.

Each claim's row is recomputed from run records (never written by hand); a claim whose runs are
missing is not resolved and says why. The rules themselves, pure functions with their minimum
effects, are scaling.analysis.rules; scaling.reports.claims writes the ledger.
"""

from __future__ import annotations

from pathlib import Path

from scaling.analysis.ledger.ablations import (
    C6,
    C7,
    C8,
    corruption_claim,
    memorisation_claim,
    schedule_claim,
)
from scaling.analysis.ledger.claim import Claim, missing
from scaling.analysis.ledger.sweep import sweep_claims
from scaling.analysis.ledger.tasks import task_claims
from scaling.analysis.rules import Rules


def build(
    sweep: Path | None,
    tasks: Path | None,
    ablations: Path | None,
    rules: Rules | None = None,
    n_bootstrap: int = 1000,
) -> list[Claim]:
    rules = rules or Rules()
    claims = sweep_claims(sweep, rules, n_bootstrap) + task_claims(tasks, rules, n_bootstrap)
    if ablations is None:
        why = "no ablation runs (--ablations)"
        exps = ("ablation_memorise", "ablation_corrupt", "ablation_schedule")
        return claims + [
            missing(k, c, f"`experiment={e}`", why)
            for k, c, e in zip((6, 7, 8), (C6, C7, C8), exps, strict=True)
        ]
    return claims + [
        memorisation_claim(ablations / "memorise", rules),
        corruption_claim(ablations / "corrupt", ablations / "corrupt_eval", rules),
        schedule_claim(ablations / "schedule", rules),
    ]
