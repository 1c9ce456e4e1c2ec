"""The emergence analysis's terms: metric groups, verdict labels, column names and thresholds.

Shared by the curve scores and verdicts (scaling.analysis.emergence) and Du et al.'s loss test
(scaling.analysis.loss_test); scaling.analysis.emergence re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass

DISCRETE_METRICS = ("exact_match",)
CONTINUOUS_METRICS = ("token_accuracy", "edit_distance", "answer_logprob", "brier")
AXES = ("n", "c", "loss")
SCORE_NAMES = (
    "improvement",
    "breakthroughness",
    "breakthroughness_ratio",
    "linearity",
    "max_step_share",
    "jump_rise",
    "jump_steps",
    "jump_contrast",
)
# The best value of each metric, towards which "the way to a perfect score" is measured.
PERFECT = {
    "exact_match": 1.0,
    "token_accuracy": 1.0,
    "edit_distance": 0.0,
    "answer_logprob": 0.0,
    "brier": 0.0,
}

MIRAGE = "mirage"
GENUINE = "genuine"
MIXED = "mixed"
SMOOTH = "smooth"
NO_RISE = "no rise"
UNDETERMINED = "undetermined"
LOSS_EXPLAINS = "loss explains it"
SCALE_MATTERS = "N/D matter beyond loss"


@dataclass(frozen=True)
class Columns:
    """Column names of the tidy table (defaults: the records table's names)."""

    task: str = "task"
    run: str = "run_name"
    n: str = "n_params_total"
    c: str = "flops_6n"
    d: str = "tokens_seen"
    loss: str = "final_val_loss"
    n_examples: str = "n_examples"

    def axis(self, axis: str) -> str:
        return {"n": self.n, "c": self.c, "loss": self.loss}[axis]


@dataclass(frozen=True)
class Thresholds:
    """Every threshold the verdicts use, with its default.

    - jump_contrast: a jump's rise per step must be at least this many times the median step
      outside it. A straight line scores 1, a smooth sigmoid in log N about 2 (2.4 over 5
      scales; its log prob, rising then saturating, 3 over 8) and p^8 of it hundreds
      (tests/test_emergence.py).
    - jump_width: a jump may span up to this many adjacent steps (a rise that straddles a
      sampled scale lands in two).
    - context_steps: steps outside the jump that must exist to tell a jump from a steady rise;
      `min_scales` = 2 + context_steps is the fewest scales on which a one-step jump can show.
    - min_improvement: the jump must climb at least this share of the way from the curve's worst
      value to a perfect score (`PERFECT`), in every metric: flat noise is not a jump, and a
      curve whose whole improvement is below it has "no rise".
    - genuine_share: share of the continuous metrics that must jump for "genuine"; some but
      fewer is "mixed", none is "mirage".
    - du_alpha: F-test level; p < du_alpha means N/D explain what loss does not.
    - du_knots: interior knots of the cubic spline in loss (fewer when runs are few).
    - collinear_r2: above this R^2 of log N (or log D) on the loss spline the test cannot tell
      N from loss in these runs, and says so.
    """

    jump_contrast: float = 4.0
    jump_width: int = 2
    context_steps: int = 2
    min_improvement: float = 0.05
    genuine_share: float = 0.5
    du_alpha: float = 0.05
    du_knots: int = 2
    collinear_r2: float = 0.99

    def __post_init__(self) -> None:
        if self.jump_width < 1 or self.context_steps < 1:
            raise ValueError(
                f"jump_width ({self.jump_width}) and context_steps ({self.context_steps}) "
                "must be at least 1: a jump is a step, seen against at least one other"
            )

    @property
    def min_scales(self) -> int:
        return 2 + self.context_steps


# The defaults every function of the analysis takes (frozen: one shared instance is safe).
DEFAULT_COLUMNS = Columns()
DEFAULT_THRESHOLDS = Thresholds()
