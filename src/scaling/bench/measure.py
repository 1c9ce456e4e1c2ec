"""Interleaved timing of our step and the peers, one shape per child process, and the tables.

Each shape runs in its own process (`python -m scaling.bench.measure SPEC`): peak device memory
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
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from scaling import records
from scaling.bench.shapes import Shape
from scaling.bench.variants import is_ours, side_name
from scaling.model import accounting
from scaling.provenance import cpu_name

OURS, PEER_EAGER, PEER_COMPILED = "ours", "peer_eager", "peer_compiled"
SIDES = (OURS, PEER_EAGER, PEER_COMPILED)
_OOM_MARKERS = ("RESOURCE_EXHAUSTED", "out of memory", "OutOfMemoryError")
# A measurement spends seconds importing JAX and compiling before it measures anything: with
# less than this left of the budget it could only time out, so it is skipped instead.
MIN_START_S = 5.0
_CHILD_EXIT_S = 5.0  # a child's margin, before its deadline, for the results and its exit
Variants = dict[str, dict[str, Any]]  # variant name -> ModelConfig fields replaced


@dataclass
class Budget:
    """A wall-clock budget for a whole invocation (None: unbounded), counted from its start."""

    seconds: float | None = None
    start: float = field(default_factory=time.monotonic)

    def left(self) -> float | None:
        return None if self.seconds is None else self.seconds - (time.monotonic() - self.start)

    def has_time(self) -> bool:
        """Whether another measurement may start (at least MIN_START_S left)."""
        left = self.left()
        return left is None or left >= MIN_START_S

    def skip_reason(self) -> str:
        return f"not run: the {self.seconds:g} s budget was spent (--budget-s)"

    def skipped_row(self, shape: Shape) -> dict[str, Any]:
        return {"shape": asdict(shape), "skipped": self.skip_reason()}

    def child(self, spec: dict[str, Any]) -> dict[str, Any]:
        """`run_child` with what is left of the budget as its timeout, and as the deadline by
        which the child leaves out the sides it cannot afford (measure_shape)."""
        left = self.left()
        if left is not None:
            spec = {**spec, "deadline": time.time() + left}
        row = run_child(spec, left)
        if row.get("timed_out"):
            row["error"] += f", all that was left of the {self.seconds:g} s budget"
        return row


def default_sides(backend: str, have_torch: bool) -> tuple[str, ...]:
    """Ours and the compiled peer; on a CPU the eager peer too (the issue's CPU target)."""
    if not have_torch:
        return (OURS,)
    return (OURS, PEER_EAGER, PEER_COMPILED) if backend == "cpu" else (OURS, PEER_COMPILED)


def with_variants(sides: tuple[str, ...], variants: Variants | None) -> tuple[str, ...]:
    """The sides with each variant's `ours-NAME` side right after ours (first without ours)."""
    extra = tuple(side_name(v) for v in variants or {})
    at = sides.index(OURS) + 1 if OURS in sides else 0
    return sides[:at] + extra + sides[at:]


def build_side(
    name: str,
    shape: Shape,
    backend: str,
    remat: bool = False,
    grad_accum: int | None = None,
    overrides: dict[str, Any] | None = None,
) -> Any:
    """A side's step; `overrides` are the ModelConfig fields of an `ours-NAME` variant."""
    if is_ours(name):
        from scaling.bench.ours import OursStep

        return OursStep(shape, remat=remat, grad_accum=grad_accum, overrides=overrides)
    from scaling.bench.peer import PeerStep

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
    variants: Variants | None = None,
    deadline: float | None = None,
    variants_deadline: float | None = None,
) -> dict[str, Any]:
    """Per-side medians over `reps` interleaved blocks of about `block_s` seconds each.
    `grad_accum` sets every side's micro-batches; by default ours are the Trainer's choice and
    the peer takes the whole batch at once. Each of `variants` adds a side `ours-NAME`: our
    step on the shape's model with those ModelConfig fields replaced. With a `deadline`
    (time.time()), sides are set up ours first, then the peers, then the variants, and a side
    whose set-up and blocks would not end by then (judged by the slowest set-up so far) is left
    out, listed under "skipped_sides": the shape still reports the sides it could afford. The
    variants also keep to `variants_deadline` (this shape's share of a budget that later shapes
    need too), so that they never cost a later shape its comparison with the peer. A peer or
    variant whose set-up fails is listed under "failed_sides" (ours failing fails the shape)."""
    import jax

    backend = jax.default_backend()
    sides = with_variants(tuple(sides), variants)
    overrides = {side_name(v): fields for v, fields in (variants or {}).items()}
    priority = sorted(sides, key=lambda n: (n != OURS, n in overrides))  # stable otherwise
    built, setup_s, steps, peaks, skipped, failed = {}, {}, {}, {}, {}, {}
    for name in priority:
        limits = [deadline] + ([variants_deadline] if name in overrides else [])
        limit = min((t for t in limits if t is not None), default=None)
        if limit is not None and built:
            need = max(setup_s.values()) + reps * (len(built) + 1) * block_s * 1.5
            if time.time() + need > limit - _CHILD_EXIT_S:
                whose = "of the budget" if limit == deadline else "of this shape's share"
                skipped[name] = (
                    f"not set up: {limit - time.time():.0f} s left {whose}, about "
                    f"{need:.0f} s needed and {_CHILD_EXIT_S:.0f} s kept to report"
                )
                continue
        start = time.perf_counter()
        try:
            side = build_side(name, shape, backend, remat, grad_accum, overrides.get(name))
            side.run(warmup_steps)  # compiles torch.compile graphs; settles allocators, caches
            per_step = side.run(3) / 3
        except Exception as err:  # a peer or a variant that fails must not sink ours
            if name == OURS:
                raise
            failed[name] = f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:300]}"
            continue
        built[name] = side
        setup_s[name] = time.perf_counter() - start
        steps[name] = max(3, round(block_s / per_step))
        # Read now: the JAX sides share this process, so a later reading would be the peak
        # of all of them (the first JAX side's and the peer's are their own).
        peaks[name] = side.peak_memory_bytes()
    sides = tuple(n for n in sides if n in built)
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
        # A variant may change the model's FLOPs (any field can be replaced): its own count.
        side_flops = shape.flops_per_token(overrides[name]) if name in overrides else flops
        results[name] = {
            "tokens_per_s": median,
            "tokens_per_s_min": min(tps),
            "tokens_per_s_max": max(tps),
            "mfu": accounting.mfu(median, side_flops, peak),
            "peak_memory_bytes": peaks[name],
            "step_temp_bytes": getattr(built[name], "temp_bytes", None),
            "setup_s": setup_s[name],
            "steps_per_block": steps[name],
            "microbatches": built[name].grad_accum,
            "final_loss": built[name].loss,
        }
        if name in overrides:
            results[name]["overrides"] = overrides[name]
    return {
        "shape": asdict(shape),
        "n_params_total": shape.n_params(),
        "flops_per_token_6n_attn": flops,
        "device_kind": kind,
        "peak_flops_per_s": peak,
        "remat": remat,
        "sides": results,
        "skipped_sides": skipped,
        "failed_sides": failed,
        "ratios": ratios(blocks, sides),
        "load_1min": [b["load_1min"] for b in blocks],
        "blocks": blocks,
    }


