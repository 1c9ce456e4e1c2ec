"""data.corpus=hf: rows of a `datasets.load_dataset` dataset (optional extra `scaling[hf]`).

cfg.paths are local data files handed to the builder as data_files (split into train and
validation by file like the text corpus); with no paths the builder is loaded alone (a hub
name) and the last val_fraction of its rows' bytes validates. Each row is one document.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scaling.config import ConfigError, DataConfig
from scaling.data.batching import TokenCorpus, name_files
from scaling.data.cache import cache_root
from scaling.data.text import TextSplit, corpus_from_split, split_files, tail_split, to_stream


def _load_rows(cfg: DataConfig, files: list[Path] | None) -> list[str]:
    try:
        import datasets
    except ImportError:
        raise ConfigError(
            "data.corpus=hf needs the optional `datasets` package: pip install scaling[hf]"
        ) from None
    source = name_files([str(f) for f in files or []], f"data.hf_builder={cfg.hf_builder!r}")
    kwargs: dict[str, Any] = {
        "split": cfg.hf_split,
        "cache_dir": str(cache_root(cfg.cache_dir) / "hf"),
    }
    if files is not None:
        kwargs["data_files"] = [str(f) for f in files]
    try:
        ds = datasets.load_dataset(cfg.hf_builder, **kwargs)
    except Exception as e:  # datasets raises many types; keep its message on one line
        reason = " ".join(str(e).split())[:300]
        raise ConfigError(
            f"{source}: datasets.load_dataset failed: {type(e).__name__}: {reason}"
        ) from None
    if cfg.hf_text_field not in ds.column_names:
        raise ConfigError(
            f"{source}: data.hf_text_field={cfg.hf_text_field!r} is not a column; "
            f"columns are {ds.column_names}"
        )
    rows = list(ds[cfg.hf_text_field])
    for i, row in enumerate(rows):  # per row, not per token: rows must be text without NUL
        if not isinstance(row, str):
            raise ConfigError(f"{source}: row {i} of {cfg.hf_text_field!r} is not text: {row!r}")
        if "\0" in row:
            raise ConfigError(f"{source}: row {i} of {cfg.hf_text_field!r} contains a NUL byte")
    return rows


def build_hf(cfg: DataConfig, seed: int) -> TokenCorpus:
    if cfg.paths:
        split = split_files(cfg, lambda files: _load_rows(cfg, files))
    else:
        if cfg.val_paths:
            raise ConfigError("data.val_paths needs data.paths for data.corpus=hf")
        train, val = tail_split(to_stream(_load_rows(cfg, None)), cfg.val_fraction)
        names = [cfg.hf_builder]
        split = TextSplit(train, val, names, names, {"split": "tail of the dataset"})
    split.info.update(hf_builder=cfg.hf_builder, hf_split=cfg.hf_split)
    return corpus_from_split("hf", split, cfg, seed)
