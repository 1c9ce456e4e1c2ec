"""The embedded corpus: Zipf-distributed facts with an exactly known entropy.

A world of `n_facts` facts is drawn from `world_seed`. Fact k has a distinct key of `key_len`
key symbols and a fixed value string of `fact_len` value symbols; it occurs with probability
p_k ∝ (k+1)^-zipf_exponent, the Zipf-distributed "quanta" of Michaud et al. (2023). A stream is
a run of independent segments [key][value]; each value symbol is replaced, with probability
`noise`, by a uniform draw from the value alphabet. Every example starts on a segment boundary,
so the prefix always determines the latent fact and the Bayes-optimal loss is known exactly:
key positions carry the conditional entropies of the key digits, value positions the noise
entropy. See docs/synthetic_corpus.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from scaling.config import ConfigError, SyntheticConfig

TRAIN_STREAM, VAL_STREAM = 0, 1
KEY_OFFSET = 0  # key symbols are bytes [0, key_alphabet)


def key_length(n_facts: int, key_alphabet: int) -> int:
    """Fewest key symbols giving n_facts distinct keys (integer arithmetic, no log rounding)."""
    length = 1
    while key_alphabet**length < n_facts:
        length += 1
    return length


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def _lookup(sorted_codes: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of queries in sorted_codes, and whether each was found."""
    pos = np.minimum(np.searchsorted(sorted_codes, queries), len(sorted_codes) - 1)
    return pos, sorted_codes[pos] == queries


