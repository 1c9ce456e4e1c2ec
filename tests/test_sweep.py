"""Sweeps over N x D: grids, per-size hyperparameters, and real Hydra multiruns through real
launchers (basic, joblib, submitit's local executor, a local Ray cluster), training `tiny`."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from conftest import CONF_DIR, ROOT, compose_config
from scaling.config import ConfigError, register_configs
from scaling.model import accounting
from scaling.sweep.grid import (
    GridSpec,
    Rung,
    grid_spec,
    isoflop_grid,
    isoflop_window,
    make_rung,
    nxd_grid,
    plan,
)
from scaling.sweep.hparams import HparamRules, batch_size_for, lr_for, warmup_tokens_for
from scaling.sweep.ladder import ladder
from scaling.train.rundir import record_failure

PRETRAIN = ROOT / "experiments" / "pretrain.py"
SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=+,-]*$")
SEQ_LEN = 128


def ladder_rungs(convention: str = accounting.FLOPS_6N) -> list[Rung]:
    return [make_rung(m, 256, SEQ_LEN, convention) for m in ladder()]


# --- grids -------------------------------------------------------------------------------------


def test_nxd_grid_is_every_rung_at_every_d_with_unique_safe_names():
    rungs = ladder_rungs()[:3]
    rules = HparamRules(lr_multipliers=[0.5, 1.0, 2.0])
    points = nxd_grid(rungs, [131072, 262144], SEQ_LEN, rules, seeds=[0, 1])
    assert len(points) == 3 * 2 * 3 * 2
    names = [p.run_name for p in points]
    assert len(set(names)) == len(names)
    assert all(SAFE.match(n) and ".." not in n for n in names)
    p = points[0]
    assert p.run_name == f"n110k-D131072-lr{p.lr:.3g}-s0"
    assert p.overrides == [
        "model=n110k",
        "train.tokens=131072",
        f"train.lr={p.lr:.3g}",
        f"train.warmup_tokens={p.warmup_tokens}",
        f"train.batch_size={p.batch_size}",
        "train.seed=0",
        f"run_name={p.run_name}",
    ]
    # Every point of a rung shares its batch size; lr multipliers scale the rule's lr.
    base = {p.rung: lr_for(p.n_params, rules) for p in points}
    for p in points:
        assert p.lr == pytest.approx(base[p.rung] * p.lr_multiplier, rel=5e-3)


def test_duplicate_points_are_refused():
    with pytest.raises(ValueError, match="alike"):
        nxd_grid(ladder_rungs()[:1], [1000, 1000], SEQ_LEN)


def test_hparam_rules_follow_their_power_laws():
    rules = HparamRules()
    assert lr_for(rules.n_ref, rules) == pytest.approx(rules.lr_ref)
    assert lr_for(16 * rules.n_ref, rules) == pytest.approx(rules.lr_ref / 2)  # exponent 1/4
    sizes = [r.n_params for r in ladder_rungs()]
    lrs = [lr_for(n, rules) for n in sizes]
    batches = [batch_size_for(n, SEQ_LEN, rules) for n in sizes]
    assert lrs == sorted(lrs, reverse=True)
    assert batches == sorted(batches)
    assert all(b & (b - 1) == 0 for b in batches)  # powers of two
    # Warmup: N tokens (Porian et al.), capped at a fifth of the run.
    assert warmup_tokens_for(1000, 100_000, rules) == 1000
    assert warmup_tokens_for(1000, 2000, rules) == 400


@pytest.mark.parametrize(
    "convention", [accounting.FLOPS_6N, accounting.FLOPS_6N_ATTN, accounting.FLOPS_CHINCHILLA]
)
def test_isoflop_d_is_budget_over_flops_per_token(convention):
    rungs = ladder_rungs(convention)
    budgets = [1e13, 1e15, 1e17]
    rules = HparamRules()
    points = isoflop_grid(rungs, budgets, SEQ_LEN, rules, rungs_per_budget=5, min_steps=1)
    by_name = {r.name: r for r in rungs}
    for p in points:
        rung = by_name[p.rung]
        step = p.batch_size * SEQ_LEN
        assert p.tokens % step == 0  # whole optimizer steps
        assert abs(rung.flops_per_token * p.tokens - p.budget) <= rung.flops_per_token * step / 2
    for budget in budgets:
        members = [p for p in points if p.budget == budget]
        assert len(members) == 5
        idx = sorted(rungs.index(by_name[p.rung]) for p in members)
        assert idx == list(range(idx[0], idx[0] + 5))  # contiguous rungs


def test_isoflop_is_centred_on_the_prior_optimum():
    rungs = ladder_rungs()
    for budget in (3e14, 1e16, 1e18):
        n_opt = math.sqrt(budget / (6 * 20))  # 6N: C = 6 N D, D = 20 N
        nearest = min(rungs, key=lambda r: abs(math.log(r.n_params / n_opt)))
        points = isoflop_grid(rungs, [budget], SEQ_LEN, rungs_per_budget=5, min_steps=1)
        names = [p.rung for p in points]
        assert names[2] == nearest.name, (budget, names)


def test_isoflop_window_slides_inside_the_ladder_and_short_points_drop(caplog):
    assert isoflop_window(14, 6, 5) == (4, 9)
    assert isoflop_window(14, 0, 5) == (0, 5)
    assert isoflop_window(14, 13, 7) == (7, 14)
    assert isoflop_window(3, 1, 7) == (0, 3)
    rungs = ladder_rungs()
    caplog.set_level("INFO", logger="scaling.sweep.grid")
    # 1e12 FLOPs: the optimum (91k) sits at the bottom rung, so the window slides up; the
    # biggest of its rungs would get fewer than 200 steps and is dropped with a log line.
    points = isoflop_grid(rungs, [1e12], SEQ_LEN, rungs_per_budget=5, min_steps=200)
    assert [p.rung for p in points] == ["n110k", "n221k", "n393k"]
    assert "end of the ladder" in caplog.text
    assert "dropped n921k" in caplog.text and "dropped n1m8" in caplog.text


# --- experiment configs ----------------------------------------------------------------------


def experiment(name: str, *overrides: str) -> tuple[GridSpec, list]:
    """The grid of conf/experiment/<name>.yaml and its points, composed as the sweeper does."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "pretrain", overrides=[f"experiment={name}", *overrides], return_hydra_config=True
        )
    assert cfg.hydra.sweeper._target_.endswith("ScalingSweeper")
    spec = grid_spec(cfg.hydra.sweeper.grid)
    base = [f"experiment={name}", *overrides]
    return spec, plan(spec, lambda extra: compose_config([*base, *extra]))


