"""The facts task: recall of the synthetic corpus's facts, in the corpus's own format."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from functools import cached_property
from typing import Any, ClassVar

import numpy as np

from scaling.config import ConfigError, SyntheticConfig, TaskConfig
from scaling.data.synthetic import build_world
from scaling.tasks.examples import Example, TaskBatch, batch_examples
from scaling.tasks.splits import Split
from scaling.tasks.task import EVAL_STREAM, TRAIN_STREAM, Task

_WORLD_KEYS = tuple(f.name for f in dataclasses.fields(SyntheticConfig))


class Facts(Task):
    """Recall of the synthetic corpus's facts: `chain` facts back to back, as the corpus writes
    them (`[key][value]` segments from a segment boundary), scored on their values.

    The world is the one `scaling.data.synthetic` draws from the same parameters (the defaults
    of `SyntheticConfig`; a source run must have been trained on the same world, which
    `check_source` enforces). An example is `chain` facts whose frequency ranks are drawn
    uniformly from [min_rank, max_rank] (1 is the most frequent fact): a band of facts that
    models memorise one by one in frequency order, so the share recalled grows steadily with
    the facts a model holds. The answer is every value symbol (noise-free, the mode the corpus
    writes), the keys are context: exact match needs all `chain` values right, per-token
    accuracy is the share of value symbols right. Facts are memorised rather than computed, so
    there is no train/eval split: fine-tuning on facts is more of the corpus.
    """

    kind = "facts"
    defaults: ClassVar[dict[str, Any]] = {
        "chain": 1,
        "min_rank": 1,
        "max_rank": 256,
        **{f.name: f.default for f in dataclasses.fields(SyntheticConfig)},
    }

    def __init__(self, cfg: TaskConfig) -> None:
        self._read_params(cfg)  # no split to enumerate: Task.__init__ does not apply
        self.chain = self._int("chain", 1, 64)
        world = {k: self.params[k] for k in _WORLD_KEYS}
        try:
            self.world = build_world(SyntheticConfig(**world))
        except ConfigError as err:
            raise ConfigError(f"task {cfg.name}: {err}") from None
        self.max_rank = self._int("max_rank", 1, self.world.cfg.n_facts)
        self.min_rank = self._int("min_rank", 1, self.max_rank)
        self.n_problems = (self.max_rank - self.min_rank + 1) ** self.chain
        self._pools = None

    def check_source(self, data: Any) -> None:
        """ConfigError unless `data` (a source run's DataConfig) drew this task's world."""
        if data.corpus != "synthetic":
            raise ConfigError(
                f"task {self.name}: facts of the synthetic corpus, but the source was trained "
                f"on data.corpus={data.corpus}"
            )
        for key in _WORLD_KEYS:
            theirs = getattr(data.synthetic, key)
            if theirs != self.params[key]:
                raise ConfigError(
                    f"task {self.name}: params.{key}={self.params[key]!r} differs from the "
                    f"source's data.synthetic.{key}={theirs!r}: its facts are another world's"
                )

    @cached_property
    def mean_text_len(self) -> float:
        return float(self.chain * self.world.segment_len)

    def _ranks(self, rng: np.random.Generator, n: int, per_row: int) -> np.ndarray:
        """(n, per_row) fact indices (rank - 1), uniform over ranks [min_rank, max_rank]."""
        return rng.integers(self.min_rank - 1, self.max_rank, size=(n, per_row))

    def eval_set(self) -> list[np.ndarray]:
        rng = np.random.default_rng([self.cfg.seed, EVAL_STREAM])
        return list(self._ranks(rng, self.cfg.n_eval, self.chain))

    def batch(self, queries: Sequence[np.ndarray], seq_len: int) -> TaskBatch:
        world, width = self.world, seq_len + 1
        encoded = []
        for ranks in queries:
            tokens = world.segments[np.asarray(ranks)].reshape(-1).astype(np.int32)
            mask = np.zeros(len(tokens), dtype=bool)
            mask.reshape(len(ranks), world.segment_len)[:, world.key_len :] = True
            encoded.append((tokens, mask))
        if encoded and len(encoded[0][0]) > width:
            raise ConfigError(
                f"task {self.name}: {self.chain} facts of {world.segment_len} tokens do not fit "
                f"seq_len + 1 = {width}; lower params.chain or raise data.seq_len"
            )
        return batch_examples(encoded, seq_len, self.name)

    def train_batch(self, seed: int, step: int, batch_size: int, seq_len: int) -> TaskBatch:
        """Rows of as many whole facts of the band as fit, back to back as in the corpus, the
        loss on every value (as a text task's rows train on every answer)."""
        rng = np.random.default_rng([seed, TRAIN_STREAM, step])
        per_row = max(self.chain, (seq_len + 1) // self.world.segment_len)
        return self.batch(list(self._ranks(rng, batch_size, per_row)), seq_len)

    def sample(self, split: Split, rng: np.random.Generator, n: int) -> list[Example]:
        raise ConfigError(
            f"task {self.name}: facts are the corpus itself; they cannot be mixed into it"
        )
