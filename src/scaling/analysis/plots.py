"""Every PNG the reports write, in one style: a sweep's fits (`draw_all`) and a task study's
metric curves (`task_curves`). Each axis is labelled with its units, each line has a legend
entry, each figure a title that says what to look for. matplotlib (Agg), no display needed;
the analysis side only: records and fits in, never model code.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.patheffects as effects  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import (  # noqa: E402
    EngFormatter,
    FuncFormatter,
    LogLocator,
    NullFormatter,
)

from scaling.analysis.fit import ChinchillaLaw, isoflop_minima  # noqa: E402
from scaling.analysis.fit.frontier import parabola  # noqa: E402
from scaling.analysis.study import Fits, Study, budget_groups  # noqa: E402

PANEL = (6.0, 4.4)  # inches per panel
LEGEND = {"fontsize": 8, "framealpha": 0.85}
LOSS_LABEL = "validation loss (nats/token)"
N_LABELS = {
    "nonembedding": "N, non-embedding parameters",
    "with_head": "N, parameters with the head",
    "total": "N, all parameters",
}
APPROACH3_LABELS = {"approach3_e_fixed": "Approach 3, E fixed", "approach3": "Approach 3, E free"}


def _axes(ncols: int, title: str):
    fig, axes = plt.subplots(1, ncols, figsize=(PANEL[0] * ncols, PANEL[1]), squeeze=False)
    fig.suptitle(title, fontsize=11)
    return fig, list(axes[0])


def _style(ax, xlabel: str, ylabel: str, title: str, xlog: bool = False, ylog: bool = False):
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="major")
    if xlog:
        ax.set_xscale("log")
        _log_ticks(ax.xaxis)
    if ylog:
        ax.set_yscale("log")
        _log_ticks(ax.yaxis)


def _log_ticks(axis) -> None:
    """Labels at 1, 2 and 5 times powers of ten in engineering units (50k, 1M, 2T), none on
    the minor ticks: matplotlib's default labels collide on spans of a decade or two."""
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=12))
    axis.set_major_formatter(EngFormatter(sep=""))
    axis.set_minor_formatter(NullFormatter())


def _law(fits: Fits) -> tuple[str, ChinchillaLaw] | None:
    """The Approach 3 fit the verdicts read (E fixed where known), as a law, and its label."""
    chosen = fits.law()
    if chosen is None:
        return None
    name, result = chosen
    law = ChinchillaLaw(**{k: result.value(k) for k in ("A", "B", "E", "alpha", "beta")})
    return APPROACH3_LABELS[name], law


def _floor(ax, study: Study, fits: Fits) -> None:
    """The corpus's exact entropy and the E the free fit found; the loss axis spans the runs
    and the entropy, so an E far below them is named in the legend, not drawn off the data."""
    losses = study.points["loss"]
    low, high = losses.min(), losses.max()
    if study.entropy is not None:
        low = min(low, study.entropy)
        ax.axhline(
            study.entropy, color="k", ls="--", lw=1, label=f"exact entropy {study.entropy:.3f}"
        )
    margin = 0.08 * (high - low)
    ax.set_ylim(low - margin, high + margin)
    free = fits.results.get("approach3")
    if free is not None:
        e = free.value("E")
        where = "" if e >= low - margin else " (below the axis)"
        ax.axhline(e, color="gray", ls=":", lw=1, label=f"E free fit {e:.3f}{where}")


def _colors(values, cmap: str = "viridis") -> dict:
    unique = np.unique(values)
    colormap = plt.get_cmap(cmap)
    return {v: colormap(0.9 * i / max(1, len(unique) - 1)) for i, v in enumerate(unique)}


