"""scaling.data: corpora, tokenisers, deterministic batching, exact synthetic entropy."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from scaling.config import ConfigError, DataConfig, SyntheticConfig
from scaling.data.build import build_corpus
from scaling.data.corpus import Corpus

TINY_WORLD = SyntheticConfig(
    n_facts=5, zipf_exponent=1.0, fact_len=2, noise=0.3, key_alphabet=2, value_alphabet=3
)


def synthetic(seed: int = 0, **world) -> Corpus:
    return build_corpus(DataConfig(synthetic=SyntheticConfig(**world)), seed)


def data_cfg(tmp_path: Path, **kw) -> DataConfig:
    return DataConfig(cache_dir=str(tmp_path / "cache"), **kw)


def write_docs(root: Path, n: int, size: int = 400, suffix: str = ".txt") -> list[Path]:
    """n text files, each its own marker repeated, so any token run reveals its file."""
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = root / f"doc{i:02d}{suffix}"
        path.write_text((f"<file {i:02d}> caf\u00e9 " * size)[:size])
        paths.append(path)
    return paths


def file_ids(tokens: np.ndarray) -> set[int]:
    text = bytes(np.asarray(tokens, dtype=np.uint8)).decode("utf-8", errors="ignore")
    starts = [i for i in range(len(text) - 7) if text.startswith("<file ", i)]  # whole markers
    return {int(text[i + 6 : i + 8]) for i in starts}


# ---------------------------------------------------------------- synthetic corpus


def test_synthetic_batches_are_deterministic_and_resumable():
    a, b = synthetic(seed=3), synthetic(seed=3)
    assert isinstance(a, Corpus)
    for step in (5, 0, 1000):  # any order: a batch depends on (seed, step, B, T) only
        x = a.train_batch(step, 4, 32)
        assert x.dtype == np.int32 and x.shape == (4, 33)
        np.testing.assert_array_equal(x, b.train_batch(step, 4, 32))
    assert not np.array_equal(a.train_batch(0, 4, 32), a.train_batch(1, 4, 32))
    assert not np.array_equal(a.train_batch(0, 4, 32), synthetic(seed=4).train_batch(0, 4, 32))
    val = a.val_batches(3, 4, 32)
    assert len(val) == 3
    for v, w in zip(val, a.val_batches(3, 4, 32), strict=True):
        np.testing.assert_array_equal(v, w)
    # The validation set is fixed per world, so runs with different seeds score the same data.
    np.testing.assert_array_equal(val[0], synthetic(seed=4).val_batches(1, 4, 32)[0])
    assert not any(np.array_equal(v, a.train_batch(k, 4, 32)) for k, v in enumerate(val))


def test_synthetic_batches_follow_segment_layout():
    corpus = synthetic(seed=0)
    world = corpus.world
    key_len, seg = world.key_len, world.segment_len
    assert (key_len, seg) == (4, 10)  # 32^4 = 2^20 keys
    x = corpus.train_batch(0, 8, 64)
    role = np.arange(65) % seg
    assert (x[:, role < key_len] < 32).all()  # key symbols: bytes [0, 32)
    assert ((x[:, role >= key_len] >= 32) & (x[:, role >= key_len] < 96)).all()


@pytest.mark.parametrize(
    ("n_facts", "alphabet", "length"), [(65536, 32, 4), (1024, 32, 2), (1025, 32, 3), (1, 2, 1)]
)
def test_key_length_is_exact(n_facts, alphabet, length):
    from scaling.data.synthetic import key_length

    assert key_length(n_facts, alphabet) == length


def test_default_world_describes_its_entropy():
    corpus = synthetic()
    d = corpus.describe()
    json.dumps(d)
    h = corpus.entropy_nats_per_token(128)
    assert d["entropy_nats_per_token"] == pytest.approx(h)
    assert d["entropy_bits_per_byte"] == pytest.approx(h / math.log(2))
    assert sum(d["key_entropy_nats"]) == pytest.approx(d["zipf_entropy_nats"])
    assert d["train_tokens"] is None and d["vocab_size"] == 256
    assert corpus.bytes_per_token() == 1.0
    assert 0.5 < h < math.log(256)
    assert corpus.token_accounting(10, 4, 32) == {
        "tokens_seen": 1280,
        "unique_tokens": 1280,
        "epochs": None,
    }


def test_zipf_entropy_matches_direct_formula():
    c = SyntheticConfig(n_facts=3000, zipf_exponent=1.1, key_alphabet=7)
    p = np.arange(1, 3001) ** -1.1
    p /= p.sum()
    d = build_corpus(DataConfig(synthetic=c), 0).describe()
    assert d["zipf_entropy_nats"] == pytest.approx(-(p * np.log(p)).sum(), rel=1e-10)
    eps, V = c.noise, c.value_alphabet
    q, r = 1 - eps + eps / V, eps / V
    assert d["value_entropy_nats"] == pytest.approx(-q * math.log(q) - (V - 1) * r * math.log(r))


@pytest.mark.parametrize(
    "world",
    [
        {},  # the defaults
        {"n_facts": 300, "zipf_exponent": 0.8, "fact_len": 3, "noise": 0.5, "key_alphabet": 5},
    ],
)
def test_entropy_matches_empirical_surprisal_of_true_process(world):
    corpus = synthetic(seed=1, **world)
    seq_len = 127
    x = np.concatenate([corpus.train_batch(s, 64, seq_len) for s in range(4)])
    surprisal = -corpus.true_logprobs(x)
    assert surprisal.shape == (256, seq_len) and np.isfinite(surprisal).all()
    per_row = surprisal.mean(axis=1)  # rows are independent
    se = per_row.std(ddof=1) / math.sqrt(len(per_row))
    assert abs(per_row.mean() - corpus.entropy_nats_per_token(seq_len)) < 4 * se


def test_entropy_matches_brute_force_enumeration_of_tiny_world():
    """Enumerate every fact and noise draw, compare H(x_1..x_T | x_0) / T with the formula."""
    corpus = build_corpus(DataConfig(synthetic=TINY_WORLD), 0)
    world, c = corpus.world, TINY_WORLD
    p = np.arange(1, c.n_facts + 1, dtype=float) ** -c.zipf_exponent
    p /= p.sum()
    seq_len = 6  # 7 tokens: a segment of 5 (key_len 3 as 2^3 >= 5, fact_len 2) and 2 key symbols
    n_seg = 2
    L = world.key_len
    value_draws = [None, *range(c.value_alphabet)]  # None: the symbol is kept
    segs: dict[tuple, float] = defaultdict(float)
    for fact in range(c.n_facts):
        for draws in itertools.product(value_draws, repeat=c.fact_len):
            tokens = list(world.segments[fact])
            prob = p[fact]
            for m, draw in enumerate(draws):
                if draw is None:
                    prob *= 1 - c.noise
                else:
                    tokens[L + m] = world.value_offset + draw
                    prob *= c.noise / c.value_alphabet
            segs[tuple(tokens)] += prob
    seqs: dict[tuple, float] = defaultdict(float)
    for combo in itertools.product(segs.items(), repeat=n_seg):
        tokens = sum((s for s, _ in combo), ())[: seq_len + 1]
        seqs[tokens] += math.prod(pr for _, pr in combo)
    first: dict[int, float] = defaultdict(float)
    for tokens, pr in seqs.items():
        first[tokens[0]] += pr
    assert sum(seqs.values()) == pytest.approx(1.0)

    def entropy(ps):
        return -sum(q * math.log(q) for q in ps if q > 0)

    brute = (entropy(seqs.values()) - entropy(first.values())) / seq_len
    assert corpus.entropy_nats_per_token(seq_len) == pytest.approx(brute, rel=1e-9)

    # true_logprobs gives exactly log p(x_1..x_T | x_0) for every possible sequence.
    batch = np.array(list(seqs), dtype=np.int32)
    joint = corpus.true_logprobs(batch).sum(axis=1)
    expected = [math.log(pr / first[s[0]]) for s, pr in seqs.items()]
    np.testing.assert_allclose(joint, expected, rtol=1e-9)


def test_true_logprobs_marks_impossible_tokens():
    corpus = synthetic(seed=0, n_facts=100, noise=0.0)
    x = corpus.train_batch(0, 2, 20)
    assert np.isfinite(corpus.true_logprobs(x)).all()
    bad = x.copy()
    bad[0, 5] = 200  # a value position holding a byte outside both alphabets
    lp = corpus.true_logprobs(bad)
    assert lp[0, 4] == -np.inf and np.isfinite(lp[1]).all()


def test_synthetic_rejects_impossible_worlds():
    with pytest.raises(ConfigError, match="data.synthetic.key_alphabet"):
        synthetic(key_alphabet=200, value_alphabet=100)
    with pytest.raises(ConfigError, match="distinct keys"):
        synthetic(key_alphabet=1, n_facts=3)
    with pytest.raises(ConfigError, match="data.tokenizer"):
        build_corpus(DataConfig(tokenizer="bpe"), 0)


# ---------------------------------------------------------------- text corpora


def test_text_corpus_splits_by_file_without_leakage(tmp_path):
    write_docs(tmp_path / "data", 12)
    cfg = data_cfg(tmp_path, corpus="text", paths=[str(tmp_path / "data" / "*.txt")])
    corpus = build_corpus(cfg, 0)
    assert isinstance(corpus, Corpus)
    d = corpus.describe()
    json.dumps(d)
    assert d["n_train_files"] + d["n_val_files"] == 12 and d["n_val_files"] >= 1
    assert not set(d["train_files"]) & set(d["val_files"])
    train_ids, val_ids = file_ids(corpus.train.parts[0]), file_ids(corpus.val.parts[0])
    assert train_ids and val_ids and not train_ids & val_ids
    assert {f"doc{i:02d}.txt" for i in val_ids} == set(d["val_files"])
    # Each document is its UTF-8 bytes followed by one NUL separator.
    assert corpus.describe()["val_tokens"] == sum(
        (tmp_path / "data" / f).stat().st_size + 1 for f in d["val_files"]
    )
    assert corpus.bytes_per_token() == 1.0
    assert corpus.entropy_nats_per_token(8) is None
    same, other = build_corpus(cfg, 0), build_corpus(cfg, 1)
    for step in (0, 9):
        np.testing.assert_array_equal(
            same.train_batch(step, 4, 16), corpus.train_batch(step, 4, 16)
        )
        assert not np.array_equal(other.train_batch(step, 4, 16), corpus.train_batch(step, 4, 16))


def test_text_validation_sample_covers_every_validation_file(tmp_path):
    # 60 files of ~1 KB: the validation sample (4 batches of 4 windows of 64 tokens) is a
    # fraction of the validation split, spread over all of its files, not the first one's.
    write_docs(tmp_path / "data", 60, size=1000)
    cfg = data_cfg(
        tmp_path, corpus="text", paths=[str(tmp_path / "data" / "*.txt")], val_fraction=0.15
    )
    corpus = build_corpus(cfg, 0)
    val_files = corpus.val_files
    assert len(val_files) >= 3
    sample = np.concatenate(corpus.val_batches(4, 4, 64))
    assert len(sample) * 64 < corpus.describe()["val_tokens"] / 2
    seen = set().union(*(file_ids(row) for row in sample))
    assert {f"doc{i:02d}.txt" for i in seen} == set(val_files)


def test_text_split_is_stable_across_builds_and_moves(tmp_path):
    write_docs(tmp_path / "a", 8)
    moved = tmp_path / "b"
    (tmp_path / "a").rename(moved)
    write_docs(tmp_path / "a", 8)
    first = build_corpus(data_cfg(tmp_path, corpus="text", paths=[str(tmp_path / "a/*")]), 0)
    second = build_corpus(data_cfg(tmp_path, corpus="text", paths=[str(moved / "*")]), 0)
    assert first.describe()["val_files"] == second.describe()["val_files"]


def test_one_file_validates_on_its_tail(tmp_path):
    (path,) = write_docs(tmp_path, 1, size=2000)
    corpus = build_corpus(data_cfg(tmp_path, corpus="text", paths=[str(path)]), 0)
    train, val = bytes(corpus.train.parts[0].astype(np.uint8)), bytes(corpus.val.parts[0])
    assert train + val == path.read_bytes() + b"\0"  # a clean cut: nothing lost or repeated
    assert len(val) == pytest.approx(0.05 * len(train + val), abs=4)


def test_explicit_val_paths_are_used_and_must_not_overlap(tmp_path):
    paths = write_docs(tmp_path, 4)
    cfg = data_cfg(
        tmp_path, corpus="text", paths=[str(p) for p in paths[:3]], val_paths=[str(paths[3])]
    )
    corpus = build_corpus(cfg, 0)
    assert file_ids(corpus.val.parts[0]) == {3} and file_ids(corpus.train.parts[0]) == {0, 1, 2}
    overlap = dataclasses.replace(cfg, val_paths=[str(paths[0])])
    with pytest.raises(ConfigError, match="doc00.txt is also in data.paths"):
        build_corpus(overlap, 0)


def test_pystdlib_builds_with_disjoint_file_sets():
    corpus = build_corpus(DataConfig(corpus="pystdlib"), 0)
    d = corpus.describe()
    json.dumps(d)
    assert d["n_train_files"] > 100 and d["n_val_files"] > 5
    assert not set(corpus.train_files) & set(corpus.val_files)
    excluded = {"test", "tests", "idle_test", "site-packages"}
    assert not any(excluded & set(f.split("/")[:-1]) for f in corpus.train_files)
    assert "json/decoder.py" in corpus.train_files + corpus.val_files
    assert d["train_tokens"] > 1_000_000
    corpus.require(16, 128)
    with pytest.raises(ConfigError, match="pystdlib"):
        build_corpus(DataConfig(corpus="pystdlib", paths=["x.py"]), 0)


# ---------------------------------------------------------------- batching and accounting


def counting_memmap(tmp_path: Path, n: int, name: str = "tokens.npy") -> Path:
    """Token i is i: a window's first token is its start position."""
    path = tmp_path / name
    np.save(path, np.arange(n, dtype=np.int32))
    return path


