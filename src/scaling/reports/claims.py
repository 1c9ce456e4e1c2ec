"""The claims ledger written out: CLAIMS.md (a row per claim, notes, rules) and claims.json.

    python -m scaling.reports.claims --sweep runs/isoflop --tasks runs/tasks \
        --ablations runs/ablations --out results/CLAIMS.md

One row per claim: the experiment that tests it, the measured effect with its interval, and a
verdict at the scale measured: supported, contradicted or not resolved. The rows are built from
run records by scaling.analysis.ledger (the rules: scaling.analysis.rules); this module prints
them as a table, and beside the Markdown writes `claims.json`, one entry per claim.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

from scaling.analysis import rules as claim_rules
from scaling.analysis.emergence_terms import Thresholds
from scaling.analysis.fit.results import jsonable
from scaling.analysis.format import row
from scaling.analysis.ledger.build import build
from scaling.analysis.ledger.claim import Claim
from scaling.analysis.rules import Rules
from scaling.records import atomic_write_text


def markdown(claims: list[Claim], command: str, rules: Rules) -> str:
    out = [
        "# Claims ledger",
        "",
        f"Rebuilt by `{command}` on {dt.date.today().isoformat()} from run records; never "
        "edited by hand. Verdicts hold at the scale measured (tiny models on a CPU unless the "
        "experiment says otherwise), not beyond it. Each is supported, contradicted or not "
        "resolved by the rules below; the notes say why.",
        "",
        row(["#", "claim", "experiment", "measured", "interval", "verdict"]),
        row(["---"] * 6),
    ]
    for c in claims:
        verdict = f"**{c.verdict}**" + (f" ({c.summary})" if c.summary else "")
        cells = [str(c.number), c.claim, c.experiment, c.measured, c.interval, verdict]
        out.append(row(x.replace("|", "/") for x in cells))
    out += ["", "## Notes", ""]
    out += [
        f"{c.number}. {c.verdict}: {c.reason}." + (f" {c.note}" if c.note else "") for c in claims
    ]
    out += ["", "## Rules", "", claim_rules.rules_table(rules, Thresholds())]
    return "\n".join(out) + "\n"


def to_json(claims: list[Claim]) -> str:
    """claims.json: one entry per claim, its verdict one of the three outcomes."""
    entries = [
        {
            "id": c.number,
            "claim": c.claim,
            "verdict": c.verdict,
            "measured": c.measured,
            "interval": c.interval,
            "reason": c.reason,
            **c.extra,
        }
        for c in claims
    ]
    return json.dumps(jsonable(entries), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", type=Path, help="N x D sweep root (claims 1-2)")
    parser.add_argument("--tasks", type=Path, help="task study root (claims 3-5)")
    parser.add_argument("--ablations", type=Path, help="ablations root (claims 6-8)")
    parser.add_argument("--out", type=Path, default=Path("results/CLAIMS.md"))
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--command", help="the command to cite as having rebuilt the ledger")
    args = parser.parse_args(argv)
    claims = build(args.sweep, args.tasks, args.ablations, n_bootstrap=args.bootstrap)
    command = args.command or "python -m scaling.reports.claims " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, markdown(claims, command, Rules()))
    atomic_write_text(args.out.with_name("claims.json"), to_json(claims))
    print(args.out)


if __name__ == "__main__":
    main()
