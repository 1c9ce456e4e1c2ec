"""Tasks for fine-tuning and emergence: generators, few-shot prompts, splits and scorers.

Every example is byte-level ASCII text, matching the default byte tokenizer: a prompt such as
`"12+34="` and an answer such as `"46\\n"`. Answers end with the terminator `"\\n"` and prompts
never contain it, so exact match is well defined (`scorer`) and solved examples read one per
line. A k-shot prompt is k solved TRAIN-split examples followed by the query's prompt.

Splits. A problem is identified by its prompt (the answer is a function of it). It is an eval
problem when the 64-bit BLAKE2b hash of its prompt falls below EVAL_SHARE * 2^64: one rule
for every task and config, independent of any seed, Python version or machine. Spaces nest
(1-digit addition problems are also problems of 2- to 8-digit addition, 1x2-digit
multiplication of 2x2-digit), and a rule per space, such as ranking each finite space by hash,
would put the same problem in eval for one config and in train for another: a model that saw
addition3 text could then have seen addition1's eval set. With one rule it never has.

Spaces of at most `EXACT_SPLIT_LIMIT` problems (1- and 2-digit addition, 2x2-digit
multiplication, arithmetic mod 97, short strings) are enumerated, so their splits are known
exactly (e.g. 1-digit addition: 18 eval and 82 train of its 100 problems; `split_size`),
sampling from them is exact and eval sets can take every eval problem. Larger spaces are
sampled by rejection, and their eval share is EVAL_SHARE in expectation. Seeds only choose
which problems of a split are drawn (and their shots).

Kinds (`TASKS`) and their params (defaults in each class):
`addition` (digits), `multiplication` (digits_a, digits_b), `reverse` and `copy` (length,
alphabet), `modular` (modulus, op) and `kv_retrieval` (n_pairs, key_len, value_len, alphabet).
Operands are uniform in [0, 10^digits) (as in GPT-3's arithmetic tasks). Named configs live in
`conf/task/<name>.yaml` and load with `task_config(name)`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import compress
from pathlib import Path
from typing import Any, ClassVar, Literal, NamedTuple

import numpy as np
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from scaling.config import ConfigError, SyntheticConfig, TaskConfig
from scaling.data.synthetic import build_world

TERMINATOR = "\n"  # ends every answer; prompts never contain it
PAD_ID = 0  # NUL: never a byte of task text
EVAL_SHARE = 0.2  # share of every problem space held out for evaluation (fixed: see above)
EXACT_SPLIT_LIMIT = 2**16  # spaces up to this size are enumerated and split exactly
LOWERCASE = "abcdefghijklmnopqrstuvwxyz"
_ALPHABET_CHARS = frozenset(LOWERCASE + LOWERCASE.upper() + "0123456789")
_HASH_PERSON = b"scaling.tasks"  # salts the split hash: unrelated to any other use of BLAKE2b
_EVAL_STREAM = 0x7A5C  # rng stream of eval sets: default_rng([seed, _EVAL_STREAM])
_TRAIN_STREAM = 0x7A5D  # of fine-tuning batches: default_rng([seed, _TRAIN_STREAM, step])
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")

Split = Literal["train", "eval"]


@dataclass(frozen=True)
class Example:
    prompt: str
    answer: str  # ends with TERMINATOR

    @property
    def text(self) -> str:
        return self.prompt + self.answer


@dataclass(frozen=True)
class Query:
    """One problem to solve and the solved train-split examples shown before it."""

    example: Example
    shots: tuple[Example, ...]


class TaskBatch(NamedTuple):
    tokens: np.ndarray  # (B, T+1) int32, PAD_ID after each example
    answer_mask: np.ndarray  # (B, T+1) bool, True exactly on the query's answer bytes
    lengths: np.ndarray  # (B,) int64: tokens before the padding


# ---------------------------------------------------------------- scoring and encoding


def scorer(prediction: str, answer: str) -> bool:
    """Exact match: the prediction up to and including its first terminator is the answer.

    A generation may run on past the terminator (into a next example); without one it is wrong,
    so "46" never matches "46\\n" (it could still become "460").
    """
    end = prediction.find(TERMINATOR)
    return end >= 0 and prediction[: end + 1] == answer


def resolution(n_examples: int, confidence: float = 0.95) -> float:
    """The smallest accuracy distinguishable from zero with n_examples at this confidence.

    With true accuracy p the chance of no correct answer is (1-p)^n, so accuracies below
    1 - (1-confidence)^(1/n) are consistent with a measured zero (the rule of three, ~3/n).
    """
    if n_examples < 1:
        raise ValueError(f"n_examples={n_examples} must be >= 1")
    return 1.0 - (1.0 - confidence) ** (1.0 / n_examples)


def encode(example: Example, few_shot: Sequence[Example] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Byte tokens (int32) of the shots, the prompt and the answer; True on the answer bytes.

    Only the query's answer is marked (shots are context), terminator included. For a (B, T+1)
    batch the loss mask of the targets tokens[:, 1:] is answer_mask[:, 1:].
    """
    context = "".join(s.text for s in few_shot) + example.prompt
    tokens = np.frombuffer((context + example.answer).encode("ascii"), dtype=np.uint8)
    mask = np.zeros(len(tokens), dtype=bool)
    mask[len(context) :] = True
    return tokens.astype(np.int32), mask


