"""Corpora for training: the synthetic default, text files, the Python stdlib, memmaps, HF.

Every corpus serves deterministic, resumable batches: `train_batch(step, B, T)` is a pure
function of (seed, step, B, T), so a run resumed at any step sees exactly the data it would
have seen.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np

from scaling.config import CORPORA, ConfigError, DataConfig
from scaling.data.batching import TokenCorpus
from scaling.data.synthetic import SyntheticCorpus


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


def _builders() -> dict[str, Callable[[DataConfig, int], Corpus]]:
    # Imported lazily: only the chosen corpus's module (and its dependencies) is loaded.
    from scaling.data.hf import build_hf
    from scaling.data.memmap import build_memmap
    from scaling.data.pystdlib import build_pystdlib
    from scaling.data.text import build_text

    return {
        "synthetic": lambda cfg, seed: SyntheticCorpus(cfg.synthetic, seed, cfg.seq_len),
        "text": build_text,
        "pystdlib": build_pystdlib,
        "memmap": build_memmap,
        "hf": build_hf,
    }


def build_corpus(cfg: DataConfig, seed: int) -> Corpus:
    """The corpus cfg names; ConfigError (one line naming the file or key) if it cannot work."""
    if cfg.corpus not in CORPORA:
        raise ConfigError(f"data.corpus={cfg.corpus!r} is not one of {list(CORPORA)}")
    if cfg.corpus == "synthetic" and cfg.tokenizer != "byte":
        raise ConfigError(f"data.corpus=synthetic emits bytes; data.tokenizer={cfg.tokenizer!r}")
    build = _builders()[cfg.corpus]
    tasks = None
    if cfg.task_mix.fraction != 0:  # any other value is checked by mix_tasks
        from scaling.data.taskmix import mix_tasks

        tasks = mix_tasks(cfg)  # checked before the base corpus, whose build may be slow
    corpus = build(cfg, seed)
    # Each option wraps the stream in turn; with all at their defaults the corpus is untouched.
    if cfg.unique_tokens is not None:
        from scaling.data.repeat import RepeatedCorpus

        corpus = RepeatedCorpus(corpus, cfg.unique_tokens, seed)
    if tasks is not None:
        from scaling.data.taskmix import TaskMixCorpus

        corpus = TaskMixCorpus(corpus, tasks, cfg.task_mix.fraction, seed)
    if cfg.corrupt_fraction > 0:
        from scaling.data.corrupt import CorruptedCorpus

        corpus = CorruptedCorpus(corpus, cfg.corrupt_fraction, seed)
    return corpus


__all__ = ["Corpus", "ConfigError", "SyntheticCorpus", "TokenCorpus", "build_corpus"]
