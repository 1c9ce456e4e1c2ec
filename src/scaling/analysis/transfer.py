"""The task study from records: three arms per size, paired, and the effective data transferred.

A task study (conf/experiment/tasks*.yaml) leaves, for each model size N, task and seed:
- pre-train-only: the pre-trained model evaluated few-shot with no task training (D_F = 0);
- fine-tuned: the pre-trained model trained on D_F task tokens;
- from scratch: the same model from its random initialisation on the same task data.

`arms` labels those records, `paired_table` lines them up per (task, N, D_F), and
`effective_data` measures what pre-training was worth in task data (Hernandez et al. 2021,
"Scaling Laws for Transfer"): the from-scratch loss is fitted across sizes as
    L_scratch(N, D) = K * N^(-a_N) * D^(-a_D)        (least squares on log L)
and inverted at each fine-tuned run's loss L_ft to the data D_E a from-scratch model of the same
N would need; the effective data transferred is D_T = D_E - D_F, with an interval from refits of
the from-scratch points resampled with replacement. Where the from-scratch fit does not fall with
D, a loss below it is never reached (D_E = inf) and one above it was reached before the smallest
D tried (D_E = 0): the limits of a flattening law, which a verdict reads as bounds at the edges of
the from-scratch data. A resample that cannot be fitted (one N or one D drawn) is a failed one,
counted in `d_e_failed`. The multiplicative form has no irreducible term on purpose: a task's
answers are a function of its prompt, so its loss floor is 0.
`transfer_law` fits D_T = k * D_F^alpha * N^beta (scaling.analysis.fit.transfer_fit).

Reads records only (pandas tables from scaling.records); never imports model code.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from scaling.analysis import fit
from scaling.analysis.fit.bootstrap import resample_indices
from scaling.analysis.fit.regression import log_design, lstsq
from scaling.analysis.fit.results import interval_estimate
from scaling.tasks.metrics import METRICS

PRETRAIN_ONLY, FINETUNED, SCRATCH = "pretrain_only", "finetuned", "scratch"
ARMS = (PRETRAIN_ONLY, FINETUNED, SCRATCH)
N_COLUMN = "n_params_nonembedding"  # the same model in every arm, so the same N


def arms(table: pd.DataFrame) -> pd.DataFrame:
    """The completed task runs of a records table, with `arm`, `n` (N) and `d_f` (task tokens).

    Pre-training runs (no task) and runs evaluated with no training and no source (an untrained
    model, not an arm) are left out.
    """
    if "task" not in table.columns:
        return pd.DataFrame(columns=[*table.columns, "arm", "n", "d_f"])
    runs = table[table["task"].notna() & (table["status"] == "completed")].copy()
    has_source = runs["init_from"].notna() if "init_from" in runs else False
    trained = runs["tokens_target"] > 0
    runs["arm"] = np.select(
        [has_source & ~trained, has_source & trained, ~has_source & trained],
        [PRETRAIN_ONLY, FINETUNED, SCRATCH],
        default="",
    )
    runs = runs[runs["arm"] != ""]
    runs["n"] = runs[N_COLUMN].astype(float)
    runs["d_f"] = np.where(runs["arm"] == PRETRAIN_ONLY, 0.0, runs["tokens_seen"].astype(float))
    return runs.reset_index(drop=True)


def paired_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, model, seed, D_F > 0, source): the three arms side by side.

    A fine-tuned run is paired with the pre-train-only evaluation of its own source run (of
    any seed: with no training the seed changes nothing) and with the from-scratch run of the
    same model, task, seed and D_F. Columns `<arm>_loss`
    (answer-token loss, nats) and `<arm>_<metric>` for each metric, `source_run_name`, and
    `task_resolution`, the smallest exact-match rate the evaluation set can tell from zero, and
    `task_n_eval`, the smallest evaluation set behind it. From-scratch data sizes with no
    fine-tuned run get rows of their own.
    """
    keys = ["task", "model", "n", "seed"]
    cols = {"final_val_loss": "loss", **{f"task_{m}": m for m in METRICS}}

    def side(arm: str, extra: list[str]) -> pd.DataFrame:
        part = runs[runs["arm"] == arm]
        return part[keys + extra + list(cols)].rename(
            columns={k: f"{arm}_{v}" for k, v in cols.items()}
        )

    pretrain_only = side(PRETRAIN_ONLY, ["source_run_name"]).drop(columns="seed")
    pretrain_only = pretrain_only.drop_duplicates(["task", "model", "n", "source_run_name"])
    tuned = side(FINETUNED, ["d_f", "source_run_name"]).merge(
        pretrain_only, on=["task", "model", "n", "source_run_name"], how="left"
    )
    out = tuned.merge(side(SCRATCH, ["d_f"]), on=[*keys, "d_f"], how="outer")
    evaluation = runs.groupby("task").agg(
        task_resolution=("task_resolution", "max"), task_n_eval=("task_n_eval", "min")
    )
    out = out.merge(evaluation, left_on="task", right_index=True, how="left")
    return out.sort_values(["task", "n", "seed", "d_f"]).reset_index(drop=True)