def batch_examples(
    encoded: Sequence[tuple[np.ndarray, np.ndarray]], seq_len: int, task: str
) -> TaskBatch:
    """Right-pad encoded examples into (B, seq_len + 1) arrays; ConfigError if one is too long.

    Right padding keeps every example at the positions it would have alone: with causal
    attention the padding after it changes nothing it is scored on.
    """
    width = seq_len + 1
    lengths = np.array([len(tokens) for tokens, _ in encoded], dtype=np.int64)
    if len(lengths) and lengths.max() > width:
        raise ConfigError(
            f"task {task}: an example of {lengths.max()} tokens (few-shot prompt and answer) "
            f"does not fit seq_len + 1 = {width}; raise data.seq_len or lower few_shot"
        )
    tokens = np.full((len(encoded), width), PAD_ID, dtype=np.int32)
    mask = np.zeros((len(encoded), width), dtype=bool)
    for row, (t, m) in enumerate(encoded):
        tokens[row, : len(t)] = t
        mask[row, : len(m)] = m
    return TaskBatch(tokens, mask, lengths)


def answer_correct(predicted: np.ndarray, batch: TaskBatch) -> np.ndarray:
    """(B,) bool: greedy exact match from one teacher-forced pass.

    predicted[:, t] is the model's most likely token after tokens[:, : t + 1] (argmax of the
    logits for target tokens[:, t + 1]). Greedy decoding reproduces the answer exactly iff every
    answer byte is the argmax given the true prefix, so no generation loop is needed.
    """
    targets, mask = batch.tokens[:, 1:], batch.answer_mask[:, 1:]
    return np.all((np.asarray(predicted) == targets) | ~mask, axis=1)


# ---------------------------------------------------------------- splits


def _hash64(prompts: Iterable[str]) -> np.ndarray:
    """Stable 64-bit hash of each prompt (BLAKE2b: independent of PYTHONHASHSEED)."""
    return np.array(
        [
            int.from_bytes(hashlib.blake2b(p.encode(), digest_size=8, person=_HASH_PERSON).digest())
            for p in prompts
        ],
        dtype=np.uint64,
    )


_EVAL_THRESHOLD = np.uint64(int(EVAL_SHARE * 2**64))


def is_eval_prompt(prompts: Iterable[str]) -> np.ndarray:
    """(n,) bool: which prompts are eval problems, for every task (see the module doc)."""
    return _hash64(prompts) < _EVAL_THRESHOLD


# ---------------------------------------------------------------- tasks


