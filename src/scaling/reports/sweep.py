"""A study's run dirs -> fitted scaling laws -> Markdown/CSV tables and PNG plots in results/.

    python -m scaling.reports.sweep runs/isoflop results/isoflop --command "make study"

Reads only records (record.json, metrics.jsonl); never imports model or training code. Every
table names its counting conventions and the command that rebuilt it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from scaling.analysis import fit
from scaling.analysis.format import cell, interval, percent, table
from scaling.analysis.study import N_COLUMNS, Fits, Study, fit_study, load_study
from scaling.records import atomic_write_text


def _cell(value: Any) -> str:
    return cell(value, digits=4)


def _interval(est: dict[str, Any]) -> str:
    """`estimate [low, high]`, with the share of resamples that could not be fitted where any
    failed (their interval comes from the rest, and a large share makes it unreliable)."""
    if est.get("ci_low") is None:
        return _cell(est["estimate"])
    text = interval(est["estimate"], est["ci_low"], est["ci_high"], show=_cell)
    failed, drawn = est.get("n_failed") or 0, est.get("n_samples") or 0
    if failed and drawn:
        text += f" ({percent(failed / drawn)} of resamples failed)"
    return text


def params_table(result: fit.FitResult) -> str:
    level = result.info.get("bootstrap", {}).get("level", 0.95)
    rows = [[name, _interval(est)] for name, est in result.to_dict()["params"].items()]
    return table(["parameter", f"estimate [{percent(level)} CI]"], rows)


def _optimum_cells(row: dict[str, Any]) -> list[str]:
    return [_interval(row[k]) for k in ("N_opt", "D_opt", "tokens_per_param")]


def frontier_table(result: fit.FitResult) -> str:
    header = ["C (FLOPs)", "N_opt", "D_opt", "tokens per parameter"]
    rows = [
        [f"{row['C']:.3g}", *_optimum_cells(row)] for row in result.to_dict()["derived"]["frontier"]
    ]
    return table(header, rows, align="rrrr")


def minima_table(result: fit.FitResult) -> str:
    """Approach 2's minimum per budget; an edge minimum is flagged and left out of the laws."""
    header = ["C (FLOPs)", "N_opt", "D_opt", "tokens per parameter", "minimum loss"]
    rows = [
        [
            f"{row['C']:.3g}",
            *_optimum_cells(row),
            _cell(row["loss"]),
            "yes" if row["interior"] else "**no: edge minimum, not used**",
        ]
        for row in result.to_dict()["derived"]["isoflop_minima"]
    ]
    return table([*header, "inside its sizes"], rows, align="rrrrrl")


def lr_table(study: Study) -> str | None:
    """Every learning rate tried at each (model, D), the best in bold; None when each point
    ran at one learning rate."""
    done = study.lr_scan()
    if done is None:
        return None
    rows = []
    ordered = done.sort_values(["n_params_nonembedding", "tokens_target", "lr"])
    for (model, _), runs in ordered.groupby(["model", "tokens_target"], sort=False):
        best = runs["final_val_loss"].idxmin()
        for i, run in runs.iterrows():
            loss = f"{run.final_val_loss:.4f}"
            rows.append(
                [
                    model,
                    f"{run.tokens_seen:,.0f}",
                    f"{run.lr:.3g}",
                    f"**{loss}**" if i == best else loss,
                ]
            )
    return table(["model", "D (tokens)", "lr", "final val loss"], rows, align="lrrr")


def runs_table(study: Study) -> str:
    header = [
        "model",
        f"N ({study.n_convention})",
        "D (tokens)",
        "C = 6ND",
        "lr",
        "final val loss",
        "its standard error",
        "seeds (spread)",
    ]
    rows = [
        [
            row.model,
            f"{row.N:,.0f}",
            f"{row.D:,.0f}",
            f"{row.C:.3g}",
            f"{row.lr:.3g}",
            f"{row.loss:.4f}",
            _cell(row.loss_se),
            f"{row.n_seeds} ({row.seed_spread:.4f})" if row.n_seeds > 1 else "1",
        ]
        for row in study.points.itertuples()
    ]
    return table(header, rows, align="l" + "r" * 7)


def truth_line(study: Study, fits: Fits) -> str:
    if study.entropy is None:
        return "No known irreducible loss for this corpus (only the synthetic corpus has one)."
    a3 = fits.results.get("approach3")
    if a3 is None:
        return f"The corpus's exact entropy is {study.entropy:.4f} nats/token (no Approach 3 fit)."
    est = a3.to_dict()["params"]["E"]
    covered = est["ci_low"] is not None and est["ci_low"] <= study.entropy <= est["ci_high"]
    return (
        f"Fitted E = {_interval(est)} nats/token against the generator's exact entropy "
        f"{study.entropy:.4f} nats/token (the Bayes-optimal loss of the synthetic corpus at this "
        "seq_len, computed from its fact table: docs/synthetic_corpus.md): the interval "
        f"{'covers' if covered else 'does NOT cover'} the truth "
        f"(E - truth = {est['estimate'] - study.entropy:+.4f})."
    )