def isoflop_profiles(study: Study, fits: Fits, path: Path) -> Path | None:
    """Per budget: the runs, Approach 2's parabola and its minimum; beside it the fitted law."""
    budgets = [(c, rows.sort_values("N")) for c, rows in budget_groups(study.points)]
    if not budgets:
        return None
    fig, (left, right) = _axes(
        2, "IsoFLOP profiles: at each compute budget, the size that trains best"
    )
    colors = _colors([c for c, _ in budgets], "plasma")
    for c, rows in budgets:
        color, log_n = colors[c], np.log(rows["N"].to_numpy())
        left.scatter(rows["N"], rows["loss"], color=color, s=28, zorder=3, edgecolors="k", lw=0.4)
        coef = parabola(log_n, rows["loss"].to_numpy(), np.ones(len(rows)))
        one = np.zeros(len(rows), dtype=int)
        minimum = isoflop_minima(
            rows["N"].to_numpy(),
            rows["C"].to_numpy(),
            rows["loss"].to_numpy(),
            one,
            np.ones(len(rows)),
        )
        inside = bool(minimum["interior"][0])
        label = f"C = {c:.2g}" + ("" if inside else " (edge minimum: not used)")
        if coef is None:
            left.plot([], [], color=color, label=label)
            continue
        grid = np.linspace(log_n.min(), log_n.max(), 60)
        left.plot(
            np.exp(grid),
            np.polyval(coef, grid),
            color=color,
            ls="-" if inside else "--",
            label=label,
        )
        if coef[0] > 0 and inside:
            x = -coef[1] / (2 * coef[0])
            left.plot(
                np.exp(x), np.polyval(coef, x), marker="v", ms=9, color=color, mec="k", zorder=4
            )
    left.plot([], [], "kv", ms=7, label="parabola minimum (Approach 2)")
    _floor(left, study, fits)
    _style(
        left, N_LABELS[study.n_convention], LOSS_LABEL, "Runs and Approach 2 parabolas", xlog=True
    )
    left.legend(**LEGEND)
    chosen = _law(fits)
    if chosen is not None:
        label, law = chosen
        for c, rows in budgets:
            grid = np.geomspace(rows["N"].min() / 1.5, rows["N"].max() * 1.5, 80)
            right.plot(grid, law.loss(grid, c / (6 * grid)), color=colors[c], label=f"C = {c:.2g}")
            right.scatter(
                rows["N"], rows["loss"], color=colors[c], s=20, edgecolors="k", lw=0.4, zorder=3
            )
            n_opt, d_opt = law.compute_optimal(c)
            right.plot(
                n_opt, law.loss(n_opt, d_opt), marker="*", ms=12, color=colors[c], mec="k", zorder=4
            )
        right.plot([], [], "k*", ms=9, label="the law's optimum")
        _floor(right, study, fits)
        _style(
            right,
            N_LABELS[study.n_convention],
            LOSS_LABEL,
            f"{label}: L(N, C/6N) and the runs",
            xlog=True,
        )
        right.legend(**LEGEND)
    return _save(fig, path)


def loss_vs_compute(study: Study, fits: Fits, path: Path) -> Path:
    """Training curves against compute: the envelope of the lowest loss is Approach 1."""
    fig, (ax,) = _axes(1, "Training curves against compute")
    colors = _colors(study.curves["N"].to_numpy())
    for _, curve in study.curves.groupby("run_dir"):
        ax.plot(curve["C"], curve["loss"], color=colors[curve["N"].iloc[0]], lw=1, alpha=0.8)
    for n, color in colors.items():
        ax.plot([], [], color=color, label=f"N = {n:,.0f}")
    a1 = fits.results.get("approach1")
    if a1 is not None:
        env = a1.derived["envelope"]
        ax.scatter(
            [r["C"] for r in env],
            [r["loss"] for r in env],
            c="r",
            s=14,
            zorder=3,
            label="lowest loss per bin of C (Approach 1)",
        )
    _floor(ax, study, fits)
    _style(
        ax,
        "C = 6ND so far (FLOPs)",
        LOSS_LABEL,
        "Each run's validation loss as it trains",
        xlog=True,
    )
    ax.legend(**LEGEND)
    return _save(fig, path)