def _scratch_coef(n: np.ndarray, d: np.ndarray, loss: np.ndarray) -> np.ndarray:
    # log L = c0 + c1 log N + c2 log D
    return lstsq(log_design(n, d), np.log(loss))


def _invert(coef: np.ndarray, n: np.ndarray, loss: np.ndarray, d_min: float) -> np.ndarray:
    """D at which the from-scratch fit reaches `loss` at size n. A fit that does not fall with D
    never reaches a loss below its value at d_min (inf) and is already below a higher one (0);
    NaN where the fit failed."""
    c0, c1, c2 = coef[..., 0:1], coef[..., 1:2], coef[..., 2:3]
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        d = np.exp((np.log(loss) - c0 - c1 * np.log(n)) / c2)
        never = np.log(loss) < c0 + c1 * np.log(n) + c2 * np.log(d_min)
    return np.where(c2 < 0, d, np.where(np.isnan(c2), np.nan, np.where(never, np.inf, 0.0)))


def scratch_bracket(scratch: pd.DataFrame, n: float, loss: float) -> tuple[float, float]:
    """What the from-scratch runs of size n say of D_E without any fit: (not_reached, reached),
    the largest D that stayed above `loss` below the smallest D that reached it (0 and inf where
    there is none). A from-scratch loss falls with D, so D_E lies between them."""
    same = scratch[scratch["n"] == n]
    reached = same.loc[same["final_val_loss"] <= loss, "d_f"]
    upper = float(reached.min()) if len(reached) else math.inf
    short = same.loc[(same["final_val_loss"] > loss) & (same["d_f"] < upper), "d_f"]
    return (float(short.max()) if len(short) else 0.0), upper


def scratch_fit(part: pd.DataFrame, task: str, n_bootstrap: int = 1000, seed: int = 0) -> dict:
    """The from-scratch law of one task from its from-scratch runs `part`: point coefficients
    and bootstrap refits."""
    n, d, loss = (part[c].to_numpy(float) for c in ("n", "d_f", "final_val_loss"))
    if len(part) < 4 or len(np.unique(d)) < 2:
        raise ValueError(
            f"task {task}: the from-scratch fit needs >= 4 runs at >= 2 token counts, "
            f"got {len(part)} at {len(np.unique(d))}"
        )
    coef = _scratch_coef(n, d, loss)
    idx = resample_indices(len(loss), n_bootstrap, seed)
    boot = np.stack([_scratch_coef(n[i], d[i], loss[i]) for i in idx]) if n_bootstrap else None
    return {
        "coef": coef,
        "boot": boot,
        "d_min": float(d.min()),
        "d_max": float(d.max()),
        "n_points": len(loss),
    }


