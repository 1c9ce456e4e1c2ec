"""Runs of one shape trained together (scaling.train.loop): each run's losses equal its solo
run's, its run dir is an ordinary one (resumable by the single-run path), a failing run stays
in its own run dir, and sweeps group the points that share a shape."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from hydra import compose, initialize_config_dir

from conftest import CONF_DIR, ROOT, TINY, compose_config
from scaling import records
from scaling.config import register_configs, run_dir_of
from scaling.sweep.grid import grid_spec, plan
from scaling.sweep.groups import GROUP_KEY, group_points, job_overrides
from scaling.train.pretrain import pretrain, pretrain_group

# vmap lets XLA fuse and reduce the stacked step in another order than the single-run step, so
# losses agree to float32 rounding, not bit for bit: measured max abs diff 9.5e-7 over these
# 24-step runs on a CPU (grad norms and losses of about 1 and 5). The group step on a CPU has
# also differed from itself by an ulp between processes (seen under heavy load, cause unknown),
# so a resumed group is compared with an uninterrupted one to the same tolerance.
TOL = 1e-5
LOSSES = ("train_loss", "train_ce", "grad_norm", "val_loss", "val_loss_se", "val_bpb")
TIMING = ("wall_time_s", "compile_time_s", "step_time_s", "tokens_per_s", "mfu")

# Three runs of the tiny shape with their own seed, learning rate, schedule and length.
VARIANTS = {
    "a": ["train.seed=0"],
    "b": ["train.seed=1", "train.lr=0.006", "train.tokens=2048"],  # 16 steps: leaves early
    "c": ["train.seed=2", "train.lr=0.0015", "train.schedule=wsd"],
}


def assert_rows_close(solo_rows: list, grouped_rows: list) -> None:
    assert [r["step"] for r in solo_rows] == [r["step"] for r in grouped_rows]
    for a, b in zip(solo_rows, grouped_rows, strict=True):
        assert a.keys() == b.keys()
        for key in a.keys() - {"time"}:
            if key in LOSSES:
                assert abs(a[key] - b[key]) < TOL, (a["step"], key, a[key], b[key])
            else:
                assert a[key] == b[key], (a["step"], key)


def assert_same_run(solo: dict, grouped: dict, solo_rows: list, grouped_rows: list) -> None:
    assert_rows_close(solo_rows, grouped_rows)
    for key, value in solo.items():
        if key in TIMING or key == "run_name":
            continue
        if key.startswith(("final_", "best_")):
            assert abs(value - grouped[key]) < TOL, key
        else:
            assert grouped[key] == value, key


@pytest.mark.slow
def test_grouped_runs_equal_their_solo_runs_and_resume_on_either_path(tiny_config):
    solo = {n: tiny_config(f"run_name=solo-{n}", *o) for n, o in VARIANTS.items()}
    grouped = {n: tiny_config(f"run_name=group-{n}", *o) for n, o in VARIANTS.items()}
    solo_records = {n: pretrain(cfg) for n, cfg in solo.items()}

    # The group stops at step 6, between log rows (every 4), and resumes: run a alone (the
    # single-run path restores its checkpoint and its cut log window), b and c as a group again.
    stopped = pretrain_group(
        [
            dataclasses.replace(c, train=dataclasses.replace(c.train, stop_at_step=6))
            for c in grouped.values()
        ]
    )
    assert [r["status"] for r in stopped] == ["stopped"] * 3
    assert {r["group_size"] for r in stopped} == {3}
    assert stopped[0]["group_runs"] == ["group-a", "group-b", "group-c"]
    results = {"a": pretrain(grouped["a"])}
    results.update(zip("bc", pretrain_group([grouped["b"], grouped["c"]]), strict=True))
    assert results["a"]["resumed_from_step"] == 6 and "group_size" not in results["a"]
    assert results["b"]["resumed_from_step"] == 6 and results["b"]["group_size"] == 2

    for name in VARIANTS:
        solo_rows = records.read_metrics(run_dir_of(solo[name]))
        grouped_rows = records.read_metrics(run_dir_of(grouped[name]))
        solo_record = {**solo_records[name], "resumed_from_step": 6}
        assert_same_run(solo_record, results[name], solo_rows, grouped_rows)
        assert results[name]["status"] == "completed"
        steps = results[name]["steps"]
        assert (run_dir_of(grouped[name]) / "ckpt" / str(steps)).is_dir()
    assert results["b"]["steps"] == 16 and results["c"]["steps"] == 24


@pytest.mark.slow
def test_a_failing_run_stays_in_its_own_run_dir(tiny_config):
    ok = tiny_config("run_name=ok", "train.tokens=1024")
    diverges = tiny_config("run_name=diverges", "train.tokens=1024", "train.lr=1e30")
    bad = tiny_config("run_name=bad", "train.tokens=0")
    other_shape = tiny_config("run_name=wide", "train.tokens=1024", "model.d_model=64")
    results = pretrain_group([ok, diverges, bad, other_shape])
    assert [r["status"] for r in results] == ["completed", "diverged", "failed", "failed"]
    assert "non-finite" in results[1]["reason"] and results[1]["diverged_step"] >= 1
    assert results[2]["reason"] == "ConfigError: train.tokens=0 must be positive"
    assert "must share" in results[3]["reason"]
    assert results[0] == records.read_record(run_dir_of(ok))
    assert results[0]["group_size"] == 2  # only the runs that started train together

    before = (run_dir_of(ok) / "record.json").stat().st_mtime_ns
    again = pretrain_group([ok, diverges])
    assert again[0] == results[0]  # completed: returned as recorded, not redone
    assert (run_dir_of(ok) / "record.json").stat().st_mtime_ns == before
    assert again[1]["status"] == "diverged" and again[1]["group_size"] == 1


LONGER = ["train.tokens=12800", "train.ckpt_every=20", "train.eval_every=40"]  # 100 steps
OTHER = ["train.seed=1", "train.lr=0.006"]


@pytest.mark.slow
def test_an_interrupted_group_saves_every_run_and_resumes(tmp_path, tiny_config):
    reference = pretrain_group(
        [tiny_config(*LONGER, "run_name=ref-a"), tiny_config(*LONGER, *OTHER, "run_name=ref-b")]
    )
    # The entry point trains a group given on its command line, as a sweep job does.
    command = [
        sys.executable,
        str(ROOT / "experiments" / "pretrain.py"),
        *TINY,
        *LONGER,
        f"out_dir={tmp_path / 'runs'}",
        "run_name=a",
        f"+{GROUP_KEY}=['{' '.join(OTHER)} run_name=b']",
    ]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    run_a, run_b = tmp_path / "runs" / "a", tmp_path / "runs" / "b"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if [r for r in records.read_metrics(run_a) if r["step"] >= 20]:
            proc.send_signal(signal.SIGINT)  # Ctrl-C; SIGTERM takes the same path (test_faults)
            break
        time.sleep(0.01)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert b"rerun to resume" in stderr and b"Traceback" not in stderr
    for run_dir in (run_a, run_b):
        record = records.read_record(run_dir)
        assert record["status"] == "interrupted" and "SIGINT" in record["reason"]
        assert (run_dir / "ckpt" / str(record["steps"])).is_dir()  # saved where it stopped

    restarted = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert restarted.returncode == 0, restarted.stderr
    for run_dir, expected in zip((run_a, run_b), reference, strict=True):
        record = records.read_record(run_dir)
        assert record["status"] == "completed" and record["resumed_from_step"] > 0
        reference_rows = records.read_metrics(tmp_path / "runs" / expected["run_name"])
        assert_rows_close(reference_rows, records.read_metrics(run_dir))


def tiny_sweep(*grid: str) -> tuple[list[str], list]:
    """The points of `experiment=tiny` with `grid` overrides, and a composer of job configs."""
    register_configs()
    base = ["experiment=tiny", "out_dir=/tmp/unused", *grid]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        spec = grid_spec(compose("pretrain", base, return_hydra_config=True).hydra.sweeper.grid)
    points = plan(spec, lambda extra: compose_config([*base, *extra]))
    return base, points


def job_config(base: list[str], point) -> object:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("pretrain", [*base, *point.overrides])


def test_points_of_one_shape_are_grouped_and_bad_ones_run_alone():
    base, points = tiny_sweep(
        "hydra.sweeper.grid.tokens=[1024,0]",
        "hydra.sweeper.grid.hparams.lr_multipliers=[0.5,1,2]",
        "hydra.sweeper.grid.seeds=[0,1]",
    )
    assert len(points) == 12
    jobs = group_points(points, lambda p: job_config(base, p), max_size=4, max_params=10**6)
    sizes = sorted(len(j) for j in jobs)
    assert sizes == [1] * 6 + [2, 4]  # 6 good points in groups of at most 4; tokens=0 alone
    assert all(p.tokens == 0 for j in jobs if len(j) == 1 for p in j)
    assert all(len(j) == 1 for j in group_points(points, lambda p: job_config(base, p), 4, 100))
    assert all(len(j) == 1 for j in group_points(points, lambda p: job_config(base, p), 1, 10**6))

    # A job's overrides carry the other points; its config is the first point's.
    job = next(j for j in jobs if len(j) == 4)
    overrides = job_overrides(base, job)
    assert overrides[-1] == f"run_name={job[0].run_name}"
    assert sum(o.startswith(f"+{GROUP_KEY}=") for o in overrides) == 1


@pytest.mark.slow
def test_a_grouped_sweep_records_what_solo_runs_record(tmp_path):
    grid = [
        "hydra.sweeper.grid.tokens=[1024]",
        "hydra.sweeper.grid.hparams.lr_multipliers=[0.5,1,2]",
    ]
    env = {**os.environ, "HYDRA_FULL_ERROR": "1", "JAX_PLATFORMS": "cpu"}
    pretrain_py = str(ROOT / "experiments" / "pretrain.py")
    result = subprocess.run(
        [sys.executable, pretrain_py, "-m", "experiment=tiny", "out_dir=out", *grid],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "launching 3 in 1 jobs" in result.stdout
    manifest = json.loads((tmp_path / "out" / ".sweeps" / "tiny.json").read_text())
    for point in manifest["points"]:
        grouped_dir = tmp_path / "out" / point["run_name"]
        grouped = records.read_record(grouped_dir)
        assert grouped["group_size"] == 3
        cfg = compose_config(
            ["experiment=tiny", f"out_dir={tmp_path / 'solo'}", *point["overrides"]]
        )
        solo = pretrain(cfg)
        assert_same_run(
            solo, grouped, records.read_metrics(run_dir_of(cfg)), records.read_metrics(grouped_dir)
        )
