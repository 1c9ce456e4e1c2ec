"""Interleaved timing of our step and the peers on one shape, in a child process of its own.

Each shape runs in its own process (`python -m scaling.bench.measure SPEC`): peak device memory
is per shape, an out-of-memory rung cannot poison the next, and JAX and PyTorch share one
accelerator without JAX preallocating it. Within a shape the sides take turns, block by block,
in alternating order, with the 1-minute load average recorded at each block, so a busy machine
slows every side alike and the ratio stays fair.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from importlib import metadata
from typing import Any

from scaling import provenance
from scaling.bench.shapes import Shape
from scaling.bench.variants import is_ours, side_name
from scaling.model import accounting

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
    built: dict[str, Any] = {}
    setup_s: dict[str, float] = {}
    steps, peaks, skipped, failed = {}, {}, {}, {}
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


def ours_peak(row: dict[str, Any]) -> int | None:
    """Our side's peak device memory in a row; None where it has none (failed, skipped)."""
    return row.get("sides", {}).get(OURS, {}).get("peak_memory_bytes")


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
    return {
        **provenance.machine(),  # platform, cpu, cores_available
        "backend": device,
        "device_kind": device_kind,
        "versions": provenance.versions(),
    }


def have_torch() -> bool:
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        return False
    return True


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
    a_MxM = jax.random.normal(key_a, (n, n), jnp.bfloat16)
    b_MxM = jax.random.normal(key_b, (n, n), jnp.bfloat16)
    matmul = jax.jit(jnp.matmul)
    matmul(a_MxM, b_MxM).block_until_ready()
    seconds = []
    for _ in range(groups):
        start = time.perf_counter()
        for _ in range(per_group):  # one stream runs them in order: the last ends them all
            out_MxM = matmul(a_MxM, b_MxM)
        out_MxM.block_until_ready()
        seconds.append((time.perf_counter() - start) / per_group)
    return 2 * n**3 / statistics.median(seconds) / 1e12


if __name__ == "__main__":
    print(json.dumps(_child_main(json.loads(sys.argv[1]))))
