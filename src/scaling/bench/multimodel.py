"""K runs of one shape trained together against the same K runs one at a time: throughput of
the step alone and end to end, and how far their losses drift apart (the measurements of
experiments/bench_multimodel.py).

Two measurements per rung: (1) the step alone: the single-run step and the K-run vmapped step
(both from `scaling.train.step.build_step`), timed in alternating blocks (the machine may be
shared: each block records the load average); (2) end to end: K runs through
`scaling.train.pretrain.pretrain` one after another, then the same K runs through
`scaling.train.pretrain.pretrain_group`, on the synthetic corpus, with the max absolute
difference of every logged loss between the two. `run` writes the markdown table after every
rung, so a kill loses at most the rung in flight; a rung that fails is a row with its error and
the next one still runs. Asserts nothing about speed.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shlex
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from hydra import compose, initialize_config_dir

from scaling import records
from scaling.bench.measure import Budget
from scaling.config import PretrainConfig, register_configs, run_dir_of, to_dataclass, validate
from scaling.model.transformer import build_model
from scaling.provenance import git_commit
from scaling.train import optim
from scaling.train.pretrain import pretrain, pretrain_group
from scaling.train.step import build_step, init_state, stack

LOSS_KEYS = ("train_loss", "train_ce", "val_loss", "grad_norm")


@dataclasses.dataclass(frozen=True)
class Settings:
    """What the command measures (its flags)."""

    rungs: str = "tiny,n110k,n393k"
    k: int = 4  # runs per group
    batch_size: int = 16
    seq_len: int = 128
    steps: int = 100  # steps of each end-to-end run
    reps: int = 5  # alternating timed blocks per side
    block: int = 10  # steps per timed block
    budget_s: float | None = None  # no rung starts once these seconds are spent
    out: Path | None = None


def configs(root: Path, rung: str, k: int, args: Settings, out_dir: Path) -> list[PretrainConfig]:
    """K runs of `rung`: seeds 0..K-1 and learning rates spread over 2x either side of 3e-3."""
    register_configs()
    lrs = np.geomspace(1.5e-3, 6e-3, k) if k > 1 else [3e-3]
    with initialize_config_dir(config_dir=str(root / "conf"), version_base="1.3"):
        return [
            validate(
                to_dataclass(
                    compose(
                        "pretrain",
                        [
                            f"model={rung}",
                            f"data.seq_len={args.seq_len}",
                            f"train.batch_size={args.batch_size}",
                            f"train.tokens={args.steps * args.batch_size * args.seq_len}",
                            f"train.lr={lr:.4g}",
                            f"train.seed={i}",
                            f"train.eval_every={args.steps}",
                            "train.eval_batches=2",
                            f"train.log_every={max(1, args.steps // 20)}",
                            f"train.ckpt_every={args.steps}",
                            "train.progress=off",
                            f"out_dir={out_dir}",
                            f"run_name={rung}-s{i}",
                        ],
                    )
                )
            )
            for i, lr in enumerate(lrs)
        ]


def time_steps(cfg: PretrainConfig, k: int, reps: int, block: int) -> dict:
    """Alternating blocks of `block` steps: one run's step, then K runs' group step."""
    t, seq_len = cfg.train, cfg.data.seq_len
    plan = optim.Plan.from_config(t, seq_len)
    schedule = optim.make_schedule(t, plan)
    tx = optim.make_optimizer(t, schedule)
    states = []
    for seed in range(k):
        graphdef, state = init_state(
            functools.partial(build_model, cfg.model, 256, seq_len, seed=seed), tx
        )
        states.append(state)
    rng = np.random.default_rng(0)
    batch_BxTp1 = jnp.asarray(rng.integers(0, 256, (t.batch_size, seq_len + 1), dtype=np.int32))
    batch_KxBxTp1 = jnp.stack([batch_BxTp1] * k)
    grad_accum = optim.microbatches(t, cfg.model, 256, seq_len)
    z_loss = cfg.model.z_loss
    single, _ = build_step(graphdef, t, z_loss, grad_accum, states[0], [batch_BxTp1])
    lr = np.float32(t.lr)  # timing only: any learning rate costs the same
    lr_KxS = stack([optim.lr_table(schedule, plan.total_steps)] * k)
    one_state = states[0]
    group_state = stack(states[1:] + [jax.tree.map(jnp.copy, one_state)])
    group, _ = build_step(graphdef, t, z_loss, grad_accum, group_state, [batch_KxBxTp1], lr_KxS)

    def timed_block(step: Callable[..., Any], state: Any, *inputs: Any) -> tuple[Any, float]:
        """`block` steps from `state`: the state after them and their seconds."""
        start = time.perf_counter()
        for _ in range(block):
            state, _ = step(state, *inputs)
        jax.block_until_ready(state)
        return state, time.perf_counter() - start

    one_state, _ = timed_block(single, one_state, lr, batch_BxTp1)  # warm-up
    group_state, _ = timed_block(group, group_state, batch_KxBxTp1, lr_KxS)
    singles, groups, loads = [], [], []
    for _ in range(reps):
        one_state, seconds = timed_block(single, one_state, lr, batch_BxTp1)
        singles.append(seconds)
        group_state, seconds = timed_block(group, group_state, batch_KxBxTp1, lr_KxS)
        groups.append(seconds)
        loads.append(os.getloadavg()[0])
    tokens = block * t.batch_size * seq_len
    single_tps = tokens / statistics.median(singles)
    group_tps = k * tokens / statistics.median(groups)
    return {
        "sequential_tokens_per_s": single_tps,
        "group_tokens_per_s": group_tps,
        "speedup": group_tps / single_tps,
        "load_1min": loads,
    }


def end_to_end(cfgs_solo: list[PretrainConfig], cfgs_group: list[PretrainConfig]) -> dict:
    start = time.perf_counter()
    solo = [pretrain(c) for c in cfgs_solo]
    solo_s = time.perf_counter() - start
    start = time.perf_counter()
    group = pretrain_group(cfgs_group)
    group_s = time.perf_counter() - start
    worst = 0.0
    for a, b in zip(cfgs_solo, cfgs_group, strict=True):
        rows_a, rows_b = records.read_metrics(run_dir_of(a)), records.read_metrics(run_dir_of(b))
        assert [r["step"] for r in rows_a] == [r["step"] for r in rows_b]
        for ra, rb in zip(rows_a, rows_b, strict=True):
            worst = max([worst, *(abs(ra[key] - rb[key]) for key in LOSS_KEYS if key in ra)])
    tokens = sum(r["tokens_seen"] for r in solo)
    steady_solo = sum(r["step_time_s"] * (r["steps"] - 1) for r in solo)
    return {
        "statuses": sorted({r["status"] for r in solo + group}),
        "solo_wall_s": solo_s,
        "group_wall_s": group_s,
        "solo_steady_tokens_per_s": tokens / steady_solo,
        "group_steady_tokens_per_s": sum(r["tokens_per_s"] for r in group),
        "solo_compile_s": sum(r["compile_time_s"] for r in solo),
        "group_compile_s": group[0]["compile_time_s"],
        "max_abs_loss_diff": worst,
        "final_val_loss": [r["final_val_loss"] for r in solo],
    }


def rung_row(root: Path, rung: str, args: Settings) -> str:
    """One rung measured both ways: its table row."""
    with tempfile.TemporaryDirectory() as tmp:
        solo = configs(root, rung, args.k, args, Path(tmp) / "solo")
        group = configs(root, rung, args.k, args, Path(tmp) / "group")
        e2e = end_to_end(solo, group)  # first: its compile times are cold
        step = time_steps(solo[0], args.k, args.reps, args.block)
    loads = ", ".join(f"{v:.1f}" for v in step["load_1min"])
    print(rung, e2e["statuses"], flush=True)
    return (
        f"| {rung} | {step['sequential_tokens_per_s']:,.0f} | "
        f"{step['group_tokens_per_s']:,.0f} | {step['speedup']:.2f}x | {loads} | "
        f"{e2e['solo_wall_s']:.1f} / {e2e['group_wall_s']:.1f} | "
        f"{e2e['solo_steady_tokens_per_s']:,.0f} / {e2e['group_steady_tokens_per_s']:,.0f} | "
        f"{e2e['solo_compile_s']:.1f} / {e2e['group_compile_s']:.1f} | "
        f"{e2e['max_abs_loss_diff']:.2e} |"
    )


def run(root: Path, args: Settings, argv: Sequence[str]) -> int:
    """Measure every rung of `args` (the command's flags `argv`), writing the table after each;
    1 if a rung failed, else 0."""
    budget = Budget(args.budget_s)
    # A fresh persistent compilation cache, so that compile times are not earlier runs' hits.
    jax.config.update("jax_compilation_cache_dir", tempfile.mkdtemp(prefix="jax-cache-"))
    device = jax.default_backend()
    lines = [
        f"# {args.k} runs at once vs one at a time ({device})",
        "",
        f"`python {shlex.join(['experiments/bench_multimodel.py', *argv])}`, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {jax.devices()[0].device_kind}, "
        f"{os.cpu_count()} cores, load average at start {os.getloadavg()[0]:.2f}, "
        f"git {git_commit()}.",
        "",
        f"Batch {args.batch_size} x {args.seq_len} tokens per run. *Step*: median of "
        f"{args.reps} alternating blocks of {args.block} steps, aggregate tokens/s of K runs "
        "(the group step) against one run's step (one at a time, K runs go at that rate). "
        f"*End to end*: {args.steps} steps per run through the real entry points (data, logging, "
        "eval and checkpoints included), the K solo runs one after another, then the group; "
        "steady = after the first step, compiles excluded; compiles are cold (a fresh "
        "compilation cache). Max abs loss diff: over every logged train loss, grad norm and "
        "val loss of the solo and grouped runs.",
        "",
        "| rung | step: sequential tok/s | step: group tok/s | speedup | load 1 min | "
        "e2e wall: solo / group s | e2e steady tok/s: solo / group | compile s: solo / group | "
        "max abs loss diff |",
        "| --- | ---: | ---: | ---: | --- | --- | --- | --- | ---: |",
    ]
    if args.budget_s is not None:
        lines[4:4] = [
            f"Budget: {args.budget_s:g} s for the whole command (--budget-s); no rung starts once "
            "it is spent.",
            "",
        ]
    out = args.out or root / "results" / "perf" / f"multimodel_{device}.md"
    records.atomic_write_text(out, "\n".join(lines) + "\n")
    failed = 0
    for rung in args.rungs.split(","):
        if not budget.has_time():
            lines.append(f"| {rung} | skipped: {budget.skip_reason()} |" + " |" * 7)
        else:
            try:
                lines.append(rung_row(root, rung, args))
            except Exception as err:  # one rung's failure (an OOM, say) must not lose the next
                failed += 1
                why = f"{type(err).__name__}: {err}".replace("\n", " ").replace("|", "/")[:300]
                lines.append(f"| {rung} | failed: {why} |" + " |" * 7)
        print(lines[-1], flush=True)
        records.atomic_write_text(out, "\n".join(lines) + "\n")  # what has finished, at once
    print(f"wrote {out}")
    return 1 if failed else 0
