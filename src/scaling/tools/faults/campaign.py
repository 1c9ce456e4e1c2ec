"""A fault campaign: kill, preempt, damage and misfeed real tiny runs; count what survives.

Every trial drives the public entry points (`experiments/pretrain.py`, `experiments/finetune.py`)
in subprocesses, as a researcher or a cluster would: real JAX, real orbax checkpoints on disk,
real signals, real Hydra sweeps. A run that is killed, preempted or finds its latest checkpoint
damaged must end bit-identical (every logged loss, the final parameters) to the same run left
alone; a bad input must be refused with exit status 2 and one `error:` line naming the key or
file, before anything is written; sweeps writing into one directory at once must leave every
point with one valid completed record. `python experiments/reliability.py` runs the campaign
and writes the Markdown report; tests call the same functions at smaller counts.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from scaling import records
from scaling.config import ModelConfig, TrainConfig
from scaling.provenance import cpu_name
from scaling.train import rundir

ROOT = Path(__file__).resolve().parents[4]
ENTRIES = {
    "pretrain": ROOT / "experiments" / "pretrain.py",
    "finetune": ROOT / "experiments" / "finetune.py",
}
EXIT_BAD_INPUT = 2
EXIT_PREEMPTED = 75  # scaling.cli.EXIT_PREEMPTED
EXIT_INTERRUPTED = 130  # scaling.train.signals.EXIT_INTERRUPTED

# A tiny model on the synthetic corpus: 2 layers of width 32, batches of 4 x 32 tokens.
TINY = [
    "model=tiny",
    "data.seq_len=32",
    "data.synthetic.n_facts=512",
    "train.batch_size=4",
    "train.eval_batches=2",
    "train.progress=off",
]
# 120 steps with a checkpoint every 10, so kills land between and during saves.
FAULT_RUN = [
    *TINY,
    "train.tokens=15360",
    "train.ckpt_every=10",
    "train.eval_every=40",
    "train.log_every=2",
]
FAULT_STEPS = 120
CKPT_EVERY = 10

KILL, PREEMPT, INTERRUPT, CORRUPT, BAD_INPUT, CONCURRENT = (
    "kill (SIGKILL)",
    "preemption (SIGTERM/SIGUSR1)",
    "Ctrl-C (SIGINT, once or twice)",
    "damaged latest checkpoint",
    "invalid input",
    "concurrent sweep writers",
)


@dataclass
class Trial:
    """One fault and what became of it."""

    kind: str
    name: str
    ok: bool  # survived (recovered exactly), or for a bad input, rejected cleanly
    detail: str
    lost: int = 0  # runs left neither completed and exact nor resumable


# --- driving the entry points --------------------------------------------------------------------


def _env() -> dict[str, str]:
    # CPU unless told otherwise: the bit-identical checks need deterministic kernels.
    return {**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}


def command(entry: str, overrides: Sequence[str]) -> list[str]:
    return [sys.executable, str(ENTRIES[entry]), *overrides]


def run_entry(
    entry: str, overrides: Sequence[str], cwd: Path, timeout: float = 600
) -> subprocess.CompletedProcess:
    return subprocess.run(
        command(entry, overrides),
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_entry(entry: str, overrides: Sequence[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        command(entry, overrides),
        cwd=cwd,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def last_step(run_dir: Path) -> int:
    rows = records.read_metrics(run_dir)
    return rows[-1]["step"] if rows else 0


def wait_for_step(proc: subprocess.Popen, run_dir: Path, step: int, timeout: float = 300) -> bool:
    """True once `run_dir` has logged `step` while `proc` still runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if (run_dir / records.METRICS_FILE).exists() and last_step(run_dir) >= step:
            return True
        time.sleep(0.005)
    return False


def fault_run(out_dir: Path, run_name: str, seed: int = 0) -> list[str]:
    return [*FAULT_RUN, f"train.seed={seed}", f"out_dir={out_dir}", f"run_name={run_name}"]


def finish(out_dir: Path, run_name: str, seed: int) -> subprocess.CompletedProcess:
    """Run (or resume) the fault run to its end."""
    return run_entry("pretrain", fault_run(out_dir, run_name, seed), out_dir.parent)


# --- comparing a run with its uninterrupted twin -------------------------------------------------


def final_params(run_dir: Path) -> tuple[int, Any]:
    """(step, params) of the run's latest checkpoint, read through orbax only."""
    from scaling.train.source import load_source, restore_params

    return restore_params(load_source(str(run_dir)))


