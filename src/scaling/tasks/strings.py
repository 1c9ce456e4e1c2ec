"""String tasks: reverse and copy a string, and key-value retrieval from the context."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from scaling.tasks.examples import TERMINATOR, Example
from scaling.tasks.splits import EXACT_SPLIT_LIMIT
from scaling.tasks.task import LOWERCASE, Task


def _strings(symbols: np.ndarray) -> list[str]:
    """Rows of an (n, L) uint8 array of ASCII codes as strings."""
    n, length = symbols.shape
    flat = np.ascontiguousarray(symbols).tobytes().decode("ascii")
    return [flat[i * length : (i + 1) * length] for i in range(n)]


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


class Reverse(_StringTask):
    """`"rev:abcd="` -> `"dcba\\n"`."""

    kind = "reverse"

    def example(self, s: str) -> Example:
        return Example(f"rev:{s}=", f"{s[::-1]}{TERMINATOR}")


class Copy(_StringTask):
    """`"copy:abcd="` -> `"abcd\\n"`."""

    kind = "copy"

    def example(self, s: str) -> Example:
        return Example(f"copy:{s}=", f"{s}{TERMINATOR}")


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