class Task:
    """A problem generator with a fixed train/eval split; subclasses define one kind.

    Subclasses set `kind` and `defaults` and implement `count` (the number of distinct
    problems), `_draw` (uniform problems, either split) and, for spaces of at most
    EXACT_SPLIT_LIMIT problems, `_enumerate` (every problem once).
    """

    kind: ClassVar[str]
    defaults: ClassVar[dict[str, Any]]

    def __init__(self, cfg: TaskConfig):
        self.cfg = cfg
        self.name = cfg.name
        unknown = sorted(set(cfg.params) - set(self.defaults))
        if unknown:
            raise ConfigError(
                f"task {cfg.name}: unknown params {unknown} for kind {self.kind} "
                f"(known: {sorted(self.defaults)})"
            )
        self.params: dict[str, Any] = {**self.defaults, **cfg.params}
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

    def eval_set(self) -> list[Query]:
        """The config's eval set: cfg.n_eval distinct eval problems with cfg.few_shot shots.

        Fewer when the eval split is smaller (e.g. 20 problems for 1-digit addition); report
        `resolution(len(eval_set))` beside accuracies measured on it.
        """
        rng = np.random.default_rng([self.cfg.seed, _EVAL_STREAM])
        return self.queries("eval", rng, self.cfg.n_eval, self.cfg.few_shot, distinct=True)

    def batch(self, queries: Sequence[Query], seq_len: int) -> TaskBatch:
        return batch_examples([encode(q.example, q.shots) for q in queries], seq_len, self.name)

    def train_batch(self, seed: int, step: int, batch_size: int, seq_len: int) -> TaskBatch:
        """Fine-tuning batch `step`: rows of solved train-split examples back to back, as many
        whole examples as fit in seq_len + 1 tokens, with the loss on every answer.

        Every answer of every row is trained on (the earlier examples of a row are the later
        ones' shots), so a row of 128 bytes teaches about 128 / (example length) answers rather
        than one. A pure function of (seed, step, batch_size, seq_len), like a corpus's
        train_batch, so a resumed fine-tuning run sees exactly the data it would have seen.
        """
        rng = np.random.default_rng([seed, _TRAIN_STREAM, step])
        width = seq_len + 1
        chunk = batch_size * max(1, math.ceil(width / self.mean_text_len))
        examples = (encode(e) for _ in itertools.count() for e in self.sample("train", rng, chunk))
        rows, pending = [], next(examples)
        for _ in range(batch_size):
            parts, used = [pending], len(pending[0])  # one example at least (else ConfigError)
            for pending in examples:
                if used + len(pending[0]) > width:
                    break  # it starts the next row
                parts.append(pending)
                used += len(pending[0])
            rows.append(tuple(np.concatenate(column) for column in zip(*parts, strict=True)))
        return batch_examples(rows, seq_len, self.name)

    @cached_property
    def mean_text_len(self) -> float:
        """Mean bytes of one solved example (from a fixed sample): sizes rows of examples."""
        rng = np.random.default_rng(0)
        return float(np.mean([len(e.text) for e in self.sample("train", rng, 256)]))


TASKS: dict[str, type[Task]] = {}


def register(cls: type[Task]) -> type[Task]:
    TASKS[cls.kind] = cls
    return cls


def _strings(symbols: np.ndarray) -> list[str]:
    """Rows of an (n, L) uint8 array of ASCII codes as strings."""
    n, length = symbols.shape
    flat = np.ascontiguousarray(symbols).tobytes().decode("ascii")
    return [flat[i * length : (i + 1) * length] for i in range(n)]


class _Binary(Task):
    """Problems a ∘ b with a in [0, hi_a) and b in [0, hi_b): an integer index per problem."""

    def bounds(self) -> tuple[int, int]:
        raise NotImplementedError

    def example(self, a: int, b: int) -> Example:
        raise NotImplementedError

    def count(self) -> int:
        hi_a, hi_b = self.bounds()
        return hi_a * hi_b

    def _draw(self, rng: np.random.Generator, n: int) -> list[Example]:
        hi_a, hi_b = self.bounds()
        a, b = rng.integers(0, hi_a, size=n), rng.integers(0, hi_b, size=n)
        # tolist() gives Python ints, so answers are exact at any size.
        return [self.example(x, y) for x, y in zip(a.tolist(), b.tolist(), strict=True)]

    def _enumerate(self) -> list[Example]:
        a, b = np.divmod(np.arange(self.count()), self.bounds()[1])
        return [self.example(x, y) for x, y in zip(a.tolist(), b.tolist(), strict=True)]


