"""Interleaved timing of our step and the peers, one shape per child process, and the tables.

Each shape runs in its own process (`python -m scaling.perf.measure SPEC`): peak device memory
is per shape, an out-of-memory rung cannot poison the next, and JAX and PyTorch share one
accelerator without JAX preallocating it. Within a shape the sides take turns, block by block,
in alternating order, with the 1-minute load average recorded at each block, so a busy machine
slows every side alike and the ratio stays fair.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from scaling import accounting, rundir
from scaling.hostinfo import cpu_name
from scaling.perf.shapes import Shape

OURS, PEER_EAGER, PEER_COMPILED = "ours", "peer_eager", "peer_compiled"
SIDES = (OURS, PEER_EAGER, PEER_COMPILED)
_OOM_MARKERS = ("RESOURCE_EXHAUSTED", "out of memory", "OutOfMemoryError")


def default_sides(backend: str, have_torch: bool) -> tuple[str, ...]:
    """Ours and the compiled peer; on a CPU the eager peer too (the issue's CPU target)."""
    if not have_torch:
        return (OURS,)
    return (OURS, PEER_EAGER, PEER_COMPILED) if backend == "cpu" else (OURS, PEER_COMPILED)


def build_side(
    name: str, shape: Shape, backend: str, remat: bool = False, grad_accum: int | None = None
) -> Any:
    if name == OURS:
        from scaling.perf.ours import OursStep

        return OursStep(shape, remat=remat, grad_accum=grad_accum)
    from scaling.perf.peer import PeerStep

    device = "cuda" if backend == "gpu" else "cpu"
    return PeerStep(shape, device, compiled=name == PEER_COMPILED, grad_accum=grad_accum or 1)


def measure_shape(
    shape: Shape,
    sides: tuple[str, ...],
    reps: int,
    block_s: float,
    warmup_steps: int,
    remat: bool = False,
    grad_accum: int | None = None,
) -> dict[str, Any]:
    """Per-side medians over `reps` interleaved blocks of about `block_s` seconds each.
    `grad_accum` sets every side's micro-batches; by default ours are the Trainer's choice and
    the peer takes the whole batch at once."""
    import jax

    backend = jax.default_backend()
    built, setup_s, steps = {}, {}, {}
    for name in sides:
        start = time.perf_counter()
        side = built[name] = build_side(name, shape, backend, remat, grad_accum)
        side.run(warmup_steps)  # compiles torch.compile graphs; settles allocators and caches
        per_step = side.run(3) / 3
        setup_s[name] = time.perf_counter() - start
        steps[name] = max(3, round(block_s / per_step))
    blocks: list[dict[str, Any]] = []
    for rep in range(reps):
        for name in sides if rep % 2 == 0 else sides[::-1]:
            load = os.getloadavg()[0]
            seconds = built[name].run(steps[name])
            tps = steps[name] * shape.tokens_per_step / seconds
            blocks.append(
                {"rep": rep, "side": name, "steps": steps[name], "seconds": seconds,
                 "tokens_per_s": tps, "load_1min": round(load, 2)}
            )  # fmt: skip
    kind = built[sides[0]].device_kind()
    peak = accounting.device_peak_flops(kind)
    flops = shape.flops_per_token()
    results = {}
    for name in sides:
        tps = [b["tokens_per_s"] for b in blocks if b["side"] == name]
        median = statistics.median(tps)
        results[name] = {
            "tokens_per_s": median,
            "tokens_per_s_min": min(tps),
            "tokens_per_s_max": max(tps),
            "mfu": accounting.mfu(median, flops, peak),
            "peak_memory_bytes": built[name].peak_memory_bytes(),
            "setup_s": setup_s[name],
            "steps_per_block": steps[name],
            "microbatches": built[name].grad_accum,
            "final_loss": built[name].loss,
        }
    return {
        "shape": asdict(shape),
        "n_params_total": shape.n_params(),
        "flops_per_token_6n_attn": flops,
        "device_kind": kind,
        "peak_flops_per_s": peak,
        "remat": remat,
        "sides": results,
        "ratios": ratios(blocks, sides),
        "load_1min": [b["load_1min"] for b in blocks],
        "blocks": blocks,
    }


def ratios(blocks: list[dict[str, Any]], sides: tuple[str, ...]) -> dict[str, float]:
    """ours / peer: the median over repetitions of the ratio within each repetition."""
    out = {}
    by = {(b["rep"], b["side"]): b["tokens_per_s"] for b in blocks}
    reps = sorted({b["rep"] for b in blocks})
    for peer in sides:
        if peer != OURS and OURS in sides:
            out[f"ours/{peer}"] = statistics.median(by[r, OURS] / by[r, peer] for r in reps)
    return out


def machine() -> dict[str, Any]:
    """What ran the benchmark: CPU, cores, OS, library versions, backend and device."""
    import jax

    from scaling.train import versions

    info = {
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cores_available": len(os.sched_getaffinity(0)),
        "backend": jax.default_backend(),
        "device_kind": jax.local_devices()[0].device_kind,
        "versions": versions(),
    }
    for pkg in ("torch", "transformers"):  # the peer's, read without importing torch
        try:
            info["versions"][pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return info


def have_torch() -> bool:
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        return False
    return True


def run_child(spec: dict[str, Any], timeout_s: float | None = None) -> dict[str, Any]:
    """Run one shape in a fresh process; {"error": ...} (with "oom") when it fails."""
    env = {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    if spec.get("device"):
        env["JAX_PLATFORMS"] = "cuda" if spec["device"] == "gpu" else "cpu"
    cmd = [sys.executable, "-m", "scaling.perf.measure", json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s} s", "oom": False}
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
        oom = any(m in proc.stderr for m in _OOM_MARKERS)
        return {"error": tail[0][:500], "oom": oom}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_shapes(
    shapes: list[Shape],
    device: str,
    sides: tuple[str, ...] | None,
    reps: int,
    block_s: float,
    warmup: int,
    grad_accum: int | None = None,
) -> list[dict[str, Any]]:
    """One child process per shape; a failed shape becomes a row with its error."""
    rows = []
    for shape in shapes:
        spec = {"shape": asdict(shape), "device": device, "sides": sides, "reps": reps}
        spec.update(block_s=block_s, grad_accum=grad_accum)
        row = run_child({**spec, "warmup_steps": warmup})
        rows.append({"shape": asdict(shape), **row})
        print(f"{shape.name}: {_summary(rows[-1])}", file=sys.stderr)
    return rows


def ladder_memory(
    shapes: list[Shape], device: str, reps: int, block_s: float, warmup: int
) -> tuple[list[dict[str, Any]], str | None]:
    """Peak memory of our step per rung, with remat only where the plain step runs out of
    memory; stops at the first rung that fails both ways. Returns (rows, largest rung)."""
    rows, largest = [], None
    for shape in shapes:
        spec = {"shape": asdict(shape), "device": device, "sides": [OURS], "reps": reps}
        spec["block_s"] = block_s
        for remat in (False, True):
            row = run_child({**spec, "warmup_steps": warmup, "remat": remat})
            if not row.get("oom"):
                break
        rows.append({"shape": asdict(shape), "remat": remat, **row})
        print(f"{shape.name}: {_summary(rows[-1])}", file=sys.stderr)
        if "error" in row:
            break
        largest = shape.name
    return rows, largest


def _summary(row: dict[str, Any]) -> str:
    if "error" in row:
        return f"failed: {row['error']}"
    return ", ".join(f"{k} {v['tokens_per_s']:,.0f} tok/s" for k, v in row["sides"].items())


def _child_main(spec: dict[str, Any]) -> dict[str, Any]:
    import jax

    shape = Shape(**spec["shape"])
    backend = jax.default_backend()
    sides = tuple(spec.get("sides") or default_sides(backend, have_torch()))
    result = measure_shape(
        shape,
        sides,
        spec["reps"],
        spec["block_s"],
        spec["warmup_steps"],
        spec.get("remat", False),
        spec.get("grad_accum"),
    )
    return {**result, "machine": machine()}


def write_tables(out_stem: Path, report: dict[str, Any]) -> tuple[Path, Path]:
    """`<stem>.json` (everything) and `<stem>.md` (the table), written atomically."""
    json_path, md_path = out_stem.with_suffix(".json"), out_stem.with_suffix(".md")
    rundir.atomic_write_text(json_path, json.dumps(report, indent=2) + "\n")
    rundir.atomic_write_text(md_path, markdown(report))
    return json_path, md_path


def _fmt_bytes(n: int | None) -> str:
    return "n/a" if n is None else f"{n / 2**30:.2f} GiB"


def _fmt_mfu(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"# Training throughput: ours vs the PyTorch peer ({m['backend']})",
        "",
        f"- command: `{report['command']}`",
        f"- date: {report['date']}; git commit: {report.get('git_commit')}",
        f"- device: {m['device_kind']}; CPU: {m['cpu']}, {m['cores_available']} cores; "
        f"{m['platform']}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()),
        "- ours: the Trainer's jitted step (scaling.train.make_train_step), GPT-2 preset, in the "
        "micro-batches the Trainer picks (scaling.train.microbatches) unless --grad-accum sets "
        "them; peer: transformers GPT2LMHeadModel, SDPA attention, eager or torch.compile, the "
        "whole batch at once unless --grad-accum; both AdamW with clipping, random tokens, "
        "steady-state steps after warm-up",
        f"- tokens/s: median of {report['reps']} interleaved blocks of ~{report['block_s']} s "
        "(min-max in brackets); ratio: median over blocks of ours/peer in the same repetition; "
        "MFU: tokens/s x (6N+12LdT) / device bf16 peak (n/a where the peak is unknown)",
        "- load: 1-minute load average at the start of each block (other work on the machine)",
        "",
        "| shape | L | d | vocab | B x T | side | micro-batches | tokens/s | MFU | ours/side "
        "| peak mem | load 1-min |",
        "| --- | ---: | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in report["shapes"]:
        s = row["shape"]
        if "error" in row:
            lines.append(
                f"| {s['name']} | {s['n_layers']} | {s['d_model']} | {s['vocab_size']} "
                f"| {s['batch_size']}x{s['seq_len']} | failed | | {row['error']} | | | | |"
            )
            continue
        loads = row["load_1min"]
        load = f"{min(loads):.1f}-{max(loads):.1f}"
        for name, r in row["sides"].items():
            ratio = row["ratios"].get(f"ours/{name}")
            lines.append(
                f"| {s['name']} | {s['n_layers']} | {s['d_model']} | {s['vocab_size']} "
                f"| {s['batch_size']}x{s['seq_len']} | {name} | {r.get('microbatches', '')} "
                f"| {r['tokens_per_s']:,.0f} "
                f"[{r['tokens_per_s_min']:,.0f}-{r['tokens_per_s_max']:,.0f}] "
                f"| {_fmt_mfu(r['mfu'])} | {'' if ratio is None else f'{ratio:.2f}x'} "
                f"| {_fmt_bytes(r['peak_memory_bytes'])} | {load} |"
            )
    if report.get("ladder"):
        lines += [
            "",
            f"## Ladder memory at T={report['ladder_seq_len']}, batch "
            f"{report['ladder_batch_size']}, vocab 256 (ours, remat only where needed)",
            "",
            "| rung | params | remat | peak mem | tokens/s | MFU | note |",
            "| --- | ---: | --- | ---: | ---: | ---: | --- |",
        ]
        for r in report["ladder"]:
            ours = r.get("sides", {}).get(OURS, {})
            tps = ours.get("tokens_per_s")
            lines.append(
                f"| {r['shape']['name']} | {r.get('n_params_total', '')} | {r.get('remat')} "
                f"| {_fmt_bytes(ours.get('peak_memory_bytes'))} "
                f"| {'' if tps is None else f'{tps:,.0f}'} | {_fmt_mfu(ours.get('mfu'))} "
                f"| {r.get('error', '')} |"
            )
        lines += ["", f"Largest rung that trains: {report.get('largest_rung')}"]
    return "\n".join(lines) + "\n"


def now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


if __name__ == "__main__":
    print(json.dumps(_child_main(json.loads(sys.argv[1]))))