def e_profile(study: Study, fits: Fits, path: Path) -> Path | None:
    """Is E identified? The fit's objective with E fixed at each value, against the truth."""
    free, profile = fits.results.get("approach3"), fits.results.get("e_profile")
    if free is None or profile is None:
        return None
    rows = profile.derived["profile"]
    e = np.array([r["E"] for r in rows])
    objective = np.array([r["objective"] for r in rows])
    fig, (ax,) = _axes(1, "Is the irreducible loss identified by these runs?")
    ax.plot(e, objective / objective.min(), "b-o", ms=3, label="Approach 3 with E fixed at x")
    est = free.params["E"]
    if est.ci_low is not None:
        ax.axvspan(est.ci_low, est.ci_high, color="gray", alpha=0.25, label="E free: 95% interval")
    ax.axvline(est.estimate, color="gray", ls=":", label=f"E free: {est.estimate:.3f}")
    if study.entropy is not None:
        ax.axvline(study.entropy, color="k", ls="--", label=f"exact entropy {study.entropy:.3f}")
    flat = "Where the curve is flat the runs cannot tell E apart"
    _style(ax, "E (nats/token)", "objective / its minimum", flat)
    ax.legend(**LEGEND)
    return _save(fig, path)


def frontier(study: Study, fits: Fits, path: Path) -> Path | None:
    """Compute-optimal N and tokens per parameter against C, from every approach fitted."""
    chosen = fits.law()
    a2 = fits.results.get("approach2")
    if chosen is None and a2 is None:
        return None
    fig, axes = _axes(2, "The compute-optimal frontier inside the budgets run")
    keys = (("N_opt", N_LABELS[study.n_convention]), ("tokens_per_param", "D_opt / N_opt"))
    for name, style in (("approach3_e_fixed", "b-"), ("approach3", "c--")):
        result = fits.results.get(name)
        if result is None:
            continue
        rows = result.to_dict()["derived"]["frontier"]
        c = np.array([r["C"] for r in rows])
        label = APPROACH3_LABELS[name]
        for ax, (key, _) in zip(axes, keys, strict=True):
            ax.plot(c, [r[key]["estimate"] for r in rows], style, label=label)
            low = [r[key]["ci_low"] for r in rows]
            if None not in low and name == "approach3_e_fixed":
                ax.fill_between(
                    c,
                    low,
                    [r[key]["ci_high"] for r in rows],
                    color="b",
                    alpha=0.15,
                    label=f"{label}: 95% interval",
                )
    if a2 is not None:
        for row in a2.to_dict()["derived"]["isoflop_minima"]:
            for ax, (key, _) in zip(axes, keys, strict=True):
                est = row[key]
                err = None
                if est["ci_low"] is not None:
                    err = [[est["estimate"] - est["ci_low"]], [est["ci_high"] - est["estimate"]]]
                ax.errorbar(
                    [row["C"]],
                    [est["estimate"]],
                    yerr=err,
                    fmt="o" if row["interior"] else "x",
                    color="r",
                    capsize=3,
                )
        for ax in axes:
            ax.plot([], [], "ro", label="Approach 2 minimum, 95% interval")
            ax.plot([], [], "rx", label="Approach 2 edge minimum (not used)")
    # The band is Chinchilla's, counted over every parameter; in another count it only guides.
    where = "" if study.n_convention == "total" else " (the ledger counts all parameters)"
    axes[1].axhspan(10, 40, color="orange", alpha=0.15, label=f"~20 tokens/param band{where}")
    for ax, (key, label) in zip(axes, keys, strict=True):
        title = "Compute-optimal size" if key == "N_opt" else "Compute-optimal tokens per parameter"
        _style(ax, "C (FLOPs)", label, title, xlog=True, ylog=True)
        ax.legend(**LEGEND)
    return _save(fig, path)


