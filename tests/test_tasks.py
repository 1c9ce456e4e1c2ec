"""scaling.tasks (examples, splits, kinds, generators) and scaling.data.taskmix: formats, exact
answers, splits, few-shot, mixing."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from conftest import CONF_DIR, compose_config
from scaling.config import ConfigError, DataConfig, SyntheticConfig, TaskConfig, TaskMixConfig
from scaling.config import validate as validate_config
from scaling.data.build import build_corpus
from scaling.data.synthetic import SyntheticCorpus
from scaling.data.taskmix import TaskMixCorpus
from scaling.tasks.examples import (
    PAD_ID,
    TERMINATOR,
    Example,
    answer_correct,
    batch_examples,
    encode,
    scorer,
)
from scaling.tasks.generators import TASKS, available_tasks, build_task, task_config
from scaling.tasks.metrics import resolution
from scaling.tasks.splits import EVAL_SHARE
from scaling.tasks.task import Task

SMALL_WORLD = SyntheticConfig(n_facts=512)  # builds in milliseconds


def make(kind: str, name: str | None = None, **params) -> Task:
    return build_task(TaskConfig(name=name or kind, kind=kind, params=params))


def both_splits(task: Task, n: int, seed: int = 0) -> Iterator[Example]:
    rng = np.random.default_rng(seed)
    yield from task.sample("train", rng, n)
    yield from task.sample("eval", rng, n)


def mixed(fraction: float = 0.3, tasks: tuple[str, ...] = ("addition3",), **kw) -> DataConfig:
    mix = TaskMixConfig(tasks=list(tasks), fraction=fraction)
    return DataConfig(synthetic=SMALL_WORLD, task_mix=mix, **kw)


# ---------------------------------------------------------------- formats and answers


FORMATS = {
    "addition": r"\d+\+\d+=",
    "multiplication": r"\d+\*\d+=",
    "modular": r"\(\d+[-+*]\d+\)%\d+=",
    "reverse": r"rev:[a-z]+=",
    "copy": r"copy:[a-z]+=",
    "kv_retrieval": r"([a-z]+:[a-z]+,)*[a-z]+:[a-z]+\|[a-z]+=",
}


@pytest.mark.parametrize("kind", sorted(FORMATS))
def test_every_kind_has_its_prompt_format_and_a_terminated_answer(kind):
    assert set(FORMATS) == set(TASKS) - {"facts"}  # facts are corpus segments, not text
    for e in both_splits(make(kind), 200):
        assert re.fullmatch(FORMATS[kind], e.prompt), e
        assert TERMINATOR not in e.prompt and e.text.isascii()
        assert e.answer.endswith(TERMINATOR) and e.answer.count(TERMINATOR) == 1
        assert len(e.answer) >= 2  # never an empty answer


@pytest.mark.parametrize(
    "kind, params",
    [
        *[("addition", {"digits": k}) for k in range(1, 9)],
        ("addition", {"digits": 18}),  # sums past int64 still exact
        ("multiplication", {"digits_a": 2, "digits_b": 2}),
        ("multiplication", {"digits_a": 3, "digits_b": 1}),
        ("multiplication", {"digits_a": 12, "digits_b": 12}),  # products far past int64
        ("modular", {"modulus": 97, "op": "+"}),
        ("modular", {"modulus": 97, "op": "-"}),
        ("modular", {"modulus": 1_000_003, "op": "*"}),
    ],
)
def test_arithmetic_answers_match_python_integers(kind, params):
    task = make(kind, **params)
    ops = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}
    sizes = []
    for e in both_splits(task, 300, seed=len(str(params))):
        a, op, b, modulus = re.fullmatch(r"\(?(\d+)([-+*])(\d+)\)?(?:%(\d+))?=", e.prompt).groups()
        value = ops[op](int(a), int(b))
        if modulus is not None:
            value %= int(modulus)
            assert 0 <= int(a) < int(modulus) and 0 <= int(b) < int(modulus)
        assert e.answer == f"{value}\n"
        sizes.append(max(int(a), int(b)))
    if kind == "addition":
        assert max(sizes) < 10 ** params["digits"]
        if params["digits"] >= 3:  # uniform on [0, 10^k): most operands have k digits
            assert max(sizes) >= 10 ** (params["digits"] - 1)


def test_reversed_addition_is_zero_padded_least_significant_digit_first():
    task = make("addition", digits=3, reverse=True)
    examples = list(both_splits(task, 300))
    for e in examples:
        a, b = re.fullmatch(r"(\d{3})\+(\d{3})=", e.prompt).groups()
        assert e.answer == f"{int(a) + int(b):04d}"[::-1] + "\n"
    assert {len(e.text) for e in examples} == {13}  # one length: digits at fixed offsets
    assert task.example(5, 7) == Example("005+007=", "2100\n")
    with pytest.raises(ConfigError, match="params.reverse='yes' must be true or false"):
        make("addition", reverse="yes")


def test_fine_tuning_rows_pack_whole_examples_with_every_answer_trained():
    task = build_task(task_config("copy"))
    batch = task.train_batch(seed=0, step=0, batch_size=8, seq_len=128)
    again = task.train_batch(0, 0, 8, 128)
    np.testing.assert_array_equal(batch.tokens, again.tokens)
    for row, n in zip(range(8), batch.lengths, strict=True):
        text = bytes(batch.tokens[row, :n].astype(np.uint8)).decode()
        lines = text.splitlines(keepends=True)
        assert len(lines) >= 128 // 24  # several whole examples, none cut
        assert all(re.fullmatch(r"copy:([a-z]{8})=\1\n", line) for line in lines)
        answers = "".join(line.split("=")[1] for line in lines)
        assert bytes(batch.tokens[row][batch.answer_mask[row]].astype(np.uint8)).decode() == answers
        assert 128 + 1 - n < 23  # the next example would not have fitted
    queries = [Example(*line.split("=", 1)) for line in lines]
    assert not task.is_eval([Example(q.prompt + "=", q.answer) for q in queries]).any()


def test_facts_are_the_corpus_segments_scored_on_their_values():
    world = SyntheticConfig(n_facts=512, zipf_exponent=1.5)
    task = make("facts", chain=4, min_rank=9, max_rank=64, n_facts=512, zipf_exponent=1.5)
    corpus = build_corpus(DataConfig(synthetic=world), seed=0)
    built = corpus.world
    items = task.eval_set()
    batch = task.batch(items[:16], seq_len=64)
    S, L = built.segment_len, built.key_len
    assert batch.tokens.shape == (16, 65) and (batch.lengths == 4 * S).all()
    for row, ranks in enumerate(items[:16]):
        assert ((8 <= ranks) & (ranks < 64)).all()  # ranks 9 to 64, as indices
        np.testing.assert_array_equal(batch.tokens[row, : 4 * S], built.segments[ranks].ravel())
        mask = batch.answer_mask[row, : 4 * S].reshape(4, S)
        assert not mask[:, :L].any() and mask[:, L:].all()  # values scored, keys are context
    # ranks uniform over the band: each of its 56 facts about equally often
    counts = np.bincount(np.concatenate(items), minlength=64)[8:]
    assert counts.min() > 0.6 * counts.mean()
    # fine-tuning rows hold as many whole facts of the band as fit, every value trained
    rows = task.train_batch(seed=0, step=0, batch_size=4, seq_len=64)
    assert (rows.lengths == (65 // S) * S).all()
    assert rows.answer_mask.sum() == 4 * (65 // S) * (S - L)
    # a source trained on another world is refused, naming the key
    task.check_source(DataConfig(synthetic=world))
    with pytest.raises(ConfigError, match=r"params.zipf_exponent=1.5 differs .*zipf_exponent=1.25"):
        task.check_source(DataConfig(synthetic=SyntheticConfig(n_facts=512)))
    with pytest.raises(ConfigError, match="cannot be mixed"):
        task.sample("train", np.random.default_rng(0), 1)


def test_reverse_and_copy_answers():
    for kind, transform in (("reverse", lambda s: s[::-1]), ("copy", lambda s: s)):
        task = make(kind, length=5, alphabet="xyz01")
        for e in both_splits(task, 300):
            s = e.prompt.split(":", 1)[1][:-1]
            assert len(s) == 5 and set(s) <= set("xyz01")
            assert e.answer == transform(s) + "\n"


def test_kv_retrieval_answers_the_queried_key_from_the_context():
    task = make("kv_retrieval", n_pairs=6, key_len=1, value_len=3)
    for e in both_splits(task, 300):
        context, query = e.prompt[:-1].split("|")
        pairs = [p.split(":") for p in context.split(",")]
        keys = [k for k, _ in pairs]
        assert len(pairs) == 6 and len(set(keys)) == 6  # distinct keys in every context
        assert all(len(k) == 1 and len(v) == 3 for k, v in pairs)
        assert e.answer == dict(pairs)[query] + "\n"


def test_scorer_is_exact_match_up_to_the_terminator():
    assert scorer("46\n", "46\n")
    assert scorer("46\n12+3=15\n", "46\n")  # generation ran on into a next example
    assert not scorer("46", "46\n")  # no terminator yet: it could still become 460
    assert not scorer("460\n", "46\n")
    assert not scorer(" 46\n", "46\n")
    assert not scorer("\n46\n", "46\n")


def test_resolution_is_the_zero_count_bound():
    assert resolution(1) == pytest.approx(0.95)
    for n in (20, 1882, 2000):
        r = resolution(n)
        assert (1 - r) ** n == pytest.approx(0.05)  # P(no correct answer | accuracy r) = 5%
    assert resolution(2000) == pytest.approx(3 / 2000, rel=0.01)  # the rule of three
    assert resolution(10) > resolution(100) > resolution(1000)
    with pytest.raises(ValueError):
        resolution(0)


# ---------------------------------------------------------------- splits


@pytest.mark.parametrize(
    "kind, params",
    [("addition", {"digits": 3}), ("reverse", {"length": 4, "alphabet": "abcdefgh"})],
)
def test_splits_never_overlap_for_any_seed(kind, params):
    # ~10^6 problems sampled by rejection, and 8^4 = 4096 enumerated: 20000 train draws against
    # 5000 eval draws would share ~100 (resp. nearly all) problems if the split depended on
    # the seed.
    task = make(kind, **params)
    train, evals = set(), set()
    for seed in range(4):
        rng = np.random.default_rng(seed)
        train |= {e.prompt for e in task.sample("train", rng, 5000)}
        evals |= {e.prompt for e in task.sample("eval", rng, 1250)}
    assert train.isdisjoint(evals)
    assert len(evals) > 700 and len(train) > 3000


def test_hash_split_holds_its_share_over_the_whole_space():
    task = make("addition", digits=4)
    assert not task.exact_split
    draws = task._draw(np.random.default_rng(1), 20_000)  # uniform over both splits
    share = task.is_eval(draws).mean()
    assert abs(share - EVAL_SHARE) < 4 * np.sqrt(0.2 * 0.8 / 20_000)


def test_tiny_spaces_are_enumerated_and_split_stably():
    a = make("addition", digits=1)
    b = build_task(TaskConfig(name="x", kind="addition", params={"digits": 1}, seed=99))
    assert a.exact_split and a.split_size("train") == 82 and a.split_size("eval") == 18
    evals = {e.prompt for e in a.distinct("eval", np.random.default_rng(0), 1000)}
    train = {e.prompt for e in a.distinct("train", np.random.default_rng(0), 1000)}
    assert len(evals) == 18 and len(train) == 82 and evals.isdisjoint(train)
    assert evals | train == {f"{x}+{y}=" for x in range(10) for y in range(10)}
    assert evals == {e.prompt for e in b.distinct("eval", np.random.default_rng(5), 1000)}
    # Pinned: the split is a stable function of the prompt (BLAKE2b), not of the seed or Python.
    assert sorted(evals)[:6] == ["0+0=", "0+1=", "0+6=", "0+7=", "0+8=", "1+5="]


def test_nested_spaces_agree_on_every_split():
    # 1-digit problems are also 2- and 3-digit problems (operands in [0, 10^k)): each must
    # have one split everywhere, or text of one config would leak another's eval set.
    one, two, three = (make("addition", digits=k) for k in (1, 2, 3))
    problems = one._enumerate()
    for bigger in (two, three):
        np.testing.assert_array_equal(one.is_eval(problems), bigger.is_eval(problems))
    small = make("multiplication", digits_a=1, digits_b=2)
    problems = small._enumerate()
    big = build_task(task_config("multiplication"))  # 2x2 digits: holds every 1x2 problem
    np.testing.assert_array_equal(small.is_eval(problems), big.is_eval(problems))
    assert small.split_size("eval") == big.is_eval(problems).sum() > 0


def test_exact_split_sizes_of_the_enumerated_configs():
    for name, n_eval in (("modular", 1868), ("multiplication", 1958), ("addition2", 2039)):
        task = build_task(task_config(name))
        assert task.exact_split and task.split_size("eval") == n_eval
        assert task.split_size("train") + n_eval == task.n_problems
        assert abs(n_eval / task.n_problems - EVAL_SHARE) < 0.01


# ---------------------------------------------------------------- few-shot and encoding


def test_eval_set_is_distinct_eval_problems_with_train_shots():
    task = build_task(task_config("addition3"))
    items = task.eval_set()
    assert len(items) == 2000 and len({q.example.prompt for q in items}) == 2000
    assert task.is_eval([q.example for q in items]).all()
    shots = [s for q in items for s in q.shots]
    assert all(len(q.shots) == 3 and len(set(q.shots)) == 3 for q in items)
    assert not task.is_eval(shots).any()


def test_shots_never_include_the_query_itself():
    # 40 of the 81 other train problems per query: without the exclusion the query itself
    # would be among its shots about half the time.
    task = make("addition", digits=1)
    rng = np.random.default_rng(0)
    items = task.queries("train", rng, 200, few_shot=40)
    for q in items:
        assert q.example.prompt not in {s.prompt for s in q.shots}
        assert len({s.prompt for s in q.shots}) == 40
    with pytest.raises(ConfigError, match="few_shot=82 needs more than the 82 train problems"):
        task.shots(rng, 82, exclude="1+2=")


def test_eval_sets_are_deterministic_by_seed():
    cfg = task_config("kv_retrieval")
    first, again = build_task(cfg).eval_set(), build_task(cfg).eval_set()
    assert first == again
    other = build_task(dataclasses.replace(cfg, seed=1)).eval_set()
    assert [q.example for q in other] != [q.example for q in first]


def test_fine_tuning_batches_are_train_problems_deterministic_by_step():
    task = build_task(task_config("multiplication"))
    a = task.train_batch(seed=0, step=3, batch_size=32, seq_len=64)
    np.testing.assert_array_equal(a.tokens, task.train_batch(0, 3, 32, 64).tokens)
    assert not np.array_equal(a.tokens, task.train_batch(0, 4, 32, 64).tokens)
    assert not np.array_equal(a.tokens, task.train_batch(1, 3, 32, 64).tokens)
    problems = []
    for row, n in zip(a.tokens, a.lengths, strict=True):
        for line in bytes(row[:n].astype(np.uint8)).decode().splitlines():
            prompt, answer = line.split("=")
            problems.append(Example(prompt + "=", answer + "\n"))
    assert len(problems) > 2 * 32  # rows hold several examples
    assert not task.is_eval(problems).any()


def test_encode_marks_exactly_the_answer_bytes():
    task = build_task(task_config("reverse"))
    for q in task.eval_set()[:50]:
        tokens, mask = encode(q.example, q.shots)
        text = "".join(s.text for s in q.shots) + q.example.text
        assert tokens.dtype == np.int32 and bytes(tokens.astype(np.uint8)).decode() == text
        assert mask.dtype == bool and mask.sum() == len(q.example.answer)
        assert bytes(tokens[mask].astype(np.uint8)).decode() == q.example.answer
        assert mask[-len(q.example.answer) :].all()  # the answer is the final span
    tokens, mask = encode(Example("1+2=", "3\n"))
    assert mask.tolist() == [False] * 4 + [True, True]


def test_batches_pad_with_masks_that_skip_padding_and_shots():
    task = build_task(task_config("addition2"))
    items = task.eval_set()[:16]
    batch = task.batch(items, seq_len=64)
    assert batch.tokens.shape == batch.answer_mask.shape == (16, 65)
    for row, q in enumerate(items):
        n = len("".join(s.text for s in q.shots) + q.example.text)
        assert batch.lengths[row] == n
        assert (batch.tokens[row, n:] == PAD_ID).all() and not batch.answer_mask[row, n:].any()
        assert batch.answer_mask[row].sum() == len(q.example.answer)
    assert (batch.tokens[batch.answer_mask] != PAD_ID).all()


def test_an_example_longer_than_the_context_names_task_and_lengths():
    task = build_task(task_config("addition8"))
    items = task.queries("eval", np.random.default_rng(0), 4, few_shot=8)
    longest = max(len(encode(q.example, q.shots)[0]) for q in items)
    with pytest.raises(ConfigError, match=rf"task addition8: .*{longest} tokens.* 33"):
        task.batch(items, seq_len=32)
    with pytest.raises(ConfigError, match=r"task t: an example of 8 tokens .* seq_len \+ 1 = 6"):
        batch_examples([encode(Example("12+3=", "15\n"))] * 2, seq_len=5, task="t")


def test_answer_correct_is_greedy_exact_match():
    task = build_task(task_config("copy"))
    batch = task.batch(task.eval_set()[:8], seq_len=128)
    perfect = batch.tokens[:, 1:].copy()  # the argmax at t predicts token t + 1
    assert answer_correct(perfect, batch).all()
    wrong = perfect.copy()
    answer_at = np.flatnonzero(batch.answer_mask[3, 1:])
    wrong[3, answer_at[-1]] = ord("x")  # the terminator replaced: row 3 fails
    wrong[5, 0] ^= 1  # a wrong guess inside the shots does not count
    assert answer_correct(wrong, batch).tolist() == [True] * 3 + [False] + [True] * 4


# ---------------------------------------------------------------- configs


def test_every_task_config_builds_and_fits_the_default_context():
    names = available_tasks()
    assert {"addition1", "addition3", "addition8", "multiplication", "reverse", "copy"} <= set(
        names
    )
    assert {"modular", "kv_retrieval"} <= set(names)
    width = DataConfig().seq_len
    for name in names:
        cfg = task_config(name)
        assert cfg.name == name and cfg.kind in TASKS
        assert Path(CONF_DIR, "task", f"{name}.yaml").is_file()
        task = build_task(cfg)
        items = task.eval_set()
        expected = min(cfg.n_eval, task.split_size("eval") or cfg.n_eval)
        assert len(items) == expected
        task.batch(items, seq_len=width)  # raises if a few-shot prompt does not fit


def test_kind_names_give_default_configs():
    cfg = task_config("kv_retrieval", conf_dir=Path("/nonexistent"))
    assert cfg.kind == "kv_retrieval" and cfg.params == {}
    assert build_task(cfg).params["n_pairs"] == 4


@pytest.mark.parametrize(
    "kind, params, message",
    [
        ("addition", {"digit": 3}, r"task addition: unknown params \['digit'\]"),
        ("addition", {"digits": 0}, r"params.digits=0 must be an integer in \[1, 18\]"),
        ("addition", {"digits": "3"}, r"params.digits='3' must be an integer"),
        ("reverse", {"alphabet": "ab:"}, "params.alphabet='ab:' must be distinct letters"),
        ("copy", {"alphabet": "aa"}, "params.alphabet='aa' must be distinct"),
        ("modular", {"op": "/"}, r"params.op='/' must be one of"),
        ("addition", {"eval_share": 0.5}, r"unknown params \['eval_share'\]"),
        ("copy", {"length": 2, "alphabet": "ab"}, "4 problems, too few for both"),
        ("kv_retrieval", {"n_pairs": 1, "key_len": 1, "value_len": 1}, "params.n_pairs=1"),
        ("kv_retrieval", {"n_pairs": 27, "key_len": 1}, r"params.n_pairs=27 .*\[1, 26\]"),
        ("division", {}, "kind='division' is not one of"),
    ],
)
def test_bad_task_params_name_the_task_and_key(kind, params, message):
    with pytest.raises(ConfigError, match=message):
        make(kind, **params)


def test_unknown_task_names_list_the_choices(tmp_path):
    with pytest.raises(ConfigError, match=r"task='additon3' is neither .*addition3.* kind"):
        task_config("additon3")
    with pytest.raises(ConfigError, match="neither"):
        task_config("../task/addition3")  # names never reach outside conf/task
    (tmp_path / "odd.yaml").write_text("kind: addition\nparams: {digits: 2}\nextra: 1\n")
    with pytest.raises(ConfigError, match="odd.yaml: not a task config"):
        task_config("odd", conf_dir=tmp_path)


# ---------------------------------------------------------------- mixing into pre-training


def replaced_rows(corpus: TaskMixCorpus, base: SyntheticCorpus, step: int) -> np.ndarray:
    return (corpus.train_batch(step, 16, 64) != base.train_batch(step, 16, 64)).any(axis=1)


def test_mix_fraction_holds_over_many_rows_and_rows_are_train_examples():
    corpus = build_corpus(mixed(0.3, ("addition3", "kv_retrieval")), seed=0)
    base = build_corpus(mixed(0.0), seed=0)
    assert isinstance(corpus, TaskMixCorpus) and isinstance(base, SyntheticCorpus)
    tasks = {t.kind: t for t in corpus.tasks}
    hits = []
    for step in range(200):
        batch, replaced = corpus.train_batch(step, 16, 64), replaced_rows(corpus, base, step)
        hits.append(replaced)
        for row in batch[replaced]:
            lines = bytes(row.astype(np.uint8)).decode("ascii").split("\n")[:-1]  # whole lines
            kind = "kv_retrieval" if "|" in lines[0] else "addition"
            examples = [Example(*line.split("=")) for line in lines]
            examples = [Example(e.prompt + "=", e.answer + "\n") for e in examples]
            assert all(re.fullmatch(FORMATS[kind], e.prompt) for e in examples)
            assert not tasks[kind].is_eval(examples).any()  # train split only
            if kind == "addition":
                sums = (sum(map(int, e.prompt[:-1].split("+"))) for e in examples)
                assert all(e.answer == f"{s}\n" for e, s in zip(examples, sums, strict=True))
    share = np.concatenate(hits).mean()
    assert abs(share - 0.3) < 4 * np.sqrt(0.3 * 0.7 / 3200)


def test_mix_is_deterministic_by_seed_and_step():
    a, b = build_corpus(mixed(0.5), seed=3), build_corpus(mixed(0.5), seed=3)
    for step in (7, 0, 7, 123):  # any order: a batch depends on (seed, step, B, T) only
        np.testing.assert_array_equal(a.train_batch(step, 8, 48), b.train_batch(step, 8, 48))
    assert not np.array_equal(a.train_batch(0, 8, 48), a.train_batch(1, 8, 48))
    other = build_corpus(mixed(0.5), seed=4)
    assert not np.array_equal(a.train_batch(0, 8, 48), other.train_batch(0, 8, 48))


def test_mixed_validation_is_fixed_and_the_same_for_every_run_seed():
    a, b = build_corpus(mixed(0.5), seed=0), build_corpus(mixed(0.5), seed=1)
    first = a.val_batches(3, 8, 48)
    for x, y, z in zip(first, a.val_batches(3, 8, 48), b.val_batches(3, 8, 48), strict=True):
        np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(x, z)
    base = build_corpus(mixed(0.0), seed=0).val_batches(3, 8, 48)
    assert any((x != y).any() for x, y in zip(first, base, strict=True))


def test_fraction_zero_leaves_the_corpus_untouched():
    plain = build_corpus(DataConfig(synthetic=SMALL_WORLD), seed=2)
    listed = build_corpus(mixed(0.0, ("no-such-task",)), seed=2)  # ignored at fraction 0
    assert type(plain) is type(listed) is SyntheticCorpus
    np.testing.assert_array_equal(plain.train_batch(5, 4, 32), listed.train_batch(5, 4, 32))
    assert plain.entropy_nats_per_token(32) == listed.entropy_nats_per_token(32) is not None


def test_mixed_corpus_has_no_entropy_and_describes_the_mix():
    corpus = build_corpus(mixed(0.1, ("modular", "copy")), seed=0)
    assert corpus.entropy_nats_per_token(64) is None
    assert corpus.name == "synthetic+tasks" and corpus.vocab_size == 256
    info = json.loads(json.dumps(corpus.describe()))
    assert info["entropy_nats_per_token"] is None and info["task_mix"]["fraction"] == 0.1
    assert [t["name"] for t in info["task_mix"]["tasks"]] == ["modular", "copy"]
    assert info["base"]["entropy_nats_per_token"] > 0  # the base's own figure, kept apart
    assert corpus.token_accounting(10, 4, 32)["tokens_seen"] == 10 * 4 * 32


@pytest.mark.parametrize(
    "mix, kw, message",
    [
        (dict(fraction=1.0), {}, r"data.task_mix.fraction=1.0 must be in \[0, 1\)"),
        (dict(fraction=-0.1), {}, r"data.task_mix.fraction=-0.1 must be in \[0, 1\)"),
        (dict(tasks=[]), {}, "needs data.task_mix.tasks"),
        (dict(tasks=["addition3", "additon8"]), {}, r"data.task_mix.tasks\[1\]='additon8'"),
        ({}, dict(corpus="text", tokenizer="bpe", paths=["x.txt"]), "needs byte tokens"),
    ],
)
def test_bad_task_mix_names_the_key(mix, kw, message):
    cfg = mixed(**{"fraction": 0.1, "tasks": ("addition3",), **mix}, **kw)
    with pytest.raises(ConfigError, match=message):
        build_corpus(cfg, seed=0)


def test_task_mix_composes_through_hydra():
    cfg = compose_config(
        [
            "data.seq_len=64",
            "data.synthetic.n_facts=512",
            "data.task_mix.tasks=[addition2,reverse]",
            "data.task_mix.fraction=0.25",
        ]
    )
    cfg = validate_config(cfg)
    assert cfg.data.task_mix == TaskMixConfig(tasks=["addition2", "reverse"], fraction=0.25)
    corpus = build_corpus(cfg.data, seed=0)
    assert [t.name for t in corpus.tasks] == ["addition2", "reverse"]
    assert corpus.train_batch(0, 8, 64).shape == (8, 65)
    assert compose_config([]).data.task_mix == TaskMixConfig()  # off by default
