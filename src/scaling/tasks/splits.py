"""The train/eval split of every task: a problem is eval when its prompt's hash is low.

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
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Literal

import numpy as np

EVAL_SHARE = 0.2  # share of every problem space held out for evaluation (fixed: see above)
EXACT_SPLIT_LIMIT = 2**16  # spaces up to this size are enumerated and split exactly
_HASH_PERSON = b"scaling.tasks"  # salts the split hash: unrelated to any other use of BLAKE2b

Split = Literal["train", "eval"]


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