def differences(run_dir: Path, reference: Path) -> list[str]:
    """How `run_dir` differs from `reference`: status, logged losses, final parameters (bits)."""
    import jax

    record = records.read_record(run_dir) or {}
    if record.get("status") != records.STATUS_COMPLETED:
        return [f"status {record.get('status')!r}: {record.get('reason')}"]
    found = []
    strip = [{k: v for k, v in r.items() if k != "time"} for r in records.read_metrics(run_dir)]
    want = [{k: v for k, v in r.items() if k != "time"} for r in records.read_metrics(reference)]
    if strip != want:
        at = next((a.get("step") for a, b in zip(strip, want, strict=False) if a != b), None)
        found.append(f"metrics differ ({len(strip)} rows vs {len(want)}, first at step {at})")
    (step, params), (ref_step, ref_params) = final_params(run_dir), final_params(reference)
    if step != ref_step:
        found.append(f"final checkpoint at step {step}, reference {ref_step}")
    leaves, ref_leaves = jax.tree.leaves(params), jax.tree.leaves(ref_params)
    same = len(leaves) == len(ref_leaves) and all(
        np.asarray(a).tobytes() == np.asarray(b).tobytes()
        for a, b in zip(leaves, ref_leaves, strict=True)
    )
    if not same:
        found.append("final parameters differ")
    return found


def reference_run(out_dir: Path, seed: int = 0) -> Path:
    """The uninterrupted run every faulted run must match."""
    result = finish(out_dir, f"reference-s{seed}", seed)
    if result.returncode != 0:
        raise RuntimeError(f"the reference run failed: {result.stderr.strip()[-500:]}")
    return out_dir / f"reference-s{seed}"


# --- kills and preemptions -----------------------------------------------------------------------


