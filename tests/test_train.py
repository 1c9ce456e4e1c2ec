"""The training loop end to end at tiny size: records, resume exactness, guards, schedules."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

from scaling import records
from scaling.config import ConfigError, DataConfig, ModelConfig, TrainConfig, run_dir_of
from scaling.data.build import build_corpus
from scaling.train import rundir
from scaling.train.evaluate import VAL_ROWS, mean_and_se, validation_sample
from scaling.train.optim import Plan, make_schedule, microbatches
from scaling.train.pretrain import pretrain
from scaling.train.step import make_train_step


# Not slow, though it trains: the fast set's one run through the loop and the step (~1-3 s).
def test_tiny_run_writes_the_run_dir(tiny_config, capsys):
    # Progress lines as outside a terminal, as often as possible: they change nothing else.
    cfg = tiny_config("train.progress=lines", "train.progress_every_s=1e-9")
    record = pretrain(cfg)
    run_dir = run_dir_of(cfg)
    assert record["status"] == "completed"
    assert record == records.read_record(run_dir)
    assert rundir.read_config(run_dir)["model"]["d_model"] == 32
    assert (run_dir / "ckpt" / "24").is_dir()
    rows = records.read_metrics(run_dir)
    assert [r["step"] for r in rows] == [4, 8, 12, 16, 20, 24]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert record["steps"] == 24 and record["tokens_seen"] == 24 * 4 * 32
    assert record["final_val_loss"] == rows[-1]["val_loss"]
    assert record["best_val_loss"] == min(r["val_loss"] for r in rows if "val_loss" in r)
    # The synthetic corpus's exact entropy bounds any model's expected loss from below.
    assert 0 < record["entropy_nats_per_token"] < record["final_val_loss"]
    assert record["n_params_nonembedding"] == 12 * 2 * 32**2
    assert record["flops_6n"] == 6 * record["n_params_nonembedding"] * record["tokens_seen"]
    assert record["compile_time_s"] > 0 and record["tokens_per_s"] > 0
    assert record["mfu"] is None  # no known peak for a CPU
    # The validation sample is stated, and the loss comes with its standard error.
    assert (record["val_sequences"], record["val_tokens_evaluated"]) == (2 * 16, 2 * 16 * 32)
    assert record["final_val_loss_se"] == rows[-1]["val_loss_se"]
    assert 0 < record["final_val_loss_se"] < 0.1 * record["final_val_loss"]
    lines = capsys.readouterr().err.splitlines()
    assert lines[-1].startswith(f"{cfg.run_name}: step 24/24, ") and "val loss" in lines[-1]
    assert len(lines) == 24  # one a step, at this interval


def test_the_validation_sample_is_fixed_and_its_error_is_the_sequences():
    corpus = build_corpus(DataConfig(seq_len=8), seed=0)
    one, n = validation_sample(corpus, 3, 8, n_devices=1)
    assert n == 3 * VAL_ROWS and [b.shape for b in one] == [(16, 9)] * 3
    # Batches for 3 data shards: the same rows, then zero rows to fill the last batch.
    three, m = validation_sample(corpus, 3, 8, n_devices=3)
    assert m == n and [b.shape for b in three] == [(48, 9)]
    np.testing.assert_array_equal(three[0][:n], np.concatenate(one))
    assert not three[0][n:].any()
    # The standard error of a mean over sequences, and of a ratio of answer-token sums.
    x = np.array([1.0, 2.0, 4.0, 5.0])
    mean, se = mean_and_se(x, np.ones(4))
    assert mean == 3.0 and se == pytest.approx(np.std(x, ddof=1) / 2)
    assert mean_and_se(2 * x, np.full(4, 2.0)) == pytest.approx((mean, se))
    assert mean_and_se([1.0], [1.0]) == (1.0, None)


@pytest.mark.slow
def test_resume_after_stop_is_bit_identical(tiny_config):
    straight = tiny_config("run_name=straight")
    pretrain(straight)
    split = tiny_config("run_name=split", "train.stop_at_step=8")
    first = pretrain(split)
    assert first["status"] == "stopped" and first["steps"] == 8
    second = pretrain(
        dataclasses.replace(split, train=dataclasses.replace(split.train, stop_at_step=None))
    )
    assert second["status"] == "completed" and second["resumed_from_step"] == 8
    rows_a = records.read_metrics(run_dir_of(straight))
    rows_b = records.read_metrics(run_dir_of(split))
    strip = [{k: v for k, v in r.items() if k != "time"} for r in rows_a]
    assert strip == [{k: v for k, v in r.items() if k != "time"} for r in rows_b]


@pytest.mark.slow
def test_resume_after_damaged_latest_checkpoint_uses_the_previous(tiny_config, caplog):
    cfg = tiny_config("train.stop_at_step=16", "train.keep_ckpts=3")
    pretrain(cfg)
    ckpt = run_dir_of(cfg) / "ckpt"
    assert (ckpt / "16").is_dir() and (ckpt / "8").is_dir()
    for path in (ckpt / "16").rglob("*"):
        if path.is_file():
            path.write_bytes(b"\0garbage")
    resumed = pretrain(
        dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, stop_at_step=None))
    )
    assert resumed["status"] == "completed" and resumed["resumed_from_step"] == 8
    assert "unreadable" in caplog.text


@pytest.mark.slow
def test_completed_run_is_not_redone_and_other_settings_are_refused(tiny_config):
    cfg = tiny_config()
    first = pretrain(cfg)
    assert pretrain(cfg) == first
    with pytest.raises(ConfigError, match="train.lr"):
        pretrain(tiny_config("train.lr=0.5"))


@pytest.mark.slow
def test_divergence_is_recorded_with_its_step(tiny_config):
    cfg = tiny_config("train.lr=1e30", "train.grad_clip=0", "train.warmup_tokens=0")
    record = pretrain(cfg)
    assert record["status"] == "diverged"
    assert record["diverged_step"] >= 1 and "non-finite" in record["reason"]
    assert record["steps"] <= 24


@pytest.mark.slow
def test_grad_accumulation_matches_one_big_batch(tiny_config):
    one = pretrain(tiny_config("run_name=one", "train.grad_accum=1"))
    two = pretrain(tiny_config("run_name=two", "train.grad_accum=2"))
    a = [r["train_loss"] for r in records.read_metrics(run_dir_of(tiny_config("run_name=one")))]
    b = [r["train_loss"] for r in records.read_metrics(run_dir_of(tiny_config("run_name=two")))]
    np.testing.assert_allclose(a, b, rtol=2e-4)
    assert one["final_val_loss"] == pytest.approx(two["final_val_loss"], rel=2e-4)


def test_microbatches_follow_the_device_and_the_cache():
    model = ModelConfig(d_model=128, n_layers=2, n_heads=4)  # n393k: ~21 KB of activations/token

    def count(batch: int, seq_len: int, backend: str = "cpu", shards: int = 1, **train) -> int:
        cfg = TrainConfig(batch_size=batch, **train)
        return microbatches(cfg, model, 256, seq_len, shards, backend)

    assert count(16, 128, grad_accum=2) == 2  # a count that is set is kept, on any device
    assert count(16, 128, backend="gpu") == 1
    assert count(2, 128) == 1  # 256 tokens (~6 MB): the whole batch stays in cache
    assert count(16, 128) == 4  # 4 rows x 128 = 512 tokens each
    assert count(32, 64) == 4  # 8 rows x 64
    assert count(12, 128) == 3
    assert count(16, 1024) == 16  # sequences longer than 512 tokens: one each
    assert count(16, 128, shards=8) == 2  # each micro-batch still splits over 8 devices


@pytest.mark.slow
def test_runs_of_one_shape_share_one_compiled_step(tiny_config):
    """The learning rate is an argument of the step, so a sweep's runs of one shape (other D,
    lr, schedule, seed) get the same jitted step and compile it once; another optimizer does
    not."""
    shape = "model.n_layers=1"  # a shape no other test compiles in this process
    first = pretrain(tiny_config("run_name=first", shape))
    second = pretrain(tiny_config("run_name=second", shape, "train.tokens=6144", "train.lr=1e-3"))
    assert second["compile_time_s"] < first["compile_time_s"] / 10  # traced and compiled once
    graphdef = object()  # any hashable key stands in for the model's graphdef
    same = [
        make_train_step(graphdef, TrainConfig(**kw), 0.0, 1)
        for kw in ({}, {"tokens": 5, "lr": 1.0, "schedule": "wsd", "seed": 3})
    ]
    assert same[0] is same[1]
    assert make_train_step(graphdef, TrainConfig(weight_decay=0.0), 0.0, 1) is not same[0]


@pytest.mark.slow
@pytest.mark.skipif(jax.default_backend() != "cpu", reason="micro-batches are chosen on a CPU")
def test_auto_microbatches_train_as_the_whole_batch(tiny_config):
    """A CPU run whose batch outgrows the cache trains in 512-token micro-batches, says so in
    its record, and logs the losses of the whole batch at once to float32 rounding."""
    big = ("train.batch_size=256", "train.tokens=65536", "train.log_every=2", "train.eval_every=4")
    auto = pretrain(tiny_config("run_name=auto", *big))
    whole = pretrain(tiny_config("run_name=whole", *big, "train.grad_accum=1"))
    assert (auto["grad_accum"], whole["grad_accum"]) == (16, 1)  # 16 rows x 32 tokens each
    losses = [
        [r["train_loss"] for r in records.read_metrics(run_dir_of(tiny_config(f"run_name={n}")))]
        for n in ("auto", "whole")
    ]
    assert len(losses[0]) == 4
    np.testing.assert_allclose(*losses, rtol=2e-4)
    assert auto["final_val_loss"] == pytest.approx(whole["final_val_loss"], rel=2e-4)


@pytest.mark.parametrize("schedule", ["cosine", "wsd", "constant"])
def test_schedules_warm_up_then_follow_their_shape(schedule):
    train = TrainConfig(
        tokens=100 * 64,
        batch_size=4,
        lr=1.0,
        schedule=schedule,
        warmup_tokens=10 * 64,
        min_lr_ratio=0.1,
        decay_fraction=0.2,
    )
    plan = Plan.from_config(train, seq_len=16)
    assert (plan.total_steps, plan.warmup_steps) == (100, 10)
    lr = np.array([float(make_schedule(train, plan)(s)) for s in range(101)])
    assert lr[0] == 0 and lr[10] == pytest.approx(1.0)
    assert np.all(np.diff(lr[:11]) > 0)
    if schedule == "constant":
        assert np.allclose(lr[10:], 1.0)
    elif schedule == "wsd":
        assert np.allclose(lr[10:80], 1.0) and lr[100] == pytest.approx(0.1)
        assert np.all(np.diff(lr[80:]) < 0)
    else:
        assert lr[100] == pytest.approx(0.1) and np.all(np.diff(lr[10:]) <= 0)


@pytest.mark.slow
def test_run_from_before_a_new_setting_existed_still_resumes(tiny_config):
    cfg = tiny_config("train.stop_at_step=8")
    pretrain(cfg)
    run_dir = run_dir_of(cfg)
    stored = rundir.read_config(run_dir)
    del stored["data"]["task_mix"]  # as written before the schema had this setting
    stored["train"]["grad_accum"] = 1  # the old default, before micro-batches became per device
    rundir.write_config(run_dir, stored)
    resumed = pretrain(tiny_config())
    assert resumed["status"] == "completed" and resumed["resumed_from_step"] == 8
    with pytest.raises(ConfigError, match="data.task_mix"):
        pretrain(tiny_config("data.task_mix.fraction=0.5", "data.task_mix.tasks=[addition1]"))
