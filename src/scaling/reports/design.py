"""A sweep's design check run and written: the grid composed as the sweeper composes it, sampled.

The library behind experiments/design.py (its CLI: `main`): the (N, D) points come from the
experiment's Hydra config (scaling.sweep.grid.plan), the simulation and its Markdown from
scaling.analysis.fit.design. With `--claim2`, each simulation's tokens per parameter is judged
by the claims ledger's own rule (scaling.analysis.rules.budget_ratios), read where the ledger
reads it: the E-fixed frontier at the 1-3-10 budgets inside the design's compute.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
from hydra import compose, initialize_config_dir

from scaling.analysis import study as sweep_study
from scaling.analysis.fit.chinchilla import PARAM_NAMES, ChinchillaLaw, chinchilla_approach3
from scaling.analysis.fit.design import (
    DesignCheck,
    law_from,
    markdown,
    noise_from,
    parse_law,
    residual_noise,
    seed_noise,
    simulate,
)
from scaling.analysis.format import percent, table
from scaling.analysis.ledger.sweep import frontier_ratio
from scaling.analysis.rules import BudgetRatio, Rules, budget_ratios
from scaling.analysis.verdicts import OUTCOMES, SUPPORTED, within
from scaling.config import ConfigError, register_configs, to_dataclass
from scaling.records import atomic_write_text
from scaling.sweep.grid import (
    PARAM_CONVENTIONS,
    GridSpec,
    grid_spec,
    make_rung,
    plan,
    planning_vocab_size,
)

DESCRIPTION = "Check a sweep's design before running it: can its grid recover a known scaling law?"


def design_points(
    overrides: list[str], conf_dir: Path, n_convention: str = "nonembedding"
) -> tuple[list[float], list[float], GridSpec]:
    """(N, D) of every point the experiment's sweep would train, N counted in `n_convention`
    (the points are the grid's own, whatever convention it plans in), and the grid."""
    register_configs()
    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
        cfg = compose("pretrain", overrides=overrides, return_hydra_config=True)

        def composed(extra: list[str]):
            return to_dataclass(compose("pretrain", overrides=[*overrides, *extra]))

        spec = grid_spec(cfg.hydra.sweeper.grid)
        points = plan(spec, composed)
        counted = {p.rung: p.n_params for p in points}  # in the grid's own convention
        if n_convention != spec.param_convention:
            for rung in counted:
                run = composed([f"model={rung}"])
                vocab, seq_len = planning_vocab_size(run.data), run.data.seq_len
                rung_counted = make_rung(run.model, vocab, seq_len, param_convention=n_convention)
                counted[rung] = rung_counted.n_params
    return [counted[p.rung] for p in points], [p.tokens for p in points], spec


def law_from_runs(root: Path, n_convention: str) -> tuple[ChinchillaLaw, pd.DataFrame]:
    """The law a study's runs measured (Approach 3, E fixed at its corpus's exact entropy, N in
    `n_convention`) and the points it was fitted to."""
    if not root.is_dir():
        raise ValueError(
            f"--from-runs {root}: no such directory (a study's runs, e.g. make study's)"
        )
    study = sweep_study.load_study(root, root.name, n_convention=n_convention)
    if study.points.empty:
        raise ValueError(f"{root}: no completed runs to take a law from")
    if study.entropy is None:
        raise ValueError(f"{root}: the corpus's entropy is not known, so E cannot be fixed")
    p = study.points
    result = chinchilla_approach3(
        p["N"].to_numpy(),
        p["D"].to_numpy(),
        p["loss"].to_numpy(),
        n_bootstrap=0,
        e_fixed=study.entropy,
        budgets=(),
    )
    law = ChinchillaLaw(**{k: result.params[k].estimate for k in PARAM_NAMES})
    return law, p


def claim2_markdown(check: DesignCheck, n: list[float], d: list[float], rules: Rules) -> str:
    """How often the ledger's rule would call claim 2's tokens per parameter on this design:
    the share of simulations per verdict, and per budget the truth and the intervals."""
    points = pd.DataFrame({"N": n, "D": d})
    verdicts: Counter[str] = Counter()
    per_budget: dict[float, list[BudgetRatio]] = {}
    for frontier in check.frontiers:
        ratios = tuple(frontier_ratio(row, points) for row in frontier)
        verdicts[budget_ratios(ratios, rules, "design").verdict] += 1
        for b in ratios:
            per_budget.setdefault(b.C, []).append(b)
    sims = len(check.frontiers)
    band = f"[{rules.ratio_low:g}, {rules.ratio_high:g}]"
    lines = [
        f"Claim 2's tokens per parameter, judged by the ledger's rule (interval inside {band} "
        "at every budget whose minimum lies inside the sizes; wholly outside at one "
        "contradicts), over the simulations:",
        "",
        table(
            ["verdict", "share of simulations"],
            [[v, percent(verdicts[v] / sims)] for v in OUTCOMES],
        ),
        "",
    ]
    rows: list[list[str]] = []
    for c, at_c in sorted(per_budget.items()):
        n_opt, d_opt = check.law.compute_optimal(c)
        est = [b.tokens_per_param for b in at_c]
        width = np.median([e.ci_high - e.ci_low for e in est if e.ci_low and e.ci_high])
        inside = np.mean([b.interior for b in at_c])
        low, high, failed = rules.ratio_low, rules.ratio_high, rules.max_failed_share
        held = np.mean([within(e, low, high, "", failed).verdict == SUPPORTED for e in est])
        rows.append(
            [
                f"{c:.3g}",
                f"{float(d_opt / n_opt):.3g}",
                f"{np.median([e.estimate for e in est]):.3g}",
                f"{width:.3g}",
                percent(held),
                percent(inside),
            ]
        )
    header = ["budget C", "true tokens/param", "median estimate", "median interval width"]
    header += [f"interval inside {band}", "minimum inside the sizes"]
    lines.append(table(header, rows, align="rrrrrr"))
    return "\n".join(lines) + "\n"


def main(conf_dir: Path, argv: list[str] | None = None) -> int:
    """experiments/design.py's CLI; `conf_dir` holds the Hydra configs the grid is composed from."""
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument("overrides", nargs="+", help="Hydra overrides, e.g. experiment=isoflop_cpu")
    parser.add_argument("--law", help="E=..,A=..,B=..,alpha=..,beta=..")
    parser.add_argument("--law-from", type=Path, help="a study's fits.json")
    parser.add_argument(
        "--from-runs", type=Path, help="a study's runs: its E-fixed law and its noise"
    )
    parser.add_argument("--noise", type=float, default=0.01, help="sd of log loss between seeds")
    parser.add_argument("--noise-from", type=Path, help="a study's points.csv (its seed spread)")
    parser.add_argument(
        "--residual-noise",
        action="store_true",
        help="with --from-runs: the noise is the points' scatter around the law, not the seeds'",
    )
    parser.add_argument(
        "--n-convention", choices=PARAM_CONVENTIONS, default="nonembedding", help="how N counts"
    )
    parser.add_argument(
        "--claim2", action="store_true", help="judge claim 2's tokens/param as the ledger does"
    )
    parser.add_argument("--sims", type=int, default=40)
    parser.add_argument("--bootstrap", type=int, default=100, help="resamples per simulated fit")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="also write the Markdown here")
    args = parser.parse_args(argv)
    try:
        if sum(x is not None for x in (args.law, args.law_from, args.from_runs)) != 1:
            raise ValueError("give exactly one of --law, --law-from and --from-runs")
        if args.residual_noise and args.from_runs is None:
            raise ValueError("--residual-noise needs --from-runs (the points and their law)")
        n, d, spec = design_points(args.overrides, conf_dir, args.n_convention)
        noise = noise_from(args.noise_from) if args.noise_from else args.noise
        if args.from_runs is not None:
            law, p = law_from_runs(args.from_runs, args.n_convention)
            if args.residual_noise:
                n_p, d_p, loss = (p[k].to_numpy() for k in ("N", "D", "loss"))
                noise = residual_noise(
                    n_p, d_p, loss, law, n_fitted=4
                )  # E fixed: A, B, alpha, beta
            elif args.noise_from is None:
                noise = seed_noise(p, str(args.from_runs))
        else:
            law = parse_law(args.law) if args.law else law_from(args.law_from)
        c = pd.DataFrame({"C": 6.0 * np.asarray(n) * np.asarray(d)})
        check = simulate(
            n,
            d,
            law,
            noise,
            n_sims=args.sims,
            n_bootstrap=args.bootstrap,
            seed=args.seed,
            ratio_budgets=sweep_study.decade_budgets(c) if args.claim2 else (),
            isoflop=args.n_convention == spec.param_convention,
        )
    except (ValueError, ConfigError, OSError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    command = "python experiments/design.py " + " ".join(sys.argv[1:] if argv is None else argv)
    counted = "" if args.n_convention == "nonembedding" else f", N counted {args.n_convention}"
    text = f"Design check of grid `{spec.name}` (`{command}`){counted}:\n\n{markdown(check)}"
    if args.claim2:
        text += "\n" + claim2_markdown(check, n, d, Rules())
    print(text, end="")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, text)
    return 0
