"""Faults beyond a single kill: run-dir locks, concurrent sweeps, damaged checkpoints of every
kind, bad files and broken run dirs, stops between log rows, and no pickle anywhere.

The fault campaign (`experiments/reliability.py`, results/reliability.md) runs the same
functions of `scaling.tools.faults` at larger counts.
"""

from __future__ import annotations

import dataclasses
import re
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import ROOT, TINY, compose_config
from scaling import records
from scaling.config import ConfigError, run_dir_of
from scaling.data.build import build_corpus
from scaling.sweep.grid import Point, write_manifest
from scaling.tools.faults import bad_inputs, campaign, damage, report, runner, sweeps
from scaling.train import rundir
from scaling.train.pretrain import pretrain
from scaling.train.rundir import record_failure

HOLD = "import sys, time; from scaling.train import rundir\nwith rundir.file_lock(sys.argv[1]):\n"
HOLD += "    print('held', flush=True); time.sleep(600)\n"


def _holder(path: Path) -> subprocess.Popen:
    """Another process holding the lock on `path` until it is killed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.slow
def test_a_lock_excludes_other_processes_and_dies_with_its_holder(tmp_path):
    lock = tmp_path / "run" / rundir.LOCK_FILE
    holder = _holder(lock)
    with rundir.file_lock(lock, wait=False) as held:
        assert not held
    assert f"pid {holder.pid}" in lock.read_text()
    holder.send_signal(signal.SIGKILL)  # a holder killed outright leaves no stale lock
    holder.wait()
    with rundir.file_lock(lock, wait=False) as held:
        assert held


@pytest.mark.slow
def test_a_failure_is_not_recorded_in_a_run_dir_another_worker_holds(tmp_path):
    run_dir = tmp_path / "busy"
    holder = _holder(run_dir / rundir.LOCK_FILE)
    try:
        cfg = OmegaConf.create({"out_dir": str(tmp_path), "run_name": "busy"})
        assert record_failure(cfg, ConfigError("model.d_model=-1 must be positive")) == run_dir
        assert records.read_record(run_dir) is None
    finally:
        holder.kill()
        holder.wait()
    record_failure(cfg, ConfigError("model.d_model=-1 must be positive"))
    assert records.read_record(run_dir)["status"] == records.STATUS_FAILED


@pytest.mark.slow
def test_sweeps_of_one_name_add_their_points_to_the_manifest_at_once(tmp_path):
    def point(tokens: int) -> Point:
        return Point("tiny", 1000, tokens, 1e-3, 1.0, 4, 0, 0)

    grids = [[point(1024 * (i + j)) for j in range(3)] for i in range(8)]  # overlapping
    threads = [
        threading.Thread(target=write_manifest, args=(tmp_path, "s", grid, {})) for grid in grids
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    manifest = (tmp_path / ".sweeps" / "s.json").read_text()
    names = re.findall(r'"run_name": "([^"]+)"', manifest)
    assert sorted(names) == sorted({p.run_name for grid in grids for p in grid})


@pytest.mark.slow
def test_concurrent_sweeps_on_one_dir_leave_every_point_completed_once_and_exact(tmp_path):
    # Three sweeps (one of them joblib) of the same point at once, then the point alone.
    trials = sweeps.concurrent_trials(tmp_path, grid_a=[1024], grid_b=[1024])
    assert [t.name for t in trials] == ["point tiny-D1024-lr0.00758-s0", ".sweeps/tiny.json"]
    assert all(t.ok for t in trials), [t.detail for t in trials if not t.ok]


STRAIGHT = [*TINY, "train.ckpt_every=4"]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """A tiny run left alone (24 steps, checkpoints every 4, log rows every 4)."""
    out = tmp_path_factory.mktemp("runs")
    cfg = compose_config([*STRAIGHT, f"out_dir={out}", "run_name=straight"])
    assert pretrain(cfg)["status"] == "completed"
    return cfg


def _stop(cfg, step=None):
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, stop_at_step=step))


def _resume(cfg):
    return pretrain(_stop(cfg))


@pytest.mark.slow
def test_every_kind_of_damaged_latest_checkpoint_falls_back_exactly(straight):
    # One run stopped at 8, 12, 16 and 20, its newest checkpoint damaged each time in another
    # way (every file garbage: test_train); each start resumes from the one before the damage.
    cfg = dataclasses.replace(straight, run_name="damaged")
    modes = [m for m in damage.DAMAGE if m != "every file replaced by garbage"]
    for stop, mode in zip((8, 12, 16, 20), modes, strict=True):
        record = pretrain(_stop(cfg, stop))
        assert record["status"] == "stopped"
        assert record["resumed_from_step"] == (stop - 8 or None), mode
        damage.DAMAGE[mode](run_dir_of(cfg) / "ckpt" / str(stop))
    assert _resume(cfg)["resumed_from_step"] == 16
    assert len(list((run_dir_of(cfg) / "ckpt_damaged").iterdir())) == 4
    assert runner.differences(run_dir_of(cfg), run_dir_of(straight)) == []


@pytest.mark.slow
def test_a_stop_between_log_rows_resumes_to_the_same_log(straight):
    # Stopped at step 10 (rows every 4, checkpoints every 4 and at the stop): the row at 12
    # must still average steps 9 to 12, as in the run left alone.
    cfg = dataclasses.replace(straight, run_name="between")
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, stop_at_step=10))
    assert pretrain(cfg)["status"] == "stopped"
    assert "partial" in records.read_metrics(run_dir_of(cfg))[-1]
    assert _resume(cfg)["resumed_from_step"] == 10
    assert runner.differences(run_dir_of(cfg), run_dir_of(straight)) == []


@pytest.mark.slow
def test_bad_corpus_files_are_refused_naming_the_file(tmp_path):
    cases = bad_inputs.bad_file_inputs(tmp_path / "files")
    assert len(cases) >= 15
    for case in cases:
        cfg = compose_config([*TINY, f"out_dir={tmp_path / 'out'}", *case.overrides])
        with pytest.raises(ConfigError) as err:
            corpus = build_corpus(cfg.data, seed=0)
            corpus.require(cfg.train.batch_size, cfg.data.seq_len)
        message = str(err.value)
        assert case.names in message and "\n" not in message, (case.name, message)


@pytest.mark.slow
def test_broken_run_dirs_and_bad_command_lines_exit_2_in_one_line(tmp_path, straight):
    # A sample (the campaign tries them all): an init_from whose checkpoints are all damaged
    # (left as found), a run dir whose config.yaml is garbage, a value Hydra cannot convert.
    cases = bad_inputs.bad_run_dir_inputs(tmp_path, run_dir_of(straight), STRAIGHT)
    cases = [c for c in cases if c.name in ("init_from: truncated", "resume: garbage config")]
    cases.append(bad_inputs.BadInput("type", "pretrain", ["train.lr=fast"], "train.lr"))
    trials = bad_inputs.bad_input_trials(cases, tmp_path, jobs=2)
    assert len(trials) == 3
    assert all(t.ok for t in trials), [(t.name, t.detail) for t in trials if not t.ok]


# Loading any of these runs code from the file: checkpoints and caches are arrays only.
UNPICKLING = re.compile(
    r"\bimport (c?pickle|dill|cloudpickle|shelve|marshal)\b|\bfrom (c?pickle|dill|cloudpickle) "
    r"import|\b(c?pickle|dill|cloudpickle|marshal)\.loads?\(|allow_pickle\s*=\s*True|"
    r"torch\.load\(|joblib\.load\(|\bshelve\.open\("
)


def test_nothing_in_the_source_tree_unpickles():
    planted = ["import pickle", "pickle.load(f)", "np.load(p, allow_pickle=True)", "torch.load(p)"]
    assert all(UNPICKLING.search(line) for line in planted)  # the pattern itself works
    offending = []
    for top in ("src", "experiments", "conf"):
        for path in (ROOT / top).rglob("*"):
            if path.suffix not in (".py", ".yaml") or "egg-info" in str(path):
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if UNPICKLING.search(line):
                    offending.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert offending == []


def test_the_campaign_report_counts_what_it_ran(tmp_path):
    trials = [
        runner.Trial(runner.KILL, "kill 1", True, "resumed"),
        runner.Trial(runner.KILL, "kill 2", False, "final parameters differ", lost=1),
        runner.Trial(runner.BAD_INPUT, "text: empty", True, "error: x: empty file"),
    ]
    ran = campaign.Campaign(trials, {"kills": 2}, datetime.now(UTC), 1.0)
    text = report.to_markdown(ran, "python experiments/reliability.py")
    assert "| kill (SIGKILL) | 2 | 1 | 1 | 1 |" in text
    assert "| invalid input | 1 | 1 | 0 | 0 |" in text
    assert "**Runs lost: 1**" in text
