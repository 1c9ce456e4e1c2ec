"""A fault raised inside the training loop, through its hooks: nothing written is lost, the run
says why it failed, and the same command resumes it to the numbers of a run never interrupted."""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import pytest

from scaling import records
from scaling.config import PretrainConfig, run_dir_of, validate
from scaling.data.build import build_corpus
from scaling.train import loop
from scaling.train.pretrain import pretrain, pretrain_group
from scaling.train.run import Hooks, Trainer, open_run

pytestmark = pytest.mark.slow  # trains tiny runs end to end, solo and grouped

FAULT_STEP = 16  # an eval step (eval_every=8) after the checkpoint at 8, before the one at 16


def _raise_at_fault_step(run: Trainer, params: Any) -> dict[str, Any]:
    if run.step == FAULT_STEP:
        raise RuntimeError(f"injected fault at step {run.step}")
    return run.evaluate_lm(params)


FAULTY = Hooks(evaluate=_raise_at_fault_step)


def _train_with(cfgs: list[PretrainConfig], hooks: list[Hooks]) -> None:
    """Open each run dir as pretraining does and train the runs together with these hooks."""
    with contextlib.ExitStack() as held:
        runs = []
        for cfg, h in zip(map(validate, cfgs), hooks, strict=True):
            corpus = functools.partial(build_corpus, cfg.data, seed=cfg.train.seed)
            runs.append(held.enter_context(open_run(cfg, run_dir_of(cfg), corpus, h)))
        loop.train(runs)


def _rows(cfg: PretrainConfig) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in row.items() if k != "time"}
        for row in records.read_metrics(run_dir_of(cfg))
    ]


def _assert_failed_and_kept(cfg: PretrainConfig) -> None:
    record = records.read_record(run_dir_of(cfg))
    assert record is not None and record["status"] == "failed"
    assert f"injected fault at step {FAULT_STEP}" in record["reason"]
    assert [r["step"] for r in _rows(cfg)] == [4, 8, 12]  # the rows before the fault
    saved = [p.name for p in (run_dir_of(cfg) / "ckpt").iterdir() if p.name.isdigit()]
    assert saved == ["8"]  # the save at 8 completed; none at the fault's step


def test_a_fault_inside_a_run_is_recorded_and_the_run_resumes_exactly(tiny_config):
    straight, faulty = tiny_config("run_name=straight"), tiny_config("run_name=faulty")
    pretrain(straight)
    with pytest.raises(RuntimeError, match="injected fault"):
        _train_with([faulty], [FAULTY])
    _assert_failed_and_kept(faulty)
    resumed = pretrain(faulty)
    assert resumed["status"] == "completed" and resumed["resumed_from_step"] == 8
    assert _rows(faulty) == _rows(straight)


def test_a_fault_in_one_run_of_a_group_stops_the_group_and_both_resume(tiny_config):
    def pair(prefix: str) -> list[PretrainConfig]:
        return [tiny_config(f"run_name={prefix}{lr}", f"train.lr={lr}") for lr in (1e-3, 2e-3)]

    straight, faulty = pair("straight"), pair("faulty")
    pretrain_group(straight)
    with pytest.raises(RuntimeError, match="injected fault"):
        _train_with(faulty, [FAULTY, Hooks()])
    for cfg in faulty:  # the fault in the first run stopped both at its step
        _assert_failed_and_kept(cfg)
    resumed = pretrain_group(faulty)
    assert [r["status"] for r in resumed] == ["completed", "completed"]
    assert [r["resumed_from_step"] for r in resumed] == [8, 8]
    for a, b in zip(straight, faulty, strict=True):
        assert _rows(b) == _rows(a)
