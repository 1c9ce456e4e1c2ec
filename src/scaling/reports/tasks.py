"""Report of a task study: paired arms, effective data transferred, emergence verdicts.

    python -m scaling.reports.tasks runs/tasks results/tasks

Reads the records under the study's root (its pre-training sources, fine-tuned, pre-train-only
and from-scratch runs), never model code, and writes README.md, CSV tables, tasks.json and
plots. See scaling.analysis.transfer for the arms and D_T, scaling.analysis.emergence for the
verdicts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scaling.analysis import emergence, fit, transfer
from scaling.analysis.emergence_terms import AXES, LOSS_EXPLAINS, Thresholds
from scaling.analysis.format import cell, percent
from scaling.analysis.format import table as markdown_table
from scaling.analysis.task_study import (
    EMERGENCE_COLUMNS_D,
    VERDICT_AXIS,
    TaskStudy,
    analyse,
    columns,
)
from scaling.records import atomic_write_text
from scaling.tasks.metrics import METRICS, resolution_note


def _table(header: list[str], rows: list[list[Any]]) -> str:
    return markdown_table(header, [[cell(v) for v in row] for row in rows])


def sources_markdown(sources: pd.DataFrame) -> str:
    """The pre-training runs the arms start from, and whether the ladder is in order: at each
    token count, every larger model reaches a lower validation loss."""
    if sources.empty or "final_val_loss" not in sources:
        return "No pre-training runs under this root."
    rows = sources.sort_values(["tokens_seen", "n_params_nonembedding"])
    listed = _table(
        ["model", "N", "D (tokens)", "final val loss"],
        [
            [r["model"], r["n_params_nonembedding"], r["tokens_seen"], f"{r['final_val_loss']:.4f}"]
            for r in rows.to_dict("records")
        ],
    )
    ordered = all(
        (np.diff(group["final_val_loss"].to_numpy()) < 0).all()
        for _, group in rows.groupby("tokens_seen")
    )
    verdict = "yes" if ordered else "**no**"
    return f"{listed}\n\nEvery larger model lower at each D (the ladder in order): {verdict}."


def paired_markdown(paired: pd.DataFrame) -> str:
    header = ["task", "model", "N", "D_F"]
    arms = (transfer.PRETRAIN_ONLY, transfer.FINETUNED, transfer.SCRATCH)
    for arm in arms:
        header += [f"{arm} loss", f"{arm} EM", f"{arm} tok acc"]
    rows = []
    for r in paired.to_dict("records"):
        row = [r["task"], r["model"], r["n"], r["d_f"]]
        for arm in arms:
            row += [
                r.get(f"{arm}_loss"),
                r.get(f"{arm}_exact_match"),
                r.get(f"{arm}_token_accuracy"),
            ]
        rows.append(row)
    return _table(header, rows)


def effective_markdown(effective: pd.DataFrame) -> str:
    header = ["task", "model", "D_F", "fine-tuned loss", "D_E [95% CI]", "D_T [95% CI]"]
    header += ["D_E/D_F", "from scratch at this size: D_E in"]
    rows = [
        [
            r["task"],
            r["model"],
            r["d_f"],
            r["finetuned_loss"],
            (f">= {cell(r['scratch_d_max'])} (extrapolated: " if r["extrapolated"] else "")
            + f"{cell(r['d_e'])} [{cell(r['d_e_low'])}, {cell(r['d_e_high'])}]"
            + (")" if r["extrapolated"] else ""),
            f"{cell(r['d_t'])} [{cell(r['d_t_low'])}, {cell(r['d_t_high'])}]",
            r["data_multiplier"],
            f"({cell(r['scratch_not_reached'])}, "
            + ("∞)" if np.isinf(r["scratch_reached"]) else f"{cell(r['scratch_reached'])}]"),
        ]
        for r in effective.to_dict("records")
    ]
    return _table(header, rows)


def verdict_markdown(verdicts: pd.DataFrame) -> str:
    axis = VERDICT_AXIS
    header = ["task", "metric", "B vs C / (n-1)", "jump contrast vs C", "jump vs C", "jump vs N"]
    header += ["jump vs loss", "Schaeffer verdict", "read vs", "Du et al. (loss explains?)", "Du p"]
    rows = [
        [
            r["task"],
            r["metric"],
            r.get(f"breakthroughness_ratio_{axis}"),
            r.get(f"jump_contrast_{axis}"),
            r.get(f"jump_{axis}"),
            r.get("jump_n"),
            r.get("jump_loss"),
            r["schaeffer_verdict"],
            r["verdict_axis"],
            r["du_verdict"],
            r.get("du_p_value"),
        ]
        for r in verdicts.to_dict("records")
    ]
    return _table(header, rows)


def markdown(study: TaskStudy, command: str, plots: list[str]) -> str:
    runs = study.runs
    n_eval = int(runs["task_n_eval"].min())
    out = [
        "# Task study: pre-train-only vs fine-tuned vs from scratch",
        "",
        f"Rebuilt by `{command}` on {dt.date.today().isoformat()} from {len(runs)} task runs "
        f"({', '.join(f'{(runs.arm == a).sum()} {a}' for a in transfer.ARMS)}).",
        "",
        "Loss is the answer-token cross-entropy (nats/token) on the task's fixed eval split; "
        "EM is exact match (greedy), tok acc per-token accuracy. "
        f"Evaluation sets of {n_eval} problems: {resolution_note(n_eval)}. "
        "D_F counts task tokens trained on (sequence positions, padding included). "
        "N is non-embedding parameters.",
        "",
        "## Sources",
        "",
        sources_markdown(study.sources),
        "",
        "## Paired arms",
        "",
        paired_markdown(study.paired),
        "",
        "## Effective data transferred (Hernandez et al. 2021)",
        "",
        "The from-scratch loss is fitted across sizes as L = K N^(-a_N) D^(-a_D) and inverted at "
        "each fine-tuned loss: D_E is the from-scratch data that loss would take, D_T = D_E - D_F. "
        "The last column needs no fit: the largest from-scratch D of the same size that stayed "
        "above the fine-tuned loss and the smallest that reached it; the ledger keeps D_E/D_F "
        "inside it.",
        "",
    ]
    for task, law in study.scratch_fits.items():
        if "skipped" in law:
            out.append(f"- {task}: from-scratch fit skipped: {law['skipped']}")
        else:
            out.append(
                f"- {task}: K = {law['K']:.3g}, a_N = {law['a_N']:.3g}, a_D = {law['a_D']:.3g} "
                f"({law['n_points']} from-scratch runs)"
            )
    out += ["", effective_markdown(study.effective) if len(study.effective) else "No D_T.", ""]
    out += ["Transfer law D_T = k D_F^alpha N^beta:", ""]
    for task in sorted(runs["task"].unique()):
        fitted = study.transfer_laws.get(task)
        if fitted is None:
            out.append(f"- {task}: not fitted: {study.skipped.get(f'transfer_law:{task}')}")
            continue
        parts = [
            f"{name} = {cell(e.estimate)} [{cell(e.ci_low)}, {cell(e.ci_high)}]"
            for name, e in fitted.params.items()
        ]
        out.append(f"- {task}: " + ", ".join(parts) + f" ({fitted.n_points} runs)")
    out += ["", "## Emergence", ""]
    thresholds = Thresholds()
    out += [
        "Each metric against N, pre-training compute C and pre-training loss; B is BIG-bench's "
        "breakthroughness over (n_scales - 1), a straight line scoring 1 (reported). A jump "
        f"climbs at least {percent(thresholds.min_improvement)} of the way to a perfect score "
        f"within {thresholds.jump_width} adjacent steps, at least "
        f"{thresholds.jump_contrast:g}x the median step outside them (its contrast), on "
        f"{thresholds.min_scales}+ scales. Schaeffer "
        "verdicts are read against C, or against loss where the Du et al. test finds loss "
        "explains exact match; with one D per N the test cannot separate loss from N.",
        "",
    ]
    for arm, table in study.verdicts.items():
        out += [f"### {arm}", "", verdict_markdown(table), ""]
        reasons = table[["du_reason", "du_n_runs"]].drop_duplicates().to_dict("records")
        out += [f"Du et al. test: {r['du_reason']} ({r['du_n_runs']} runs)." for r in reasons]
        out += [_loss_threshold(study.emergence_input[arm], task) for task in _loss_tasks(table)]
        out.append("")
    for key, reason in study.skipped.items():
        if key.startswith("emergence:"):
            out += [f"- {key}: {reason}"]
    out += ["## Plots", ""] + [f"![{name}]({name})" for name in plots] + [""]
    return "\n".join(out)


def _loss_tasks(verdicts: pd.DataFrame) -> list[str]:
    """Tasks whose exact match Du et al.'s test finds a function of pre-training loss."""
    exact = verdicts[verdicts["metric"] == "exact_match"]
    return sorted(exact.loc[exact["du_verdict"] == LOSS_EXPLAINS, "task"])


