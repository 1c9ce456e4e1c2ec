"""Text corpora: documents -> train/val streams -> tokens (shared by text, pystdlib and hf)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scaling.config import ConfigError, DataConfig
from scaling.data.batching import TokenCorpus, TokenStore
from scaling.data.cache import digest
from scaling.data.files import plan_split, read_text
from scaling.data.tokenizers import (
    DOC_END,
    BpeTokenizer,
    ByteTokenizer,
    bpe_tokenizer,
    encode_cached,
)


@dataclass
class TextSplit:
    """Train and validation streams: documents each terminated by DOC_END."""

    train: str
    val: str
    train_files: list[str]
    val_files: list[str]
    info: dict[str, Any] = field(default_factory=dict)


def to_stream(docs: list[str]) -> str:
    return "".join(doc + DOC_END for doc in docs)


def tail_split(stream: str, val_fraction: float) -> tuple[str, str]:
    """(train, val): val is the last val_fraction of the UTF-8 bytes, cut at a char boundary."""
    data = stream.encode("utf-8")
    cut = len(data) - round(len(data) * val_fraction)
    while cut < len(data) and data[cut] & 0xC0 == 0x80:  # continuation byte: move to the next char
        cut += 1
    return data[:cut].decode("utf-8"), data[cut:].decode("utf-8")


def split_files(cfg: DataConfig, load: Callable[[list[Path]], list[str]]) -> TextSplit:
    """Train/val streams of cfg.paths, documents read by `load` (see files.plan_split)."""
    plan = plan_split(cfg.paths, cfg.val_paths, cfg.val_fraction)
    if plan.single:
        train, val = tail_split(to_stream(load(plan.train)), cfg.val_fraction)
        info = {"root": plan.root, "split": "tail of one file"}
        return TextSplit(train, val, plan.train_names, plan.val_names, info)
    train, val = to_stream(load(plan.train)), to_stream(load(plan.val))
    return TextSplit(train, val, plan.train_names, plan.val_names, {"root": plan.root})


def corpus_from_split(name: str, split: TextSplit, cfg: DataConfig, seed: int) -> TokenCorpus:
    """Tokenise both streams; a BPE is trained on the training stream only."""
    train_key = digest(["stream-v1", *split.train_files, split.train])
    val_key = digest(["stream-v1", *split.val_files, split.val])
    info: dict[str, Any] = {**split.info, "train_digest": train_key, "val_digest": val_key}
    tok: ByteTokenizer | BpeTokenizer
    if cfg.tokenizer == "bpe":
        tok = bpe_tokenizer(split.train, train_key, cfg.bpe_vocab_size, cfg.cache_dir)
        info["bpe_trained_vocab_size"] = tok.trained_vocab_size
    elif cfg.tokenizer == "byte":
        tok = ByteTokenizer()
    else:
        raise ConfigError(f"data.tokenizer={cfg.tokenizer!r} is not one of ['byte', 'bpe']")
    return TokenCorpus(
        name=name,
        tokenizer=tok.name,
        vocab_size=tok.vocab_size,
        train=TokenStore([encode_cached(tok, split.train, train_key, cfg.cache_dir)]),
        val=TokenStore([encode_cached(tok, split.val, val_key, cfg.cache_dir)]),
        seed=seed,
        seq_len=cfg.seq_len,
        train_files=split.train_files,
        val_files=split.val_files,
        val_bytes=len(split.val.encode("utf-8")),
        info=info,
    )


def build_text(cfg: DataConfig, seed: int) -> TokenCorpus:
    """data.corpus=text: UTF-8 files (strict), one document per file."""
    if not cfg.paths:
        raise ConfigError("data.corpus=text needs data.paths (files or globs)")
    split = split_files(cfg, lambda paths: [read_text(p) for p in paths])
    return corpus_from_split("text", split, cfg, seed)