def surface(study: Study, fits: Fits, path: Path) -> Path | None:
    chosen = _law(fits)
    if chosen is None:
        return None
    label, law = chosen
    p = study.points
    n = np.geomspace(p["N"].min() / 2, p["N"].max() * 2, 80)
    d = np.geomspace(p["D"].min() / 2, p["D"].max() * 2, 80)
    nn, dd = np.meshgrid(n, d)
    fig, (ax,) = _axes(1, f"{label}: the fitted loss surface and the runs")
    contour = ax.contourf(nn, dd, law.loss(nn, dd), levels=20, cmap="viridis")
    fig.colorbar(contour, label="fitted loss (nats/token)")
    c = np.geomspace(6 * n[0] * d[0], 6 * n[-1] * d[-1], 50)
    n_opt, d_opt = law.compute_optimal(c)
    halo = [effects.Stroke(linewidth=4, foreground="k"), effects.Normal()]
    ax.plot(n_opt, d_opt, color="w", lw=2, path_effects=halo, label="compute-optimal frontier")
    ax.scatter(p["N"], p["D"], c="r", s=16, edgecolors="k", lw=0.4, label="runs")
    ax.set(xlim=(n[0], n[-1]), ylim=(d[0], d[-1]))
    _style(
        ax,
        N_LABELS[study.n_convention],
        "D (tokens)",
        "Lighter is lower loss",
        xlog=True,
        ylog=True,
    )
    ax.legend(**LEGEND)
    return _save(fig, path)


def residuals(study: Study, fits: Fits, path: Path) -> Path | None:
    chosen = _law(fits)
    if chosen is None:
        return None
    label, law = chosen
    p = study.points
    rel = (law.loss(p["N"].to_numpy(), p["D"].to_numpy()) - p["loss"]) / p["loss"]
    fig, (ax,) = _axes(1, f"{label}: how far each run lies from the law")
    sc = ax.scatter(
        p["C"], 100 * rel, c=np.log10(p["N"]), cmap="viridis", s=24, edgecolors="k", lw=0.4
    )
    fig.colorbar(sc, label="log10 N")
    ax.axhline(0, color="k", lw=0.8)
    _style(
        ax,
        "C (FLOPs)",
        "(law - run) / run (%)",
        "Residuals: no trend means the form fits",
        xlog=True,
    )
    return _save(fig, path)


def loss_vs_n_and_d(study: Study, fits: Fits, path: Path) -> Path | None:
    """Loss against N at each D and against D at each N: for grids that repeat N and D."""
    p = study.points
    if budget_groups(p) or p.groupby("D")["N"].nunique().max() < 2:
        return None  # an IsoFLOP grid repeats no D; isoflop_profiles shows it
    chosen = _law(fits)
    fig, axes = _axes(2, "Loss against N at fixed D, and against D at fixed N")
    for ax, x, other in ((axes[0], "N", "D"), (axes[1], "D", "N")):
        colors = _colors(p[other].to_numpy())
        grid = np.geomspace(p[x].min() / 2, p[x].max() * 2, 100)
        for value, group in p.groupby(other):
            ax.scatter(
                group[x], group["loss"], color=colors[value], s=20, label=f"{other} = {value:.3g}"
            )
            if chosen is not None:
                fixed = np.full_like(grid, value)
                pred = chosen[1].loss(grid, fixed) if x == "N" else chosen[1].loss(fixed, grid)
                ax.plot(grid, pred, color=colors[value], lw=1)
        _floor(ax, study, fits)
        xlabel = N_LABELS[study.n_convention] if x == "N" else "D (tokens)"
        title = f"Against {x}" + (" (lines: the fitted law)" if chosen is not None else "")
        _style(ax, xlabel, LOSS_LABEL, title, xlog=True)
        ax.legend(**LEGEND)
    return _save(fig, path)