@dataclass(frozen=True, eq=False)
class World:
    """The fact table drawn from a SyntheticConfig, with its exact entropies."""

    cfg: SyntheticConfig
    key_len: int
    segments: np.ndarray  # (n_facts, key_len + fact_len) uint8 in rank order: key then value
    cdf: np.ndarray  # cumulative Zipf probabilities in rank order
    key_codes: np.ndarray  # sorted integer key codes (base key_alphabet)
    key_rank: np.ndarray  # rank of the fact holding key_codes[i]
    prefix_codes: tuple[np.ndarray, ...]  # per key digit j: sorted codes of (j+1)-digit prefixes
    prefix_logmass: tuple[np.ndarray, ...]  # log probability of each of those prefixes
    key_entropies: np.ndarray  # H(digit_j | digits_<j) in nats, j = 0..key_len-1
    value_entropy: float  # entropy of one noisy value symbol in nats

    @property
    def segment_len(self) -> int:
        return self.key_len + self.cfg.fact_len

    @property
    def value_offset(self) -> int:
        return KEY_OFFSET + self.cfg.key_alphabet

    @property
    def zipf_entropy(self) -> float:
        return float(self.key_entropies.sum())

    def role_entropies(self) -> np.ndarray:
        """Entropy in nats of each position role within a segment."""
        values = np.full(self.cfg.fact_len, self.value_entropy)
        return np.concatenate([self.key_entropies, values])

    def entropy_nats_per_token(self, seq_len: int) -> float:
        """Bayes-optimal loss averaged over the predicted positions t = 1..seq_len."""
        roles = np.arange(1, seq_len + 1) % self.segment_len
        return float(self.role_entropies()[roles].mean())

    def sample(self, rng: np.random.Generator, batch_size: int, seq_len: int) -> np.ndarray:
        """(batch_size, seq_len + 1) int32 tokens: whole segments from a boundary, truncated."""
        c, S, L = self.cfg, self.segment_len, self.key_len
        n_seg = -(-(seq_len + 1) // S)
        # Inverse-CDF sampling rather than rng.choice(p=...), whose algorithm numpy may change.
        u = rng.random((batch_size, n_seg))
        ranks = np.minimum(np.searchsorted(self.cdf, u, side="right"), c.n_facts - 1)
        seg = self.segments[ranks]  # (B, n_seg, S) uint8 copy
        if c.noise > 0:
            hit = rng.random((batch_size, n_seg, c.fact_len)) < c.noise
            draw = rng.integers(0, c.value_alphabet, size=hit.shape, dtype=np.uint8)
            seg[..., L:] = np.where(hit, draw + np.uint8(self.value_offset), seg[..., L:])
        return seg.reshape(batch_size, n_seg * S)[:, : seq_len + 1].astype(np.int32)

    def true_logprobs(self, batch: np.ndarray) -> np.ndarray:
        """(B, T) log p(x_t | x_<t) under the true process for t = 1..T of a (B, T+1) batch.

        The batch must start on a segment boundary (as sampled); impossible tokens get -inf.
        """
        c, S, L = self.cfg, self.segment_len, self.key_len
        batch = np.asarray(batch, dtype=np.int64)
        n, width = batch.shape
        n_seg = -(-width // S)
        padded = np.full((n, n_seg * S), KEY_OFFSET, dtype=np.int64)
        padded[:, :width] = batch
        seg = padded.reshape(n, n_seg, S)
        out = np.empty(seg.shape, dtype=np.float64)

        digits = seg[..., :L] - KEY_OFFSET
        ok = (digits >= 0) & (digits < c.key_alphabet)
        code = np.zeros((n, n_seg), dtype=np.int64)
        prev = np.zeros((n, n_seg))
        valid = np.ones((n, n_seg), dtype=bool)
        for j in range(L):  # key_len steps, each vectorised over the batch
            code = code * c.key_alphabet + np.where(ok[..., j], digits[..., j], 0)
            pos, found = _lookup(self.prefix_codes[j], code)
            valid &= found & ok[..., j]
            logmass = np.where(valid, self.prefix_logmass[j][pos], -np.inf)
            out[..., j] = np.where(valid, logmass - np.where(valid, prev, 0.0), -np.inf)
            prev = logmass

        pos, found = _lookup(self.key_codes, code)
        values = self.segments[self.key_rank[pos], L:].astype(np.int64)  # (B, n_seg, fact_len)
        observed = seg[..., L:]
        eps, V = c.noise, c.value_alphabet
        with np.errstate(divide="ignore"):
            log_hit, log_miss = math.log(1 - eps + eps / V), np.log(eps / V)
        in_range = (observed >= self.value_offset) & (observed < self.value_offset + V)
        logp = np.where(observed == values, log_hit, np.where(in_range, log_miss, -np.inf))
        out[..., L:] = np.where((valid & found)[..., None], logp, -np.inf)
        return out.reshape(n, n_seg * S)[:, 1:width]

    def describe(self, seq_len: int) -> dict[str, Any]:
        c = self.cfg
        h = self.entropy_nats_per_token(seq_len)
        return {
            "n_facts": c.n_facts,
            "zipf_exponent": c.zipf_exponent,
            "fact_len": c.fact_len,
            "noise": c.noise,
            "key_alphabet": c.key_alphabet,
            "value_alphabet": c.value_alphabet,
            "world_seed": c.world_seed,
            "key_len": self.key_len,
            "segment_len": self.segment_len,
            "key_bytes": [KEY_OFFSET, KEY_OFFSET + c.key_alphabet - 1],
            "value_bytes": [self.value_offset, self.value_offset + c.value_alphabet - 1],
            "zipf_entropy_nats": self.zipf_entropy,
            "key_entropy_nats": [float(x) for x in self.key_entropies],
            "value_entropy_nats": self.value_entropy,
            "entropy_nats_per_segment": float(self.role_entropies().sum()),
            "entropy_nats_per_token": h,
            "entropy_bits_per_byte": h / math.log(2),
        }


def check_config(c: SyntheticConfig) -> None:
    """The checks build_world needs even when config.validate was not called."""
    for key in ("n_facts", "fact_len", "key_alphabet", "value_alphabet"):
        value = getattr(c, key)
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"data.synthetic.{key}={value!r} must be a positive integer")
    if not c.zipf_exponent > 0:
        raise ConfigError(f"data.synthetic.zipf_exponent={c.zipf_exponent} must be positive")
    if not 0 <= c.noise <= 1:
        raise ConfigError(f"data.synthetic.noise={c.noise} must be in [0, 1]")
    if c.key_alphabet + c.value_alphabet > 256:
        raise ConfigError(
            "data.synthetic.key_alphabet + value_alphabet must fit in 256 byte values, got "
            f"{c.key_alphabet} + {c.value_alphabet}"
        )
    if c.key_alphabet < 2 and c.n_facts > 1:
        raise ConfigError(
            f"data.synthetic.key_alphabet=1 cannot give n_facts={c.n_facts} distinct keys"
        )


def build_world(c: SyntheticConfig) -> World:
    check_config(c)
    K, V, L = c.key_alphabet, c.value_alphabet, key_length(c.n_facts, c.key_alphabet)
    rng = np.random.default_rng([c.world_seed])
    # Distinct keys in random order: fact k (rank k) gets the k-th key, so the Zipf ranking is
    # a random permutation of the key space.
    codes = rng.choice(K**L, size=c.n_facts, replace=False).astype(np.int64)
    values = rng.integers(0, V, size=(c.n_facts, c.fact_len), dtype=np.uint8)
    place = K ** np.arange(L - 1, -1, -1, dtype=np.int64)
    key_digits = (codes[:, None] // place) % K
    segments = np.concatenate(
        [(key_digits + KEY_OFFSET).astype(np.uint8), values + np.uint8(KEY_OFFSET + K)], axis=1
    )

    p = np.arange(1, c.n_facts + 1, dtype=np.float64) ** -c.zipf_exponent
    p /= p.sum()
    cdf = np.cumsum(p)
    cdf /= cdf[-1]

    order = np.argsort(codes)
    key_codes, p_sorted = codes[order], p[order]
    prefix_codes, prefix_logmass, joint = [], [], [0.0]
    for j in range(L):  # marginalise over key prefixes: H(d_j | d_<j) = H(d_<=j) - H(d_<j)
        prefix = key_codes // K ** (L - 1 - j)
        uniq, start = np.unique(prefix, return_index=True)  # prefix is sorted: runs are contiguous
        mass = np.add.reduceat(p_sorted, start)
        prefix_codes.append(uniq)
        prefix_logmass.append(np.log(mass))
        joint.append(_entropy(mass))
    key_entropies = np.diff(np.array(joint))

    eps = c.noise
    q, r = 1 - eps + eps / V, eps / V  # the true symbol's probability, and each other symbol's
    value_entropy = _entropy(np.array([q])) + (V - 1) * _entropy(np.array([r]))
    return World(
        cfg=c,
        key_len=L,
        segments=segments,
        cdf=cdf,
        key_codes=key_codes,
        key_rank=order,
        prefix_codes=tuple(prefix_codes),
        prefix_logmass=tuple(prefix_logmass),
        key_entropies=key_entropies,
        value_entropy=value_entropy,
    )


class SyntheticCorpus:
    """Unlimited byte-token corpus; batch `step` is a pure function of (seed, step, B, T)."""

    name = "synthetic"
    tokenizer = "byte"
    vocab_size = 256

    def __init__(self, cfg: SyntheticConfig, seed: int, seq_len: int) -> None:
        self.world = build_world(cfg)
        self.seed = seed
        self.seq_len = seq_len

    def train_batch(self, step: int, batch_size: int, seq_len: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, TRAIN_STREAM, step])
        return self.world.sample(rng, batch_size, seq_len)

    def val_batches(self, n_batches: int, batch_size: int, seq_len: int) -> list[np.ndarray]:
        # Keyed by the world seed, not the run seed: every run on a world scores the same set.
        seed = self.world.cfg.world_seed
        rngs = (np.random.default_rng([seed, VAL_STREAM, k]) for k in range(n_batches))
        return [self.world.sample(rng, batch_size, seq_len) for rng in rngs]

    def entropy_nats_per_token(self, seq_len: int) -> float | None:
        return self.world.entropy_nats_per_token(seq_len)

    def true_logprobs(self, batch: np.ndarray) -> np.ndarray:
        return self.world.true_logprobs(batch)

    def bytes_per_token(self) -> float | None:
        return 1.0

    def token_accounting(self, steps: int, batch_size: int, seq_len: int) -> dict[str, Any]:
        seen = steps * batch_size * seq_len
        return {"tokens_seen": seen, "unique_tokens": seen, "epochs": None}  # always fresh

    def require(self, batch_size: int, seq_len: int) -> None:
        return None  # unlimited: any batch fits

    def describe(self) -> dict[str, Any]:
        return {
            "corpus": self.name,
            "tokenizer": self.tokenizer,
            "vocab_size": self.vocab_size,
            "seq_len": self.seq_len,
            "train_tokens": None,
            "val_tokens": None,
            "files": [],
            "bytes_per_token": 1.0,
            **self.world.describe(self.seq_len),
        }
