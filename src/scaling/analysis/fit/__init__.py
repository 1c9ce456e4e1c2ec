"""Scaling-law fits on plain arrays of N, D, C and loss (never run dirs, never model code).

- Approach 3 (`chinchilla_approach3`, `fit_chinchilla`): L = E + A/N^alpha + B/D^beta, Huber on
  log loss, L-BFGS from the paper's 4500-start grid, as in Besiroglu et al. 2024; bootstrap
  intervals for the parameters and the compute-optimal frontier.
- Approach 1 (`envelope_fit`) and Approach 2 (`isoflop_fit`): N_opt(C), D_opt(C) power laws.
- Kaplan et al. 2020 (`kaplan_fit`), Muennighoff et al. 2023 (`data_constrained_fit`, the
  paper's constants `MUENNIGHOFF_2023`, `optimal_allocation` under a data constraint),
  Hernandez et al. 2021 (`transfer_fit`).
- `heldout_check`: fit below a compute cut, predict above it.
- `scaling.analysis.fit.design`: can a planned grid recover a known law (simulated before any run)?
- `load_points`: the (N, D, C, loss) table of a CSV with named columns.

Every fit returns a JSON-able `FitResult` of `Estimate(estimate, ci_low, ci_high)`.
"""

from scaling.analysis.fit.bootstrap import resample_counts, resample_indices
from scaling.analysis.fit.chinchilla import (
    DEFAULT_BUDGETS,
    HUBER_DELTA,
    ChinchillaFit,
    ChinchillaLaw,
    bootstrap_chinchilla,
    chinchilla_approach3,
    compute_optimal,
    fit_chinchilla,
    profile_e,
    start_grid,
)
from scaling.analysis.fit.data_constrained import (
    MUENNIGHOFF_2023,
    Allocation,
    DataConstrainedLaw,
    data_constrained_fit,
    effective_data,
    optimal_allocation,
)
from scaling.analysis.fit.frontier import envelope_fit, group_budgets, isoflop_fit, isoflop_minima
from scaling.analysis.fit.heldout import HeldOutResult, heldout_check
from scaling.analysis.fit.powerlaw import kaplan_fit, transfer_fit
from scaling.analysis.fit.results import Estimate, FitResult, percentile_interval
from scaling.analysis.fit.table import FitInputError, load_points

__all__ = [
    "DEFAULT_BUDGETS",
    "MUENNIGHOFF_2023",
    "Allocation",
    "HUBER_DELTA",
    "ChinchillaFit",
    "ChinchillaLaw",
    "DataConstrainedLaw",
    "Estimate",
    "FitInputError",
    "FitResult",
    "HeldOutResult",
    "bootstrap_chinchilla",
    "chinchilla_approach3",
    "compute_optimal",
    "data_constrained_fit",
    "effective_data",
    "envelope_fit",
    "fit_chinchilla",
    "group_budgets",
    "heldout_check",
    "isoflop_fit",
    "isoflop_minima",
    "kaplan_fit",
    "load_points",
    "optimal_allocation",
    "percentile_interval",
    "profile_e",
    "resample_counts",
    "resample_indices",
    "start_grid",
    "transfer_fit",
]