def ratios(blocks: list[dict[str, Any]], sides: tuple[str, ...]) -> dict[str, float]:
    """The median over repetitions of the tokens/s ratio within each repetition: `X/peer` for
    ours and each variant X against each peer, and `ours/ours-NAME` for each variant."""
    by = {(b["rep"], b["side"]): b["tokens_per_s"] for b in blocks}
    reps = sorted({b["rep"] for b in blocks})
    pairs = [(a, p) for p in sides if not is_ours(p) for a in sides if is_ours(a)]
    pairs += [(OURS, v) for v in sides if OURS in sides and v != OURS and is_ours(v)]
    return {f"{a}/{b}": statistics.median(by[r, a] / by[r, b] for r in reps) for a, b in pairs}


def main_peer(sides: Iterable[str]) -> str | None:
    """The peer a `side/peer` column compares with: the compiled one, else the eager one."""
    sides = list(sides)
    return next((p for p in (PEER_COMPILED, PEER_EAGER) if p in sides), None)


def machine() -> dict[str, Any]:
    """What ran the benchmark: CPU, cores, OS, library versions, backend and device."""
    import jax

    info = host_machine(jax.default_backend(), jax.local_devices()[0].device_kind)
    for pkg in ("torch", "transformers"):  # the peer's, read without importing torch
        try:
            info["versions"][pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return info


def host_machine(device: str, device_kind: str = "unknown (no shape ran)") -> dict[str, Any]:
    """The machine without asking JAX's backend (which would claim the accelerator's memory in
    this process): for a report in which no child ran, and the base of `machine`."""
    from scaling.provenance import versions

    return {
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cores_available": len(os.sched_getaffinity(0)),
        "backend": device,
        "device_kind": device_kind,
        "versions": versions(),
    }


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
    cmd = [sys.executable, "-m", "scaling.bench.measure", json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s:.0f} s", "oom": False, "timed_out": True}
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
    variants: Variants | None = None,
    budget: Budget | None = None,
) -> Iterator[dict[str, Any]]:
    """One child process per shape, each row as it ends: a failed shape is a row with its
    error, one the budget leaves no time for a row saying it was skipped. A child gets what is
    left of the budget as its timeout, and its variants an even share of it among the shapes
    left (measure_shape's variants_deadline): ours and the peer on every shape come first."""
    budget = budget or Budget()
    for i, shape in enumerate(shapes):
        if not budget.has_time():
            row = budget.skipped_row(shape)
        else:
            spec = {"shape": asdict(shape), "device": device, "sides": sides, "reps": reps}
            # ceiling: the matmul rate MFU is read against, measured on an accelerator
            spec.update(block_s=block_s, grad_accum=grad_accum, variants=variants, ceiling=True)
            left = budget.left()
            if left is not None and variants:
                spec["variants_deadline"] = time.time() + left / (len(shapes) - i)
            child = budget.child({**spec, "warmup_steps": warmup})
            row = {"shape": asdict(shape), **child}
        print(f"{shape.name}: {_summary(row)}", file=sys.stderr)
        yield row


