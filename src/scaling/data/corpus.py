"""The Corpus protocol: what every corpus serves (deterministic, resumable batches); and the
base of the corpora that wrap another (repeat, task mix, corruption)."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Corpus(Protocol):
    name: str  # corpus kind, e.g. "synthetic"
    tokenizer: str  # "byte", "bpe", or "pretokenized" (memmap)
    vocab_size: int

    def train_batch(self, step: int, batch_size: int, seq_len: int) -> np.ndarray:
        """int32 (B, T+1): inputs [:, :-1], targets [:, 1:]."""
        ...

    def val_batches(self, n_batches: int, batch_size: int, seq_len: int) -> list[np.ndarray]:
        """The fixed validation set, the same on every call; fewer if the split is small."""
        ...

    def entropy_nats_per_token(self, seq_len: int) -> float | None:
        """Exact Bayes-optimal loss over the T predicted positions; None for real corpora."""
        ...

    def bytes_per_token(self) -> float | None:
        """Of the validation split (bits/byte = loss / ln 2 / this); None when unknown."""
        ...

    def token_accounting(self, steps: int, batch_size: int, seq_len: int) -> dict[str, Any]:
        """{"tokens_seen", "unique_tokens", "epochs"} for a run of `steps` steps."""
        ...

    def describe(self) -> dict[str, Any]:
        """JSON-able provenance: corpus, tokenizer, vocab_size, token counts, files, entropy."""
        ...

    def require(self, batch_size: int, seq_len: int) -> None:
        """Raise ConfigError naming the file(s) when a split is smaller than one batch."""
        ...


class CorpusWrapper:
    """A corpus made from `base`: what a subclass does not change passes to the base (each
    subclass has its own train_batch and describe)."""

    def __init__(self, base: Corpus) -> None:
        self.base = base
        self.name, self.tokenizer, self.vocab_size = base.name, base.tokenizer, base.vocab_size

    def val_batches(self, n_batches: int, batch_size: int, seq_len: int) -> list[np.ndarray]:
        return self.base.val_batches(n_batches, batch_size, seq_len)

    def entropy_nats_per_token(self, seq_len: int) -> float | None:
        return self.base.entropy_nats_per_token(seq_len)

    def bytes_per_token(self) -> float | None:
        return self.base.bytes_per_token()

    def token_accounting(self, steps: int, batch_size: int, seq_len: int) -> dict[str, Any]:
        return self.base.token_accounting(steps, batch_size, seq_len)

    def require(self, batch_size: int, seq_len: int) -> None:
        self.base.require(batch_size, seq_len)
