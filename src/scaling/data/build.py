"""build_corpus: the corpus a DataConfig names, wrapped in its repeat, task-mix and corruption."""

from __future__ import annotations

from collections.abc import Callable

from scaling.config import CORPORA, ConfigError, DataConfig
from scaling.data.corpus import Corpus
from scaling.data.synthetic import SyntheticCorpus


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
