"""Arithmetic tasks: addition, multiplication and modular arithmetic of uniform operands."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from scaling.tasks.examples import TERMINATOR, Example
from scaling.tasks.task import Task


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
