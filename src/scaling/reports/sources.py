"""The source runs of a task study, picked from a finished pre-training sweep.

A task study fine-tunes one pre-trained run per model size: for each model of the sweep, the
completed run that saw the most tokens (ties: the first by name). The three task arms then need
those runs' directories (`init_from`), their models (the from-scratch arm) and their sequence
length, as Hydra multirun values:

    python -m scaling.reports.sources runs/gpu/synthetic/pretrain                  # dir,dir,...
    python -m scaling.reports.sources runs/gpu/synthetic/pretrain --field model    # n1m8,n3m1,...
    python -m scaling.reports.sources runs/gpu/synthetic/pretrain --field seq_len  # 512
    python -m scaling.reports.sources runs/tasks/pretrain --models n24k,n98k  # those sizes only
    python -m scaling.reports.sources runs/ablations/corrupt --all  # every run

Reads records only; exits 2 with the reason when the sweep has no completed run (or none of
the models asked for).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from scaling import records

FIELDS = ("init_from", "model", "seq_len")


def source_runs(
    sweep_root: Path, models: list[str] | None = None, every_run: bool = False
) -> pd.DataFrame:
    """One row per model: the completed run with the most tokens seen, smallest model first,
    with `init_from` (its directory as given under `sweep_root`). `models` keeps those models
    only; `every_run` keeps every completed run (by name) instead of one per model."""
    if not sweep_root.is_dir():
        raise ValueError(f"{sweep_root}: no such directory (has the pre-training sweep run?)")
    table = records.collect(sweep_root)
    if table.empty:
        raise ValueError(f"{sweep_root}: no run records (has the pre-training sweep run?)")
    done = table[table["status"] == "completed"]
    if "task" in done:  # a fine-tuned run is not a source
        done = done[done["task"].isna()]
    if models is not None:
        done = done[done["model"].isin(models)]
    if done.empty:
        which = f" of models {models}" if models is not None else ""
        raise ValueError(f"{sweep_root}: no completed pre-training run{which} to fine-tune from")
    if every_run:
        best = done.sort_values("run_name")
    else:
        best = (
            done.sort_values(["tokens_seen", "run_name"], ascending=[False, True])
            .groupby("model", sort=False)
            .head(1)
            .sort_values("n_params_nonembedding")
        )
    return best.assign(init_from=[str(sweep_root / d) for d in best["run_dir"]])


def hydra_values(sources: pd.DataFrame, field: str) -> str:
    """`field` of the sources as a Hydra multirun value: comma-separated, or the one value the
    sources share (a sequence length must be one)."""
    if field not in FIELDS:
        raise ValueError(f"--field {field!r} is not one of {list(FIELDS)}")
    values = [str(v) for v in sources[field]]
    if field == "seq_len":
        if len(set(values)) != 1:
            raise ValueError(f"the sources differ in seq_len ({sorted(set(values))})")
        return values[0]
    return ",".join(values)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path, help="a pre-training sweep's out_dir")
    parser.add_argument("--field", default="init_from", help=f"one of {list(FIELDS)}")
    parser.add_argument("--models", help="comma-separated models to keep (default: all)")
    parser.add_argument("--all", action="store_true", help="every completed run, not one per model")
    args = parser.parse_args(argv)
    models = args.models.split(",") if args.models else None
    try:
        print(hydra_values(source_runs(args.sweep, models, args.all), args.field))
    except ValueError as err:
        parser.error(str(err))


if __name__ == "__main__":
    main()