def loss_vs_lr(study: Study, path: Path) -> Path | None:
    """Final loss against the learning rate at each (model, D) where several were tried: the
    check of an LR rule is where each curve bottoms out."""
    done = study.lr_scan()
    if done is None:
        return None
    keys = ["n_params_nonembedding", "tokens_target"]
    fig, (ax,) = _axes(1, "Which learning rate is best at each size?")
    colors = _colors(done["n_params_nonembedding"].to_numpy())
    for (n, d), rows in done.sort_values("lr").groupby(keys):
        if rows["lr"].nunique() < 2:
            continue
        label = f"N = {n:,.0f}, D = {d:.3g}"
        ax.plot(rows["lr"], rows["final_val_loss"], "o-", color=colors[n], label=label)
        best = rows.loc[rows["final_val_loss"].idxmin()]
        ax.scatter(best["lr"], best["final_val_loss"], s=120, facecolors="none", color="red")
    ax.scatter([], [], s=120, facecolors="none", color="red", label="lowest loss at that size")
    _style(ax, "learning rate (peak)", LOSS_LABEL, "Each curve's minimum is its best lr", xlog=True)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))  # not "5m"
    ax.legend(**LEGEND)
    return _save(fig, path)


def draw_all(study: Study, fits: Fits, out: Path) -> list[Path]:
    drawn = [
        isoflop_profiles(study, fits, out / "isoflop.png"),
        frontier(study, fits, out / "frontier.png"),
        e_profile(study, fits, out / "e_profile.png"),
        loss_vs_compute(study, fits, out / "loss_vs_compute.png"),
        loss_vs_n_and_d(study, fits, out / "loss_vs_n_and_d.png"),
        surface(study, fits, out / "surface.png"),
        residuals(study, fits, out / "residuals.png"),
        loss_vs_lr(study, out / "loss_vs_lr.png"),
    ]
    return [path for path in drawn if path is not None]


# ------------------------------------------------------------------------------ task studies

METRIC_LABELS = {
    "exact_match": "exact match (share of answers)",
    "token_accuracy": "per-token accuracy",
    "edit_distance": "edit distance (tokens)",
    "answer_logprob": "answer log prob (nats)",
    "brier": "Brier score",
}
AXIS_LABELS = {
    "n": "N of the source, non-embedding parameters",
    "c": "pre-training compute C of the source (FLOPs)",
    "loss": "pre-training val loss (nats/token), reversed: more capable to the right",
}


def task_curves(
    curves: Mapping[str, Mapping[str, pd.DataFrame]], metrics: list[str], axis: str, path: Path
) -> Path:
    """Every task metric against one scale axis: curves[arm][task] is emergence.curve's table
    (x, y) per metric, as {metric: table}. One panel per metric (two rows), one line per task
    and arm, the legend in the last panel."""
    cols = 3
    rows = -(-(len(metrics) + 1) // cols)
    fig, grid = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.9 * rows), squeeze=False)
    axes = list(grid.ravel())
    fig.suptitle(
        f"Task metrics against {AXIS_LABELS[axis].split(',')[0]}: a jump in exact match while "
        "the continuous metrics rise smoothly is a mirage",
        fontsize=11,
    )
    styles = {"pretrain_only": "--s", "finetuned": "-o"}
    for arm, tasks in curves.items():
        for task, per_metric in tasks.items():
            for ax, metric in zip(axes, metrics, strict=False):
                c = per_metric[metric]
                label = f"{task}, {arm.replace('_', '-')}"
                ax.plot(c["x"], c["y"], styles.get(arm, "-^"), ms=4, label=label)
    for ax, metric in zip(axes, metrics, strict=False):
        title = METRIC_LABELS[metric].split(" (")[0]
        _style(ax, AXIS_LABELS[axis], METRIC_LABELS[metric], title, xlog=axis in ("n", "c"))
        ax.xaxis.label.set_fontsize(8)
        if axis == "loss":
            ax.invert_xaxis()
    legend = axes[len(metrics)]
    legend.axis("off")
    handles, labels = axes[0].get_legend_handles_labels()
    legend.legend(handles, labels, loc="center", fontsize=10, title="task, arm")
    for ax in axes[len(metrics) + 1 :]:
        ax.axis("off")
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path
