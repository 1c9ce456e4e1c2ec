"""The command line as a researcher uses it: Hydra composition, clear errors, a tiny run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import NOISE, ROOT, TINY
from scaling.cli import integer_overrides
from scaling.config import ConfigError

PRETRAIN = ROOT / "experiments" / "pretrain.py"


def run_cli(*overrides: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "JAX_PLATFORMS": "cpu"}
    return subprocess.run(
        [sys.executable, str(PRETRAIN), *overrides],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_tiny_default_run_from_the_command_line_is_quiet(tmp_path):
    # The tiny run with the default progress (lines, outside a terminal); tokens as 3.072e3.
    settings = [o for o in TINY if not o.startswith(("train.progress", "train.tokens"))]
    result = run_cli(*settings, "train.tokens=3.072e3", "out_dir=out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "out" / "tiny-synthetic-D3072-s0"  # an integer, as if typed 3072
    record = json.loads((run_dir / "record.json").read_text())
    assert record["status"] == "completed" and record["tokens_target"] == 3072
    # No warnings, on stderr nor on stdout (Hydra's log): no TPU backend note, no orbax note,
    # no numpy RuntimeWarning; stdout is the one line saying where the run is.
    assert not NOISE.search(result.stderr), result.stderr
    assert result.stdout.splitlines() == [
        f"completed: {run_dir}  final val loss {record['final_val_loss']}"
    ]
    assert {p.name for p in run_dir.iterdir()} >= {
        "config.yaml",
        "record.json",
        "metrics.jsonl",
        "ckpt",
    }
    # Hydra writes nothing of its own beside the run.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("model.n_heads=5", "model.d_model=32 is not divisible by model.n_heads=5"),
        ("model.d_model=-8", "model.d_model"),
        ("model.norm=batchnorm", "model.norm='batchnorm'"),
        ("data.corpus=wikipedia", "data.corpus='wikipedia'"),
        ("train.batch_size=0", "train.batch_size=0"),
        ("train.schedule=linear", "train.schedule='linear'"),
        ("data=text", "data.paths"),
        ("data=text data.paths=[/no/such/file.txt]", "/no/such/file.txt"),
        ("train.lr=fast", "train.lr"),
        ("train.batch_size=2.5", "train.batch_size=2.5 must be a whole number"),
        ("model.no_such_key=1", "no_such_key"),
        ("run_name=../escape", "run_name='../escape'"),
    ],
)
def test_bad_config_exits_with_one_line_naming_the_key(tmp_path, override, named):
    result = run_cli(*TINY, "out_dir=out", *override.split(" "), cwd=tmp_path)
    assert result.returncode != 0
    assert named in result.stderr
    assert "Traceback" not in result.stderr
    # Rejected before anything was written.
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize(
    ("override", "line"),
    [
        (
            "model=n11k",
            "did you mean model=n110k or model=n921k or model=n221k? valid choices of model: "
            "n107m, n110k, n14m,",
        ),
        ("train.tokenz=1e6", "Key 'tokenz' not in 'TrainConfig'; did you mean train.tokens?"),
        ("moddel.d_model=64", "Key 'moddel' not in 'PretrainConfig'; did you mean model?"),
        # `+` makes Hydra add the key to the structured config without complaint
        ("+train.tokenz=1e6", "unknown key train.tokenz; did you mean train.tokens?"),
        ("model.arch=lama", "is not one of ['gpt2', 'llama']; did you mean model.arch=llama?"),
    ],
)
def test_a_typo_gets_one_line_with_the_close_matches(tmp_path, override, line):
    result = run_cli(*TINY, "out_dir=out", override, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and line in lines[0], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_numbers_for_integer_settings_may_be_written_as_floats():
    assert integer_overrides(
        [
            "-m",
            "train.tokens=5e6",
            "train.warmup_tokens=2.5e5",
            "+train.stop_at_step=1_000",
            "data.seq_len=1.28e2,2.56e2",
            "hydra.sweeper.grid.tokens=[1e6,2.5e6]",
            "train.lr=3e-3",  # a float setting: left alone
            "hydra.sweeper.grid.budgets=[1e12]",
            "train.tokens=x",  # a bad value: left for Hydra to refuse
            "--cfg",
            "job",
        ]
    ) == [
        "-m",
        "train.tokens=5000000",
        "train.warmup_tokens=250000",
        "+train.stop_at_step=1_000",
        "data.seq_len=128,256",
        "hydra.sweeper.grid.tokens=[1000000,2500000]",
        "train.lr=3e-3",
        "hydra.sweeper.grid.budgets=[1e12]",
        "train.tokens=x",
        "--cfg",
        "job",
    ]
    for fractional in ("train.tokens=2.5", "hydra.sweeper.grid.tokens=[1e6,1.5]"):
        with pytest.raises(ConfigError, match="must be a whole number"):
            integer_overrides([fractional])
