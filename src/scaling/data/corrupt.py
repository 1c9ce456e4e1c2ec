"""Garbage in the pre-training stream (`data.corrupt_fraction`): rows of uniform random tokens.

Each training row is replaced, independently with probability `fraction`, by tokens drawn
uniformly from the vocabulary: text with no structure at all, the crudest model of scraped
garbage. The unit is rows, so `fraction` is the expected share of training tokens corrupted.
Validation is the base's, clean, so the loss measures what the garbage cost. The draws come
from a stream of their own, a pure function of (seed, step), so a resumed run sees the same
rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scaling.data.corpus import Corpus, CorpusWrapper

_STREAM = 0xBAD0A7A  # default_rng([seed, _STREAM, step]): apart from every corpus stream


class CorruptedCorpus(CorpusWrapper):
    """The base corpus with a `fraction` of its training rows replaced by uniform noise; its
    validation data, entropy (of that clean data) and accounting are the base's."""

    def __init__(self, base: Corpus, fraction: float, seed: int) -> None:
        super().__init__(base)
        self.fraction, self.seed = fraction, seed

    def train_batch(self, step: int, batch_size: int, seq_len: int) -> np.ndarray:
        batch_BxTp1 = self.base.train_batch(step, batch_size, seq_len)
        rng = np.random.default_rng([self.seed, _STREAM, step])
        replace_B = rng.random(batch_size) < self.fraction
        if not replace_B.any():
            return batch_BxTp1
        out_BxTp1 = batch_BxTp1.copy()
        noise = rng.integers(self.vocab_size, size=(int(replace_B.sum()), seq_len + 1))
        out_BxTp1[replace_B] = noise.astype(out_BxTp1.dtype)
        return out_BxTp1

    def describe(self) -> dict[str, Any]:
        return {**self.base.describe(), "corrupt_fraction": self.fraction}
