"""Tests for scaling.analysis.fit.conventions: the embedding relation, the frontier read in total
and
non-embedding parameters, their local slopes (Pearce & Song 2024), and a converted law."""

from __future__ import annotations

import numpy as np
import pytest

from scaling.analysis.fit import ChinchillaLaw
from scaling.analysis.fit.conventions import EmbeddingRelation, convert_law, frontier, local_slopes
from scaling.model import accounting
from scaling.sweep import ladder

# Besiroglu et al.'s refit of Chinchilla (results/epoch_chinchilla), N in total parameters.
LAW = ChinchillaLaw(A=477.83, B=2143.4, E=1.8172, alpha=0.34731, beta=0.36717)
# V = 32,000, T = 2048, d/L = 64: omega = (32000 + 2048) (64/12)^(1/3) = 34048 x 1.7471609
# = 59487.34.
REL = EmbeddingRelation.analytic(32000, 2048, 64)


def test_analytic_relation_by_hand_and_its_inverse():
    assert REL.omega == pytest.approx(59487.34, rel=1e-6)
    # N_ne = 1e6: N_total = 1e6 + 59487.34 x 1e6^(1/3) = 1e6 + 5948734 = 6948734.
    assert REL.total(1e6) == pytest.approx(6948734, rel=1e-6)
    n = np.array([1e4, 1e6, 1e9, 1e12])
    assert REL.nonembedding(REL.total(n)) == pytest.approx(n, rel=1e-9)
    assert REL.convert(n, "total", "total") == pytest.approx(n)
    with pytest.raises(ValueError, match="'kaplan'"):
        REL.convert(n, "kaplan", "total")


def test_frontier_in_the_laws_own_convention_is_the_closed_form():
    # a = beta/(alpha+beta) = 0.36717/0.71448 = 0.5138982; G = (alpha A/(beta B))^(1/0.71448)
    # = 0.1132102; at C = 1e18: N_total = G (C/6)^a = 8.019793e7. Its non-embedding count
    # solves N_ne + 59487.34 N_ne^(1/3) = 8.019793e7: N_ne = 5.726835e7 (embeddings 2.292958e7).
    (p,) = frontier(LAW, REL, [1e18])
    assert p.N_total == pytest.approx(8.019793e7, rel=1e-6)
    assert p.N_nonembedding == pytest.approx(5.726835e7, rel=1e-5)
    assert p.C_total == pytest.approx(1e18)


def test_local_slopes_worked_by_hand():
    # N_total grows as C^0.5138982 at every budget. N_ne's slope is that divided by
    # d log N_total / d log N_ne = (N_ne + omega N_ne^(1/3) / 3) / N_total
    # = (5.726835e7 + 2.292958e7 / 3) / 8.019793e7 = 0.8093918, so at 1e18: 0.634919;
    # at 1e24 embeddings are under 1% and both slopes meet.
    s = local_slopes(LAW, REL, [1e18, 1e24])
    assert s["N_total"] == pytest.approx([0.5138982] * 2, abs=1e-5)
    assert s["N_nonembedding"][0] == pytest.approx(0.634919, abs=1e-4)
    assert s["N_nonembedding"][1] == pytest.approx(0.5139, abs=2e-3)


def test_kaplan_compute_moves_the_optimum():
    # With C counted as 6 N_ne D (Kaplan) embeddings cost no compute, so at the same count of
    # FLOPs a token is cheaper and the optimum trains a smaller model on more tokens than the
    # closed form's 8.019793e7 parameters on 1e18 / (6 x 8.019793e7) = 2.078192e9 tokens.
    (p,) = frontier(LAW, REL, [1e18], compute_in="nonembedding")
    assert p.C_nonembedding == pytest.approx(1e18)
    assert p.N_total < 8.019793e7 and p.D > 2.078192e9


def test_relation_fitted_to_the_ladders_counts():
    rungs = ladder.ladder()
    counts = [accounting.param_counts(m, 256, 1024) for m in rungs]
    ne = np.array([c.nonembedding for c in counts], float)
    tot = np.array([c.total for c in counts], float)
    rel = EmbeddingRelation.from_counts(ne, tot, "main ladder, V=256, T=1024")
    # Depth is a whole number of layers, so the power law is close, not exact: within 8%.
    assert rel.total(ne) == pytest.approx(tot, rel=0.1)
    assert 0.2 < rel.gamma < 0.6


def test_converted_law_reproduces_the_losses_over_its_range():
    conv = convert_law(LAW, REL, law_in="total", to="nonembedding", n_range=(1e9, 1e10),
                       d_range=(1e10, 1e11))  # fmt: skip
    assert conv.max_rel_error < 0.002
    assert conv.law.beta == pytest.approx(LAW.beta, rel=0.02)  # D is counted the same way