def memmap_corpus(tmp_path: Path, n: int, seed: int = 0, **kw) -> Corpus:
    path = counting_memmap(tmp_path, n)
    cfg = data_cfg(tmp_path, corpus="memmap", paths=[str(path)], vocab_size=n, **kw)
    return build_corpus(cfg, seed)


def test_epochs_visit_every_window_once_in_seeded_order(tmp_path):
    B, T = 4, 8
    corpus = memmap_corpus(tmp_path, 1000, val_fraction=0.2)  # 800 train tokens: 99 windows
    windows = (800 - 1) // T
    starts = [corpus.train_batch(s, B, T)[:, 0] for s in range(2 * windows // B)]
    flat = np.concatenate(starts)
    assert sorted(flat[:windows]) == list(range(0, windows * T, T))  # epoch 0: each once
    assert sorted(flat[windows : 2 * windows - 1]) != list(flat[windows : 2 * windows - 1])
    assert list(flat[windows : 2 * windows - 1]) != list(flat[: windows - 1])  # reshuffled
    x = corpus.train_batch(3, B, T)
    np.testing.assert_array_equal(x, x[:, :1] + np.arange(T + 1))  # contiguous windows
    other = memmap_corpus(tmp_path, 1000, seed=1, val_fraction=0.2)
    assert not np.array_equal(other.train_batch(0, B, T), corpus.train_batch(0, B, T))
    again = memmap_corpus(tmp_path, 1000, val_fraction=0.2)
    np.testing.assert_array_equal(again.train_batch(40, B, T), corpus.train_batch(40, B, T))


@pytest.mark.parametrize("steps", [1, 10, 24, 25, 60])
def test_token_accounting_is_exact(tmp_path, steps):
    B, T = 4, 8
    corpus = memmap_corpus(tmp_path, 1000, val_fraction=0.2)
    windows = (800 - 1) // T
    covered = set()
    for s in range(steps):
        for start in corpus.train_batch(s, B, T)[:, 0]:
            covered.update(range(start + 1, start + T + 1))  # the positions it predicts
    acc = corpus.token_accounting(steps, B, T)
    assert acc["tokens_seen"] == steps * B * T
    assert acc["unique_tokens"] == len(covered)
    assert acc["epochs"] == pytest.approx(steps * B / windows)


def test_val_batches_are_windows_spread_over_the_whole_split(tmp_path):
    B, T = 2, 8
    corpus = memmap_corpus(tmp_path, 1000, val_fraction=0.1, seq_len=T)  # val: 900..999
    val = corpus.val_batches(2, B, T)  # of its 12 windows
    assert [v[:, 0].tolist() for v in val] == [[900, 924], [948, 972]]  # every 3rd window
    assert corpus.val_batches(2, B, T)[1].tolist() == val[1].tolist()  # the same every call
    whole = corpus.val_batches(100, B, T)  # the split holds fewer: all of its windows
    assert np.concatenate(whole)[:, 0].tolist() == list(range(900, 996, 8))
    assert corpus.describe()["val_windows"] == 12
    with pytest.raises(ConfigError, match="tokens.npy: the validation split has 100 tokens"):
        corpus.require(13, T)
    with pytest.raises(ConfigError, match="tokens.npy: the training split has 900 tokens"):
        corpus.require(2, 500)
    corpus.require(12, T)


def test_windows_span_file_boundaries(tmp_path):
    parts = [np.arange(a, b, dtype=np.uint16) for a, b in [(0, 30), (30, 75), (75, 120)]]
    for i, part in enumerate(parts):
        part.tofile(tmp_path / f"p{i}.bin")
    val = tmp_path / "val.bin"
    np.arange(200, 260, dtype=np.uint16).tofile(val)
    cfg = data_cfg(
        tmp_path,
        corpus="memmap",
        paths=[str(tmp_path / "p*.bin")],
        val_paths=[str(val)],
        vocab_size=300,
    )
    corpus = build_corpus(cfg, 0)
    assert corpus.describe()["train_tokens"] == 120 and corpus.bytes_per_token() is None
    for step in range(10):
        x = corpus.train_batch(step, 3, 10)
        np.testing.assert_array_equal(x, x[:, :1] + np.arange(11))


# ---------------------------------------------------------------- tokenisers and caching


def test_bpe_trains_on_train_split_only_and_is_cached(tmp_path, monkeypatch):
    from tokenizers import Tokenizer

    import scaling.data.tokenizers as toks

    paths = write_docs(tmp_path / "data", 6, size=3000)
    secret = tmp_path / "data" / "val.txt"
    secret.write_text("zqxjvw " * 500)
    cfg = data_cfg(
        tmp_path,
        corpus="text",
        tokenizer="bpe",
        bpe_vocab_size=400,
        paths=[str(p) for p in paths],
        val_paths=[str(secret)],
    )
    corpus = build_corpus(cfg, 0)
    (saved,) = (tmp_path / "cache" / "bpe").glob("*.json")
    tok = Tokenizer.from_file(str(saved))
    assert len(tok.encode("zqxjvw zqxjvw").ids) >= 6  # never merged: it is only in val
    assert corpus.vocab_size == 400 and corpus.tokenizer == "bpe"
    train = corpus.train.parts[0]
    assert (train == tok.token_to_id("<|endoftext|>")).sum() == 6  # one per document
    assert corpus.bytes_per_token() == pytest.approx(3501 / len(corpus.val))
    assert sum(p.stat().st_size + 1 for p in paths) / len(train) > 2  # merges compress train
    assert not list((tmp_path / "cache").rglob("*.tmp"))  # atomic writes leave no temp files

    def fail(*args):
        raise AssertionError("retrained despite the cache")

    monkeypatch.setattr(toks, "_train_bpe", fail)
    cached = build_corpus(cfg, 0)
    np.testing.assert_array_equal(cached.train_batch(2, 4, 16), corpus.train_batch(2, 4, 16))
    paths[0].write_text("changed contents " * 100)
    with pytest.raises(AssertionError, match="retrained"):
        build_corpus(cfg, 0)  # new training contents: a new cache key


# ---------------------------------------------------------------- bad data


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: [str(d / "missing.txt")], "missing.txt does not exist"),
        (lambda d: [str(d / "*.nothing")], r"glob '.*\*.nothing' matches no files"),
        (lambda d: [str(d)], "is not a file"),
        (lambda d: [_write(d / "empty.txt", b"")], "empty.txt: empty file"),
        (lambda d: [_write(d / "nul.txt", b"text\0more")], "nul.txt: binary file"),
        (lambda d: [_write(d / "latin.txt", b"caf\xe9")], "latin.txt: not UTF-8"),
        (lambda d: [_write(d / "a.txt", b"x" * 50)], "a.txt: the training split"),
    ],
)
def test_bad_text_data_names_the_file(tmp_path, setup, message):
    with pytest.raises(ConfigError, match=message):
        corpus = build_corpus(data_cfg(tmp_path, corpus="text", paths=setup(tmp_path)), 0)
        corpus.require(4, 16)


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize(
    ("name", "data", "dtype", "message"),
    [
        ("trunc.bin", b"\x01\x00\x02", "uint16", "trunc.bin: 3 bytes is not a multiple of uint16"),
        ("empty.bin", b"", "uint16", "empty.bin: empty file"),
        ("big.bin", np.array([1, 2, 70], np.uint16).tobytes(), "uint16", "big.bin: token 70 at"),
        ("neg.bin", np.array([1, -2], np.int32).tobytes(), "int32", "neg.bin: token -2 at"),
        ("bad.npy", b"not an array", "uint16", "bad.npy: not a readable .npy"),
    ],
)
def test_bad_memmap_names_the_file(tmp_path, name, data, dtype, message):
    path = tmp_path / name
    path.write_bytes(data)
    cfg = data_cfg(tmp_path, corpus="memmap", paths=[str(path)], vocab_size=64, memmap_dtype=dtype)
    with pytest.raises(ConfigError, match=message):
        build_corpus(cfg, 0)