def rung_verdict(row: dict[str, Any], cap_bytes: float | None) -> str:
    """How a rung's row stands against the cap: fits, over (it ran, but its peak device memory
    is above the cap), oom, error or skipped. Without a cap, or where the backend keeps no peak
    count, a step that ran fits."""
    if "skipped" in row:
        return "skipped"
    if "error" in row:
        return "oom" if row.get("oom") else "error"
    peak = row["sides"][OURS]["peak_memory_bytes"]
    return "over" if cap_bytes is not None and peak is not None and peak > cap_bytes else "fits"


def ladder_memory(
    shapes: list[Shape],
    device: str,
    reps: int,
    block_s: float,
    warmup: int,
    cap_gib: float | None = None,
    budget: Budget | None = None,
) -> Iterator[dict[str, Any]]:
    """Peak memory of our step per rung, each row as it ends, in the order given (bench.py
    gives the largest first: under a budget the rung that answers "which is the largest that
    trains" comes first, and the smaller ones, which fit if it does, follow as time allows). A
    rung whose plain step runs out of memory or peaks above `cap_gib` is retried with remat.
    Rungs the budget leaves no time for are rows saying they were skipped; a rung that fails
    does not stop the others. Each row's "verdict" is `rung_verdict`'s."""
    budget = budget or Budget()
    cap = None if cap_gib is None else cap_gib * 2**30
    for shape in shapes:
        spec = {"shape": asdict(shape), "device": device, "sides": [OURS], "reps": reps}
        spec.update(block_s=block_s, warmup_steps=warmup)
        attempts, row, verdict = [], {}, "skipped"
        for remat in (False, True):
            if not budget.has_time():
                break
            child = budget.child({**spec, "remat": remat})
            row = {"shape": asdict(shape), "remat": remat, **child}
            verdict = rung_verdict(row, cap)
            attempts.append(
                {"remat": remat, "verdict": verdict, "peak_memory_bytes": _peak(row),
                 "error": row.get("error")}
            )  # fmt: skip
            if verdict not in ("oom", "over"):
                break
        if not attempts:
            row = budget.skipped_row(shape)
        else:
            row.update(attempts=attempts, verdict=verdict)
            if verdict in ("oom", "over") and len(attempts) == 1:
                row["note"] = "remat not tried: the budget was spent"
        print(f"{shape.name}: {_summary(row)}", file=sys.stderr)
        yield row


