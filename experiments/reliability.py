"""Run the fault campaign (scaling.tools.faults.campaign) and write its report.

python experiments/reliability.py --out results/reliability.md
"""

import argparse
import sys
import tempfile
from pathlib import Path

from scaling import records
from scaling.tools.faults.campaign import run_campaign
from scaling.tools.faults.report import to_markdown


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/reliability.md"))
    parser.add_argument("--work", type=Path, help="scratch dir (default: a temporary one)")
    parser.add_argument("--kills", type=int, default=5, help="SIGKILLs of one run")
    parser.add_argument("--typed", type=int, default=6, help="schema keys given a bad type")
    parser.add_argument("--jobs", type=int, default=2, help="bad inputs tried at once")
    parser.add_argument("--seed", type=int, default=0, help="picks kill steps and keys")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="reliability-") as tmp:
        campaign = run_campaign(
            args.work or Path(tmp),
            kills=args.kills,
            typed=args.typed,
            jobs=args.jobs,
            seed=args.seed,
        )
    command = " ".join(["python experiments/reliability.py", *sys.argv[1:]])
    records.atomic_write_text(args.out, to_markdown(campaign, command) + "\n")
    failed = [t for t in campaign.trials if not t.ok]
    print(f"{len(campaign.trials) - len(failed)}/{len(campaign.trials)} trials ok -> {args.out}")
    for t in failed:
        print(f"FAILED {t.kind}: {t.name}: {t.detail}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
