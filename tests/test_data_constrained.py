"""Tests for scaling.analysis.fit.data_constrained: Muennighoff et al. 2023's law against values
worked by
hand from the paper's equations and constants, its example configurations, the optimal
allocation, and the fit."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scaling.analysis import fit
from scaling.analysis.fit.data_constrained import (
    MUENNIGHOFF_2023,
    PRESET_SOURCES,
    DataConstrainedLaw,
    data_constrained_fit,
    law_of,
    optimal_allocation,
)

PAPER = MUENNIGHOFF_2023

# The paper's constants (released fit: a, b, e, alpha = beta, R_D*, R_N*):
#   A = exp(6.255414) = 520.825, B = exp(7.3049974) = 1487.716, E = exp(0.6254804) = 1.869144,
#   alpha = beta = 0.3526596, R_D* = 15.387756, R_N* = 5.309743.
# Their frontier constant: G = (alpha A / (beta B))^(1/(alpha+beta)); with alpha = beta,
#   ln G = (6.255414 - 7.3049974) / (2 * 0.3526596) = -1.4880970, G = 0.2258019,
# and the unique-parameter size of U tokens, G (G U)^(beta/alpha) = G^2 U = 0.05098652 U
# (the released code's "U_D * 0.051").
G = 0.2258019
U_25B = 25e9
U_N_25B = 0.05098652 * U_25B  # 1.274663e9


def test_preset_is_the_papers_fit_with_its_source():
    assert PAPER.A == pytest.approx(520.825, rel=1e-6)
    assert PAPER.B == pytest.approx(1487.716, rel=1e-6)
    assert PAPER.E == pytest.approx(1.869144, rel=1e-6)
    assert (PAPER.alpha, PAPER.beta) == (0.3526596, 0.3526596)
    assert (PAPER.R_D_star, PAPER.R_N_star) == (15.387756, 5.309743)
    assert "Muennighoff et al. 2023" in PRESET_SOURCES["muennighoff2023"]
    assert float(PAPER.unique_params(U_25B)) == pytest.approx(U_N_25B, rel=1e-6)


def test_effective_data_and_params_worked_by_hand():
    # 8.67B parameters on 178B tokens from 25B unique ones (7.12 epochs):
    #   R_D = 178/25 - 1 = 6.12; R_D/R_D* = 0.3977188, exp(-0.3977188) = 0.6718509
    #   D' = 25e9 (1 + 15.387756 (1 - 0.6718509)) = 25e9 x 6.049478 = 1.5123695e11
    #   R_N = 8.67e9 / 1.274663e9 - 1 = 5.801798; R_N/R_N* = 1.0926702, exp(-.) = 0.3353199
    #   N' = 1.274663e9 (1 + 5.309743 (1 - 0.3353199)) = 1.274663e9 x 4.529279 = 5.773306e9
    n, d = np.array([8.67e9]), np.array([178e9])
    assert PAPER.effective_data(d, U_25B)[0] == pytest.approx(1.5123695e11, rel=1e-6)
    assert PAPER.effective_params(n, d, U_25B)[0] == pytest.approx(5.773306e9, rel=1e-6)
    # Within one epoch nothing repeats: D' = D (U_D = min(U, D) = D), and a model no larger
    # than U_N is not discounted.
    assert fit.effective_data(np.array([5e8]), np.array([1e9]), 15.4)[0] == pytest.approx(5e8)
    assert PAPER.effective_params(np.array([1e9]), d, U_25B)[0] == pytest.approx(1e9)


# The paper's example (Figure 3, right): at 25B unique tokens and about 9.3e21 FLOPs, the
# configuration that ignores repetition (8.67B parameters, 178B tokens, 7.1 epochs) against
# the data-constrained one (6.34B parameters, 242B tokens, 9.7 epochs).
#   config 1: A/N'^alpha = 520.825 / 5.773306e9^0.3526596 = 0.1880320
#             B/D'^beta  = 1487.716 / 1.5123695e11^0.3526596 = 0.1697878
#             L = 1.869144 + 0.188032 + 0.169788 = 2.226963
#   config 2: R_D = 242/25 - 1 = 8.68, exp(-8.68/15.387756) = 0.5688805,
#             D' = 25e9 (1 + 15.387756 x 0.4311195) = 1.9084903e11, B/D'^beta = 0.1564143;
#             R_N = 6.34e9/1.274663e9 - 1 = 3.973864, exp(-3.973864/5.309743) = 0.4731183,
#             N' = 1.274663e9 (1 + 5.309743 x 0.5268817) = 4.840668e9, A/N'^alpha = 0.2000861;
#             L = 1.869144 + 0.200086 + 0.156414 = 2.225644
# so the smaller model trained for more epochs wins by 0.0013 nats: the paper's headline.
CONFIG_1 = (8.67e9, 178e9, 2.226963)
CONFIG_2 = (6.34e9, 242e9, 2.225644)


def test_papers_example_configurations():
    for n, d, want in (CONFIG_1, CONFIG_2):
        assert PAPER.loss(n, d, U_25B) == pytest.approx(want, abs=2e-6)
    assert PAPER.loss(*CONFIG_2[:2], U_25B) < PAPER.loss(*CONFIG_1[:2], U_25B)


def test_without_the_excess_parameter_term_the_ranking_reverses():
    # R_N* -> infinity makes N' = N (the half law this module used to implement). By hand,
    # config 1: 520.825 / 8.67e9^0.3526596 = 0.162911, L = 1.869144 + 0.162911 + 0.169788 =
    # 2.201844; config 2: 520.825 / 6.34e9^0.3526596 = 0.181924, L = 2.207482: config 1 "wins".
    half = DataConstrainedLaw(**{**PAPER.to_dict(), "R_N_star": 1e12})
    assert half.loss(*CONFIG_1[:2], U_25B) == pytest.approx(2.201844, abs=1e-5)
    assert half.loss(*CONFIG_2[:2], U_25B) == pytest.approx(2.207482, abs=1e-5)


def test_optimal_allocation_without_a_constraint_is_chinchillas_frontier():
    # U = 1e13 unique tokens: nothing repeats at C = 1e21. With alpha = beta the frontier is
    # N = G (C/6)^(1/2) = 0.2258019 x 1.2909944e10 = 2.915091e9, D = 1.2909944e10 / G =
    # 5.717375e10, L = 1.869144 + 520.825/N^alpha + 1487.716/D^beta = 2.347687.
    alloc = optimal_allocation(1e21, 1e13)
    assert alloc.N == pytest.approx(2.915091e9, rel=1e-4)
    assert alloc.D == pytest.approx(5.717375e10, rel=1e-4)
    assert alloc.loss == pytest.approx(2.347687, abs=1e-6)
    assert alloc.epochs == pytest.approx(5.717375e10 / 1e13, rel=1e-4)


def test_optimal_allocation_under_the_papers_constraint():
    # 25B unique tokens at the example's budget: the optimum trains a smaller model for more
    # epochs than Chinchilla's N = G (C/6)^(1/2) = 8.89e9 (6.97 epochs), and beats both
    # example configurations.
    c = 6 * 8.67e9 * 178e9
    alloc = optimal_allocation(c, U_25B)
    assert 6.3e9 < alloc.N < 7.2e9
    assert alloc.epochs > 8.5
    assert alloc.N * alloc.D * 6 == pytest.approx(c)
    assert alloc.loss <= min(CONFIG_1[2], CONFIG_2[2])
    assert alloc.loss == pytest.approx(PAPER.loss(alloc.N, alloc.D, U_25B))


def test_fit_recovers_the_repetition_constants_with_the_chinchilla_part_given():
    truth = PAPER
    n, u, epochs = (g.ravel() for g in np.meshgrid(np.geomspace(1e8, 1e10, 5), [1e9, 1e10],
                                                   [1, 2, 4, 8, 16, 32, 64]))  # fmt: skip
    d = u * epochs
    rng = np.random.default_rng(0)
    loss = truth.loss(n, d, u) * np.exp(rng.normal(0, 1e-3, len(n)))
    res = data_constrained_fit(n, d, u, loss, base=truth.chinchilla(), n_bootstrap=50)
    assert res.value("R_D_star") == pytest.approx(truth.R_D_star, rel=0.1)
    assert res.value("R_N_star") == pytest.approx(truth.R_N_star, rel=0.1)
    assert res.params["R_D_star"].covers(truth.R_D_star)
    assert res.value("alpha") == truth.alpha  # given, not fitted
    assert law_of(res).loss(1e9, 1e10, 1e9) == pytest.approx(truth.loss(1e9, 1e10, 1e9), 1e-3)


@pytest.mark.slow
def test_fit_of_all_seven_parameters():
    truth = PAPER
    grids = np.meshgrid(np.geomspace(1e7, 1e10, 6), [1e8, 1e9, 1e10], 2.0 ** np.arange(0, 7))
    n, u, epochs = (g.ravel() for g in grids)
    d = u * epochs
    loss = truth.loss(n, d, u) * np.exp(np.random.default_rng(1).normal(0, 5e-4, len(n)))
    res = data_constrained_fit(n, d, u, loss, n_bootstrap=0)
    for name in ("E", "alpha", "beta", "R_D_star"):
        assert res.value(name) == pytest.approx(getattr(truth, name), rel=0.1), name
    assert math.isfinite(res.value("R_N_star"))