def test_the_default_study_is_an_isoflop_grid_that_can_answer():
    """experiment=isoflop_cpu: 3+ budgets, 3+ sizes each, every run 400+ steps of one batch
    size, warmup 5% of each run, lr by the rule checked in experiment=lr_sweep."""
    spec, points = experiment("isoflop_cpu")
    assert spec.kind == "isoflop" and len(spec.budgets) >= 3
    for budget in spec.budgets:
        sizes = {p.rung for p in points if p.budget == budget}
        assert len(sizes) >= 3, (budget, sizes)
    assert {p.batch_size for p in points} == {16}
    assert min(p.tokens // (16 * 128) for p in points) >= 400
    rules = spec.hparams
    for p in points:
        assert p.warmup_tokens == int(0.05 * p.tokens)
        lr = rules.lr_ref * (p.n_params / rules.n_ref) ** -rules.lr_exponent
        assert p.lr == pytest.approx(lr, rel=5e-3)
    all_n = sorted({p.n_params for p in points})
    assert all_n[-1] / all_n[0] >= 16  # the span of N the fits see
    cfg = compose_config(["experiment=isoflop_cpu"])
    assert cfg.data.seq_len == 128 and cfg.model.position == "rope"
    assert (cfg.data.synthetic.n_facts, cfg.data.synthetic.zipf_exponent) == (16384, 1.5)


def test_lr_sweep_brackets_the_rule_on_three_rungs():
    spec, points = experiment("lr_sweep")
    assert {p.rung for p in points} == {"n24k", "n98k", "n393k"}
    assert sorted({p.lr_multiplier for p in points}) == [0.5, 1.0, 2.0, 4.0]
    assert len(points) == 12 and {p.tokens for p in points} == {2097152}


def test_warmup_fraction_replaces_the_n_token_warmup():
    rules = HparamRules(warmup_fraction=0.05)
    assert warmup_tokens_for(1e6, 400_000, rules) == 20_000
    assert warmup_tokens_for(1e6, 400_000, HparamRules()) == 80_000  # N tokens, capped at 20%


def test_isoflop_gpu_experiment_spans_its_budgets():
    spec, points = experiment("isoflop_gpu")
    assert spec.budgets[0] == 1e15 and spec.budgets[-1] == 3e16
    for budget in spec.budgets:
        assert 5 <= sum(p.budget == budget and p.seed == 0 for p in points) <= 7
    smallest = [p for p in points if p.budget == spec.budgets[0]]
    assert {p.seed for p in smallest} == {0, 1}  # the seed spread, where runs are cheapest


def test_isoflop_counts_the_architecture_it_trains():
    """N comes from the composed config: model.arch=llama (SwiGLU) changes N and so D."""
    _, gpt2 = experiment("isoflop_cpu")
    _, llama = experiment("isoflop_cpu", "model.arch=llama")
    # n393k (d=128): SwiGLU's d_ff = 352 makes 3*d*d_ff > GELU's 2*d*4d.
    g = next(p for p in gpt2 if p.rung == "n393k")
    ll = next(p for p in llama if p.rung == "n393k" and p.budget == g.budget)
    assert ll.n_params > g.n_params and ll.tokens < g.tokens


def test_the_sweeper_plugin_is_discovered_from_the_src_layout():
    from hydra.core.plugins import Plugins
    from hydra.plugins.sweeper import Sweeper

    found = {p.__module__ for p in Plugins.instance().discover(Sweeper)}
    assert "hydra_plugins.scaling_sweeper.scaling_sweeper" in found
    assert (ROOT / "src" / "hydra_plugins" / "scaling_sweeper" / "__init__.py").exists()


# --- failure records -------------------------------------------------------------------------


def test_record_failure_names_the_key_and_never_clobbers_a_completed_run(tmp_path):
    cfg = OmegaConf.create({"out_dir": str(tmp_path), "run_name": "bad", "train": {"lr": -1.0}})
    run_dir = record_failure(cfg, ConfigError("train.lr=-1.0 must be positive"))
    record = json.loads((run_dir / "record.json").read_text())
    assert record["status"] == "failed"
    assert record["reason"] == "ConfigError: train.lr=-1.0 must be positive"
    (tmp_path / "done").mkdir()
    done = '{"run_name": "done", "status": "completed"}'
    (tmp_path / "done" / "record.json").write_text(done)
    cfg = OmegaConf.create({"out_dir": str(tmp_path), "run_name": "done"})
    record_failure(cfg, RuntimeError("boom"))
    assert (tmp_path / "done" / "record.json").read_text() == done
    cfg = OmegaConf.create({"out_dir": str(tmp_path), "run_name": "../escape"})
    assert record_failure(cfg, RuntimeError("boom")) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "done"]


