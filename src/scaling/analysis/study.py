"""A study's points and fits: its run records, one point per (model, D), and every scaling-law fit.

`load_study` reads a study's records (scaling.records); `fit_study` fits them. The sweep report
(scaling.reports.sweep), its plots (scaling.analysis.plots) and the claims ledger read both.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from scaling import records
from scaling.analysis import fit

N_COLUMNS = {
    "nonembedding": "n_params_nonembedding",
    "with_head": "n_params_with_head",
    "total": "n_params_total",
}


@dataclass
class Study:
    """The points a report fits: one row per (model, D), the best learning rate kept."""

    name: str
    runs: pd.DataFrame  # every record, any status
    points: pd.DataFrame  # N, D, C, loss, run_dir, lr, ...: completed runs, best LR per (N, D)
    curves: pd.DataFrame  # run_dir, N, D (tokens so far), C, loss: every evaluation
    n_convention: str
    entropy: float | None  # the corpus's exact entropy (synthetic), the true E

    @property
    def failed(self) -> pd.DataFrame:
        return self.runs[self.runs["status"] != "completed"]

    def lr_scan(self) -> pd.DataFrame | None:
        """The completed runs with a final loss, where some (model, D) ran at several learning
        rates (an LR sweep); None otherwise."""
        done = self.runs[self.runs["status"] == "completed"].dropna(subset=["final_val_loss"])
        if done.empty or done.groupby(["model", "tokens_target"])["lr"].nunique().max() < 2:
            return None
        return done

    def compile_share(self) -> dict[str, float] | None:
        """Seconds spent compiling against the runs' wall time (each run's, from its start
        to its record; process start-up and imports are outside both)."""
        done = self.runs[self.runs["status"] == "completed"]
        wall, comp = done["wall_time_s"].sum(), done["compile_time_s"].sum()
        if not wall > 0:
            return None
        return {"compile_s": float(comp), "wall_s": float(wall), "share": float(comp / wall)}


def load_study(runs_root: Path, name: str, n_convention: str = "nonembedding") -> Study:
    runs = records.collect(runs_root)
    n_col = N_COLUMNS[n_convention]
    done = runs[runs["status"] == "completed"].dropna(subset=["final_val_loss"])
    # Seeds of one (model, D, lr) are averaged (their spread kept), then the best lr is kept.
    keys = ["model", "tokens_target", "lr"]
    by_seed = done.groupby(keys)["final_val_loss"]
    if "final_val_loss_se" not in done:  # records written before the sample's error was kept
        done = done.assign(final_val_loss_se=np.nan)
    done = done.assign(
        loss_se=done.groupby(keys)["final_val_loss_se"].transform("mean"),
        seed_mean=by_seed.transform("mean"),
        seed_spread=by_seed.transform(lambda x: x.max() - x.min()),
        n_seeds=by_seed.transform("size"),
    )
    best = done.sort_values(["seed_mean", "run_name"]).drop_duplicates(["model", "tokens_target"])
    points = pd.DataFrame(
        {
            "run_dir": best["run_dir"],
            "model": best["model"],
            "N": best[n_col].astype(float),
            "D": best["tokens_seen"].astype(float),
            "loss": best["seed_mean"].astype(float),
            "loss_se": best["loss_se"].astype(float),
            "lr": best["lr"],
            "n_seeds": best["n_seeds"].astype(int),
            "seed_spread": best["seed_spread"].astype(float),
            "epochs": best["epochs"],
            "unique_tokens": best["unique_tokens"].astype(float),
        }
    )
    points["C"] = 6 * points["N"] * points["D"]
    points = points.sort_values(["N", "D"]).reset_index(drop=True)
    curves = records.collect_curves(runs_root)
    n_by_run = dict(zip(done["run_dir"], done[n_col].astype(float), strict=True))
    curves = curves[curves["run_dir"].isin(n_by_run)].copy()
    curves["N"] = curves["run_dir"].map(n_by_run)
    curves = curves.rename(columns={"tokens": "D", "val_loss": "loss"})
    curves["C"] = 6 * curves["N"] * curves["D"]
    entropies = done["entropy_nats_per_token"].dropna().unique()
    entropy = float(entropies[0]) if len(entropies) == 1 else None
    return Study(name, runs, points, curves, n_convention, entropy)


@dataclass
class Fits:
    """Each fit's result, or the reason it could not be made from this study."""

    results: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    wanted: tuple[str, ...] | None = None  # None: every fit

    def attempt(self, name: str, make: Callable[[], Any]) -> None:
        if self.wanted is not None and name not in self.wanted:
            return
        try:
            self.results[name] = make()
        except ValueError as err:
            self.skipped[name] = str(err)

    def skip(self, name: str, why: str) -> None:
        if self.wanted is None or name in self.wanted:
            self.skipped[name] = why

    def law(self) -> tuple[str, Any] | None:
        """The Approach 3 fit the study's verdicts read: E fixed at the known entropy where the
        corpus has one (E cannot be identified far from it), else E free."""
        for name in ("approach3_e_fixed", "approach3"):
            if name in self.results:
                return name, self.results[name]
        return None


