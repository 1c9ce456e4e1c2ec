"""The source runs of a task study, picked from a finished pre-training sweep.

A task study fine-tunes one pre-trained run per model size: for each model of the sweep, the
completed run that saw the most tokens (ties: the first by name). The three task arms then need
those runs' directories (`init_from`), their models (the from-scratch arm) and their sequence
length, as Hydra multirun values:

    python -m scaling.sources runs/gpu/synthetic/pretrain                  # dir,dir,...
    python -m scaling.sources runs/gpu/synthetic/pretrain --field model    # n1m8,n3m1,...
    python -m scaling.sources runs/gpu/synthetic/pretrain --field seq_len  # 512

Reads records only; exits 2 with the reason when the sweep has no completed run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from scaling import records

FIELDS = ("init_from", "model", "seq_len")


def source_runs(sweep_root: Path) -> pd.DataFrame:
    """One row per model: the completed run with the most tokens seen, smallest model first,
    with `init_from` (its directory as given under `sweep_root`)."""
    if not sweep_root.is_dir():
        raise ValueError(f"{sweep_root}: no such directory (has the pre-training sweep run?)")
    table = records.collect(sweep_root)
    if table.empty:
        raise ValueError(f"{sweep_root}: no run records (has the pre-training sweep run?)")
    done = table[table["status"] == "completed"]
    if "task" in done:  # a fine-tuned run is not a source
        done = done[done["task"].isna()]
    if done.empty:
        raise ValueError(f"{sweep_root}: no completed pre-training run to fine-tune from")
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
    args = parser.parse_args(argv)
    try:
        print(hydra_values(source_runs(args.sweep), args.field))
    except ValueError as err:
        parser.error(str(err))


if __name__ == "__main__":
    main()
