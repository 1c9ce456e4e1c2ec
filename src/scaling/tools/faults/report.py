"""The fault campaign's Markdown report: one table of what survived, then every trial."""

from __future__ import annotations

import os
import platform

from scaling.provenance import cores_available, cpu_name, git_commit, versions
from scaling.tools.faults.campaign import Campaign
from scaling.tools.faults.runner import (
    BAD_INPUT,
    CONCURRENT,
    CORRUPT,
    INTERRUPT,
    KILL,
    PREEMPT,
)

CHECKED = {
    KILL: "next start resumes from a checkpoint at or before the kill; finished run "
    "bit-identical (every logged loss, final parameters) to the uninterrupted run",
    PREEMPT: "exit 75, status `preempted`, checkpoint at the stopping step, next start resumes "
    "from exactly that step; finished run bit-identical",
    INTERRUPT: "exit 130, no traceback, status `interrupted`, a line saying how to resume; once: "
    "checkpoint at the stopping step, next start resumes from exactly it; twice: stopped at once, "
    "next start resumes from a checkpoint at or before it; finished run bit-identical",
    CORRUPT: "rerun resumes from the previous checkpoint, damaged step set aside in "
    "`ckpt_damaged/`; finished run bit-identical",
    BAD_INPUT: "exit 2, stderr exactly one `error:` line naming the key or file, no traceback, "
    "nothing written (out_dir absent; sources and run dirs unchanged)",
    CONCURRENT: "one completed record per point, every metrics step once, no stray checkpoint, "
    "bit-identical to the point run alone; manifest valid and complete",
}


def machine() -> str:
    """The host in one line: CPU, cores, OS and the load the campaign shared it with."""
    load = f", load average {os.getloadavg()[1]:.1f} over the last 5 min (shared with other work)"
    return (
        f"{cpu_name()}, {cores_available()} cores available, "
        f"{platform.system()} {platform.release()}{load}"
    )


def to_markdown(campaign: Campaign, command_line: str) -> str:
    trials = campaign.trials
    kinds = list(CHECKED)
    lost = sum(t.lost for t in trials)
    out = [
        "# Reliability campaign",
        "",
        f"Rebuilt by `{command_line}` (tiny model on the synthetic corpus, CPU; every trial drives "
        "`experiments/pretrain.py` or `experiments/finetune.py` in a subprocess, with real "
        "signals, real orbax checkpoints and real Hydra sweeps).",
        "",
        f"- date: {campaign.started:%Y-%m-%d %H:%M} UTC, wall time {campaign.wall_s:.0f} s",
        f"- machine: {machine()}",
        f"- versions: {', '.join(f'{k} {v}' for k, v in versions().items())}",
        f"- git commit: {git_commit()} (the working tree may hold uncommitted changes)",
        f"- settings: {'; '.join(f'{k}: {v}' for k, v in campaign.settings.items())}",
        "",
        "| fault | trials | survived or rejected cleanly | failed | runs lost | what counts |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for kind in kinds:
        mine = [t for t in trials if t.kind == kind]
        ok = sum(t.ok for t in mine)
        out.append(
            f"| {kind} | {len(mine)} | {ok} | {len(mine) - ok} | {sum(t.lost for t in mine)} "
            f"| {CHECKED[kind]} |"
        )
    out += ["", f"**Runs lost: {lost}** (target 0).", ""]
    for kind in kinds:
        out += [f"## {kind}", "", "| trial | ok | detail |", "| --- | --- | --- |"]
        for t in (t for t in trials if t.kind == kind):
            out.append(f"| {_cell(t.name)} | {'yes' if t.ok else '**no**'} | {_cell(t.detail)} |")
        out.append("")
    return "\n".join(out)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
