"""Task-formatted text mixed into a pre-training corpus (`data.task_mix`).

Web text holds some arithmetic, which is why models that were only pre-trained can still be
evaluated few-shot. `TaskMixCorpus` wraps any byte-level corpus and replaces whole rows: each
row of a batch is replaced, independently with probability `fraction`, by solved TRAIN-split
examples of one task (chosen uniformly from `data.task_mix.tasks`), back to back from an
example boundary and cut at T+1 bytes. That is the layout of a few-shot prompt, one example
per line. The unit is rows, so `fraction` is also the expected share of tokens (every row has
T+1 of them) and it holds for any T.

Determinism: which rows are replaced, and by what, is a pure function of (seed, step, B, T),
drawn from a stream of its own (the base corpus's draws are untouched), so a resumed run sees
exactly the rows it would have seen.
Validation batches are mixed the same way, from a stream that ignores the run seed, so the
validation loss is measured on the distribution trained on and every run with the same mix
scores the same set. EVAL-split problems never appear in either.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from scaling.config import ConfigError, DataConfig
from scaling.data.corpus import Corpus, CorpusWrapper
from scaling.tasks.generators import build_task, task_config
from scaling.tasks.task import Task

_TRAIN_STREAM = 0x7A5C01  # default_rng([seed, _TRAIN_STREAM, step]): apart from corpus streams
_VAL_STREAM = 0x7A5C02  # default_rng([_VAL_STREAM, k]) for validation batch k


def mix_tasks(cfg: DataConfig) -> list[Task]:
    """The tasks data.task_mix names, checked; ConfigError naming the key if it cannot work."""
    mix = cfg.task_mix
    if not (isinstance(mix.fraction, int | float) and 0 <= mix.fraction < 1):
        raise ConfigError(f"data.task_mix.fraction={mix.fraction!r} must be in [0, 1)")
    if not mix.tasks:
        raise ConfigError(
            f"data.task_mix.fraction={mix.fraction} needs data.task_mix.tasks, e.g. [addition3]"
        )
    if cfg.tokenizer != "byte" or cfg.corpus == "memmap":
        raise ConfigError(
            "data.task_mix needs byte tokens (task text is bytes); got "
            f"data.corpus={cfg.corpus} with data.tokenizer={cfg.tokenizer}"
        )
    return [
        build_task(task_config(name, key=f"data.task_mix.tasks[{i}]"))
        for i, name in enumerate(mix.tasks)
    ]


def task_rows(task: Task, rng: np.random.Generator, n_rows: int, width: int) -> np.ndarray:
    """(n_rows, width) int32: solved train examples back to back, each row from a boundary."""
    per_row = math.ceil(width / task.mean_text_len) + 1
    examples = task.sample("train", rng, n_rows * per_row)
    out = np.empty((n_rows, width), dtype=np.int32)
    start = 0  # index into examples of the current row's first example
    for row in range(n_rows):
        lengths = np.cumsum([len(e.text) for e in examples[start : start + 2 * per_row]])
        while not len(lengths) or lengths[-1] < width:  # rare: the estimate ran short
            examples += task.sample("train", rng, per_row)
            lengths = np.cumsum([len(e.text) for e in examples[start:]])
        stop = start + int(np.searchsorted(lengths, width)) + 1  # first examples covering width
        text = "".join(e.text for e in examples[start:stop]).encode("ascii")
        out[row] = np.frombuffer(text, dtype=np.uint8, count=width)
        start = stop
    return out


class TaskMixCorpus(CorpusWrapper):
    """A byte corpus with a `fraction` of its rows replaced by task text (see module doc).

    Bytes per token and token accounting are the base's: task text is bytes too, and for a
    finite base the replaced rows still count as seen (about `fraction` of them), so
    unique_tokens and epochs are upper bounds."""

    def __init__(self, base: Corpus, tasks: Sequence[Task], fraction: float, seed: int) -> None:
        if base.tokenizer != "byte" or base.vocab_size != 256:
            raise ConfigError(
                f"data.task_mix needs a byte corpus; {base.name} has tokenizer={base.tokenizer} "
                f"and vocab_size={base.vocab_size}"
            )
        super().__init__(base)
        self.tasks, self.fraction, self.seed = list(tasks), fraction, seed
        self.name = f"{base.name}+tasks"  # mixed runs stay apart from pure ones in records

    def _mix(self, batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n_rows, width = batch.shape
        replace: np.ndarray = np.less(rng.random(n_rows), self.fraction)
        which = np.asarray(rng.integers(len(self.tasks), size=n_rows))
        if not replace.any():
            return batch
        out = batch.copy()
        for t in np.unique(which[replace]).tolist():  # one sampling call per task present
            rows = np.flatnonzero(replace & (which == t))
            out[rows] = task_rows(self.tasks[t], rng, len(rows), width)
        return out

    def train_batch(self, step: int, batch_size: int, seq_len: int) -> np.ndarray:
        batch_BxTp1 = self.base.train_batch(step, batch_size, seq_len)
        return self._mix(batch_BxTp1, np.random.default_rng([self.seed, _TRAIN_STREAM, step]))

    def val_batches(self, n_batches: int, batch_size: int, seq_len: int) -> list[np.ndarray]:
        batches = self.base.val_batches(n_batches, batch_size, seq_len)
        return [
            self._mix(b, np.random.default_rng([_VAL_STREAM, k])) for k, b in enumerate(batches)
        ]

    def entropy_nats_per_token(self, seq_len: int) -> float | None:
        """None: the mixture's exact entropy is not computed, even when the base's is known."""
        return None

    def describe(self) -> dict[str, Any]:
        base = self.base.describe()
        return {
            "corpus": self.name,
            "tokenizer": self.tokenizer,
            "vocab_size": self.vocab_size,
            "seq_len": base.get("seq_len"),
            "bytes_per_token": self.bytes_per_token(),
            "entropy_nats_per_token": None,
            "task_mix": {
                "unit": "rows",
                "fraction": self.fraction,
                "tasks": [{"name": t.name, "kind": t.kind, "params": t.params} for t in self.tasks],
            },
            "base": base,  # its entropy figures describe the base alone, not the mixture
        }
