"""Trials of invalid input: bad values, types, corpus files and run dirs must be refused
cleanly (exit 2, one `error:` line naming the key or file), before anything is written.
"""

from __future__ import annotations

import dataclasses
import random
import re
import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scaling.config import ModelConfig, TrainConfig
from scaling.tools.faults.damage import truncate_largest_file
from scaling.tools.faults.runner import (
    BAD_INPUT,
    EXIT_BAD_INPUT,
    FAULT_RUN,
    Trial,
    run_entry,
)
from scaling.train import rundir


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
            truncate_largest_file(step_dir)
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