@register
class Addition(_Binary):
    """`"123+456="` -> `"579\\n"`, operands uniform in [0, 10^digits).

    With `reverse`, operands are zero-padded to `digits` and the sum, zero-padded to digits + 1,
    is written least significant digit first (`"123+456="` -> `"9750\\n"`): every answer digit
    then depends only on the operand digits at a fixed offset and the carry just written, the
    format in which small transformers learn addition (Lee et al. 2023, "Teaching Arithmetic to
    Small Transformers"). Every example has the same length, and its prompts (always `digits`
    wide) are distinct from the unpadded format's wherever an operand has fewer digits.
    """

    kind = "addition"
    defaults: ClassVar[dict[str, Any]] = {"digits": 3, "reverse": False}

    def _configure(self) -> None:
        self.digits = self._int("digits", 1, 18)  # operands drawn as int64
        self.reverse = self.params["reverse"]
        self._check(isinstance(self.reverse, bool), "reverse", "true or false")

    def bounds(self) -> tuple[int, int]:
        return 10**self.digits, 10**self.digits

    def example(self, a: int, b: int) -> Example:
        if self.reverse:
            width = self.digits
            total = str(a + b).zfill(width + 1)[::-1]
            return Example(f"{a:0{width}d}+{b:0{width}d}=", f"{total}{TERMINATOR}")
        return Example(f"{a}+{b}=", f"{a + b}{TERMINATOR}")


@register
class Multiplication(_Binary):
    """`"12*34="` -> `"408\\n"`, factors uniform in [0, 10^digits_a) and [0, 10^digits_b)."""

    kind = "multiplication"
    defaults: ClassVar[dict[str, Any]] = {"digits_a": 2, "digits_b": 2}

    def _configure(self) -> None:
        self.digits_a = self._int("digits_a", 1, 18)
        self.digits_b = self._int("digits_b", 1, 18)

    def bounds(self) -> tuple[int, int]:
        return 10**self.digits_a, 10**self.digits_b

    def example(self, a: int, b: int) -> Example:
        return Example(f"{a}*{b}=", f"{a * b}{TERMINATOR}")


_MOD_OPS: dict[str, Callable[[int, int], int]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
}


@register
class Modular(_Binary):
    """`"(50+60)%97="` -> `"13\\n"`, operands uniform in [0, modulus) (as in grokking)."""

    kind = "modular"
    defaults: ClassVar[dict[str, Any]] = {"modulus": 97, "op": "+"}

    def _configure(self) -> None:
        self.modulus = self._int("modulus", 2, 10**9)
        self.op = self.params["op"]
        self._check(self.op in _MOD_OPS, "op", f"one of {list(_MOD_OPS)}")

    def bounds(self) -> tuple[int, int]:
        return self.modulus, self.modulus

    def example(self, a: int, b: int) -> Example:
        value = _MOD_OPS[self.op](a, b) % self.modulus  # Python's % is never negative here
        return Example(f"({a}{self.op}{b})%{self.modulus}=", f"{value}{TERMINATOR}")


class _StringTask(Task):
    """Problems on a string of `length` symbols drawn uniformly from `alphabet`."""

    defaults: ClassVar[dict[str, Any]] = {"length": 8, "alphabet": LOWERCASE}

    def _configure(self) -> None:
        self.length = self._int("length", 1, 1024)
        self.symbols = self._alphabet()

    def example(self, s: str) -> Example:
        raise NotImplementedError

    def count(self) -> int:
        return len(self.symbols) ** self.length

    def _draw(self, rng: np.random.Generator, n: int) -> list[Example]:
        idx = rng.integers(0, len(self.symbols), size=(n, self.length))
        return [self.example(s) for s in _strings(self.symbols[idx])]

    def _enumerate(self) -> list[Example]:
        shape = (len(self.symbols),) * self.length
        idx = np.stack(np.unravel_index(np.arange(self.count()), shape), axis=1)
        return [self.example(s) for s in _strings(self.symbols[idx])]


