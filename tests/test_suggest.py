"""Tests for scaling.analysis.fit.suggest and `experiments/fit.py suggest`: budgets that follow the
data,
the proposed runs at a budget, N or D, and Approach 1's refusal of a single model size."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scaling.analysis import fit
from scaling.analysis.fit.suggest import budgets_for, optimal_budget, suggest
from scaling.reports.fit import ladder_sizes

ROOT = Path(__file__).resolve().parents[1]
# Besiroglu et al.'s refit (results/epoch_chinchilla): alpha = 0.3473, beta = 0.3672.
LAW = fit.ChinchillaLaw(A=477.8, B=2143.0, E=1.817, alpha=0.3473, beta=0.3672)


def load_cli():
    spec = importlib.util.spec_from_file_location("fit_cli", ROOT / "experiments" / "fit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_budgets_follow_the_data():
    assert budgets_for([3e11, 2e13]) == (1e11, 1e12, 1e13, 1e14, 1e15)
    assert budgets_for([1e21], beyond_decades=0) == (1e21,)


def test_suggest_centres_the_window_on_the_frontier():
    s = suggest(LAW, 1e21, tokens_per_step=2**20, window=5, spacing=2.0)
    n_opt, d_opt = (float(v) for v in LAW.compute_optimal(1e21))
    assert (s.N_opt, s.D_opt) == (pytest.approx(n_opt), pytest.approx(d_opt))
    assert [r.N for r in s.window] == pytest.approx([n_opt * 2.0**k for k in range(-2, 3)])
    for r in s.window:  # every run spends the budget, and the centre predicts the least loss
        assert 6 * r.N * r.D == pytest.approx(1e21)
        assert r.steps == math.ceil(r.D / 2**20)
    losses = [r.predicted_loss for r in s.window]
    assert min(losses) == losses[2] == pytest.approx(s.predicted_loss)


def test_suggest_from_a_size_or_token_count_inverts_the_frontier():
    c = optimal_budget(LAW, n=1e9)
    assert float(LAW.compute_optimal(c)[0]) == pytest.approx(1e9)
    c = optimal_budget(LAW, d=2e10)
    assert float(LAW.compute_optimal(c)[1]) == pytest.approx(2e10)


def test_suggest_picks_ladder_rungs_and_slides_at_its_end():
    sizes = ladder_sizes("cpu")
    assert list(sizes) == ["n24k", "n55k", "n98k", "n221k", "n393k", "n884k"]
    n_largest = sizes["n884k"]
    budget = optimal_budget(LAW, n=n_largest)  # the optimum is the largest rung
    s = suggest(LAW, budget, tokens_per_step=2048, sizes=sizes, window=3)
    assert [r.name for r in s.window] == ["n221k", "n393k", "n884k"]


def test_cli_suggest(tmp_path, capsys):
    law_json = tmp_path / "fit.json"
    law_json.write_text(json.dumps({"approach3": {"params": {
        k: {"estimate": v} for k, v in LAW.to_dict().items()}}}))  # fmt: skip
    cli = load_cli()
    assert cli.main(["suggest", "--law", str(law_json), "--budget", "1e21", "--window", "3"]) == 0
    out = json.loads(capsys.readouterr().out)["suggestion"]
    assert out["C"] == 1e21 and len(out["window"]) == 3
    assert cli.main(["suggest", "--law", str(tmp_path / "none.json"), "--n", "1e9"]) == 2
    assert "none.json" in capsys.readouterr().err


def test_cli_default_budgets_follow_the_data(tmp_path, capsys):
    n, d = (g.ravel() for g in np.meshgrid(np.geomspace(1e5, 1e6, 4), np.geomspace(1e6, 1e7, 4)))
    frame = pd.DataFrame({"N": n, "D": d, "loss": LAW.loss(n, d)})
    frame.to_csv(tmp_path / "p.csv", index=False)
    assert load_cli().main([str(tmp_path / "p.csv"), "--d-col", "D", "--bootstrap", "0"]) == 0
    frontier = json.loads(capsys.readouterr().out)["approach3"]["derived"]["frontier"]
    assert [row["C"] for row in frontier] == [1e11, 1e12, 1e13, 1e14, 1e15]  # C = 6e11..6e13


def test_approach1_refuses_a_single_model_size():
    run = np.repeat([0, 1], 20)
    d = np.tile(np.geomspace(1e6, 1e8, 20), 2)
    n = np.full(40, 1e6)
    with pytest.raises(ValueError, match="at least 2 model sizes.*N = 1e\\+06"):
        fit.envelope_fit(run, n, d, LAW.loss(n, d), n_bootstrap=0)
