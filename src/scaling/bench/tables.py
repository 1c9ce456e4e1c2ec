"""The benchmark's report as files: `<stem>.json` and the Markdown tables of shapes and rungs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from scaling import records
from scaling.bench.measure import OURS, main_peer, ours_peak
from scaling.bench.variants import side_name


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


def _fmt_count(n: int | None) -> str:
    return "" if n is None else f"{n:,}"


def _fmt_ratio(x: float | None) -> str:
    return "" if x is None else f"{x:.2f}x"


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
    peaks_known = any(ours_peak(r) is not None for r in rows)
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
