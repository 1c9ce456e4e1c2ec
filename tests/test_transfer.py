"""The task study's analysis on records built from known laws: arms, pairing, D_T inversion."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from scaling.analysis import transfer
from scaling.tasks.metrics import METRICS

K, A_N, A_D = 50.0, 0.1, 0.3  # L_scratch = K N^-a_N D^-a_D
TRANSFER = dict(k=3.0, alpha=0.7, beta=0.3)  # D_T = k D_F^alpha N^beta
SIZES = {"s": 1e5, "m": 2e5, "l": 4e5}


def scratch_loss(n, d):
    return K * n**-A_N * d**-A_D


def record(task, model, arm, d_f, loss, em=0.0):
    source = None if arm == transfer.SCRATCH else f"runs/pre-{model}"
    return {
        "run_name": f"{task}-{model}-{arm}-{d_f}",
        "status": "completed",
        "task": task,
        "model": model,
        "seed": 0,
        "init_from": source,
        "source_run_name": None if source is None else f"pre-{model}",
        "tokens_target": d_f,
        "tokens_seen": d_f,
        "n_params_nonembedding": SIZES[model],
        "final_val_loss": loss,
        "task_resolution": 0.0015,
        "task_n_eval": 2000,
        **{f"task_{m}": em for m in METRICS},
    }


def known_records(task="add") -> pd.DataFrame:
    rows = [
        {"run_name": f"pre-{m}", "status": "completed", "task": None, "tokens_target": 1e6}
        for m in SIZES
    ]
    for model, d in itertools.product(SIZES, (1e4, 4e4, 1.6e5)):
        rows.append(record(task, model, transfer.SCRATCH, d, scratch_loss(SIZES[model], d)))
    for model, d_f in itertools.product(SIZES, (1e4, 4e4)):
        n = SIZES[model]
        d_t = TRANSFER["k"] * d_f ** TRANSFER["alpha"] * n ** TRANSFER["beta"]
        rows.append(record(task, model, transfer.FINETUNED, d_f, scratch_loss(n, d_f + d_t), 0.2))
    for model in SIZES:
        rows.append(record(task, model, transfer.PRETRAIN_ONLY, 0, 9.0, 0.01))
    return pd.DataFrame(rows)


def test_arms_labels_each_task_run_and_leaves_out_pretraining():
    runs = transfer.arms(known_records())
    assert runs["arm"].value_counts().to_dict() == {
        "scratch": 9,
        "finetuned": 6,
        "pretrain_only": 3,
    }
    assert (runs.loc[runs["arm"] == transfer.PRETRAIN_ONLY, "d_f"] == 0).all()


def test_paired_table_lines_up_the_three_arms():
    paired = transfer.paired_table(transfer.arms(known_records()))
    row = paired[(paired["model"] == "m") & (paired["d_f"] == 4e4)].iloc[0]
    assert row["pretrain_only_loss"] == 9.0 and row["pretrain_only_exact_match"] == 0.01
    assert row["finetuned_exact_match"] == 0.2
    assert row["scratch_loss"] == pytest.approx(scratch_loss(2e5, 4e4))
    assert len(paired) == 9  # (3 sizes) x (D_F of either trained arm: 1e4, 4e4, 1.6e5)


def test_effective_data_inverts_the_from_scratch_law_exactly():
    runs = transfer.arms(known_records())
    effective, fits = transfer.effective_data(runs, n_bootstrap=50)
    assert fits["add"]["a_D"] == pytest.approx(A_D) and fits["add"]["a_N"] == pytest.approx(A_N)
    for row in effective.itertuples():
        truth = TRANSFER["k"] * row.d_f ** TRANSFER["alpha"] * row.n ** TRANSFER["beta"]
        assert row.d_t == pytest.approx(truth, rel=1e-6)
    law = transfer.transfer_law(effective, "add", n_bootstrap=50)
    for name, value in TRANSFER.items():
        assert law.value(name) == pytest.approx(value, rel=1e-5)


def test_effective_data_recovers_the_law_through_noise_with_intervals_covering_it():
    table = known_records()
    rng = np.random.default_rng(0)
    scratch = table["init_from"].isna() & table["task"].notna()
    table.loc[scratch, "final_val_loss"] *= np.exp(rng.normal(0, 0.01, scratch.sum()))
    effective, _ = transfer.effective_data(transfer.arms(table), n_bootstrap=200)
    truth = (
        TRANSFER["k"] * effective["d_f"] ** TRANSFER["alpha"] * effective["n"] ** TRANSFER["beta"]
    )
    covered = (effective["d_t_low"] <= truth) & (truth <= effective["d_t_high"])
    assert covered.mean() >= 0.8
    assert np.allclose(effective["d_t"], truth, rtol=0.25)


def test_the_from_scratch_runs_of_a_size_bracket_d_e_without_a_fit():
    scratch = pd.DataFrame(
        {"n": [1.0, 1.0, 1.0, 2.0], "d_f": [1e4, 4e4, 1.6e5, 1e4], "final_val_loss": [3, 2, 1, 0.1]}
    )
    assert transfer.scratch_bracket(scratch, 1.0, 1.5) == (4e4, 1.6e5)
    assert transfer.scratch_bracket(scratch, 1.0, 0.5) == (1.6e5, np.inf)
    assert transfer.scratch_bracket(scratch, 1.0, 5.0) == (0.0, 1e4)
    assert transfer.scratch_bracket(scratch, 3.0, 1.0) == (0.0, np.inf)  # no runs of that size
    effective, _ = transfer.effective_data(transfer.arms(known_records()), n_bootstrap=0)
    inside = (effective["scratch_not_reached"] < effective["d_e"]) & (
        effective["d_e"] <= effective["scratch_reached"]
    )
    assert inside.all()


def test_a_from_scratch_loss_that_does_not_fall_with_data_bounds_d_e_at_its_edges():
    # From scratch the loss rises slowly with D: a fine-tuned loss below it is never reached
    # (D_E = inf, "at least the largest D"), one above it was reached before the smallest D.
    table = known_records()
    scratch = table["init_from"].isna() & table["task"].notna()
    table.loc[scratch, "final_val_loss"] = 5.0 * table.loc[scratch, "tokens_seen"] ** 0.01
    effective, _ = transfer.effective_data(transfer.arms(table), n_bootstrap=50)
    assert np.isinf(effective["d_e"]).all() and effective["extrapolated"].all()
    assert np.isinf(effective["d_e_low"]).all() and (effective["d_e_failed"] == 0).all()
    assert (effective["scratch_d_max"] == 1.6e5).all() and (effective["scratch_d_min"] == 1e4).all()
    table.loc[~scratch & table["task"].notna(), "final_val_loss"] = 9.0
    effective, _ = transfer.effective_data(transfer.arms(table), n_bootstrap=0)
    assert (effective["d_e"] == 0.0).all()


def test_resamples_that_cannot_be_fitted_are_counted_as_failed():
    # Two sizes and two token counts, 4 points: many resamples draw one N or one D only.
    table = known_records()
    keep = ~(table["task"].notna() & table["init_from"].isna()) | (
        (table["model"] != "l") & (table["tokens_seen"] < 1e5)
    )
    effective, _ = transfer.effective_data(transfer.arms(table[keep]), n_bootstrap=200)
    assert (effective["d_e_resamples"] == 200).all()
    assert (effective["d_e_failed"] > 20).all()


def test_too_few_from_scratch_runs_are_reported_not_fitted():
    table = known_records()
    drop = table["init_from"].isna() & (table["tokens_seen"] > 1e4)
    effective, fits = transfer.effective_data(transfer.arms(table[~drop]), n_bootstrap=0)
    assert effective.empty and "needs >= 4 runs" in fits["add"]["skipped"]


def test_every_seed_of_a_fine_tuned_run_pairs_with_its_sources_pre_train_only_evaluation():
    """The pre-train-only arm has no training, so one evaluation (seed 0) pairs with fine-tuned
    runs of every seed: claim 4's seed spread needs them all."""
    table = known_records()
    again = table[table["init_from"].notna() & (table["tokens_target"] > 0)].assign(
        seed=1, run_name=lambda t: t["run_name"] + "-s1"
    )
    paired = transfer.paired_table(transfer.arms(pd.concat([table, again], ignore_index=True)))
    tuned = paired.dropna(subset=["finetuned_loss"])
    assert len(tuned) == 12 and sorted(tuned["seed"].unique()) == [0, 1]
    assert (tuned["pretrain_only_loss"] == 9.0).all()
