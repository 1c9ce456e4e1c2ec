"""Deterministic, resumable batches from finite token arrays.

Training examples are windows of T+1 tokens at stride T over the concatenated training tokens,
so window w predicts the T positions w*T+1 .. w*T+T and no two windows predict the same
position. Global sample i = step*B + row is window perm_e[i mod W] of epoch e = i div W, with
perm_e a permutation drawn from default_rng([seed, e]): any step is produced without replaying
the ones before it.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from scaling.config import ConfigError

_LISTED_FILES = 32  # describe() lists the files when there are at most this many


def n_windows(n_tokens: int, seq_len: int) -> int:
    return max(0, (n_tokens - 1) // seq_len)


class TokenStore:
    """1-D token arrays (in memory or memory-mapped) read as one concatenated sequence."""

    def __init__(self, parts: list[np.ndarray]) -> None:
        self.parts = [p for p in parts if len(p)]
        self.bounds = np.cumsum([0] + [len(p) for p in self.parts])

    def __len__(self) -> int:
        return int(self.bounds[-1])

    def windows(self, starts: np.ndarray, length: int) -> np.ndarray:
        """(len(starts), length) int32: the tokens starting at each global position."""
        idx = np.asarray(starts, dtype=np.int64)[:, None] + np.arange(length)
        if len(self.parts) == 1:
            return np.asarray(self.parts[0][idx], dtype=np.int32)
        part = np.searchsorted(self.bounds, idx, side="right") - 1
        out = np.empty(idx.shape, dtype=np.int32)
        for p in np.unique(part):  # one gather per array touched, windows may span two
            mask = part == p
            out[mask] = self.parts[p][idx[mask] - self.bounds[p]]
        return out


def name_files(files: list[str], default: str, root: str = "") -> str:
    """Files for an error message: all when few, else the first and a count."""
    if not files:
        return default
    shown = [os.path.join(root, f) for f in files[:3]]
    if len(files) <= 3:
        return ", ".join(shown)
    return f"{shown[0]}, ... ({len(files)} files)"


class TokenCorpus:
    """A finite corpus: training and validation token arrays plus their provenance."""

    def __init__(
        self,
        name: str,
        tokenizer: str,
        vocab_size: int,
        train: TokenStore,
        val: TokenStore,
        seed: int,
        seq_len: int,
        train_files: list[str],
        val_files: list[str],
        val_bytes: int | None,
        info: dict[str, Any] | None = None,
    ) -> None:
        self.name, self.tokenizer, self.vocab_size = name, tokenizer, vocab_size
        self.train, self.val = train, val
        self.seed, self.seq_len = seed, seq_len
        self.train_files, self.val_files = train_files, val_files
        self.val_bytes = val_bytes
        self.info = info or {}
        self._perms: dict[tuple[int, int], np.ndarray] = {}

    def _permutation(self, epoch: int, windows: int) -> np.ndarray:
        key = (epoch, windows)
        if key not in self._perms:
            if len(self._perms) >= 2:  # a batch spans at most two epochs once require() passed
                self._perms.pop(next(iter(self._perms)))
            self._perms[key] = np.random.default_rng([self.seed, epoch]).permutation(windows)
        return self._perms[key]

    def train_batch(self, step: int, batch_size: int, seq_len: int) -> np.ndarray:
        windows = n_windows(len(self.train), seq_len)
        if windows == 0:
            self.require(batch_size, seq_len)
        sample = step * batch_size + np.arange(batch_size, dtype=np.int64)
        epoch, pos = np.divmod(sample, windows)
        chosen = np.empty(batch_size, dtype=np.int64)
        for e in np.unique(epoch):
            mask = epoch == e
            chosen[mask] = self._permutation(int(e), windows)[pos[mask]]
        return self.train.windows(chosen * seq_len, seq_len + 1)

    def val_batches(self, n_batches: int, batch_size: int, seq_len: int) -> list[np.ndarray]:
        """Windows spaced evenly over the whole validation split, so that every part of it (every
        file) is scored, not only its start; all of them when the split holds no more."""
        windows = n_windows(len(self.val), seq_len)
        n = min(n_batches, windows // batch_size)
        chosen = np.arange(n * batch_size) * windows // max(n * batch_size, 1)
        tokens_ExTp1 = self.val.windows(chosen * seq_len, seq_len + 1)
        return list(tokens_ExTp1.reshape(n, batch_size, seq_len + 1))

    def entropy_nats_per_token(self, seq_len: int) -> float | None:
        return None

    def bytes_per_token(self) -> float | None:
        if self.val_bytes is None or len(self.val) == 0:
            return None
        return self.val_bytes / len(self.val)

    def token_accounting(self, steps: int, batch_size: int, seq_len: int) -> dict[str, Any]:
        windows = n_windows(len(self.train), seq_len)
        samples = steps * batch_size
        # Windows are distinct within an epoch and predict disjoint positions, so the positions
        # covered are exactly min(samples, windows) * T.
        return {
            "tokens_seen": samples * seq_len,
            "unique_tokens": min(samples, windows) * seq_len,
            "epochs": samples / windows if windows else float("inf"),
        }

    def require(self, batch_size: int, seq_len: int) -> None:
        need = batch_size * seq_len + 1  # tokens for batch_size windows at stride seq_len
        for split, store, files in (
            ("training", self.train, self.train_files),
            ("validation", self.val, self.val_files),
        ):
            if n_windows(len(store), seq_len) < batch_size:
                where = name_files(files, self.name, self.info.get("root", ""))
                raise ConfigError(
                    f"{where}: the {split} split has {len(store)} tokens, "
                    f"fewer than the {need} one batch of {batch_size}x{seq_len + 1} needs"
                )

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "corpus": self.name,
            "tokenizer": self.tokenizer,
            "vocab_size": self.vocab_size,
            "seq_len": self.seq_len,
            "train_tokens": len(self.train),
            "val_tokens": len(self.val),
            # The validation sample (scaling.train.evaluate) is spaced evenly over these windows.
            "val_windows": n_windows(len(self.val), self.seq_len),
            "n_train_files": len(self.train_files),
            "n_val_files": len(self.val_files),
            "bytes_per_token": self.bytes_per_token(),
        }
        if len(self.train_files) + len(self.val_files) <= _LISTED_FILES:
            out["train_files"] = list(self.train_files)
            out["val_files"] = list(self.val_files)
        return {**out, **self.info}