def largest_rung(rows: list[dict[str, Any]]) -> str | None:
    """The rung with the most parameters among those that fit."""
    fitting = [row for row in rows if row.get("verdict") == "fits"]
    if not fitting:
        return None
    return max(fitting, key=lambda row: row["n_params_total"])["shape"]["name"]


def _peak(row: dict[str, Any]) -> int | None:
    return row.get("sides", {}).get(OURS, {}).get("peak_memory_bytes")


def _summary(row: dict[str, Any]) -> str:
    if "skipped" in row:
        return row["skipped"]
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
        spec.get("variants"),
        spec.get("deadline"),
        spec.get("variants_deadline"),
    )
    info = machine()
    # A second or two at 8192^3 on a GPU (minutes on a CPU), after the sides so that their peak
    # memory is their own, and only with time to spare: a child killed at its timeout loses all.
    deadline = spec.get("deadline")
    spare = deadline is None or deadline - time.time() > 2 * _CHILD_EXIT_S
    if spec.get("ceiling") and backend != "cpu" and spare:
        info["matmul_tflops"] = matmul_tflops()
    return {**result, "machine": info}


def matmul_tflops(n: int = 8192, groups: int = 5, per_group: int = 10) -> float:
    """The device's bf16 matrix-product rate on random data, TFLOP/s: the median over `groups`
    of `per_group` products dispatched back to back (so dispatch hides behind the device),
    after a warm-up. MFU is read against the datasheet's peak; this is what the chip gives."""
    import jax
    import jax.numpy as jnp

    key_a, key_b = jax.random.split(jax.random.key(0))
    a_NxN = jax.random.normal(key_a, (n, n), jnp.bfloat16)
    b_NxN = jax.random.normal(key_b, (n, n), jnp.bfloat16)
    matmul = jax.jit(jnp.matmul)
    matmul(a_NxN, b_NxN).block_until_ready()
    seconds = []
    for _ in range(groups):
        start = time.perf_counter()
        for _ in range(per_group):  # one stream runs them in order: the last ends them all
            out_NxN = matmul(a_NxN, b_NxN)
        out_NxN.block_until_ready()
        seconds.append((time.perf_counter() - start) / per_group)
    return 2 * n**3 / statistics.median(seconds) / 1e12


def run_report(
    report: dict[str, Any],
    out_stem: Path,
    shape_rows: Iterable[dict[str, Any]],
    ladder_rows: Iterable[dict[str, Any]] | None = None,
) -> bool:
    """Fill `report["shapes"]`, then `report["ladder"]`, from the row iterators (bench_shapes,
    ladder_memory), rewriting the tables at `out_stem` first and after every row, so a kill
    loses at most the shape in flight. True when any row was measured."""

    def save() -> None:
        done = [r for r in report["shapes"] + report.get("ladder", []) if "machine" in r]
        report["machine"] = done[0]["machine"] if done else host_machine(report["device"])
        write_tables(out_stem, report)

    report["shapes"] = []
    if ladder_rows is not None:
        report["ladder"], report["largest_rung"] = [], None
    save()
    for row in shape_rows:
        report["shapes"].append(row)
        save()
    for row in ladder_rows or ():
        report["ladder"].append(row)
        report["largest_rung"] = largest_rung(report["ladder"])
        save()
    return any("machine" in r for r in report["shapes"] + report.get("ladder", []))


def write_tables(out_stem: Path, report: dict[str, Any]) -> tuple[Path, Path]:
    """`<stem>.json` (everything) and `<stem>.md` (the table), written atomically."""
    json_path, md_path = out_stem.with_suffix(".json"), out_stem.with_suffix(".md")
    records.atomic_write_text(json_path, json.dumps(report, indent=2) + "\n")
    records.atomic_write_text(md_path, markdown(report))
    return json_path, md_path


