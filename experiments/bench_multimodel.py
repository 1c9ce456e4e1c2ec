"""Aggregate training throughput of K runs of one shape trained together (scaling.train.group)
against the same K runs trained one at a time, and how far their losses drift apart.

    python experiments/bench_multimodel.py                  # tiny, n110k, n393k; K=4; CPU
    python experiments/bench_multimodel.py --rungs n1m8,n3m1 --k 8 --batch-size 32   # a GPU

Two measurements per rung: (1) the step alone: the single-run step and the K-run vmapped step,
timed in alternating blocks (the machine may be shared: each block records the load average);
(2) end to end: K runs through `scaling.train.trainer.pretrain` one after another, then the same K
runs
through `scaling.train.group.pretrain_group`, on the synthetic corpus, with the max absolute
difference of every logged loss between the two. Writes results/perf/multimodel_<device>.md
(or --out) after every rung, so a kill loses at most the rung in flight; a rung that fails is a
row with its error and the next one still runs. `--budget-s S` bounds the command: once S
seconds are spent no new rung starts, and the rest are rows saying they were skipped (a rung in
flight is not cut: bound the process from outside too, as `make bench-gpu` does). Asserts
nothing about speed.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from hydra import compose, initialize_config_dir

from scaling import records
from scaling.bench.measure import Budget
from scaling.config import PretrainConfig, register_configs, run_dir_of, to_dataclass, validate
from scaling.model.transformer import build_model
from scaling.provenance import git_commit
from scaling.train import trainer as train
from scaling.train.group import make_group_step, pretrain_group, stack

ROOT = Path(__file__).resolve().parents[1]
LOSS_KEYS = ("train_loss", "train_ce", "val_loss", "grad_norm")


def configs(rung: str, k: int, args: argparse.Namespace, out_dir: Path) -> list[PretrainConfig]:
    """K runs of `rung`: seeds 0..K-1 and learning rates spread over 2x either side of 3e-3."""
    register_configs()
    lrs = np.geomspace(1.5e-3, 6e-3, k) if k > 1 else [3e-3]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
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
    plan = train.Plan.from_config(t, seq_len)
    schedule = train.make_schedule(t, plan)
    tx = train.make_optimizer(t, schedule)
    states = []
    for seed in range(k):
        graphdef, state = train.init_state(
            lambda seed=seed: build_model(cfg.model, 256, seq_len, seed=seed), tx
        )
        states.append(state)
    rng = np.random.default_rng(0)
    batch_BxTp1 = jnp.asarray(rng.integers(0, 256, (t.batch_size, seq_len + 1), dtype=np.int32))
    batch_KxBxTp1 = jnp.stack([batch_BxTp1] * k)
    grad_accum = train.microbatches(t, cfg.model, 256, seq_len)
    single = train.make_train_step(graphdef, t, cfg.model.z_loss, grad_accum)
    single = single.lower(states[0], train.LR_SPEC, batch_BxTp1).compile()
    lr = np.float32(t.lr)  # timing only: any learning rate costs the same
    lr_KxS = stack([train.lr_table(schedule, plan.total_steps)] * k)
    group = make_group_step(graphdef, t, cfg.model.z_loss, grad_accum)
    one_state = states[0]
    group_state = stack(states[1:] + [jax.tree.map(jnp.copy, one_state)])
    group = group.lower(group_state, batch_KxBxTp1, lr_KxS).compile()

    def block_single() -> float:
        nonlocal one_state
        start = time.perf_counter()
        for _ in range(block):
            one_state, _ = single(one_state, lr, batch_BxTp1)
        jax.block_until_ready(one_state)
        return time.perf_counter() - start

    def block_group() -> float:
        nonlocal group_state
        start = time.perf_counter()
        for _ in range(block):
            group_state, _ = group(group_state, batch_KxBxTp1, lr_KxS)
        jax.block_until_ready(group_state)
        return time.perf_counter() - start

    block_single(), block_group()  # warm-up
    singles, groups, loads = [], [], []
    for _ in range(reps):
        singles.append(block_single())
        groups.append(block_group())
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
    solo = [train.pretrain(c) for c in cfgs_solo]
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rungs", default="tiny,n110k,n393k")
    p.add_argument("--k", type=int, default=4, help="runs per group")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--steps", type=int, default=100, help="steps of each end-to-end run")
    p.add_argument("--reps", type=int, default=5, help="alternating timed blocks per side")
    p.add_argument("--block", type=int, default=10, help="steps per timed block")
    p.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="wall-clock seconds for the whole command; no rung starts once they are spent",
    )
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    if args.budget_s is not None and args.budget_s < 0:
        p.error(f"--budget-s {args.budget_s:g}: must be >= 0")
    known = {path.stem for path in (ROOT / "conf" / "model").glob("*.yaml")}
    unknown = sorted(set(args.rungs.split(",")) - known)
    if unknown:
        p.error(f"--rungs: unknown {unknown}; known: {sorted(known)}")
    budget = Budget(args.budget_s)
    # A fresh persistent compilation cache, so that compile times are not earlier runs' hits.
    jax.config.update("jax_compilation_cache_dir", tempfile.mkdtemp(prefix="jax-cache-"))
    device = jax.default_backend()
    lines = [
        f"# {args.k} runs at once vs one at a time ({device})",
        "",
        f"`python {shlex.join(['experiments/bench_multimodel.py', *sys.argv[1:]])}`, "
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
    out = args.out or ROOT / "results" / "perf" / f"multimodel_{device}.md"
    records.atomic_write_text(out, "\n".join(lines) + "\n")
    failed = 0
    for rung in args.rungs.split(","):
        if not budget.has_time():
            lines.append(f"| {rung} | skipped: {budget.skip_reason()} |" + " |" * 7)
        else:
            try:
                lines.append(rung_row(rung, args))
            except Exception as err:  # one rung's failure (an OOM, say) must not lose the next
                failed += 1
                why = f"{type(err).__name__}: {err}".replace("\n", " ").replace("|", "/")[:300]
                lines.append(f"| {rung} | failed: {why} |" + " |" * 7)
        print(lines[-1], flush=True)
        records.atomic_write_text(out, "\n".join(lines) + "\n")  # what has finished, at once
    print(f"wrote {out}")
    return 1 if failed else 0


def rung_row(rung: str, args: argparse.Namespace) -> str:
    """One rung measured both ways: its table row."""
    with tempfile.TemporaryDirectory() as tmp:
        solo = configs(rung, args.k, args, Path(tmp) / "solo")
        group = configs(rung, args.k, args, Path(tmp) / "group")
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


if __name__ == "__main__":
    sys.exit(main())
