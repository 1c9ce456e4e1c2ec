"""Fit scaling laws to a CSV and print them as JSON, or plan the next runs from a fitted law.

The library behind experiments/fit.py (its CLI: `main`). Planning on a ladder (`--ladder`)
counts the ladder's parameters with the model's own accounting, which is why this lives with
the applications and not in scaling.analysis.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from scaling.analysis.fit import (
    FitInputError,
    chinchilla_approach3,
    data_constrained_fit,
    heldout_check,
)
from scaling.analysis.fit import load_points as load
from scaling.analysis.fit.suggest import (
    budgets_for,
    law_from_json,
    optimal_budget,
    suggest,
)
from scaling.model import accounting
from scaling.sweep import ladder


def fit_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("csv", help="CSV with one row per (N, D or C, loss) point")
    p.add_argument("--n-col", default="N", help="parameters column (default: N)")
    p.add_argument("--d-col", help="tokens column; without it D = C / (6N) from --c-col")
    p.add_argument("--c-col", help="training FLOP column; without it C = 6ND")
    p.add_argument("--loss-col", default="loss", help="loss column (default: loss)")
    p.add_argument("--unique-col", help="unique tokens per run: adds the data-constrained fit")
    p.add_argument("--base-law", help="fits JSON: fit only R_D*, R_N* on its Approach 3 law")
    p.add_argument("--drop-highest", type=int, default=0, help="drop this many highest-loss rows")
    p.add_argument("--bootstrap", type=int, default=1000, help="resamples (0: no intervals)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--level", type=float, default=0.95, help="interval coverage")
    p.add_argument("--budgets", type=float, nargs="+", help="frontier budgets (default: the "
                   "decades of the data's C and one beyond)")  # fmt: skip
    p.add_argument("--heldout-cut", type=float, help="also fit below this C and predict above")


def suggest_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--law", required=True, help="fits JSON holding an Approach 3 law")
    at = p.add_mutually_exclusive_group(required=True)
    at.add_argument("--budget", type=float, help="compute budget C (FLOPs)")
    at.add_argument("--n", type=float, help="a size: the budget at which it is optimal")
    at.add_argument("--d", type=float, help="a token count: the budget at which it is optimal")
    p.add_argument("--tokens-per-step", type=int, default=2048, help="batch x seq_len")
    p.add_argument("--window", type=int, default=5, help="sizes in the window (default: 5)")
    p.add_argument("--spacing", type=float, default=2.0, help="size ratio without --ladder")
    p.add_argument("--ladder", choices=("main", "cpu"), help="propose this ladder's rungs")
    p.add_argument("--convention", default="nonembedding", help="the law's N (for --ladder)")


def run_fit(a: argparse.Namespace) -> dict[str, Any]:
    cols = dict(n_col=a.n_col, loss_col=a.loss_col, d_col=a.d_col, c_col=a.c_col)
    points = load(a.csv, **cols, drop_highest=a.drop_highest, unique_col=a.unique_col)
    n, d, c, loss = (points[k].to_numpy() for k in ("N", "D", "C", "loss"))
    budgets = tuple(a.budgets) if a.budgets else budgets_for(c)
    boot = dict(n_bootstrap=a.bootstrap, seed=a.seed, level=a.level)
    out = {"input": {**vars(a), "budgets": budgets, "n_points": len(points)}}
    out["approach3"] = chinchilla_approach3(n, d, loss, budgets=budgets, **boot).to_dict()
    if a.unique_col:
        base = law_from_json(a.base_law) if a.base_law else None
        u = points["U"].to_numpy()
        out["data_constrained"] = data_constrained_fit(n, d, u, loss, base=base, **boot).to_dict()
    if a.heldout_cut is not None:
        out["heldout"] = heldout_check(n, d, loss, c_cut=a.heldout_cut, c=c).to_dict()
    return out


def ladder_sizes(
    which: str, convention: str = "nonembedding", vocab_size: int = 256, seq_len: int = 128
) -> dict[str, float]:
    """{rung: N} of the main ("main") or CPU ("cpu") ladder, N counted in `convention`
    (`total`, `nonembedding` or `with_head`, as `scaling.model.accounting.param_counts`)."""
    rungs = {"main": ladder.ladder, "cpu": ladder.cpu_ladder}
    if which not in rungs:
        raise ValueError(f"ladder {which!r} is not one of {sorted(rungs)}")
    counts = {m.name: accounting.param_counts(m, vocab_size, seq_len) for m in rungs[which]()}
    if convention not in ("total", "nonembedding", "with_head"):
        raise ValueError(f"convention {convention!r} is not total, nonembedding or with_head")
    return {name: float(getattr(c, convention)) for name, c in counts.items()}


def run_suggest(a: argparse.Namespace) -> dict[str, Any]:
    law = law_from_json(a.law)
    budget = a.budget or optimal_budget(law, n=a.n, d=a.d)
    sizes = ladder_sizes(a.ladder, a.convention) if a.ladder else None
    s = suggest(law, budget, tokens_per_step=a.tokens_per_step, sizes=sizes, window=a.window,
                spacing=a.spacing)  # fmt: skip
    return {"law": law.to_dict(), "suggestion": s.to_dict()}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    planning = bool(argv) and argv[0] == "suggest"
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    (suggest_args if planning else fit_args)(p)
    args = p.parse_args(argv[1:] if planning else argv)
    try:
        out = (run_suggest if planning else run_fit)(args)
    except (FitInputError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(out, indent=2, allow_nan=False))
    return 0
