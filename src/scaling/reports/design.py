"""A sweep's design check run and written: the grid composed as the sweeper composes it, sampled.

The library behind experiments/design.py (its CLI: `main`): the (N, D) points come from the
experiment's Hydra config (scaling.sweep.grid.plan), the simulation and its Markdown from
scaling.analysis.fit.design.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir

from scaling.analysis.fit.design import law_from, markdown, noise_from, parse_law, simulate
from scaling.config import ConfigError, register_configs, to_dataclass
from scaling.records import atomic_write_text
from scaling.sweep.grid import grid_spec, plan

DESCRIPTION = "Check a sweep's design before running it: can its grid recover a known scaling law?"


def design_points(overrides: list[str], conf_dir: Path) -> tuple[list[float], list[float], str]:
    """(N, D) of every point the experiment's sweep would train, and the grid's name."""
    register_configs()
    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
        cfg = compose("pretrain", overrides=overrides, return_hydra_config=True)

        def composed(extra: list[str]):
            return to_dataclass(compose("pretrain", overrides=[*overrides, *extra]))

        spec = grid_spec(cfg.hydra.sweeper.grid)
        points = plan(spec, composed)
    return [p.n_params for p in points], [p.tokens for p in points], spec.name


def main(conf_dir: Path, argv: list[str] | None = None) -> int:
    """experiments/design.py's CLI; `conf_dir` holds the Hydra configs the grid is composed from."""
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument("overrides", nargs="+", help="Hydra overrides, e.g. experiment=isoflop_cpu")
    parser.add_argument("--law", help="E=..,A=..,B=..,alpha=..,beta=..")
    parser.add_argument("--law-from", type=Path, help="a study's fits.json")
    parser.add_argument("--noise", type=float, default=0.01, help="sd of log loss between seeds")
    parser.add_argument("--noise-from", type=Path, help="a study's points.csv (its seed spread)")
    parser.add_argument("--sims", type=int, default=40)
    parser.add_argument("--bootstrap", type=int, default=100, help="resamples per simulated fit")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="also write the Markdown here")
    args = parser.parse_args(argv)
    try:
        if (args.law is None) == (args.law_from is None):
            raise ValueError("give exactly one of --law and --law-from")
        law = parse_law(args.law) if args.law else law_from(args.law_from)
        noise = noise_from(args.noise_from) if args.noise_from else args.noise
        n, d, name = design_points(args.overrides, conf_dir)
        check = simulate(
            n, d, law, noise, n_sims=args.sims, n_bootstrap=args.bootstrap, seed=args.seed
        )
    except (ValueError, ConfigError, OSError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    command = "python experiments/design.py " + " ".join(sys.argv[1:] if argv is None else argv)
    text = f"Design check of grid `{name}` (`{command}`):\n\n{markdown(check)}"
    print(text, end="")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, text)
    return 0
