"""Byte-level and BPE tokenisers over a document stream.

A stream is text whose documents each end in NUL ("\\0"); corpus readers reject NUL in real
text, so NUL is free to mark document ends. The byte tokeniser keeps it as byte 0; BPE maps it
to its end-of-text token. Either way one separator is one token and one byte, which keeps
bits per byte comparable between the two tokenisers.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from scaling.data.cache import cache_root, digest, load_npy, save_npy
from scaling.records import atomic_write

if TYPE_CHECKING:  # the optional `tokenizers` library is imported only to train or load one
    from tokenizers import Tokenizer as HFTokenizer

EOT = "<|endoftext|>"
DOC_END = "\0"


class Tokenizer(Protocol):
    name: str
    vocab_size: int
    key: str  # identifies the tokeniser in cache keys

    def encode_stream(self, text: str) -> np.ndarray: ...


class ByteTokenizer:
    """UTF-8 bytes as tokens (vocab 256): bits per byte is loss / ln 2 exactly."""

    name = "byte"
    vocab_size = 256
    key = "byte"

    def encode_stream(self, text: str) -> np.ndarray:
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


class BpeTokenizer:
    """A byte-level BPE (the `tokenizers` library) with an end-of-text token at id 0."""

    name = "bpe"

    def __init__(self, tokenizer: HFTokenizer, vocab_size: int, key: str) -> None:
        self._tok = tokenizer
        self.key = key
        self.vocab_size = vocab_size  # the configured size; trained ids are all below it
        self.trained_vocab_size = tokenizer.get_vocab_size()
        self.eot_id = tokenizer.token_to_id(EOT)

    def encode_stream(self, text: str) -> np.ndarray:
        docs = text.split(DOC_END)  # the last piece is "" when the stream ends on a document end
        encoded = self._tok.encode_batch(docs, add_special_tokens=False)
        eot = np.array([self.eot_id], dtype=np.int64)
        parts: list[np.ndarray] = []
        for i, enc in enumerate(encoded):  # one iteration per document, not per token
            parts.append(np.asarray(enc.ids, dtype=np.int64))
            if i < len(docs) - 1:
                parts.append(eot)
        ids = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        return ids.astype(np.uint16 if self.vocab_size <= 2**16 else np.uint32)


def _train_bpe(train_text: str, vocab_size: int) -> HFTokenizer:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT],  # id 0
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte encodable
        show_progress=False,
    )
    docs = [d for d in train_text.split(DOC_END) if d]
    tok.train_from_iterator(docs, trainer=trainer, length=len(docs))
    return tok


def bpe_tokenizer(train_text: str, train_key: str, vocab_size: int, cache_dir: str) -> BpeTokenizer:
    """The BPE trained on the training stream only, from the cache when it has been trained."""
    from tokenizers import Tokenizer

    key = digest(["bpe-v1", train_key, str(vocab_size)])
    path = cache_root(cache_dir) / "bpe" / f"{key}.json"
    if path.exists():
        try:
            return BpeTokenizer(Tokenizer.from_file(str(path)), vocab_size, key)
        except Exception:  # a corrupt cache entry: retrain below and overwrite it
            pass
    tok = _train_bpe(train_text, vocab_size)
    atomic_write(path, lambda tmp: tok.save(str(tmp)))
    return BpeTokenizer(tok, vocab_size, key)


def encode_cached(
    tokenizer: ByteTokenizer | BpeTokenizer, text: str, text_key: str, cache_dir: str
) -> np.ndarray:
    """Tokens of a stream; BPE results are cached as .npy (bytes are cheaper to recompute)."""
    if isinstance(tokenizer, ByteTokenizer):
        return tokenizer.encode_stream(text)
    key = digest(["tok-v1", tokenizer.key, text_key])
    path: Path = cache_root(cache_dir) / "tokens" / f"{key}.npy"
    ids = load_npy(path) if path.exists() else None
    if ids is None:
        ids = tokenizer.encode_stream(text)
        save_npy(path, ids)
    return ids
