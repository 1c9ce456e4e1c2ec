"""The report: real tiny runs -> fits, Markdown, CSV, JSON and PNG files in a results dir."""

from __future__ import annotations

import json

import pytest

from scaling.analysis import study as sweep_study
from scaling.reports import sweep as report
from scaling.train.pretrain import pretrain


@pytest.fixture(scope="module")
def study_runs(tmp_path_factory):
    """Six tiny runs: 2 widths x 3 token counts, plus one that diverges."""
    import conftest

    out = tmp_path_factory.mktemp("study")
    base = [*conftest.TINY, f"out_dir={out}", "train.ckpt_every=1000", "train.eval_every=5"]
    for width, heads in ((32, 2), (64, 4)):
        for tokens in (1280, 2560, 5120):
            pretrain(
                conftest.compose_config(
                    [
                        *base,
                        f"model.d_model={width}",
                        f"model.n_heads={heads}",
                        f"model.name=w{width}",
                        f"train.tokens={tokens}",
                    ]
                )
            )
    pretrain(conftest.compose_config([*base, "run_name=bad", "train.lr=1e30", "train.grad_clip=0"]))
    return out


@pytest.mark.slow
def test_report_writes_tables_fits_and_plots(study_runs, tmp_path):
    results = tmp_path / "results"
    report.main([str(study_runs), str(results), "--bootstrap", "50", "--command", "make study"])
    text = (results / "README.md").read_text()
    assert "Rebuilt by `make study`" in text
    assert "N = `n_params_nonembedding` (Kaplan)" in text
    assert "against the generator's exact entropy" in text
    assert "`bad`: diverged" in text  # the failed point is reported, not fitted
    fits = json.loads((results / "fits.json").read_text())
    a3 = fits["fits"]["approach3"]["params"]
    assert set(a3) >= {"A", "B", "E", "alpha", "beta"}
    assert a3["E"]["ci_low"] <= a3["E"]["estimate"] <= a3["E"]["ci_high"]
    assert "approach2" in fits["skipped"]  # an N x D grid has no IsoFLOP budgets
    points = (results / "points.csv").read_text().splitlines()
    assert len(points) == 1 + 6
    for name in ("loss_vs_compute", "loss_vs_n_and_d", "surface", "frontier", "residuals"):
        assert (results / f"{name}.png").stat().st_size > 10_000


def isoflop_study(law, entropy) -> sweep_study.Study:
    """A Study of an IsoFLOP grid sampled from `law`: 5 sizes at each of 3 budgets, the last
    budget's sizes all on the right of its optimum (an edge minimum)."""
    import numpy as np
    import pandas as pd

    rows = []
    for i, c in enumerate((1e12, 3e12, 1e13)):
        n_opt, _ = law.compute_optimal(c)
        factors = np.geomspace(0.3, 3.3, 5) if i < 2 else np.geomspace(1.2, 8.0, 5)
        for k, n in enumerate(n_opt * factors):
            d = c / (6 * n)
            loss = law.loss(n, d) * np.exp(0.002 * np.sin(7 * i + k))  # fixed, small wiggle
            rows.append({"model": f"m{i}{k}", "N": n, "D": d, "C": c, "loss": loss})
    points = pd.DataFrame(rows).assign(
        run_dir=lambda p: p["model"],
        loss_se=0.001,
        lr=1e-3,
        n_seeds=1,
        seed_spread=0.0,
        epochs=None,
        unique_tokens=lambda p: p["D"],
    )
    runs = pd.DataFrame(
        {
            "status": "completed",
            "model": points["model"],
            "tokens_target": points["D"],
            "tokens_seen": points["D"],
            "n_params_nonembedding": points["N"],
            "lr": 1e-3,
            "final_val_loss": points["loss"],
            "wall_time_s": 1.0,
            "compile_time_s": 0.1,
        }
    )
    curves = pd.DataFrame(columns=["run_dir", "N", "D", "C", "loss"])
    return sweep_study.Study("iso", runs, points, curves, "nonembedding", entropy)


def test_an_isoflop_study_fixes_e_flags_edge_budgets_and_holds_out_the_largest():
    from scaling.analysis.fit import ChinchillaLaw

    law = ChinchillaLaw(A=30.0, B=80.0, E=0.83, alpha=0.4, beta=0.35)
    study = isoflop_study(law, entropy=0.83)
    wanted = ("approach3", "approach3_e_fixed", "approach2", "heldout")
    fits = sweep_study.fit_study(study, n_bootstrap=30, only=wanted)
    name, chosen = fits.law()
    assert name == "approach3_e_fixed" and chosen.value("E") == 0.83
    assert abs(chosen.value("alpha") - law.alpha) < 0.03
    minima = fits.results["approach2"].derived["isoflop_minima"]
    assert [row["interior"] for row in minima] == [True, True, False]
    held = fits.results["heldout"]
    assert held.e_fixed == 0.83 and held.n_heldout == 5 and held.min_loss_measured is None
    assert held.mean_abs_rel_error < 0.01
    text = report.markdown(study, fits, "cmd", [])
    assert "Approach 3 with E fixed at the corpus's exact entropy" in text
    assert text.count("edge minimum, not used") == 1
    assert sweep_study.report_budgets(study.points) == pytest.approx((1e12, 3e12, 1e13))
    # without a known entropy only the free fit runs, and it is the one the verdicts read
    free = sweep_study.fit_study(isoflop_study(law, entropy=None), n_bootstrap=0, only=wanted)
    assert free.law()[0] == "approach3" and "approach3_e_fixed" in free.skipped


@pytest.mark.slow
def test_a_tiny_study_run_twice_writes_the_same_numbers(tmp_path):
    """Two sweeps of the same grid in two processes (the second served by the compilation
    cache the first filled): every logged loss is identical, and so is the law fitted to each
    (the report's bootstrap is seeded). Only wall times, dates and paths may differ."""
    import subprocess
    import sys

    import conftest

    tokens = "hydra.sweeper.grid.tokens=[1024,1536,2048,2560,3072,3584]"
    logs, fits = [], []
    for name in ("first", "second"):
        runs = tmp_path / name
        done = subprocess.run(
            [sys.executable, str(conftest.ROOT / "experiments" / "pretrain.py"), "-m"]
            + ["experiment=tiny", f"out_dir={runs}", tokens],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        rows = {}
        for path in sorted(runs.glob("*/metrics.jsonl")):
            for line in path.read_text().splitlines():
                row = json.loads(line)
                keep = ("step", "train_loss", "val_loss", "val_loss_se", "grad_norm")
                rows[(path.parent.name, row["step"])] = {k: row.get(k) for k in keep}
        logs.append(rows)
        study = sweep_study.load_study(runs, name)
        result = sweep_study.fit_study(study, n_bootstrap=20, only=("approach3",))
        fits.append(result.results["approach3"].to_dict())
    assert len(logs[0]) > 6 * 3 and logs[0] == logs[1]
    assert fits[0] == fits[1]
