"""A run's record (record.json): what it is when it starts, how it ended, or why it failed.

Built here only: `static_record` when the run is set up, `end_record` when it ends (with the
fields a kind of run adds, `Hooks.finished`), `rundir.failed_record` when an exception ends it.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import jax

from scaling import records
from scaling.model import accounting
from scaling.provenance import git_commit, versions
from scaling.train import shard

if TYPE_CHECKING:  # the run holds its record; this module only reads the run
    from scaling.train.run import Trainer


def static_record(run: Trainer) -> dict[str, Any]:
    """The record of a run as it starts: model, data, plan, device and provenance."""
    cfg, corpus = run.cfg, run.corpus
    m, seq_len = cfg.model, cfg.data.seq_len
    counts = accounting.param_counts(m, corpus.vocab_size, seq_len)
    flops = accounting.flops_per_token(m, corpus.vocab_size, seq_len)
    device = jax.devices()[0]
    entropy = corpus.entropy_nats_per_token(seq_len)
    record = {
        "run_name": cfg.run_name,
        "status": records.STATUS_RUNNING,
        "reason": None,
        "model": m.name,
        **{key: getattr(m, key) for key in ("arch", "d_model", "n_layers", "n_heads", "d_ff")},
        "vocab_size": corpus.vocab_size,
        "seq_len": seq_len,
        "n_params_total": counts.total,
        "n_params_nonembedding": counts.nonembedding,
        "n_params_with_head": counts.with_head,
        **{f"flops_per_token_{slug(k)}": v for k, v in flops.items()},
        "corpus": corpus.name,
        "tokenizer": corpus.tokenizer,
        "entropy_nats_per_token": entropy,
        "bytes_per_token": corpus.bytes_per_token(),
        "tokens_target": cfg.train.tokens,
        # The fixed validation sample every eval scores (see VAL_ROWS, train.eval_batches).
        "val_sequences": run.val_sequences,
        "val_tokens_evaluated": run.val_sequences * seq_len,
        "batch_size": cfg.train.batch_size,
        "grad_accum": run.grad_accum,  # microbatches per step, as chosen (microbatches)
        "total_steps": run.plan.total_steps,
        "warmup_steps": run.plan.warmup_steps,
        "lr": cfg.train.lr,
        "schedule": cfg.train.schedule,
        "seed": cfg.train.seed,
        "backend": jax.default_backend(),
        "device_kind": device.device_kind,
        "n_devices": run.layout.n_devices,  # in use (MFU's peak is per device x this)
        "n_processes": jax.process_count(),
        "parallel": run.layout.strategy,
        "state_bytes_per_device": shard.bytes_per_device(run.state),
        "peak_flops_per_s": accounting.device_peak_flops(device.device_kind),
        "versions": versions(),
        "git_commit": git_commit(),
        "data": corpus.describe(),
    }
    if run.hooks.record is not None:
        record.update(run.hooks.record(run))
    return record


def progress_fields(run: Trainer, step: int) -> dict[str, Any]:
    """The steps taken and the tokens they saw (tokens_seen, unique_tokens, epochs)."""
    t = run.cfg.train
    return {"steps": step, **run.corpus.token_accounting(step, t.batch_size, run.cfg.data.seq_len)}


def end_record(
    run: Trainer,
    status: str,
    reason: str | None,
    compile_s: float,
    wall_start: float,
    steady_s: float | None,
) -> dict[str, Any]:
    """The record of a run that ended at `run.step`, written to its run dir: its losses from
    metrics.jsonl, its throughput from the steady-state seconds of `run.steady_steps`."""
    step = run.step
    # Every checkpoint is written (ckpt.close): the stops' carried windows are done with.
    records.truncate_metrics(run.run_dir, step)
    rows = records.read_metrics(run.run_dir)
    vals = [r for r in rows if "val_loss" in r]
    tokens_per_s = None
    if steady_s and run.steady_steps:
        tokens_per_s = run.steady_steps * run.plan.tokens_per_step / steady_s
    flops = run.record["flops_per_token_6n_attn"]
    peak = run.record["peak_flops_per_s"]
    peak_in_use = peak * run.record["n_devices"] if peak else None
    record = {
        **run.record,
        **progress_fields(run, step),
        "status": status,
        "reason": reason,
        "final_train_loss": rows[-1].get("train_loss") if rows else None,
        "final_val_loss": vals[-1]["val_loss"] if vals else None,
        "final_val_loss_se": vals[-1].get("val_loss_se") if vals else None,
        "final_val_bpb": vals[-1]["val_bpb"] if vals else None,
        "best_val_loss": run.best_val if math.isfinite(run.best_val) else None,
        "wall_time_s": time.perf_counter() - wall_start,
        "compile_time_s": compile_s,
        "step_time_s": steady_s / run.steady_steps if tokens_per_s and steady_s else None,
        "tokens_per_s": tokens_per_s,
        "mfu": accounting.mfu(tokens_per_s, flops, peak_in_use) if tokens_per_s else None,
    }
    for key, per_token in run.record.items():
        if key.startswith("flops_per_token_"):
            record["flops_" + key.removeprefix("flops_per_token_")] = (
                per_token * record["tokens_seen"]
            )
    if run.hooks.finished is not None:
        record.update(run.hooks.finished(run, rows))
    records.write_record(run.run_dir, record)
    return record


def abort_record(run: Trainer) -> dict[str, Any]:
    """The record of a run a second Ctrl-C stops at once, after `run.step`."""
    reason = (
        f"a second SIGINT stopped it at once after step {run.step}; rerun the same command to "
        "resume from its last checkpoint"
    )
    status = {"status": records.STATUS_INTERRUPTED, "reason": reason}
    return {**run.record, **progress_fields(run, run.step), **status}


def slug(convention: str) -> str:
    """A FLOPs convention name as a column suffix: "6N+attn" -> "6n_attn"."""
    return convention.lower().replace("+", "_")
