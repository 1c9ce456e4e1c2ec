"""Per-size hyperparameters of a sweep: learning rate, batch size and warmup as functions of N.

The rules follow the recipe of Porian et al. 2024, "Resolving discrepancies in compute-optimal
scaling of language models" (arXiv 2406.19146): a short warmup of about N tokens (long warmups
handicap small models), a cosine decay matched to each run's own length (the `cosine` schedule
in `scaling.train.optim` already decays over the whole run), and learning rate and batch size
tuned per model size, both of which they find to follow power laws in N. The power-law *form*
is theirs; the default constants in `HparamRules` are this framework's priors for its
byte-level ladder (see each field), not the paper's fitted numbers, so a study that cares should
sweep `lr_multipliers` and let the analysis keep the best learning rate per (N, D).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class HparamRules:
    """Hyperparameters as functions of N (in `GridSpec.param_convention`)."""

    # lr(N) = lr_ref * (N / n_ref)^(-lr_exponent). Form: Porian et al. 2024 (tuned lr falls as a
    # power of N). lr_ref is TrainConfig's default 3e-3 placed at N = 1e6, mid-ladder; the
    # exponent 0.25 is a prior of this framework, to be checked with lr_multipliers.
    lr_ref: float = 3e-3
    n_ref: float = 1e6
    lr_exponent: float = 0.25
    # batch tokens(N) = batch_tokens_ref * (N / n_ref)^batch_exponent, then sequences of seq_len
    # rounded to a power of two within [batch_min, batch_max]. Form: Porian et al. 2024 (tuned
    # batch size grows as a power of N); constants are priors of this framework.
    batch_tokens_ref: float = 4096
    batch_exponent: float = 0.5
    batch_min: int = 1
    batch_max: int = 1024
    # Warmup of warmup_tokens_per_param * N tokens (Porian et al. 2024: warmup of N tokens),
    # capped at warmup_max_fraction of the run so that short runs still spend most steps trained.
    warmup_tokens_per_param: float = 1.0
    warmup_max_fraction: float = 0.2
    # > 0: warmup is this share of each run instead (the same share of steps for every rung, so
    # N tokens of warmup cannot eat a large share of a large rung's short run on a CPU budget).
    warmup_fraction: float = 0.0
    # Each point is trained once per multiplier of lr(N); records keep every run and the analysis
    # picks the best learning rate per (N, D).
    lr_multipliers: list[float] = field(default_factory=lambda: [1.0])


def lr_for(n_params: float, rules: HparamRules) -> float:
    """Peak learning rate of a model of N = n_params: lr_ref * (N / n_ref)^(-lr_exponent)."""
    return rules.lr_ref * (n_params / rules.n_ref) ** (-rules.lr_exponent)


def batch_size_for(n_params: float, seq_len: int, rules: HparamRules) -> int:
    """Sequences per step: the batch-token rule over seq_len, the nearest power of two."""
    sequences = rules.batch_tokens_ref * (n_params / rules.n_ref) ** rules.batch_exponent / seq_len
    power = 2 ** round(math.log2(max(sequences, 1.0)))
    return int(min(max(power, rules.batch_min), rules.batch_max))


def warmup_tokens_for(n_params: float, tokens: int, rules: HparamRules) -> int:
    """Warmup tokens of a run of `tokens`: a share of the run, or about N tokens, capped."""
    if rules.warmup_fraction > 0:
        return int(rules.warmup_fraction * tokens)
    return int(min(rules.warmup_tokens_per_param * n_params, rules.warmup_max_fraction * tokens))
