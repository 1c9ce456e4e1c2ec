"""Check a sweep's design before running it: can its grid recover a known scaling law?

    python experiments/design.py experiment=isoflop_cpu \
        --law E=0.8263,A=20,B=40,alpha=0.4,beta=0.3 --noise 0.01 --out results/design/README.md

Samples the law on exactly the points the experiment's grid would train (scaling.sweep.grid.plan,
composed as the sweeper composes them), with log-normal noise of the given sd, fits as the
study does and prints how well each quantity comes back (scaling.analysis.fit.design). `--law-from
results/isoflop/fits.json` takes the law a study measured (its E-fixed Approach 3 fit), and
`--noise-from results/isoflop/points.csv` the spread between its seeds (the sd of log loss,
from the points that ran two or more seeds). Bad input prints one error line, exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from hydra import compose, initialize_config_dir

from scaling.analysis.fit import ChinchillaLaw
from scaling.analysis.fit.design import markdown, simulate
from scaling.config import ConfigError, register_configs, to_dataclass
from scaling.records import atomic_write_text
from scaling.sweep.grid import grid_spec, plan

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
LAW_KEYS = ("A", "B", "E", "alpha", "beta")


def parse_law(text: str) -> ChinchillaLaw:
    values = dict(item.split("=", 1) for item in text.split(",") if "=" in item)
    missing = [k for k in LAW_KEYS if k not in values]
    if missing or set(values) - set(LAW_KEYS):
        raise ValueError(f"--law needs exactly {','.join(LAW_KEYS)} as key=value, got {text!r}")
    return ChinchillaLaw(**{k: float(values[k]) for k in LAW_KEYS})


def law_from(path: Path) -> ChinchillaLaw:
    fits = json.loads(path.read_text())["fits"]
    name = "approach3_e_fixed" if "approach3_e_fixed" in fits else "approach3"
    params = fits[name]["params"]
    return ChinchillaLaw(**{k: params[k]["estimate"] for k in LAW_KEYS})


def noise_from(path: Path) -> float:
    """The sd of log loss between seeds: from each point's seed spread (max - min), which for
    two seeds is sqrt(2) sd."""
    points = pd.read_csv(path)
    seeded = points[points["n_seeds"] >= 2]
    if seeded.empty:
        raise ValueError(f"{path}: no point ran two or more seeds")
    relative = seeded["seed_spread"] / seeded["loss"]
    return float(np.sqrt(np.mean(np.square(relative) / 2)))


def design_points(overrides: list[str]) -> tuple[list[float], list[float], str]:
    """(N, D) of every point the experiment's sweep would train, and the grid's name."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("pretrain", overrides=overrides, return_hydra_config=True)

        def composed(extra: list[str]):
            return to_dataclass(compose("pretrain", overrides=[*overrides, *extra]))

        spec = grid_spec(cfg.hydra.sweeper.grid)
        points = plan(spec, composed)
    return [p.n_params for p in points], [p.tokens for p in points], spec.name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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
        n, d, name = design_points(args.overrides)
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


if __name__ == "__main__":
    sys.exit(main())