def effective_data(
    runs: pd.DataFrame, n_bootstrap: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[pd.DataFrame, dict[str, dict]]:
    """D_E and D_T = D_E - D_F, with intervals, for every fine-tuned run; and the fits used.

    `extrapolated` marks D_E beyond the largest from-scratch D measured (the fit's extrapolation);
    `scratch_d_min`/`scratch_d_max` are the from-scratch data's edges, beyond which D_E is only a
    bound; `scratch_not_reached`/`scratch_reached` bracket D_E by the same size's from-scratch
    runs alone (`scratch_bracket`); `d_e_resamples`/`d_e_failed` count the refits behind the
    interval and those that failed.
    Tasks whose from-scratch runs cannot be fitted are skipped, with the reason in the fits dict.
    """
    rows = []
    fits: dict[str, dict] = {}  # a task's law, or why it was skipped
    for task, tuned in runs[runs["arm"] == FINETUNED].groupby("task", sort=True):
        scratch = runs[(runs["arm"] == SCRATCH) & (runs["task"] == task)]
        try:
            law = scratch_fit(scratch, task, n_bootstrap, seed)
        except ValueError as err:
            fits[task] = {"skipped": str(err)}
            continue
        c = law["coef"]
        fits[task] = {
            "form": "L_scratch = K * N^(-a_N) * D^(-a_D)",
            "K": float(np.exp(c[0])),
            "a_N": float(-c[1]),
            "a_D": float(-c[2]),
            "n_points": law["n_points"],
        }
        n, d_f, loss = (tuned[k].to_numpy(float) for k in ("n", "d_f", "final_val_loss"))
        d_e = _invert(c[None, :], n, loss, law["d_min"])[0]
        d_e_boot = _invert(law["boot"], n, loss, law["d_min"]) if law["boot"] is not None else None
        for i, row in enumerate(tuned.itertuples()):
            est = interval_estimate(
                d_e[i], None if d_e_boot is None else d_e_boot[:, i], level, bounds_ok=True
            )
            low, high = est.ci_low, est.ci_high
            not_reached, reached = scratch_bracket(scratch, n[i], loss[i])
            rows.append(
                {
                    "task": task,
                    "model": row.model,
                    "n": n[i],
                    "seed": row.seed,
                    "d_f": d_f[i],
                    "finetuned_loss": loss[i],
                    "d_e": d_e[i],
                    "d_e_low": low,
                    "d_e_high": high,
                    "d_t": d_e[i] - d_f[i],
                    "d_t_low": None if low is None else low - d_f[i],
                    "d_t_high": None if high is None else high - d_f[i],
                    "data_multiplier": d_e[i] / d_f[i],
                    "extrapolated": bool(d_e[i] > law["d_max"]),
                    "scratch_d_min": law["d_min"],
                    "scratch_d_max": law["d_max"],
                    "scratch_not_reached": not_reached,
                    "scratch_reached": reached,
                    "d_e_resamples": est.n_samples,
                    "d_e_failed": est.n_failed,
                }
            )
    return pd.DataFrame(rows), fits


def transfer_law(effective: pd.DataFrame, task: str, n_bootstrap: int = 1000) -> fit.FitResult:
    """D_T = k D_F^alpha N^beta on one task's fine-tuned runs with a finite D_T > 0."""
    if effective.empty:
        raise ValueError(f"task {task}: no fine-tuned loss could be inverted to a D_T")
    d_t = effective["d_t"]
    part = effective[(effective["task"] == task) & (d_t > 0) & np.isfinite(d_t)]
    if len(part) < 4:
        raise ValueError(
            f"task {task}: the transfer law needs >= 4 fine-tuned runs with finite D_T > 0, "
            f"got {len(part)}"
        )
    return fit.transfer_fit(
        part["d_f"].to_numpy(float),
        part["n"].to_numpy(float),
        part["d_t"].to_numpy(float),
        n_bootstrap=n_bootstrap,
    )
