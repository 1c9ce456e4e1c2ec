"""What a study cost, from its records: device time per stage, MFU per rung, and what training
many small models at once (scaling.train.loop) saved.

    python -m scaling.reports.cost runs/gpu --out results/gpu/COST.md --command "make gpu-study"

Device time assumes the runs took the device one after another (a single-GPU study): a solo run
counts its wall time, a group of runs trained together counts its longest member's wall time
once (the members share one clock). A stage is a run dir's first two path parts under the root
(e.g. `synthetic/pretrain`). A group's MFU is the sum of its members' (one step trains them
all). The saving of a group is the time its tokens would take at the solo rate of the same
model, batch and sequence length (the median `tokens_per_s` of the solo pre-training runs of
that shape in the same records) minus the group's steady time; where no solo run of the shape
exists it is reported as not measured rather than guessed.
Reads records only; never imports model code.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from scaling import records
from scaling.analysis.format import percent
from scaling.analysis.format import table as markdown_table

SHAPE = ["model", "batch_size", "seq_len"]


def _stage(run_dir: str) -> str:
    parts = Path(run_dir).parts
    return "/".join(parts[:2]) if len(parts) > 2 else (parts[0] if len(parts) > 1 else ".")


def jobs(table: pd.DataFrame) -> pd.DataFrame:
    """One row per device job (a solo run, or a group of runs trained together): stage, model,
    shape, runs, wall/compile seconds, tokens, aggregate tokens/s and MFU."""
    runs = table[table["wall_time_s"].notna()].copy()
    for column in ("group_id", "task"):  # absent where no run was grouped / fine-tuned
        if column not in runs:
            runs[column] = np.nan
    runs["stage"] = runs["run_dir"].map(_stage)
    runs["job"] = runs["group_id"].where(runs["group_id"].notna(), runs["run_dir"])
    steady = runs["tokens_seen"] / runs["tokens_per_s"]
    runs["steady_s"] = steady.where(runs["tokens_per_s"] > 0)
    out = runs.groupby("job", sort=False).agg(
        stage=("stage", "first"),
        model=("model", "first"),
        pretraining=("task", lambda t: bool(t.isna().all())),
        batch_size=("batch_size", "first"),
        seq_len=("seq_len", "first"),
        n_params=("n_params_nonembedding", "first"),
        runs=("run_dir", "size"),
        grouped=("group_id", lambda g: bool(g.notna().any())),
        wall_s=("wall_time_s", "max"),
        compile_s=("compile_time_s", "max"),
        steady_s=("steady_s", "max"),
        tokens=("tokens_seen", "sum"),
        tokens_per_s=("tokens_per_s", "sum"),
        mfu=("mfu", lambda m: m.sum(min_count=1)),
        device_kind=("device_kind", "first"),
    )
    return out.reset_index()


def savings(job_table: pd.DataFrame) -> pd.DataFrame:
    """Per grouped job: the solo rate of its shape (or NaN), the solo time its tokens would
    take, and the seconds saved (solo time minus the group's steady time)."""
    solo = job_table[
        job_table["pretraining"] & ~job_table["grouped"] & job_table["tokens_per_s"].notna()
    ]
    solo_rate = solo.groupby(SHAPE)["tokens_per_s"].median().rename("solo_tokens_per_s")
    groups = job_table[job_table["grouped"]].merge(solo_rate.reset_index(), on=SHAPE, how="left")
    groups["solo_s"] = groups["tokens"] / groups["solo_tokens_per_s"]
    groups["saved_s"] = groups["solo_s"] - groups["steady_s"]
    return groups


def _s(seconds: float) -> str:
    return "n/a" if pd.isna(seconds) else f"{seconds:,.0f}"


def _share(x: float) -> str:
    return "n/a" if pd.isna(x) else percent(x, 1)


def render(job_table: pd.DataFrame, group_table: pd.DataFrame, command: str | None) -> str:
    devices = ", ".join(sorted(job_table["device_kind"].dropna().astype(str).unique()))
    total = job_table["wall_s"].sum()
    lines = [
        "# Study cost",
        "",
        f"- command: `{command}`" if command else "- command: `python -m scaling.reports.cost`",
        f"- device(s): {devices or 'unknown'}; {len(job_table)} device jobs, "
        f"{int(job_table['runs'].sum())} runs; device time {_s(total)} s "
        f"({total / 3600:.2f} h), of which compile {_s(job_table['compile_s'].sum())} s",
        "- device time = solo runs' wall time + each group's longest member's wall time, "
        "as if the jobs ran one after another on one device",
        "",
        "## Device time per stage",
        "",
    ]
    stages = [
        [
            str(stage),
            str(len(part)),
            str(int(part["runs"].sum())),
            _s(part["wall_s"].sum()),
            _s(part["compile_s"].sum()),
            _share(part["wall_s"].sum() / total),
        ]
        for stage, part in job_table.groupby("stage")
    ]
    header = ["stage", "jobs", "runs", "device s", "compile s", "share"]
    lines.append(markdown_table(header, stages, align="lrrrrr"))
    pre = job_table[job_table["pretraining"]]
    rungs = [
        [
            str(model),
            f"{int(part['n_params'].iloc[0]):,}",
            str(len(part)),
            str(int(part["runs"].sum())),
            str(int(part["grouped"].sum())),
            f"{part['tokens_per_s'].median():,.0f}",
            _share(part["mfu"].median()),
        ]
        for model, part in pre.sort_values("n_params").groupby("model", sort=False)
    ]
    header = ["model", "N (non-embedding)", "jobs", "runs", "grouped jobs", "tokens/s", "MFU"]
    lines += [
        "",
        "## MFU per rung (pre-training jobs; median over jobs; a group's MFU is its members' sum)",
        "",
        markdown_table(header, rungs, align="lrrrrrr"),
    ]
    lines += ["", "## Many small models at once", ""]
    if group_table.empty:
        lines.append("No job trained several runs together.")
    else:
        measured = group_table[group_table["saved_s"].notna()]
        lines += [
            f"{len(group_table)} grouped jobs trained {int(group_table['runs'].sum())} runs. "
            f"Where a solo run of the same shape gives the solo rate ({len(measured)} jobs), "
            f"grouping saved {_s(measured['saved_s'].sum())} s of steady training time "
            f"({_s(measured['solo_s'].sum())} s solo vs {_s(measured['steady_s'].sum())} s "
            "grouped); the other jobs have no solo run to compare with, so nothing is claimed "
            "for them (`experiments/bench_multimodel.py` measures both sides).",
            "",
        ]
        groups = []
        for r in group_table.to_dict("records"):
            solo = r["solo_tokens_per_s"]
            groups.append(
                [
                    str(r["stage"]),
                    str(r["model"]),
                    f"{r['batch_size']}x{r['seq_len']}",
                    str(r["runs"]),
                    f"{r['tokens_per_s']:,.0f}",
                    "n/a" if pd.isna(solo) else f"{solo:,.0f}",
                    "n/a" if pd.isna(solo) else f"{r['tokens_per_s'] / solo:.2f}x",
                    _s(r["saved_s"]),
                ]
            )
        header = ["stage", "model", "batch x seq", "runs", "group tok/s", "solo tok/s"]
        lines.append(markdown_table([*header, "speedup", "saved s"], groups, align="lllrrrrr"))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, help="the study's runs root, e.g. runs/gpu")
    parser.add_argument("--out", type=Path, required=True, help="the markdown file to write")
    parser.add_argument("--command", help="the command to cite as having run the study")
    args = parser.parse_args(argv)
    if not args.runs.is_dir():
        parser.error(f"{args.runs} is not a directory")
    table = records.collect(args.runs)
    if table.empty:
        parser.error(f"{args.runs} holds no run records")
    job_table = jobs(table)
    text = render(job_table, savings(job_table), args.command)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    records.atomic_write_text(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
