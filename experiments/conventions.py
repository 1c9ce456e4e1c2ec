"""The compute-optimal frontier of a fitted law in both parameter conventions (Pearce & Song
2024): N_opt counted in total and in non-embedding parameters, their local slopes against C, and
the law converted to the other convention. Writes <out>.md and <out>.csv.

    python experiments/conventions.py results/epoch_chinchilla/fit.json \
        --out results/epoch_chinchilla/conventions
"""

from __future__ import annotations

import argparse
import sys

from scaling.analysis.fit import FitInputError
from scaling.analysis.fit.conventions import EmbeddingRelation, conventions_report
from scaling.analysis.fit.suggest import law_from_json


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("law", help="fits JSON holding an Approach 3 law (N counted in --law-in)")
    p.add_argument("--out", required=True, help="path prefix of the .md and .csv written")
    p.add_argument("--law-in", default="total", choices=("total", "nonembedding"))
    p.add_argument("--vocab", type=int, default=32000, help="vocabulary (Chinchilla: 32,000)")
    p.add_argument("--context", type=int, default=2048, help="context length (Chinchilla: 2048)")
    p.add_argument("--aspect", type=float, nargs="+", default=[64.0, 32.0, 128.0],
                   help="depth-to-width ratios d/L; the first is the main table's")  # fmt: skip
    p.add_argument("--budgets", type=float, nargs="+", default=[10.0**k for k in range(15, 25)])
    p.add_argument("--command", default="", help="the command to print in the report")
    args = p.parse_args(argv)
    try:
        law = law_from_json(args.law)
        relations = [EmbeddingRelation.analytic(args.vocab, args.context, a) for a in args.aspect]
        md, csv = conventions_report(law, relations, args.budgets, args.law_in, args.command)
    except (FitInputError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    with open(f"{args.out}.md", "w") as f:
        f.write(md)
    csv.to_csv(f"{args.out}.csv", index=False)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