def _fmt_bytes(n: int | None, missing: str = "n/a") -> str:
    if n is None:
        return missing
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def _fmt_mfu(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    shapes_table = bool(report["shapes"]) or not report.get("ladder")  # a ladder alone: none
    title = "Training throughput: ours vs the PyTorch peer" if shapes_table else "Ladder memory"
    lines = [
        f"# {title} ({m['backend']})",
        "",
        f"- command: `{report['command']}`",
        f"- date: {report['date']}; git commit: {report.get('git_commit')}",
        f"- device: {m['device_kind']}; CPU: {m['cpu']}, {m['cores_available']} cores; "
        f"{m['platform']}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()),
    ]
    if m.get("matmul_tflops"):
        lines.append(
            f"- bf16 matmul measured on this device: {m['matmul_tflops']:.0f} TFLOP/s "
            "(8192^3 on random data, scaling.bench.measure.matmul_tflops); MFU is against the "
            "datasheet peak"
        )
    lines += [
        "- ours: the Trainer's jitted step (scaling.train.step.build_step), GPT-2 preset, "
        "in the micro-batches the Trainer picks (scaling.train.optim.microbatches) unless "
        "--grad-accum sets them; peer: transformers GPT2LMHeadModel, SDPA attention, eager or "
        "torch.compile, the whole batch at once unless --grad-accum; both AdamW with clipping, "
        "random tokens, steady-state steps after warm-up",
    ]
    if report.get("variants"):
        lines.append(
            "- variants of ours (the same step, these ModelConfig fields replaced): "
            + "; ".join(
                f"{side_name(v)}: " + ", ".join(f"{k}={x}" for k, x in fields.items())
                for v, fields in report["variants"].items()
            )
        )
    if report.get("budget_s") is not None:
        lines.append(
            f"- budget: {report['budget_s']:g} s for the whole command (--budget-s); each shape's "
            "process gets what is left as its timeout, and no new one starts once it is spent"
        )
    if shapes_table:
        lines += _shapes_markdown(report)
    if report.get("ladder"):
        lines += _ladder_markdown(report)
    return "\n".join(lines) + "\n"


def _shapes_markdown(report: dict[str, Any]) -> list[str]:
    lines = [
        f"- tokens/s: median of {report['reps']} interleaved blocks of ~{report['block_s']} s "
        "(min-max in brackets); ratios: median over blocks of the two sides' ratio in the same "
        "repetition (ours/side: ours over this row's side; side/peer: this row's side over the "
        "compiled peer, the eager one where only it ran); "
        "MFU: tokens/s x (6N+12LdT) / device bf16 peak (n/a where the peak is unknown)",
        "- peak mem: the process's peak device memory once the side was set up (each shape's "
        "sides share one process: a JAX side after the first also counts the state of those "
        "before it); step temp: XLA's temporary buffers of our compiled step, per side",
        "- load: 1-minute load average at the start of each block (other work on the machine)",
        "",
        "| shape | L | d | vocab | B x T | side | micro-batches | tokens/s | MFU | ours/side "
        "| side/peer | peak mem | step temp | load 1-min |",
        "| --- | ---: | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| --- |",
    ]
    for row in report["shapes"]:
        s = row["shape"]
        head = (
            f"| {s['name']} | {s['n_layers']} | {s['d_model']} | {s['vocab_size']} "
            f"| {s['batch_size']}x{s['seq_len']} "
        )
        if "error" in row or "skipped" in row:
            status, why = (
                ("failed", row["error"]) if "error" in row else ("skipped", row["skipped"])
            )
            lines.append(f"{head}| {status} | | {why} | | | | | | |")
            continue
        loads = row["load_1min"]
        load = f"{min(loads):.1f}-{max(loads):.1f}"
        peer = main_peer(row["sides"])
        for name, r in row["sides"].items():
            ratio = row["ratios"].get(f"ours/{name}")
            vs_peer = row["ratios"].get(f"{name}/{peer}")
            lines.append(
                f"{head}| {name} | {r.get('microbatches', '')} "
                f"| {r['tokens_per_s']:,.0f} "
                f"[{r['tokens_per_s_min']:,.0f}-{r['tokens_per_s_max']:,.0f}] "
                f"| {_fmt_mfu(r['mfu'])} | {_fmt_ratio(ratio)} | {_fmt_ratio(vs_peer)} "
                f"| {_fmt_bytes(r['peak_memory_bytes'])} "
                f"| {_fmt_bytes(r.get('step_temp_bytes'), '')} | {load} |"
            )
        for status in ("skipped", "failed"):
            for name, why in row.get(f"{status}_sides", {}).items():
                why = why.replace("|", "/")  # an error message must not split the table cell
                lines.append(f"{head}| {name} | | {status}: {why} | | | | | | |")
    return lines


def _fmt_count(n: int | None) -> str:
    return "" if n is None else f"{n:,}"


def _fmt_ratio(x: float | None) -> str:
    return "" if x is None else f"{x:.2f}x"


def _ladder_markdown(report: dict[str, Any]) -> list[str]:
    rows, cap = report["ladder"], report.get("ladder_memory_cap_gib")
    lines = [
        "",
        f"## Ladder memory at T={report['ladder_seq_len']}, batch "
        f"{report['ladder_batch_size']}, vocab 256 (ours; remat only where the plain step ran out "
        "of memory" + ("" if cap is None else f" or peaked above {cap:g} GiB") + ")",
        "",
        "Each rung in its own process, the largest first: the process's peak device memory "
        f"(peak_bytes_in_use) after 2 warm-up steps and one timed block of ~{report['block_s']} s; "
        "step temp: XLA's temporary buffers of the compiled step (the state comes on top).",
        "",
        "| rung | params | remat | peak mem | step temp | tokens/s | MFU | note |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        ours = r.get("sides", {}).get(OURS, {})
        tps = ours.get("tokens_per_s")
        lines.append(
            f"| {r['shape']['name']} | {_fmt_count(r.get('n_params_total'))} "
            f"| {r.get('remat', '')} "
            f"| {_fmt_bytes(ours.get('peak_memory_bytes'))} "
            f"| {_fmt_bytes(ours.get('step_temp_bytes'), '')} "
            f"| {'' if tps is None else f'{tps:,.0f}'} | {_fmt_mfu(ours.get('mfu'))} "
            f"| {_ladder_note(r, cap)} |"
        )
    peaks_known = any(_peak(r) is not None for r in rows)
    if cap is not None and peaks_known:
        where = f"on one {cap:g} GiB GPU"
        criterion = (
            f"its step, plain or with remat, peaked at or below {cap:g} GiB of device memory "
            "(the measured peak_bytes_in_use, whatever this device's own size)"
        )
    else:
        where = ""
        criterion = "its step ran without running out of memory" + (
            " (no --memory-cap-gib)"
            if cap is None
            else f": this backend keeps no peak count, so the {cap:g} GiB cap was not applied"
        )
    lines += ["", f"Largest rung that trains{' ' + where if where else ''}: "
              f"{report.get('largest_rung')} (criterion: {criterion})."]  # fmt: skip
    if any("skipped" in r for r in rows):
        lines.append("The budget ran out before the rungs marked skipped: they were not measured.")
    return lines


def _ladder_note(row: dict[str, Any], cap: float | None) -> str:
    """Why a rung has remat on, or why it does not fit."""
    if "skipped" in row:
        return row["skipped"]
    notes = []
    for a in row.get("attempts", [])[:-1]:  # the attempts before the one shown
        if a["verdict"] == "over":
            notes.append(f"plain step peaked at {_fmt_bytes(a['peak_memory_bytes'])} > {cap:g} GiB")
        else:
            notes.append(f"plain step: {a['error']}")
    if row.get("verdict") == "over":
        notes.append(f"peak above the {cap:g} GiB cap")
    if "error" in row:
        notes.append(row["error"])
    if "note" in row:
        notes.append(row["note"])
    return "; ".join(notes)


def now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


if __name__ == "__main__":
    print(json.dumps(_child_main(json.loads(sys.argv[1]))))