def report_budgets(points: pd.DataFrame) -> tuple[float, ...]:
    """Budgets at which the fitted frontier is read, all inside the runs' compute (never
    extrapolated): an IsoFLOP study's own budgets, else `decade_budgets`."""
    return isoflop_budgets(points) or decade_budgets(points)


def decade_budgets(points: pd.DataFrame) -> tuple[float, ...]:
    """1-3-10 steps of C inside the runs' compute."""
    low, high = points["C"].min(), points["C"].max()
    decades = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
    steps = [m * 10.0**k for k in decades for m in (1, 3)]
    return tuple(c for c in steps if low <= c <= high)


def budget_groups(points: pd.DataFrame, min_sizes: int = 3) -> list[tuple[float, pd.DataFrame]]:
    """(C, rows) of each compute budget holding runs of at least `min_sizes` sizes at equal
    compute (within 5%), C the geometric mean of its runs', smallest first; empty for a study
    that is not an IsoFLOP grid."""
    if points.empty:
        return []
    groups = fit.group_budgets(points["C"].to_numpy())
    out = []
    for label in np.unique(groups):
        rows = points[groups == label]
        if rows["N"].nunique() >= min_sizes:
            out.append((float(np.exp(np.log(rows["C"]).mean())), rows))
    return out


def isoflop_budgets(points: pd.DataFrame, min_sizes: int = 3) -> tuple[float, ...]:
    """The C of each of `budget_groups`."""
    return tuple(c for c, _ in budget_groups(points, min_sizes))


def fit_study(
    study: Study,
    n_bootstrap: int = 1000,
    seed: int = 0,
    only: tuple[str, ...] | None = None,
    budgets: tuple[float, ...] | None = None,
) -> Fits:
    """Every fit of the report (or those named in `only`), each with its bootstrap; the
    frontier is read at `budgets` (default: `report_budgets`, all inside the runs' compute)."""
    p, fits = study.points, Fits(wanted=only)
    budgets = report_budgets(p) if budgets is None else budgets
    n, d, c, loss = (p[k].to_numpy() for k in ("N", "D", "C", "loss"))
    for name, e_fixed in (("approach3", None), ("approach3_e_fixed", study.entropy)):
        if name == "approach3_e_fixed" and e_fixed is None:
            fits.skip(name, "the corpus's entropy is not known (only the synthetic corpus's is)")
            continue

        # A def, not a lambda: mypy cannot infer a lambda's default argument (the loop's E).
        def approach3(e_fixed: float | None = e_fixed) -> fit.FitResult:
            _needs(len(p), 6, "Approach 3")
            return fit.chinchilla_approach3(
                n, d, loss, n_bootstrap=n_bootstrap, seed=seed, budgets=budgets, e_fixed=e_fixed
            )

        fits.attempt(name, approach3)
    curves = study.curves
    fits.attempt(
        "approach1",
        lambda: fit.envelope_fit(
            curves["run_dir"].to_numpy(),
            curves["N"].to_numpy(),
            curves["D"].to_numpy(),
            curves["loss"].to_numpy(),
            n_bins=12,
            n_bootstrap=n_bootstrap,
            seed=seed,
        ),
    )
    fits.attempt("approach2", lambda: _isoflop(p, n_bootstrap, seed))
    if isoflop_budgets(p):  # each size at its own D: no size is trained near convergence
        why = "an IsoFLOP grid trains each size to one compute, none near its own L(N) or L(D)"
        fits.skip("kaplan_N", why)
        fits.skip("kaplan_D", why)
    else:
        _kaplan(p, fits, n_bootstrap)
    fits.attempt("heldout", lambda: _heldout(p, study.entropy))
    fits.attempt("e_profile", lambda: _needs(len(p), 6, "E's profile") or _e_profile(p, study))
    repeated = p["epochs"].fillna(0).astype(float) > 1
    fits.attempt(
        "data_constrained",
        lambda: (
            _needs(int(repeated.sum()), 3, "the data-constrained law (runs repeating data)")
            or fit.data_constrained_fit(
                n, d, p["unique_tokens"].to_numpy(), loss, n_bootstrap=n_bootstrap, seed=seed
            )
        ),
    )
    return fits


