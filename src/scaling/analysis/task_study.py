"""A task study's tables from its run records: paired arms, effective data, emergence verdicts.

`analyse` reads the records under a task study's root (its pre-training sources, fine-tuned,
pre-train-only and from-scratch runs); the task report (scaling.reports.tasks) and the claims
ledger read its `TaskStudy`. See scaling.analysis.transfer for the arms and D_T,
scaling.analysis.emergence for the verdicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from scaling import records
from scaling.analysis import emergence, fit, transfer
from scaling.analysis.emergence_terms import Columns
from scaling.tasks.metrics import METRICS

VERDICT_AXIS = "c"  # pre-training compute: the axis with the most distinct scales in a study
EMERGENCE_COLUMNS_D = "source_tokens"


@dataclass
class TaskStudy:
    """A task study's tables, as the report and the claims ledger use them."""

    runs: pd.DataFrame  # arms (scaling.analysis.transfer.arms)
    paired: pd.DataFrame
    effective: pd.DataFrame
    scratch_fits: dict[str, dict]
    transfer_laws: dict[str, fit.FitResult]
    emergence_input: dict[str, pd.DataFrame]  # arm -> tidy table for scaling.analysis.emergence
    verdicts: dict[str, pd.DataFrame]  # arm -> emergence.verdict_table
    skipped: dict[str, str] = field(default_factory=dict)
    sources: pd.DataFrame = field(default_factory=pd.DataFrame)  # the pre-training runs


def emergence_input(runs: pd.DataFrame, sources: pd.DataFrame, arm: str) -> pd.DataFrame:
    """One row per run of `arm` (the fine-tuned arm at its largest D_F per task), with the
    source's N, compute and pre-training loss, and the task metrics as emergence expects them."""
    part = runs[runs["arm"] == arm]
    if arm == transfer.FINETUNED and len(part):
        largest = part.groupby("task")["d_f"].transform("max")
        part = part[part["d_f"] == largest]
    compute = sources.set_index("run_name")["flops_6n"]
    table = pd.DataFrame(
        {
            "task": part["task"],
            "run_name": part["run_name"],
            "n": part["source_n_params_nonembedding"].astype(float),
            "compute": part["source_run_name"].map(compute).astype(float),
            EMERGENCE_COLUMNS_D: part["source_tokens"].astype(float),
            "pretrain_loss": part["pretrain_final_val_loss"].astype(float),
            "n_examples": part["task_n_eval"],
            **{m: part[f"task_{m}"].astype(float) for m in METRICS},
        }
    )
    return table.reset_index(drop=True)


def columns(table: pd.DataFrame) -> Columns:
    # Without variation in D the Du test must not be handed a constant column.
    varies = table[EMERGENCE_COLUMNS_D].nunique() > 1
    return Columns(
        n="n", c="compute", d=EMERGENCE_COLUMNS_D if varies else "-", loss="pretrain_loss"
    )


def analyse(root: Path, n_bootstrap: int = 1000) -> TaskStudy:
    """Every table of the task study under `root`."""
    table = records.collect(root)
    runs = transfer.arms(table)
    if runs.empty:
        raise ValueError(f"{root} holds no completed task runs")
    sources = table[table["task"].isna()] if "task" in table else table
    effective, scratch_fits = transfer.effective_data(runs, n_bootstrap)
    laws, skipped = {}, {}
    for task in sorted(runs["task"].unique()):
        try:
            laws[task] = transfer.transfer_law(effective, task, n_bootstrap)
        except ValueError as err:
            skipped[f"transfer_law:{task}"] = str(err)
    inputs, verdicts = {}, {}
    for arm in (transfer.PRETRAIN_ONLY, transfer.FINETUNED):
        inputs[arm] = emergence_input(runs, sources, arm)
        if inputs[arm].empty:
            skipped[f"emergence:{arm}"] = f"no {arm} runs"
            continue
        verdicts[arm] = emergence.verdict_table(
            inputs[arm],
            metrics=list(METRICS),
            columns=columns(inputs[arm]),
            verdict_axis=VERDICT_AXIS,
        )
    return TaskStudy(
        runs,
        transfer.paired_table(runs),
        effective,
        scratch_fits,
        laws,
        inputs,
        verdicts,
        skipped,
        sources[sources["status"] == "completed"] if len(sources) else sources,
    )