def _loss_threshold(table: pd.DataFrame, task: str) -> str:
    """Du et al. 2024's loss threshold: the pre-training loss below which exact match first
    passes the jump's minimum rise (linear between the two sources around it)."""
    share = Thresholds().min_improvement
    c = emergence.curve(table[table["task"] == task], "exact_match", "loss", columns(table))
    above = np.flatnonzero(c["y"].to_numpy() >= share)
    if not len(above) or above[0] == 0:
        return (
            f"- {task}: no loss threshold inside the sources (exact match never crosses "
            f"{percent(share)}, or starts above it)."
        )
    i = above[0]
    (l0, l1), (y0, y1) = c["x"].iloc[i - 1 : i + 1], c["y"].iloc[i - 1 : i + 1]
    loss = l0 + (share - y0) * (l1 - l0) / (y1 - y0)
    return (
        f"- {task}: loss threshold (Du et al. 2024) {loss:.3f} nats/token: below it exact match "
        f"passes {percent(share)} (between sources at {l0:.3f} and {l1:.3f})."
    )


def _lines(table: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """One line per task, and per source D where the sources ran several: sources of one D
    rank alike in N, compute and loss, so each line is a curve (mixed, they zig-zag in C)."""
    d = EMERGENCE_COLUMNS_D
    out = []
    for task, rows in table.groupby("task"):
        if rows[d].nunique() < 2:
            out.append((task, rows))
            continue
        out += [(f"{task}, D = {tokens / 1e6:.2g}M", part) for tokens, part in rows.groupby(d)]
    return out


def plot_curves(study: TaskStudy, out: Path) -> list[Path]:
    """One figure per axis (N, compute, pre-training loss): every task metric against it, for
    the pre-train-only and fine-tuned arms (scaling.analysis.plots.task_curves)."""
    from scaling.analysis import plots  # matplotlib is imported only when plots are drawn

    written = []
    for axis in AXES:
        curves = {
            arm: {
                label: {m: emergence.curve(rows, m, axis, columns(table)) for m in METRICS}
                for label, rows in _lines(table)
            }
            for arm, table in study.emergence_input.items()
            if not table.empty
        }
        path = out / f"metrics_vs_{axis}.png"
        written.append(plots.task_curves(curves, list(METRICS), axis, path))
    return written


def write_report(study: TaskStudy, results_dir: Path, command: str) -> list[Path]:
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    plots = plot_curves(study, results_dir)
    atomic_write_text(results_dir / "README.md", markdown(study, command, [p.name for p in plots]))
    atomic_write_text(results_dir / "paired.csv", study.paired.to_csv(index=False))
    atomic_write_text(results_dir / "effective_data.csv", study.effective.to_csv(index=False))
    verdicts = (
        pd.concat([t.assign(arm=arm) for arm, t in study.verdicts.items()], ignore_index=True)
        if study.verdicts
        else pd.DataFrame()
    )
    atomic_write_text(results_dir / "emergence.csv", verdicts.to_csv(index=False))
    payload = {
        "command": command,
        "scratch_fits": study.scratch_fits,
        "transfer_laws": {k: v.to_dict() for k, v in study.transfer_laws.items()},
        "emergence_thresholds": emergence.thresholds_dict(),
        "skipped": study.skipped,
    }
    atomic_write_text(
        results_dir / "tasks.json", json.dumps(fit.results.jsonable(payload), indent=2)
    )
    return [*plots, results_dir / "README.md", results_dir / "tasks.json"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, help="the task study's root, e.g. runs/tasks")
    parser.add_argument("results", type=Path, help="output directory, e.g. results/tasks")
    parser.add_argument("--bootstrap", type=int, default=1000, help="resamples per fit")
    parser.add_argument("--command", help="the command to cite as having rebuilt the report")
    args = parser.parse_args(argv)
    if not args.runs.is_dir():
        parser.error(f"{args.runs} is not a directory")
    try:
        study = analyse(args.runs, args.bootstrap)
    except ValueError as err:
        parser.error(str(err))
    command = args.command or "python -m scaling.reports.tasks " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    for path in write_report(study, args.results, command):
        print(path)


if __name__ == "__main__":
    main()
