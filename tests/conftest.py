"""Shared fixtures: tiny configs composed through the real Hydra config tree; the Hypothesis
profile (derandomized where CI is set, so that a property test never fails CI by chance); JAX's
implicit rank promotion made an error."""

from __future__ import annotations

import os
import re
from pathlib import Path

import jax
import pytest
from hydra import compose, initialize_config_dir
from hypothesis import settings

from scaling.config import PretrainConfig, register_configs, to_dataclass

# CI draws the same examples on every run (a failure is then a regression, reproducible from
# the log); a local run explores new ones each time (the database replays past failures).
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

# Broadcasting (n,) against (n, 1) silently makes an (n, n): every test makes it an error, so
# that library code broadcasts explicitly (x[:, None]) or not at all.
jax.config.update("jax_numpy_rank_promotion", "raise")

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"
SHARED_DATA = ROOT.parent / "shared" / "data"

# A tiny run on the synthetic corpus: 2 layers of width 32, 24 steps of 4 x 32 tokens.
TINY = [
    "model=tiny",
    "data.seq_len=32",
    "data.synthetic.n_facts=512",
    "train.batch_size=4",
    "train.tokens=3072",
    "train.eval_every=8",
    "train.eval_batches=2",
    "train.log_every=4",
    "train.ckpt_every=8",
    "train.progress=off",
]

# What a library may print on a default run that the researcher should never see: warnings of
# any kind (numpy's RuntimeWarning included), JAX's note on a missing TPU, orbax's read-only note.
NOISE = re.compile(r"warn|Unable to initialize backend|read only|Traceback", re.IGNORECASE)


def compose_config(overrides: list[str]) -> PretrainConfig:
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return to_dataclass(compose("pretrain", overrides=overrides))


@pytest.fixture
def tiny_config(tmp_path: Path):
    """Build a tiny config writing under tmp_path, with extra Hydra overrides."""

    def make(*overrides: str) -> PretrainConfig:
        return compose_config([*TINY, f"out_dir={tmp_path / 'runs'}", *overrides])

    return make
