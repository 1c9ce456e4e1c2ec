"""A data-constrained training stream (`data.unique_tokens`): a finite pool, seen for epochs.

Fresh-data corpora (the synthetic one) never repeat, so a model can never memorise them. This
wrapper fixes a pool of ceil(unique_tokens / T) training rows, the first rows of the base
corpus's own stream (read in fixed chunks, so the pool does not depend on the batch size), and
serves it epoch after epoch, each epoch in its own permutation. Global sample i = step*B + row
is pool row perm_e[i mod P] of epoch e = i div P, so a resumed run sees exactly the rows it
would have seen. Validation is the base's: never in the pool, which is what makes the
train/val gap a measure of memorisation (Muennighoff et al. 2023's repeated-data regime).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from scaling.config import ConfigError
from scaling.data.corpus import Corpus, CorpusWrapper

_POOL_CHUNK = 64  # rows per base batch when reading the pool
_PERM_STREAM = 0x5E9EA7  # default_rng([seed, _PERM_STREAM, epoch]): apart from corpus streams


class RepeatedCorpus(CorpusWrapper):
    """The base corpus limited to `unique_tokens` training tokens, repeated (see module doc);
    its validation data and the entropy of that are the base's, unchanged."""

    def __init__(self, base: Corpus, unique_tokens: int, seed: int) -> None:
        super().__init__(base)
        self.unique_tokens, self.seed = unique_tokens, seed
        self._pool: np.ndarray | None = None  # (P, T+1), built on first use
        self._perms: dict[int, np.ndarray] = {}

    def pool_rows(self, seq_len: int) -> int:
        return math.ceil(self.unique_tokens / seq_len)

    def _pool_for(self, seq_len: int) -> np.ndarray:
        if self._pool is None or self._pool.shape[1] != seq_len + 1:
            rows = self.pool_rows(seq_len)
            chunks = [
                self.base.train_batch(s, _POOL_CHUNK, seq_len)
                for s in range(math.ceil(rows / _POOL_CHUNK))
            ]
            self._pool, self._perms = np.concatenate(chunks)[:rows], {}
        return self._pool

    def _permutation(self, epoch: int, rows: int) -> np.ndarray:
        if epoch not in self._perms:
            if len(self._perms) >= 2:  # a batch spans at most two epochs (require() checks)
                self._perms.clear()
            rng = np.random.default_rng([self.seed, _PERM_STREAM, epoch])
            self._perms[epoch] = rng.permutation(rows)
        return self._perms[epoch]

    def train_batch(self, step: int, batch_size: int, seq_len: int) -> np.ndarray:
        pool = self._pool_for(seq_len)
        sample = step * batch_size + np.arange(batch_size)
        epoch, pos = np.divmod(sample, len(pool))
        chosen = np.empty(batch_size, dtype=np.int64)
        for e in np.unique(epoch).tolist():
            at = epoch == e
            chosen[at] = self._permutation(e, len(pool))[pos[at]]
        return pool[chosen]

    def token_accounting(self, steps: int, batch_size: int, seq_len: int) -> dict[str, Any]:
        rows, samples = self.pool_rows(seq_len), steps * batch_size
        return {
            "tokens_seen": samples * seq_len,
            "unique_tokens": min(samples, rows) * seq_len,
            "epochs": samples / rows,
        }

    def require(self, batch_size: int, seq_len: int) -> None:
        self.base.require(batch_size, seq_len)
        if self.pool_rows(seq_len) < batch_size:
            raise ConfigError(
                f"data.unique_tokens={self.unique_tokens} is less than one batch "
                f"({batch_size} rows of {seq_len} tokens)"
            )

    def describe(self) -> dict[str, Any]:
        return {**self.base.describe(), "unique_tokens_cap": self.unique_tokens}
