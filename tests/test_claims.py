"""The claims ledger rebuilt from a tiny set of real runs (pre-training, task arms, ablations)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from conftest import CONF_DIR, TINY, compose_config
from scaling import records
from scaling.analysis.ledger import ablations, build
from scaling.analysis.ledger.claim import NOT_MEASURED
from scaling.analysis.rules import Rules
from scaling.analysis.verdicts import NOT_RESOLVED, OUTCOMES
from scaling.config import FinetuneConfig, register_configs, to_dataclass
from scaling.reports import claims
from scaling.tasks.finetune import finetune
from scaling.train.pretrain import pretrain

# Every test reads the tiny study that the module fixture trains (the longest setup here).
pytestmark = pytest.mark.slow

WIDE = ["model.name=tiny48", "model.d_model=48", "model.n_heads=2"]  # a second size
TASK = ["task=addition1", "task.few_shot=0", "train.batch_size=8", "train.progress=off"]


def train(out: Path, name: str, *overrides: str) -> None:
    record = pretrain(compose_config([*TINY, f"out_dir={out}", f"run_name={name}", *overrides]))
    assert record["status"] == "completed"


def tune(out: Path, *overrides: str) -> None:
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("finetune", overrides=[*TASK, f"out_dir={out}", *overrides])
    assert finetune(to_dataclass(cfg, FinetuneConfig))["status"] == "completed"


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("study")
    sweep, tasks, ablations = base / "sweep", base / "tasks", base / "ablations"
    for size, extra in (("a", []), ("b", WIDE)):
        for tokens in (1024, 2048, 3072):
            train(sweep, f"{size}-D{tokens}", f"train.tokens={tokens}", *extra)
        train(tasks / "pretrain", f"src-{size}", *extra)
        source = f"init_from={tasks / 'pretrain' / f'src-{size}'}"
        tune(tasks / "finetune", source, "train.tokens=0")
        for d_f in (768, 1536):
            tune(tasks / "finetune", source, f"train.tokens={d_f}")
            tune(tasks / "scratch", "model=tiny", "data.seq_len=32", f"train.tokens={d_f}", *extra)
    for unique in (128, 512, 2048):
        train(ablations / "memorise", f"U{unique}", f"data.unique_tokens={unique}")
    mix = ["data.task_mix.tasks=[addition1]", "data.task_mix.fraction=0.1"]
    for fraction in (0.0, 0.3):
        train(ablations / "corrupt", f"c{fraction}", f"data.corrupt_fraction={fraction}", *mix)
        source = f"init_from={ablations / 'corrupt' / f'c{fraction}'}"
        tune(ablations / "corrupt_eval", source, "train.tokens=0")
    for schedule in ("cosine", "constant"):
        for seed in (0, 1):
            train(
                ablations / "schedule",
                f"{schedule}-s{seed}",
                f"train.schedule={schedule}",
                f"train.seed={seed}",
            )
    return {"sweep": sweep, "tasks": tasks, "ablations": ablations}


def test_ledger_has_every_claim_measured_from_the_runs(roots, tmp_path):
    out = tmp_path / "CLAIMS.md"
    argv = [f"--{k}={v}" for k, v in roots.items()] + [f"--out={out}", "--bootstrap=50"]
    claims.main(argv)
    text = out.read_text()
    assert "python -m scaling.reports.claims --sweep=" in text  # the command that rebuilt it
    assert "## Rules" in text and "minimum effect" in text
    table = text[: text.index("## Notes")]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert [row.split(" | ")[0] for row in rows[1:]] == [f"| {k}" for k in range(1, 9)]
    entries = json.loads((tmp_path / "claims.json").read_text())
    assert [e["id"] for e in entries] == list(range(1, 9))
    assert {e["verdict"] for e in entries} <= set(OUTCOMES)
    assert {"E_known", "E_fit", "E_fit_interval"} <= set(entries[1])
    for claim in entries:
        if claim["id"] == 7:  # the corrupted sources were evaluated few-shot too
            assert "few-shot task skill per percent: addition1" in claim["measured"]
        if claim["id"] != 2:  # claim 2 needs the held-out check's 8+ runs
            assert not claim["reason"].startswith(NOT_MEASURED), claim
            assert claim["measured"] != "–", claim


def test_memorisation_gap_is_val_minus_train_loss_of_the_records(roots):
    table = records.collect(roots["ablations"] / "memorise")
    gaps = sorted((table["final_val_loss"] - table["final_train_loss"]).round(3))
    claim = ablations.memorisation_claim(roots["ablations"] / "memorise", Rules())
    for gap in gaps:
        assert f"{gap:+.3f}" in claim.note
    assert set(table["epochs"].round(2)) == {24.0, 6.0, 1.5}  # 3072 tokens over U


def test_missing_runs_are_reported_not_guessed(roots, tmp_path):
    built = build.build(roots["sweep"], tmp_path / "none", None, n_bootstrap=0)
    by_number = {c.number: c for c in built}
    assert not by_number[1].reason.startswith(NOT_MEASURED)
    for number in range(3, 9):
        assert by_number[number].verdict == NOT_RESOLVED
        assert by_number[number].reason.startswith(NOT_MEASURED)
        assert by_number[number].measured == "–"


def test_task_report_pairs_the_three_arms_of_the_tiny_study(roots, tmp_path):
    from scaling.reports import tasks as taskreport

    taskreport.main([str(roots["tasks"]), str(tmp_path), "--bootstrap=20"])
    text = (tmp_path / "README.md").read_text()
    for section in ("## Paired arms", "## Effective data transferred", "## Emergence"):
        assert section in text
    paired = pd.read_csv(tmp_path / "paired.csv")
    assert len(paired) == 4  # 2 sizes x D_F in {768, 1536}
    for arm in ("pretrain_only", "finetuned", "scratch"):
        assert paired[f"{arm}_loss"].notna().all(), arm
    assert (tmp_path / "metrics_vs_c.png").stat().st_size > 0