def markdown(study: Study, fits: Fits, command: str, plots: list[str]) -> str:
    p = study.points
    out = [
        f"# Study `{study.name}`",
        "",
        f"Rebuilt by `{command}` on {dt.date.today().isoformat()} from "
        f"{len(study.runs)} run records ({len(p)} fitted points; "
        f"{len(study.failed)} runs not completed).",
        "",
        f"Conventions: N = `n_params_{study.n_convention}`"
        f"{' (Kaplan)' if study.n_convention == 'nonembedding' else ''}; D = tokens seen; "
        "C = 6·N·D; loss = final validation cross-entropy in nats/token, the mean over seeds "
        "where several ran; where several learning rates ran, the best is kept. Intervals are "
        "percentile bootstrap intervals.",
        "",
        "## Irreducible loss against truth",
        "",
        truth_line(study, fits),
        "",
    ]
    titles = {
        "approach3": "Approach 3: L = E + A/N^alpha + B/D^beta, E free",
        "approach3_e_fixed": "Approach 3 with E fixed at the corpus's exact entropy",
        "approach1": "Approach 1: minimum-loss envelope of the training curves",
        "approach2": "Approach 2: IsoFLOP parabolas",
        "kaplan_N": "Kaplan L(N) = (N_c/N)^alpha_N, at each N's largest D",
        "kaplan_D": "Kaplan L(D) = (D_c/D)^alpha_D, at the largest N",
        "data_constrained": "Data-constrained (Muennighoff et al. 2023)",
    }
    for key, title in titles.items():
        out += [f"## {title}", ""]
        if key in fits.results:
            result = fits.results[key]
            out += [params_table(result), ""]
            if key.startswith("approach3"):
                out += [
                    "Compute-optimal frontier from the fitted law, at budgets inside the runs' "
                    "compute:",
                    "",
                    frontier_table(result),
                    "",
                ]
            if key == "approach2":
                out += [minima_table(result), ""]
        else:
            out += [f"Not fitted: {fits.skipped.get(key, 'not asked for')}", ""]
    out += ["## Held-out check", ""]
    held = fits.results.get("heldout")
    if held is None:
        out += [f"Not run: {fits.skipped.get('heldout', 'not asked for')}", ""]
    else:
        fixed = "" if held.e_fixed is None else f" with E fixed at {held.e_fixed:.4f}"
        out += [
            f"Fitted Approach 3{fixed} on the {held.n_fit} points with C < {held.c_cut:.3g}, "
            f"predicted the {held.n_heldout} above: mean absolute relative error "
            f"{percent(held.mean_abs_rel_error, 2)}, max {percent(held.max_abs_rel_error, 2)}.",
            "",
        ]
        if held.min_loss_rel_error is not None:
            out += [
                f"Minimum loss at the held-out budget: predicted {held.min_loss_predicted:.4f}, "
                f"measured {held.min_loss_measured:.4f} (the IsoFLOP parabola's minimum), "
                f"relative error {held.min_loss_rel_error:+.2%}.",
                "",
            ]
    share = study.compile_share()
    if share is not None:
        out += [
            f"Compilation took {share['compile_s']:.1f} s of the runs' {share['wall_s']:.1f} s "
            f"wall time ({percent(share['share'], 1)}); runs of one shape share one compiled "
            "step, so each shape compiles once.",
            "",
        ]
    out += ["## Runs", "", runs_table(study), ""]
    lrs = lr_table(study)
    if lrs is not None:
        out += ["## Learning rates tried (the best per point is fitted)", "", lrs, ""]
    if len(study.failed):
        out += ["Runs not completed:", ""]
        for row in study.failed.itertuples():
            out.append(f"- `{row.run_dir}`: {row.status} ({row.reason})")
        out.append("")
    out += ["## Plots", ""] + [f"![{name}]({name})" for name in plots] + [""]
    return "\n".join(out)


def write_report(study: Study, fits: Fits, results_dir: Path, command: str) -> list[Path]:
    from scaling.analysis import plots  # matplotlib is imported only when plots are drawn

    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    written = plots.draw_all(study, fits, results_dir)
    names = [path.name for path in written]
    atomic_write_text(results_dir / "README.md", markdown(study, fits, command, names))
    atomic_write_text(results_dir / "runs.csv", study.runs.to_csv(index=False))
    atomic_write_text(results_dir / "points.csv", study.points.to_csv(index=False))
    payload = {
        "study": study.name,
        "command": command,
        "conventions": {"N": f"n_params_{study.n_convention}", "C": "6ND", "loss": "nats/token"},
        "entropy_nats_per_token": study.entropy,
        "compile_share": study.compile_share(),
        "fits": {k: v.to_dict() for k, v in fits.results.items()},
        "skipped": fits.skipped,
    }
    atomic_write_text(
        results_dir / "fits.json", json.dumps(fit.results.jsonable(payload), indent=2)
    )
    return [*written, results_dir / "README.md", results_dir / "fits.json"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, help="directory holding the study's run dirs")
    parser.add_argument("results", type=Path, help="output directory, e.g. results/isoflop")
    parser.add_argument("--name", help="study name (default: the results dir's name)")
    parser.add_argument("--n-convention", choices=sorted(N_COLUMNS), default="nonembedding")
    parser.add_argument("--bootstrap", type=int, default=1000, help="resamples per fit")
    parser.add_argument("--command", help="the command to cite as having rebuilt the report")
    args = parser.parse_args(argv)
    if not args.runs.is_dir():
        parser.error(f"{args.runs} is not a directory")
    study = load_study(args.runs, args.name or args.results.name, args.n_convention)
    if study.points.empty:
        parser.error(f"{args.runs} holds no completed runs to fit")
    fits = fit_study(study, n_bootstrap=args.bootstrap)
    command = args.command or "python -m scaling.reports.sweep " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    for path in write_report(study, fits, args.results, command):
        print(path)


if __name__ == "__main__":
    main()
