"""Task examples as byte text: the format, exact-match scoring, encoding and batching.

Every example is byte-level ASCII text, matching the default byte tokenizer: a prompt such as
`"12+34="` and an answer such as `"46\\n"`. Answers end with the terminator `"\\n"` and prompts
never contain it, so exact match is well defined (`scorer`) and solved examples read one per
line. A k-shot prompt is k solved TRAIN-split examples followed by the query's prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from scaling.config import ConfigError

TERMINATOR = "\n"  # ends every answer; prompts never contain it
PAD_ID = 0  # NUL: never a byte of task text


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
