"""Property tests over command-line overrides: every invalid combination is rejected with a
message naming a key it set, never a traceback from deeper down; every valid one builds."""

from __future__ import annotations

import jax
import pytest
from flax import nnx
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf.errors import OmegaConfBaseException

from conftest import CONF_DIR
from scaling.config import ConfigError, register_configs, to_dataclass, validate
from scaling.model import accounting
from scaling.model.transformer import build_model

# Values around and beyond the valid ranges, including wrong types.
VALUES = {
    "model.arch": st.sampled_from(["gpt2", "llama", "gpt3"]),
    "model.d_model": st.integers(-8, 160) | st.just("wide"),
    "model.n_heads": st.integers(-2, 12),
    "model.n_layers": st.integers(-1, 3),
    "model.d_ff": st.sampled_from(["null", "0", "64", "-5"]),
    "model.norm": st.sampled_from(["layernorm", "rmsnorm", "batchnorm"]),
    "model.position": st.sampled_from(["learned", "rope", "alibi"]),
    "model.mlp": st.sampled_from(["gelu", "swiglu", "relu"]),
    "model.compute_dtype": st.sampled_from(["auto", "float32", "bfloat16", "int8"]),
    "model.z_loss": st.sampled_from(["0", "1e-4", "-1"]),
    "data.seq_len": st.integers(-4, 256),
    "data.corpus": st.sampled_from(["synthetic", "pystdlib", "wikipedia", "text"]),
    "data.synthetic.noise": st.sampled_from(["0", "0.1", "1", "1.5", "-0.1"]),
    "train.batch_size": st.integers(-2, 32),
    "train.grad_accum": st.integers(-1, 5) | st.just("null"),
    "train.lr": st.sampled_from(["3e-3", "0", "-1", "fast"]),
    "train.schedule": st.sampled_from(["cosine", "wsd", "constant", "linear"]),
    "train.tokens": st.integers(-10, 10**6),
    "run_name": st.sampled_from(["ok", "a.b-c", "../up", "x/y", ".hidden"]),
}
REJECTED = (ConfigError, OmegaConfBaseException, ConfigCompositionException)


@pytest.fixture(scope="module")
def hydra_conf():
    """Hydra initialised once for the module: per example it would cost most of the test."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        yield


def _compose(overrides: list[str]):
    return validate(to_dataclass(compose("pretrain", overrides=overrides)))


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sets(st.sampled_from(sorted(VALUES)), min_size=1, max_size=4).flatmap(
        lambda keys: st.fixed_dictionaries({k: VALUES[k] for k in sorted(keys)})
    )
)
def test_every_override_combination_builds_or_names_a_key(hydra_conf, drawn):
    overrides = ["model=tiny", *(f"{k}={v}" for k, v in drawn.items())]
    try:
        cfg = _compose(overrides)
    except REJECTED as err:
        message = f"{err} {err.__cause__ or ''}"
        assert any(key.rsplit(".", 1)[-1] in message for key in drawn), (overrides, message)
        return
    # Valid: the model builds (shapes only, no compile) with the counts accounting predicts.
    model = nnx.eval_shape(lambda: build_model(cfg.model, 256, cfg.data.seq_len, seed=0))
    n_params = sum(x.size for x in jax.tree.leaves(nnx.state(model)))
    counts = accounting.param_counts(cfg.model, 256, cfg.data.seq_len)
    assert n_params == counts.total


def test_an_odd_head_dim_names_the_keys_the_user_set(hydra_conf):
    # Hypothesis once drew this: rope came from the llama preset, so the error must name the
    # width, the heads and the arch, not model.position, which the user never set.
    with pytest.raises(ConfigError) as err:
        _compose(["model=tiny", "model.arch=llama", "model.d_model=2"])
    message = str(err.value)
    assert "model.d_model=2" in message and "model.n_heads=2" in message
    assert "model.arch=llama" in message and "model.position" not in message
    with pytest.raises(ConfigError, match="model.position=rope"):
        _compose(["model=tiny", "model.position=rope", "model.d_model=6", "model.n_heads=6"])


@pytest.mark.parametrize("name", ["../escape", "a/b", ".", "..", ".hidden", ""])
def test_run_names_that_could_leave_out_dir_are_rejected(hydra_conf, name):
    with pytest.raises(ConfigError, match="run_name"):
        _compose(["model=tiny", f"run_name='{name}'"])