def next_target(rng: random.Random, after: int, left: int) -> int:
    """A random step past `after` (the last one logged, so a restart's old rows do not trigger
    the fault early), leaving room for `left` more faults before the end."""
    lo = after + 2
    return rng.randrange(lo, max(lo + 1, lo + (FAULT_STEPS - 3 - lo) // (left + 1)))


def kill_trials(out_dir: Path, reference: Path, n_kills: int, rng: random.Random) -> list[Trial]:
    """SIGKILL one run at `n_kills` random steps, restarting it each time; then finish it.

    Each kill survives when the next start resumes from a checkpoint at or before the step the
    run had reached, and the finished run matches the reference bit for bit.
    """
    seed = int(reference.name.rsplit("-s", 1)[1])
    name = f"killed-{rng.randrange(1 << 30)}"
    run_dir = out_dir / name
    kills = []  # (aimed step, step logged when killed, killed?)
    resumes = []  # resumed_from_step of each later start
    for i in range(n_kills):
        target = next_target(rng, last_step(run_dir), n_kills - i - 1)
        proc = start_entry("pretrain", fault_run(out_dir, name, seed), out_dir.parent)
        if wait_for_step(proc, run_dir, target):
            proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=300)
        if kills:
            resumes.append((records.read_record(run_dir) or {}).get("resumed_from_step") or 0)
        kills.append((target, last_step(run_dir), proc.returncode == -signal.SIGKILL))
    result = finish(out_dir, name, seed)
    resumes.append((records.read_record(run_dir) or {}).get("resumed_from_step") or 0)
    diff = differences(run_dir, reference) if result.returncode == 0 else [result.stderr[-300:]]
    trials = []
    for i, ((target, at, killed), resumed) in enumerate(zip(kills, resumes, strict=True)):
        problems = [] if killed else ["the run ended before the kill landed"]
        if resumed > at or resumed % CKPT_EVERY:
            problems.append(f"the next start resumed from step {resumed}")
        what = f"kill {i + 1}/{n_kills} of {name} aimed at step {target}, landed after step {at}"
        detail = "; ".join(problems + diff) or f"next start resumed from step {resumed}"
        trials.append(Trial(KILL, what, not problems and not diff, detail))
    trials[-1].lost = int(bool(diff))
    return trials


def preempt_trials(
    out_dir: Path, reference: Path, signals: Sequence[signal.Signals], rng: random.Random
) -> list[Trial]:
    """Send each signal at a random step: exit 75, status preempted, a checkpoint where it
    stopped, and the next start resumes from exactly there; then finish the run and compare."""
    return signal_trials(out_dir, reference, [(sig, 1) for sig in signals], rng, "preempted")


def interrupt_trials(
    out_dir: Path, reference: Path, presses: Sequence[int], rng: random.Random
) -> list[Trial]:
    """Press Ctrl-C (SIGINT) `presses[i]` times in a row at a random step, as a user at a
    terminal: exit 130, no traceback, status interrupted, one line saying how to resume. Once: a
    checkpoint where it stopped, resumed from exactly there. Twice: stopped at once, resumed
    from a checkpoint at or before that step. Then finish the run and compare."""
    stops = [(signal.SIGINT, n) for n in presses]
    return signal_trials(out_dir, reference, stops, rng, "interrupted")


# What each signal must leave: (exit status, record status).
EXPECTED = {
    signal.SIGTERM: (EXIT_PREEMPTED, records.STATUS_PREEMPTED),
    signal.SIGUSR1: (EXIT_PREEMPTED, records.STATUS_PREEMPTED),
    signal.SIGINT: (EXIT_INTERRUPTED, records.STATUS_INTERRUPTED),
}


def signal_trials(
    out_dir: Path,
    reference: Path,
    stops: Sequence[tuple[signal.Signals, int]],
    rng: random.Random,
    prefix: str,
) -> list[Trial]:
    """One run stopped by each (signal, times sent) of `stops` in turn, at random steps,
    restarted after each; then finished and compared with the reference bit for bit."""
    seed = int(reference.name.rsplit("-s", 1)[1])
    name = f"{prefix}-{rng.randrange(1 << 30)}"
    run_dir = out_dir / name
    found = []  # (signal, times, aimed step, stopped step, problems, how it stopped)
    resumes = []  # resumed_from_step of each later start
    for i, (sig, times) in enumerate(stops):
        target = next_target(rng, last_step(run_dir), len(stops) - i - 1)
        proc = start_entry("pretrain", fault_run(out_dir, name, seed), out_dir.parent)
        if wait_for_step(proc, run_dir, target):
            for _ in range(times):
                proc.send_signal(sig)
                time.sleep(0.01)
        _, stderr = proc.communicate(timeout=300)
        record = records.read_record(run_dir) or {}
        if found:
            resumes.append(record.get("resumed_from_step"))
        stopped = record.get("steps")
        problems = _stop_problems(sig, proc.returncode, stderr, record)
        if times == 1 and not (run_dir / rundir.CKPT_DIR / str(stopped)).is_dir():
            problems.append(f"no checkpoint at step {stopped}, where it stopped")
        # A second press may land after the first stop's save has ended the process.
        how = "stopped at once" if "second SIGINT" in str(record.get("reason")) else "saved"
        found.append((sig, times, target, stopped, problems, how))
    result = finish(out_dir, name, seed)
    resumes.append((records.read_record(run_dir) or {}).get("resumed_from_step"))
    diff = differences(run_dir, reference) if result.returncode == 0 else [result.stderr[-300:]]
    trials = []
    for (sig, times, target, stopped, problems, how), resumed in zip(found, resumes, strict=True):
        resumed = resumed or 0
        # Stopped at once (a second SIGINT), it may resume from any checkpoint up to the stop
        # (the saves in flight are lost); the comparison with the reference checks the rest.
        at_once = times > 1 and resumed <= (stopped or 0)
        if resumed != stopped and not at_once:
            problems.append(f"the next start resumed from step {resumed}")
        sent = sig.name if times == 1 else f"{times} x {sig.name}"
        what = f"{sent} to {name} aimed at step {target}: stopped at step {stopped}"
        done = f"exit {EXPECTED[sig][0]}, {how}, resumed from step {resumed}"
        detail = "; ".join(problems + diff) or done
        kind = INTERRUPT if sig == signal.SIGINT else PREEMPT
        trials.append(Trial(kind, what, not problems and not diff, detail))
    trials[-1].lost = int(bool(diff))
    return trials


def _stop_problems(
    sig: signal.Signals, returncode: int, stderr: str, record: dict[str, Any]
) -> list[str]:
    """What is wrong with how a signal stopped a run: its exit, record and words to the user."""
    exit_status, status = EXPECTED[sig]
    problems = []
    if returncode != exit_status:
        problems.append(f"exit {returncode}: {stderr.strip()[-200:]}")
    if record.get("status") != status or sig.name not in str(record.get("reason")):
        problems.append(f"status {record.get('status')!r} ({record.get('reason')})")
    if "Traceback" in stderr or "terminate called" in stderr:
        problems.append(f"a traceback: {stderr.strip()[-200:]}")
    if sig == signal.SIGINT and "rerun" not in stderr:
        problems.append("no line saying how to resume")
    return problems


# --- damaged checkpoints -------------------------------------------------------------------------


def _largest_file(step_dir: Path) -> Path:
    return max((p for p in step_dir.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def _truncate(step_dir: Path) -> None:
    path = _largest_file(step_dir)
    os.truncate(path, path.stat().st_size // 2)


def _garble(step_dir: Path) -> None:
    path = _largest_file(step_dir)
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 3, len(data), 61):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _all_garbage(step_dir: Path) -> None:
    for path in step_dir.rglob("*"):
        if path.is_file():
            path.write_bytes(b"\0garbage")


def _empty_tree_metadata(step_dir: Path) -> None:
    for path in step_dir.rglob("_METADATA"):
        path.write_bytes(b"")


def _delete_arrays(step_dir: Path) -> None:
    for path in step_dir.rglob("ocdbt.process_*"):
        shutil.rmtree(path)


DAMAGE: dict[str, Callable[[Path], None]] = {
    "largest file truncated to half": _truncate,
    "largest file garbled (every 61st byte of its last two thirds)": _garble,
    "every file replaced by garbage": _all_garbage,
    "tree metadata emptied": _empty_tree_metadata,
    "array store deleted": _delete_arrays,
}


def corrupt_trials(
    out_dir: Path, reference: Path, modes: Sequence[str], rng: random.Random
) -> list[Trial]:
    """Stop one run at a random checkpoint, damage that step one way, rerun the same command up
    to the next stop, and so on through `modes`; then finish it.

    A damage survives when the rerun resumes from the previous checkpoint and sets the damaged
    step aside (ckpt_damaged/); all of them when the finished run is bit-identical to the
    reference.
    """
    seed = int(reference.name.rsplit("-s", 1)[1])
    name = f"damaged-{rng.randrange(1 << 30)}"
    run_dir = out_dir / name
    slots = range(2, FAULT_STEPS // CKPT_EVERY)  # checkpoints after the first, before the end
    stops = [CKPT_EVERY * k for k in sorted(rng.sample(slots, len(modes)))]
    found = []  # (mode, stop, problems)
    for i, (mode, stop) in enumerate(zip(modes, stops, strict=True)):
        stop_at = [f"train.stop_at_step={stop}"]
        result = run_entry("pretrain", [*fault_run(out_dir, name, seed), *stop_at], out_dir)
        if found:  # this start resumed past the previous damage
            found[-1][2].extend(_resumed_past(run_dir, stops[i - 1], result))
        step_dir = run_dir / rundir.CKPT_DIR / str(stop)
        if result.returncode != 0 or not step_dir.is_dir():
            found.append((mode, stop, [f"no checkpoint at step {stop}: {result.stderr[-200:]}"]))
            continue
        DAMAGE[mode](step_dir)
        found.append((mode, stop, []))
    result = finish(out_dir, name, seed)
    found[-1][2].extend(_resumed_past(run_dir, stops[-1], result))
    diff = differences(run_dir, reference)
    trials = []
    for mode, stop, problems in found:
        detail = "; ".join(problems + diff) or (
            f"resumed from step {stop - CKPT_EVERY}, damaged step set aside"
        )
        trials.append(
            Trial(CORRUPT, f"{mode}, at step {stop} of {name}", not (problems or diff), detail)
        )
    trials[-1].lost = int(bool(diff))
    return trials


def _resumed_past(run_dir: Path, damaged: int, result: subprocess.CompletedProcess) -> list[str]:
    """What went wrong when a start met the damaged checkpoint at step `damaged`."""
    problems = [] if result.returncode == 0 else [f"exit {result.returncode}"]
    resumed = (records.read_record(run_dir) or {}).get("resumed_from_step")
    if resumed != damaged - CKPT_EVERY:
        problems.append(f"resumed from step {resumed}, not {damaged - CKPT_EVERY}")
    if not list((run_dir / "ckpt_damaged").glob(f"{damaged}*")):
        problems.append("the damaged step was not set aside")
    return problems


# --- invalid inputs ------------------------------------------------------------------------------


@dataclass
class BadInput:
    """A command line that must be refused: exit 2, one `error:` line containing `names`."""

    name: str
    entry: str
    overrides: list[str]
    names: str  # the key or file the error line must name
    watch: list[Path] = field(default_factory=list)  # existing dirs that must stay untouched


# Refused by scaling.config.validate: (overrides, the key the error names).
BAD_VALUES = [
    ("model.n_heads=5", "model.n_heads"),
    ("model.d_model=-8", "model.d_model"),
    ("model.norm=batchnorm", "model.norm"),
    ("data.corpus=wikipedia", "data.corpus"),
    ("data.seq_len=0", "data.seq_len"),
    ("train.batch_size=0", "train.batch_size"),
    ("train.grad_accum=3", "train.grad_accum"),
    ("train.schedule=linear", "train.schedule"),
    ("train.lr=-1", "train.lr"),
    ("train.weight_decay=-1", "train.weight_decay"),
    ("train.eval_every=0", "train.eval_every"),
    ("run_name=../escape", "run_name"),
    ("out_dir=", "out_dir"),
    # Refused while Hydra composes the config (scaling.cli.main makes them one line too).
    ("model=no_such_rung", "model/no_such_rung"),
    ("model.no_such_key=1", "model.no_such_key"),
    ("train.lr=[1", "[1"),
    # A sweep whose grid is bad, refused before any job starts.
    ("-m experiment=tiny hydra.sweeper.grid.kind=bogus", "hydra.sweeper.grid.kind"),
    ("-m experiment=tiny hydra.sweeper.grid.tokens=[]", "hydra.sweeper.grid"),
]


def typed_fields() -> list[str]:
    """Every int or float setting of the model and train schemas, as `section.key`."""
    keys = []
    for section, schema in (("model", ModelConfig), ("train", TrainConfig)):
        for f in dataclasses.fields(schema):
            if str(f.type).split(" ")[0] in ("int", "float"):
                keys.append(f"{section}.{f.name}")
    return keys


def make_bad_files(root: Path) -> dict[str, Path]:
    """Files no corpus may accept, each named by what is wrong with it."""
    root.mkdir(parents=True, exist_ok=True)
    files = {
        "empty.txt": b"",
        "binary.txt": b"hello\0world" * 10,
        "latin1.txt": "caf\u00e9 au lait\n".encode("latin-1") * 10,
        "tiny.txt": b"too short",
        "truncated.bin": b"\x01\x00\x02",  # 3 bytes of uint16
        "empty.bin": b"",
        "out_of_range.bin": np.array([1, 2, 300, 4] * 64, "<u2").tobytes(),
        "garbage.npy": bytes(range(256)) * 4,
    }
    paths = {}
    for name, data in files.items():
        paths[name] = root / name
        paths[name].write_bytes(data)
    np.save(root / "matrix.npy", np.zeros((16, 16), np.uint16))
    np.save(root / "floats.npy", np.zeros(512, np.float32))
    paths["matrix.npy"], paths["floats.npy"] = root / "matrix.npy", root / "floats.npy"
    (root / "a_directory").mkdir(exist_ok=True)
    paths["a_directory"] = root / "a_directory"
    paths["missing.txt"] = root / "missing.txt"
    return paths


def _damaged_copies(source: Path, root: Path) -> dict[str, Path]:
    """Copies of a completed run, each broken in one way, as init_from sources or to resume."""
    copies = {}
    for kind in ("truncated", "garbage_config", "no_ckpt", "no_config", "other_settings"):
        copies[kind] = root / f"{source.name}-{kind}"
        shutil.copytree(source, copies[kind])
    for step_dir in (copies["truncated"] / rundir.CKPT_DIR).iterdir():
        if step_dir.is_dir():  # the step dirs, not files beside them (tracker.json)
            _truncate(step_dir)
    (copies["garbage_config"] / rundir.CONFIG_FILE).write_text("model: [unclosed\n")
    shutil.rmtree(copies["no_ckpt"] / rundir.CKPT_DIR)
    (copies["no_config"] / rundir.CONFIG_FILE).unlink()
    config = rundir.read_config(copies["other_settings"])
    config["train"]["lr"] = 0.5
    rundir.write_config(copies["other_settings"], config)
    return copies


def bad_inputs(work: Path, source: Path, n_typed: int, rng: random.Random) -> list[BadInput]:
    """The invalid command lines: bad values, bad types (a sample of the schema's numeric keys),
    bad files for the text and memmap corpora, and broken run dirs to resume or fine-tune from.

    `source` is a completed tiny pre-training run (its damaged copies go under `work`).
    """
    cases = [BadInput(f"value {o}", "pretrain", o.split(), key) for o, key in BAD_VALUES]
    for key in rng.sample(typed_fields(), min(n_typed, len(typed_fields()))):
        cases.append(BadInput(f"type {key}=x", "pretrain", [f"{key}=x"], key))
    runs = bad_run_dir_inputs(work, source, FAULT_RUN)
    return cases + bad_file_inputs(work / "files") + runs


def bad_file_inputs(root: Path) -> list[BadInput]:
    """Corpus files no corpus may accept (made under `root`), for data=text and data=memmap."""
    f = make_bad_files(root)

    def text(name: str, path: Path) -> BadInput:
        return BadInput(
            f"text: {name}", "pretrain", ["data=text", f"data.paths=[{path}]"], str(path)
        )

    def memmap(name: str, path: Path, *extra: str) -> BadInput:
        overrides = ["data=memmap", "data.vocab_size=256", f"data.paths=[{path}]", *extra]
        return BadInput(f"memmap: {name}", "pretrain", overrides, str(path))

    cases = [
        text("missing file", f["missing.txt"]),
        text("empty file", f["empty.txt"]),
        text("binary file", f["binary.txt"]),
        text("not UTF-8", f["latin1.txt"]),
        text("a directory", f["a_directory"]),
        text("smaller than one batch", f["tiny.txt"]),
        BadInput(
            "text: glob matching nothing",
            "pretrain",
            ["data=text", f"data.paths=[{root}/*.nothing]"],
            "*.nothing",
        ),
        BadInput(
            "text: validation file also a training file",
            "pretrain",
            ["data=text", f"data.paths=[{f['latin1.txt']}]", f"data.val_paths=[{f['latin1.txt']}]"],
            "data.val_paths",
        ),
        memmap("truncated (size not a multiple of uint16)", f["truncated.bin"]),
        memmap("empty file", f["empty.bin"]),
        memmap("token outside the vocabulary", f["out_of_range.bin"]),
        memmap("not an .npy file", f["garbage.npy"]),
        memmap("2-D array", f["matrix.npy"]),
        memmap("float array", f["floats.npy"]),
        memmap("missing file", f["missing.txt"]),
        BadInput(
            "memmap: no vocab_size",
            "pretrain",
            ["data=memmap", f"data.paths=[{f['out_of_range.bin']}]"],
            "data.vocab_size",
        ),
    ]
    return cases


def bad_run_dir_inputs(work: Path, source: Path, overrides: Sequence[str]) -> list[BadInput]:
    """Broken copies of the completed run `source` (made under `work`), to fine-tune from or to
    resume (with `overrides`, its settings); and a fine-tune from a dir that does not exist."""
    runs = _damaged_copies(source, work / "broken_runs")
    cases = []
    finetune = ["task=addition1", "task.few_shot=0", "train.batch_size=8", "train.tokens=1024"]
    for kind, names in (
        ("truncated", runs["truncated"] / rundir.CKPT_DIR),
        ("garbage_config", runs["garbage_config"] / rundir.CONFIG_FILE),
        ("no_ckpt", runs["no_ckpt"] / rundir.CKPT_DIR),
        ("no_config", runs["no_config"]),
    ):
        cases.append(
            BadInput(
                f"init_from: {kind.replace('_', ' ')}",
                "finetune",
                [*finetune, f"init_from={runs[kind]}"],
                str(names),
                watch=[runs[kind]],
            )
        )
    cases.append(
        BadInput(
            "init_from: no such dir",
            "finetune",
            [*finetune, f"init_from={work / 'no_such_run'}"],
            str(work / "no_such_run"),
        )
    )
    for kind, names in (
        ("garbage_config", runs["garbage_config"] / rundir.CONFIG_FILE),
        ("other_settings", runs["other_settings"]),
    ):
        run_dir = runs[kind]
        cases.append(
            BadInput(
                f"resume: {kind.replace('_', ' ')}",
                "pretrain",
                [*overrides, f"out_dir={run_dir.parent}", f"run_name={run_dir.name}"],
                str(names),
                watch=[run_dir],
            )
        )
    return cases


def _snapshot(paths: Sequence[Path]) -> list[tuple[str, int, int]]:
    return sorted(
        (str(p), p.stat().st_size, p.stat().st_mtime_ns)
        for root in paths
        for p in [root, *root.rglob("*")]
        if p.exists()
    )


def check_bad_input(case: BadInput, work: Path) -> Trial:
    """Run one bad command line in a fresh out_dir: refused cleanly, nothing written?"""
    out_dir = work / "out" / re.sub(r"[^A-Za-z0-9]+", "_", case.name)  # plain for Hydra
    flags = [o for o in case.overrides if o.startswith("-")]  # Hydra's (-m) before overrides
    overrides = [o for o in case.overrides if not o.startswith("-")]
    if not any(o.startswith("out_dir=") for o in overrides):  # a fresh out_dir of its own
        overrides = ["model=tiny", "train.progress=off", *overrides, f"out_dir={out_dir}"]
    overrides = [*flags, *overrides]
    before = _snapshot(case.watch)
    work.mkdir(parents=True, exist_ok=True)
    result = run_entry(case.entry, overrides, work)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    problems = []
    if result.returncode != EXIT_BAD_INPUT:
        problems.append(f"exit {result.returncode}")
    if len(lines) != 1 or not lines[0].startswith("error: "):
        problems.append(f"{len(lines)} stderr lines: {' | '.join(lines[:3])[:300]}")
    elif case.names not in lines[0]:
        problems.append(f"the error does not name {case.names}")
    if "Traceback" in result.stderr + result.stdout:
        problems.append("a traceback")
    if out_dir.exists() and any(out_dir.iterdir()):
        problems.append(f"wrote {sorted(p.name for p in out_dir.iterdir())[:3]}")
    if _snapshot(case.watch) != before:
        problems.append(f"changed {case.watch[0]}")
    detail = "; ".join(problems) or (lines[0] if lines else "")
    return Trial(BAD_INPUT, case.name, not problems, detail)


def bad_input_trials(cases: Sequence[BadInput], work: Path, jobs: int) -> list[Trial]:
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(lambda case: check_bad_input(case, work), cases))


# --- concurrent sweep writers --------------------------------------------------------------------

# experiment=tiny (4 x 32 tokens a step); two grids that overlap, and their union.
GRID_A = [1024, 2048, 3072]
GRID_B = [2048, 3072, 4096]
SWEEP_NAME = "tiny"
# One run per job: a point's losses are then comparable bit for bit with the point run alone
# (trained in a group, they change in the last float bit with the group's size).
SINGLE_RUN_JOBS = ("hydra.sweeper.grid.group_models=1",)


def _sweep(out_dir: Path, tokens: Sequence[int], *extra: str) -> list[str]:
    grid = ",".join(str(t) for t in tokens)
    return [
        "-m",
        "experiment=tiny",
        f"out_dir={out_dir}",
        f"hydra.sweeper.grid.tokens=[{grid}]",
        *extra,
    ]


def _point_problems(run_dir: Path) -> list[str]:
    """What is wrong with a sweep point's run dir: its record, metrics log and checkpoints."""
    record = records.read_record(run_dir)
    if record is None:
        return ["no readable record.json"]
    if record.get("status") != records.STATUS_COMPLETED:
        return [f"status {record.get('status')!r}: {record.get('reason')}"]
    problems = []
    lines = (run_dir / records.METRICS_FILE).read_text(encoding="utf-8").splitlines()
    try:
        steps = [json.loads(line)["step"] for line in lines]
    except (ValueError, KeyError):
        steps = []
        problems.append("metrics.jsonl has a line that does not parse")
    if steps and (steps != sorted(set(steps)) or steps[-1] != record["total_steps"]):
        problems.append(f"metrics steps {steps[:3]}...{steps[-3:]} not once each up to the end")
    ckpt = run_dir / rundir.CKPT_DIR
    if any("tmp" in p.name for p in ckpt.iterdir()) or (run_dir / "ckpt_damaged").exists():
        problems.append(f"stray checkpoint dirs: {sorted(p.name for p in ckpt.iterdir())}")
    return problems


def concurrent_trials(
    work: Path,
    grid_a: Sequence[int] = GRID_A,
    grid_b: Sequence[int] = GRID_B,
    n_jobs: int = 2,
    extra: Sequence[str] = SINGLE_RUN_JOBS,
) -> list[Trial]:
    """Two sweeps of overlapping grids and a joblib sweep of their union (n_jobs workers), all
    started together on one out_dir and sweep name; then the same union alone, to compare.

    Each point survives when it has one completed record, a metrics log with every step once,
    no stray checkpoint, and losses and final parameters bit-identical to the point run alone.
    """
    shared, alone = work / "shared", work / "alone"
    work.mkdir(parents=True, exist_ok=True)
    launches = [
        _sweep(shared, grid_a, *extra),
        _sweep(shared, grid_b, *extra),
        _sweep(
            shared,
            sorted({*grid_a, *grid_b}),
            *extra,
            "hydra/launcher=joblib",
            f"hydra.launcher.n_jobs={n_jobs}",
        ),
    ]
    procs = [
        subprocess.Popen(
            command("pretrain", o),
            cwd=work,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for o in launches
    ]
    logs = [p.communicate(timeout=900)[0] for p in procs]
    waits = sum(log.count("waiting for") for log in logs)
    solo = run_entry("pretrain", _sweep(alone, sorted({*grid_a, *grid_b}), *extra), work, 900)
    trials = []
    names = sorted(p.name for p in alone.iterdir() if (p / records.RECORD_FILE).exists())
    for name in names:
        problems = _point_problems(shared / name)
        if not problems:
            problems = differences(shared / name, alone / name)
        detail = "; ".join(problems) or "one completed record, every step once, exact"
        trials.append(Trial(CONCURRENT, f"point {name}", not problems, detail, int(bool(problems))))
    manifest_problems = []
    try:
        manifest = json.loads((shared / ".sweeps" / f"{SWEEP_NAME}.json").read_text())
        listed = sorted(p["run_name"] for p in manifest["points"])
        if listed != names:
            manifest_problems.append(f"manifest lists {listed}, the points are {names}")
    except (OSError, ValueError, KeyError, TypeError) as err:
        manifest_problems.append(f"manifest unreadable: {err}")
    if solo.returncode != 0 or not names:
        manifest_problems.append(f"the solo sweep failed: {solo.stdout[-300:]}")
    detail = "; ".join(manifest_problems) or (
        f"valid, lists all {len(names)} points; {len(procs)} sweeps waited {waits} times "
        "for a point another was training"
    )
    trials.append(Trial(CONCURRENT, f".sweeps/{SWEEP_NAME}.json", not manifest_problems, detail))
    return trials


# --- the campaign --------------------------------------------------------------------------------


@dataclass
class Campaign:
    trials: list[Trial]
    settings: dict[str, Any]
    started: datetime
    wall_s: float


def run_campaign(
    work: Path,
    kills: int = 5,
    preemptions: Sequence[signal.Signals] = (signal.SIGTERM, signal.SIGUSR1) * 2,
    interrupts: Sequence[int] = (1, 2, 1, 2),
    damage: Sequence[str] = tuple(DAMAGE),
    typed: int = 6,
    jobs: int = 2,
    seed: int = 0,
    say: Callable[[str], None] = print,
) -> Campaign:
    """Every fault once per setting, in `work` (emptied first); the trials and what was run."""
    started, t0 = datetime.now(UTC), time.perf_counter()
    shutil.rmtree(work, ignore_errors=True)
    runs = work / "runs"
    runs.mkdir(parents=True)
    rng = random.Random(seed)
    trials: list[Trial] = []

    def stage(title: str, make: Callable[[], list[Trial]]) -> None:
        t = time.perf_counter()
        found = make()
        trials.extend(found)
        ok = sum(x.ok for x in found)
        say(f"{title}: {ok}/{len(found)} ok in {time.perf_counter() - t:.0f} s")

    say("reference run ...")
    reference = reference_run(runs)
    stage(KILL, lambda: kill_trials(runs, reference, kills, rng))
    stage(PREEMPT, lambda: preempt_trials(runs, reference, preemptions, rng))
    stage(INTERRUPT, lambda: interrupt_trials(runs, reference, interrupts, rng))
    stage(CORRUPT, lambda: corrupt_trials(runs, reference, damage, rng))
    cases = bad_inputs(work / "bad", reference, typed, rng)
    stage(BAD_INPUT, lambda: bad_input_trials(cases, work / "bad", jobs))
    stage(CONCURRENT, lambda: concurrent_trials(work / "sweeps"))
    settings = {
        "kills": kills,
        "preemptions": [s.name for s in preemptions],
        "Ctrl-C presses per stop": list(interrupts),
        "damage modes": len(damage),
        "invalid inputs": len(cases),
        "seed": seed,
        "fault run": " ".join(FAULT_RUN),
    }
    return Campaign(trials, settings, started, time.perf_counter() - t0)


# --- the report ----------------------------------------------------------------------------------

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
    cpu = cpu_name()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = f", load average {os.getloadavg()[1]:.1f} over the last 5 min (shared with other work)"
    return f"{cpu}, {cores} cores available, {platform.system()} {platform.release()}{load}"


def to_markdown(campaign: Campaign, command_line: str) -> str:
    from scaling.provenance import git_commit, versions

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