def test_memmap_npy_rejects_float_arrays(tmp_path):
    path = tmp_path / "float.npy"
    np.save(path, np.zeros(10))
    cfg = data_cfg(tmp_path, corpus="memmap", paths=[str(path)], vocab_size=64)
    with pytest.raises(ConfigError, match="float.npy: expected a 1-D integer array"):
        build_corpus(cfg, 0)


# ---------------------------------------------------------------- Hugging Face datasets


def test_hf_without_datasets_says_how_to_install(tmp_path, monkeypatch):
    (path,) = write_docs(tmp_path, 1)
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail
    with pytest.raises(ConfigError, match=r"pip install scaling\[hf\]"):
        build_corpus(data_cfg(tmp_path, corpus="hf", paths=[str(path)]), 0)


def test_hf_loads_local_json_and_text_files(tmp_path):
    pytest.importorskip("datasets")
    rows = {f"part{i}.jsonl": [f"row {i}-{j} " + "x" * 20 for j in range(5)] for i in range(6)}
    for name, texts in rows.items():
        lines = [json.dumps({"text": t, "id": k}) for k, t in enumerate(texts)]
        (tmp_path / name).write_text("\n".join(lines) + "\n")
    cfg = data_cfg(tmp_path, corpus="hf", hf_builder="json", paths=[str(tmp_path / "*.jsonl")])
    corpus = build_corpus(cfg, 0)
    d = corpus.describe()
    assert not set(d["train_files"]) & set(d["val_files"]) and d["val_files"]
    expected = "".join(t + "\0" for f in d["val_files"] for t in rows[f]).encode()
    assert bytes(corpus.val.parts[0]) == expected
    with pytest.raises(ConfigError, match="data.hf_text_field='body' is not a column"):
        build_corpus(dataclasses.replace(cfg, hf_text_field="body"), 0)

    text = tmp_path / "lines.txt"
    text.write_text("first line\nsecond line\n" * 20)
    lines = build_corpus(data_cfg(tmp_path, corpus="hf", paths=[str(text)]), 0)
    joined = bytes(lines.train.parts[0]) + bytes(lines.val.parts[0])
    assert joined == ("first line\0second line\0" * 20).encode()  # a row per line
