"""The Task base class: a problem space's split, sampling, few-shot queries and batches.

A kind (`scaling.tasks.arithmetic`, `strings`, `facts`) defines its problems; this class draws
them from one split (`scaling.tasks.splits`), adds solved train-split shots and batches them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from functools import cached_property
from itertools import compress
from typing import Any, ClassVar

import numpy as np

from scaling.config import ConfigError, TaskConfig
from scaling.tasks.examples import Example, Query, TaskBatch, batch_examples, encode
from scaling.tasks.splits import EVAL_SHARE, EXACT_SPLIT_LIMIT, Split, is_eval_prompt

LOWERCASE = "abcdefghijklmnopqrstuvwxyz"
_ALPHABET_CHARS = frozenset(LOWERCASE + LOWERCASE.upper() + "0123456789")
EVAL_STREAM = 0x7A5C  # rng stream of eval sets: default_rng([seed, EVAL_STREAM])
TRAIN_STREAM = 0x7A5D  # of fine-tuning batches: default_rng([seed, TRAIN_STREAM, step])


class Task:
    """A problem generator with a fixed train/eval split; subclasses define one kind.

    Subclasses set `kind` and `defaults` and implement `count` (the number of distinct
    problems), `_draw` (uniform problems, either split) and, for spaces of at most
    EXACT_SPLIT_LIMIT problems, `_enumerate` (every problem once).
    """

    kind: ClassVar[str]
    defaults: ClassVar[dict[str, Any]]

    def __init__(self, cfg: TaskConfig) -> None:
        self._read_params(cfg)
        self._configure()
        self.n_problems = self.count()
        self._pools: dict[str, list[Example]] | None = None
        if self.n_problems <= EXACT_SPLIT_LIMIT:
            problems = self._enumerate()
            evals = is_eval_prompt(e.prompt for e in problems)
            self._pools = {
                "train": list(compress(problems, ~evals)),
                "eval": list(compress(problems, evals)),
            }
            self._eval_prompts = frozenset(e.prompt for e in self._pools["eval"])
            if not (self._pools["train"] and self._pools["eval"]):
                raise ConfigError(
                    f"task {self.name}: params {self.params} give {len(problems)} problems, "
                    "too few for both a train and an eval split"
                )

    def _read_params(self, cfg: TaskConfig) -> None:
        """Set cfg, name and params (the defaults updated by cfg.params); ConfigError on an
        unknown param."""
        self.cfg = cfg
        self.name = cfg.name
        unknown = sorted(set(cfg.params) - set(self.defaults))
        if unknown:
            raise ConfigError(
                f"task {cfg.name}: unknown params {unknown} for kind {self.kind} "
                f"(known: {sorted(self.defaults)})"
            )
        self.params: dict[str, Any] = {**self.defaults, **cfg.params}

    # -- what a kind defines

    def _configure(self) -> None:
        """Read and check self.params (ConfigError via _check)."""

    def count(self) -> int:
        raise NotImplementedError

    def _draw(self, rng: np.random.Generator, n: int) -> list[Example]:
        raise NotImplementedError

    def _enumerate(self) -> list[Example]:
        raise ConfigError(f"task {self.name}: kind {self.kind} cannot enumerate its problems")

    def check_source(self, data: Any) -> None:
        """ConfigError when a source run trained on `data` (its DataConfig) cannot be scored on
        this task; any byte-level source can for the text tasks."""

    # -- parameter checks

    def _check(self, ok: bool, key: str, requirement: str) -> None:
        if not ok:
            value = self.params.get(key, self.cfg.params.get(key))
            raise ConfigError(f"task {self.name}: params.{key}={value!r} must be {requirement}")

    def _int(self, key: str, lo: int, hi: int) -> int:
        value = self.params[key]
        ok = isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi
        self._check(ok, key, f"an integer in [{lo}, {hi}]")
        return value

    def _alphabet(self, key: str = "alphabet") -> np.ndarray:
        value = self.params[key]
        ok = isinstance(value, str) and len(value) >= 1 and len(set(value)) == len(value)
        self._check(ok and set(value) <= _ALPHABET_CHARS, key, "distinct letters and digits")
        return np.frombuffer(value.encode("ascii"), dtype=np.uint8)

    # -- splits and sampling

    @property
    def exact_split(self) -> bool:
        """Whether the space was enumerated, so that the split sizes are known exactly."""
        return self._pools is not None

    def split_size(self, split: Split) -> int | None:
        """Problems in the split when the space was enumerated; None for larger spaces."""
        return None if self._pools is None else len(self._pools[split])

    def is_eval(self, examples: Sequence[Example]) -> np.ndarray:
        """(n,) bool: which examples are eval-split problems (a function of the prompt)."""
        if self._pools is not None:  # a set lookup is faster than hashing
            return np.array([e.prompt in self._eval_prompts for e in examples], dtype=bool)
        return is_eval_prompt(e.prompt for e in examples)

    def sample(self, split: Split, rng: np.random.Generator, n: int) -> list[Example]:
        """n problems drawn uniformly, with replacement, from one split."""
        if self._pools is not None:
            pool = self._pools[split]
            return [pool[i] for i in rng.integers(len(pool), size=n).tolist()]
        want_eval = split == "eval"
        share = EVAL_SHARE if want_eval else 1 - EVAL_SHARE
        out: list[Example] = []
        while len(out) < n:  # rejection: draw from the whole space, keep the split's problems
            draw = self._draw(rng, min(int((n - len(out)) / share * 1.2) + 8, 1 << 16))
            out.extend(compress(draw, self.is_eval(draw) == want_eval))
        return out[:n]

    def distinct(self, split: Split, rng: np.random.Generator, n: int) -> list[Example]:
        """Up to n distinct problems of one split (all of it when it has fewer than n)."""
        if self._pools is not None:
            pool = self._pools[split]
            return [pool[i] for i in rng.permutation(len(pool))[:n].tolist()]
        found: dict[str, Example] = {}
        for _ in range(64):  # a space this large holds > EXACT_SPLIT_LIMIT * EVAL_SHARE in eval
            for e in self.sample(split, rng, n - len(found)):
                found.setdefault(e.prompt, e)
            if len(found) == n:
                return list(found.values())
        raise ConfigError(f"task {self.name}: could not find {n} distinct {split} problems")

    def shots(self, rng: np.random.Generator, k: int, exclude: str) -> tuple[Example, ...]:
        """k distinct train-split examples, none of them the problem with prompt `exclude`."""
        if k == 0:
            return ()
        available = self.split_size("train")
        if available is not None and k > available - 1:
            raise ConfigError(
                f"task {self.name}: few_shot={k} needs more than the {available} train problems"
            )
        found: dict[str, Example] = {}
        while len(found) < k:
            for e in self.sample("train", rng, 2 * (k - len(found))):
                if e.prompt != exclude and len(found) < k:
                    found.setdefault(e.prompt, e)
        return tuple(found.values())

    def queries(
        self, split: Split, rng: np.random.Generator, n: int, few_shot: int, distinct: bool = False
    ) -> list[Query]:
        """n problems of a split, each with few_shot solved train examples (never itself)."""
        draw = self.distinct if distinct else self.sample
        return [Query(e, self.shots(rng, few_shot, e.prompt)) for e in draw(split, rng, n)]

    def eval_set(self) -> list[Any]:
        """The config's eval set: cfg.n_eval distinct eval problems with cfg.few_shot shots
        (`Query`s here; a task with its own form of problem, as Facts, gives its own).

        Fewer when the eval split is smaller (e.g. 20 problems for 1-digit addition); report
        `scaling.tasks.metrics.resolution(len(eval_set))` beside accuracies measured on it.
        """
        rng = np.random.default_rng([self.cfg.seed, EVAL_STREAM])
        return self.queries("eval", rng, self.cfg.n_eval, self.cfg.few_shot, distinct=True)

    def batch(self, queries: Sequence[Any], seq_len: int) -> TaskBatch:
        return batch_examples([encode(q.example, q.shots) for q in queries], seq_len, self.name)

    def train_batch(self, seed: int, step: int, batch_size: int, seq_len: int) -> TaskBatch:
        """Fine-tuning batch `step`: rows of solved train-split examples back to back, as many
        whole examples as fit in seq_len + 1 tokens, with the loss on every answer.

        Every answer of every row is trained on (the earlier examples of a row are the later
        ones' shots), so a row of 128 bytes teaches about 128 / (example length) answers rather
        than one. A pure function of (seed, step, batch_size, seq_len), like a corpus's
        train_batch, so a resumed fine-tuning run sees exactly the data it would have seen.
        """
        rng = np.random.default_rng([seed, TRAIN_STREAM, step])
        width = seq_len + 1
        chunk = batch_size * max(1, math.ceil(width / self.mean_text_len))
        examples = (encode(e) for _ in itertools.count() for e in self.sample("train", rng, chunk))
        rows: list[tuple[np.ndarray, np.ndarray]] = []
        pending = next(examples)
        for _ in range(batch_size):
            parts, used = [pending], len(pending[0])  # one example at least (else ConfigError)
            for pending in examples:
                if used + len(pending[0]) > width:
                    break  # it starts the next row
                parts.append(pending)
                used += len(pending[0])
            tokens, mask = (np.concatenate(column) for column in zip(*parts, strict=True))
            rows.append((tokens, mask))
        return batch_examples(rows, seq_len, self.name)

    @cached_property
    def mean_text_len(self) -> float:
        """Mean bytes of one solved example (from a fixed sample): sizes rows of examples."""
        rng = np.random.default_rng(0)
        return float(np.mean([len(e.text) for e in self.sample("train", rng, 256)]))