# --- real multiruns ---------------------------------------------------------------------------


def sweep(*overrides: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "1", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run(
        [sys.executable, str(PRETRAIN), "-m", "experiment=tiny", "out_dir=out", *overrides],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def records(out: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in out.glob("*/record.json")}


def mtimes(out: Path) -> dict[str, int]:
    return {p.parent.name: p.stat().st_mtime_ns for p in out.glob("*/record.json")}


@pytest.mark.slow
def test_tiny_sweep_end_to_end_and_a_rerun_launches_nothing(tmp_path):
    result = sweep(cwd=tmp_path)
    out = tmp_path / "out"
    runs = records(out)
    assert sorted(runs) == ["tiny-D1024-lr0.00758-s0", "tiny-D2048-lr0.00758-s0"]
    assert all(r["status"] == "completed" for r in runs.values())
    assert [r["tokens_seen"] for r in sorted(runs.values(), key=lambda r: r["tokens_seen"])] == [
        1024,
        2048,
    ]
    manifest = json.loads((out / ".sweeps" / "tiny.json").read_text())
    assert {p["run_name"] for p in manifest["points"]} == set(runs)
    assert "launching 2" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing beside out_dir

    before = mtimes(out)
    again = sweep(cwd=tmp_path)
    assert "2 already completed, launching 0" in again.stdout
    assert "Launching" not in again.stdout  # no job reached the launcher
    assert mtimes(out) == before


@pytest.mark.slow
def test_failing_points_are_recorded_and_only_they_are_retried(tmp_path):
    # tokens=0 is a bad value (ConfigError before any training); lr x1e30 diverges at once.
    grid = [
        "hydra.sweeper.grid.tokens=[2048,0]",
        "hydra.sweeper.grid.hparams.lr_multipliers=[1,1e30]",
    ]
    result = sweep(*grid, cwd=tmp_path)
    out = tmp_path / "out"
    runs = records(out)
    assert len(runs) == 4
    ok = runs.pop("tiny-D2048-lr0.00758-s0")
    assert ok["status"] == "completed"
    diverged = runs.pop("tiny-D2048-lr7.58e+27-s0")
    assert diverged["status"] == "diverged" and "non-finite" in diverged["reason"]
    for bad in runs.values():
        assert bad["status"] == "failed"
        assert bad["reason"] == "ConfigError: train.tokens=0 must be positive"
    assert result.stdout.count("failed: ConfigError: train.tokens=0") == 2
    assert "1 completed, 1 diverged, 2 failed" in result.stdout

    before = mtimes(out)
    again = sweep(*grid, cwd=tmp_path)
    assert "1 already completed, launching 3" in again.stdout
    launched = re.findall(r"run_name=(\S+)", again.stdout)
    assert sorted(launched) == sorted(runs) + ["tiny-D2048-lr7.58e+27-s0"]
    after = mtimes(out)
    assert after["tiny-D2048-lr0.00758-s0"] == before["tiny-D2048-lr0.00758-s0"]
    assert after["tiny-D2048-lr7.58e+27-s0"] > before["tiny-D2048-lr7.58e+27-s0"]


@pytest.mark.slow
def test_sweep_values_on_the_command_line_are_refused_with_the_reason(tmp_path):
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run(
        [sys.executable, str(PRETRAIN), "-m", "experiment=tiny", "out_dir=out", "train.seed=0,1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "hydra.sweeper.grid" in result.stderr


# Each launcher runs the 2-point tiny sweep in its own way: joblib in loky worker processes,
# submitit's LOCAL executor in subprocesses (the same code path as its SLURM executor: pickled
# job, submission, result polling), and Ray on a local cluster that the launcher's `ray.init()`
# starts (and shuts down at exit) inside the sweep process.
LAUNCHERS = {
    "joblib": (
        "hydra_plugins.hydra_joblib_launcher",
        ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
        "Joblib.Parallel",
    ),
    "submitit_local": (
        "hydra_plugins.hydra_submitit_launcher",
        ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10"],
        "Submitit 'local'",
    ),
    "ray": (
        "hydra_plugins.hydra_ray_launcher",
        [
            "hydra/launcher=ray",
            "+hydra.launcher.ray.init.num_cpus=2",
            "+hydra.launcher.ray.init.include_dashboard=false",
        ],
        "Ray Launcher is launching 1 jobs",  # the two points share a shape: one group job
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_launcher_runs_a_two_point_sweep(tmp_path, launcher):
    module, overrides, banner = LAUNCHERS[launcher]
    pytest.importorskip(module, reason="install the sweep extra: pip install -e '.[sweep]'")
    result = sweep(*overrides, cwd=tmp_path)
    assert banner in result.stdout + result.stderr
    runs = records(tmp_path / "out")
    assert len(runs) == 2 and all(r["status"] == "completed" for r in runs.values())
    again = sweep(*overrides, cwd=tmp_path)
    assert "2 already completed, launching 0" in again.stdout
