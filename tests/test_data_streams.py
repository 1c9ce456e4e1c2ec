"""data.unique_tokens (a repeated finite pool) and data.corrupt_fraction (noise rows)."""

import numpy as np
import pytest

from scaling.config import ConfigError, DataConfig, PretrainConfig, validate
from scaling.data.build import build_corpus

T = 32


def corpus(**data):
    return build_corpus(DataConfig(seq_len=T, **data), seed=0)


def test_repeated_pool_is_seen_once_per_epoch_then_again():
    repeated = corpus(unique_tokens=16 * T)  # a pool of 16 rows
    epoch0 = np.concatenate([repeated.train_batch(s, 4, T) for s in range(4)])
    epoch1 = np.concatenate([repeated.train_batch(s, 4, T) for s in range(4, 8)])
    as_set = lambda rows: sorted(map(bytes, rows.astype(np.uint8)))  # noqa: E731
    assert len(set(as_set(epoch0))) == 16  # every pool row once
    assert as_set(epoch0) == as_set(epoch1)  # the same rows again...
    assert not np.array_equal(epoch0, epoch1)  # ...in another order
    acc = repeated.token_accounting(8, 4, T)
    assert acc == {"tokens_seen": 32 * T, "unique_tokens": 16 * T, "epochs": 2.0}


def test_repeated_pool_does_not_depend_on_batch_size_and_resumes_exactly():
    rows = lambda c, b, steps: np.concatenate([c.train_batch(s, b, T) for s in range(steps)])  # noqa: E731
    a, b = corpus(unique_tokens=24 * T), corpus(unique_tokens=24 * T)
    assert np.array_equal(rows(a, 8, 6), rows(b, 8, 6))  # pure function of (seed, step)
    pool_a = sorted(map(bytes, rows(a, 8, 3).astype(np.uint8)))
    pool_b = sorted(map(bytes, rows(b, 4, 6).astype(np.uint8)))
    assert pool_a == pool_b
    fresh = corpus()
    assert np.array_equal(a.val_batches(2, 4, T)[0], fresh.val_batches(2, 4, T)[0])


def test_corrupt_fraction_replaces_rows_with_noise_and_leaves_validation_clean():
    clean, noisy = corpus(), corpus(corrupt_fraction=0.5)
    replaced = 0
    for step in range(20):
        a, b = clean.train_batch(step, 16, T), noisy.train_batch(step, 16, T)
        same = (a == b).all(axis=1)
        replaced += int((~same).sum())
        assert np.array_equal(b, noisy.train_batch(step, 16, T))  # deterministic per step
    assert 0.35 < replaced / 320 < 0.65
    assert np.array_equal(clean.val_batches(2, 4, T)[1], noisy.val_batches(2, 4, T)[1])
    assert noisy.describe()["corrupt_fraction"] == 0.5


@pytest.mark.parametrize(
    "data, key",
    [
        (dict(unique_tokens=0), "data.unique_tokens=0"),
        (dict(corrupt_fraction=1.0), "data.corrupt_fraction=1.0"),
        (dict(corrupt_fraction=-0.1), "data.corrupt_fraction=-0.1"),
    ],
)
def test_bad_stream_options_name_the_key(data, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(PretrainConfig(data=DataConfig(**data)))


def test_pool_smaller_than_a_batch_is_refused():
    with pytest.raises(ConfigError, match="data.unique_tokens=64"):
        corpus(unique_tokens=64).require(16, T)