@register
class Reverse(_StringTask):
    """`"rev:abcd="` -> `"dcba\\n"`."""

    kind = "reverse"

    def example(self, s: str) -> Example:
        return Example(f"rev:{s}=", f"{s[::-1]}{TERMINATOR}")


@register
class Copy(_StringTask):
    """`"copy:abcd="` -> `"abcd\\n"`."""

    kind = "copy"

    def example(self, s: str) -> Example:
        return Example(f"copy:{s}=", f"{s}{TERMINATOR}")


@register
class KVRetrieval(Task):
    """`"ab:xy,cd:zw,ef:gh|cd="` -> `"zw\\n"`: look one key up in the pairs listed before it.

    Keys within a context are distinct; values are uniform (they may repeat). The space is too
    large to enumerate for any useful setting, and smaller ones are refused.
    """

    kind = "kv_retrieval"
    defaults: ClassVar[dict[str, Any]] = {
        "n_pairs": 4,
        "key_len": 2,
        "value_len": 2,
        "alphabet": LOWERCASE,
    }

    def _configure(self) -> None:
        self.symbols = self._alphabet()
        self.key_len = self._int("key_len", 1, 64)
        self.value_len = self._int("value_len", 1, 64)
        self.n_keys = len(self.symbols) ** self.key_len
        self._check(self.n_keys < 2**62, "key_len", "small enough for alphabet^key_len < 2^62")
        self.n_pairs = self._int("n_pairs", 1, min(self.n_keys, 1024))
        self._check(
            self.count() > EXACT_SPLIT_LIMIT,
            "n_pairs",
            f"large enough (with key_len, value_len and alphabet) for more than "
            f"{EXACT_SPLIT_LIMIT} distinct problems",
        )

    def count(self) -> int:
        values = len(self.symbols) ** self.value_len
        return math.perm(self.n_keys, self.n_pairs) * values**self.n_pairs * self.n_pairs

    def _distinct_keys(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """(n, n_pairs) key codes, distinct within each row."""
        codes = rng.integers(0, self.n_keys, size=(n, self.n_pairs))
        repeats = (np.diff(np.sort(codes, axis=1), axis=1) == 0).any(axis=1)
        for row in np.flatnonzero(repeats):  # rare unless n_pairs is near n_keys
            codes[row] = rng.choice(self.n_keys, size=self.n_pairs, replace=False)
        return codes

    def _draw(self, rng: np.random.Generator, n: int) -> list[Example]:
        A, P = len(self.symbols), self.n_pairs
        codes = self._distinct_keys(rng, n)
        place = A ** np.arange(self.key_len - 1, -1, -1, dtype=np.int64)
        keys = _strings(self.symbols[(codes.reshape(-1, 1) // place) % A])
        values = _strings(self.symbols[rng.integers(0, A, size=(n * P, self.value_len))])
        query = rng.integers(0, P, size=n).tolist()
        out = []
        for i, q in enumerate(query):
            k, v = keys[i * P : (i + 1) * P], values[i * P : (i + 1) * P]
            pairs = ",".join(f"{a}:{b}" for a, b in zip(k, v, strict=True))
            out.append(Example(f"{pairs}|{k[q]}=", f"{v[q]}{TERMINATOR}"))
        return out


@register
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

    def __init__(self, cfg: TaskConfig):
        self.cfg, self.name = cfg, cfg.name
        unknown = sorted(set(cfg.params) - set(self.defaults))
        if unknown:
            raise ConfigError(
                f"task {cfg.name}: unknown params {unknown} for kind {self.kind} "
                f"(known: {sorted(self.defaults)})"
            )
        self.params = {**self.defaults, **cfg.params}
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

    def _ranks(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """(n, chain) fact indices (rank - 1), uniform over ranks [min_rank, max_rank]."""
        return rng.integers(self.min_rank - 1, self.max_rank, size=(n, self.chain))

    def eval_set(self) -> list[np.ndarray]:
        rng = np.random.default_rng([self.cfg.seed, _EVAL_STREAM])
        return list(self._ranks(rng, self.cfg.n_eval))

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
        rng = np.random.default_rng([seed, _TRAIN_STREAM, step])
        per_row = max(self.chain, (seq_len + 1) // self.world.segment_len)
        ranks = rng.integers(self.min_rank - 1, self.max_rank, size=(batch_size, per_row))
        return self.batch(list(ranks), seq_len)

    def sample(self, split: Split, rng: np.random.Generator, n: int) -> list[Example]:
        raise ConfigError(
            f"task {self.name}: facts are the corpus itself; they cannot be mixed into it"
        )


_WORLD_KEYS = tuple(f.name for f in dataclasses.fields(SyntheticConfig))


# ---------------------------------------------------------------- configs


def default_conf_dir() -> Path:
    """conf/task of a source checkout (next to src/), else of the working directory."""
    root = Path(__file__).resolve().parents[3]
    return (root if (root / "pyproject.toml").exists() else Path.cwd()) / "conf" / "task"


def available_tasks(conf_dir: Path | None = None) -> list[str]:
    """Names of the task configs in conf_dir (conf/task by default)."""
    return sorted(p.stem for p in (conf_dir or default_conf_dir()).glob("*.yaml"))


def _load_task_yaml(path: Path) -> TaskConfig:
    try:
        loaded = OmegaConf.load(path)
        if "name" not in loaded:  # a config is named by its file unless it says otherwise
            loaded.name = path.stem
        cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(TaskConfig), loaded))
    except OmegaConfBaseException as err:
        raise ConfigError(f"{path}: not a task config ({err})".replace("\n", " ")) from err
    assert isinstance(cfg, TaskConfig)
    return cfg


def task_config(name: str, conf_dir: Path | None = None, key: str = "task") -> TaskConfig:
    """The TaskConfig of conf/task/<name>.yaml, or of kind `name` with its default params.

    `key` names the config entry that held `name` in the ConfigError for an unknown task.
    """
    folder = conf_dir or default_conf_dir()
    path = folder / f"{name}.yaml"
    if isinstance(name, str) and _SAFE_NAME.match(name) and path.is_file():
        return _load_task_yaml(path)
    if name in TASKS:
        return TaskConfig(name=name, kind=name, params={})
    names = ", ".join(available_tasks(folder))
    raise ConfigError(
        f"{key}={name!r} is neither a task config in {folder} ({names}) "
        f"nor a task kind ({', '.join(TASKS)})"
    )


def build_task(cfg: TaskConfig) -> Task:
    """The task a config describes; ConfigError naming the task and key if it cannot work."""
    if cfg.kind not in TASKS:
        raise ConfigError(f"task {cfg.name}: kind={cfg.kind!r} is not one of {list(TASKS)}")
    if not (isinstance(cfg.n_eval, int) and cfg.n_eval >= 1):
        raise ConfigError(f"task {cfg.name}: n_eval={cfg.n_eval!r} must be a positive integer")
    if not (isinstance(cfg.few_shot, int) and cfg.few_shot >= 0):
        raise ConfigError(f"task {cfg.name}: few_shot={cfg.few_shot!r} must be an integer >= 0")
    if not isinstance(cfg.params, Mapping):
        raise ConfigError(f"task {cfg.name}: params={cfg.params!r} must be a mapping")
    return TASKS[cfg.kind](cfg)


__all__ = [
    "EVAL_SHARE",
    "EXACT_SPLIT_LIMIT",
    "PAD_ID",
    "TASKS",
    "TERMINATOR",
    "Example",
    "Query",
    "Task",
    "TaskBatch",
    "answer_correct",
    "available_tasks",
    "batch_examples",
    "build_task",
    "default_conf_dir",
    "encode",
    "is_eval_prompt",
    "resolution",
    "scorer",
    "task_config",
]