def _kaplan(p: pd.DataFrame, fits: Fits, n_bootstrap: int) -> None:
    """Kaplan's L(N) at each size's largest D, and L(D) at the largest size."""
    at_max_d = p[p["D"] >= p.groupby("N")["D"].transform("max")]
    at_max_n = p[p["N"] == p["N"].max()]
    fits.attempt(
        "kaplan_N",
        lambda: (
            _needs(at_max_d["N"].nunique(), 3, "Kaplan L(N)")
            or fit.kaplan_fit(
                at_max_d["N"], at_max_d["loss"], variable="N", n_bootstrap=n_bootstrap
            )
        ),
    )
    fits.attempt(
        "kaplan_D",
        lambda: (
            _needs(len(at_max_n), 3, "Kaplan L(D)")
            or fit.kaplan_fit(
                at_max_n["D"], at_max_n["loss"], variable="D", n_bootstrap=n_bootstrap
            )
        ),
    )


def _needs(have: int, need: int, what: str) -> Literal[False]:
    """Raise ValueError below `need` points; else False, so `_needs(...) or fit(...)` fits."""
    if have < need:
        raise ValueError(f"{what} needs at least {need} points, this study has {have}")
    return False


def _isoflop(p: pd.DataFrame, n_bootstrap: int, seed: int) -> fit.FitResult:
    groups = fit.group_budgets(p["C"].to_numpy())
    sizes = np.bincount(groups)
    _needs(int((sizes >= 3).sum()), 3, "Approach 2 (budgets with 3+ runs of equal compute)")
    keep = sizes[groups] >= 3
    q = p[keep]
    return fit.isoflop_fit(
        q["N"].to_numpy(),
        q["C"].to_numpy(),
        q["loss"].to_numpy(),
        n_bootstrap=n_bootstrap,
        seed=seed,
    )


def _e_profile(p: pd.DataFrame, study: Study, n_values: int = 13) -> fit.FitResult:
    """Approach 3's objective with E fixed across (0, lowest loss): where the data pin E down
    the profile has a clear minimum, where they cannot it is flat (plots.e_profile)."""
    floor = float(p["loss"].min())
    e_values = np.linspace(0.35 * floor, 0.98 * floor, n_values)
    if study.entropy is not None and study.entropy < floor:
        e_values = np.sort(np.append(e_values, study.entropy))
    n, d, loss = (p[k].to_numpy() for k in ("N", "D", "loss"))
    objective = fit.profile_e(n, d, loss, e_values)
    rows = [
        {"E": float(e), "objective": float(o)} for e, o in zip(e_values, objective, strict=True)
    ]
    return fit.FitResult(
        method="approach3_e_profile",
        params={},
        n_points=len(p),
        derived={"profile": rows},
        info={"form": "min over A, B, alpha, beta of the Approach 3 objective at each fixed E"},
    )


def _heldout(p: pd.DataFrame, entropy: float | None) -> fit.HeldOutResult:
    """Fit Approach 3 (E fixed where known) below the largest budget and predict it: an IsoFLOP
    study's largest budget (its runs, and its minimum loss against the parabola's), else the
    largest quarter of C."""
    budgets = isoflop_budgets(p)
    measured_min = None
    if len(budgets) >= 3:
        c_cut = budgets[-1] / 1.05  # budgets are told apart within 5% (fit.group_budgets)
        top = p[p["C"] >= c_cut]
        minima = fit.isoflop_minima(
            top["N"].to_numpy(),
            top["C"].to_numpy(),
            top["loss"].to_numpy(),
            np.zeros(len(top), dtype=int),
            np.ones(len(top)),
        )
        measured_min = float(minima["loss"][0]) if bool(minima["interior"][0]) else None
    else:
        c = np.sort(p["C"].to_numpy())
        c_cut = c[int(0.75 * len(c))] if len(c) >= 8 else math.inf
    _needs(int((p["C"] < c_cut).sum()) if math.isfinite(c_cut) else 0, 6, "The held-out check")
    return fit.heldout_check(
        p["N"].to_numpy(),
        p["D"].to_numpy(),
        p["loss"].to_numpy(),
        c_cut=c_cut,
        e_fixed=entropy,
        min_loss_measured=measured_min,
    )
