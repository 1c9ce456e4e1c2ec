"""Sweep grids: N x D and IsoFLOP budgets expanded into points, and the sweep's manifest.

The grid functions are pure: rungs (name, N, FLOPs per token) in, a list of `Point`s out, each a
list of Hydra overrides with a deterministic run name `{rung}-D{tokens}-lr{lr}-s{seed}`, its
learning rate, batch size and warmup given by the per-size rules of `scaling.sweep.hparams`.
The Hydra sweeper plugin (`hydra_plugins.scaling_sweeper`) reads a `GridSpec` from
`hydra.sweeper.grid`, expands it here, groups the points into jobs (`scaling.sweep.groups`) and
hands their override lists to whichever launcher is configured.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from scaling import records
from scaling.config import (
    ConfigError,
    DataConfig,
    ModelConfig,
    PretrainConfig,
    is_safe_run_name,
)
from scaling.model import accounting
from scaling.sweep.hparams import HparamRules, batch_size_for, lr_for, warmup_tokens_for
from scaling.sweep.ladder import ladder
from scaling.train import rundir

log = logging.getLogger(__name__)

GRID_KINDS = ("nxd", "isoflop")
PARAM_CONVENTIONS = ("nonembedding", "with_head", "total")


@dataclass
class GridSpec:
    """A sweep as config: `hydra.sweeper.grid` in conf/experiment/*.yaml."""

    name: str = "sweep"  # names the manifest <out_dir>/.sweeps/<name>.json
    kind: str = "nxd"  # nxd: rungs x tokens; isoflop: budgets x rungs around the optimum
    # nxd: the rungs trained; isoflop: the candidate ladder (empty: every rung of
    # scaling.sweep.ladder)
    rungs: list[str] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)  # nxd: D values
    budgets: list[float] = field(default_factory=list)  # isoflop: compute budgets C in FLOPs
    rungs_per_budget: int = 5  # isoflop: rungs per budget, centred on the prior's optimum
    tokens_per_param: float = 20.0  # isoflop prior: D/N at the optimum (Hoffmann et al. 2022)
    flops_convention: str = accounting.FLOPS_6N  # C = flops_per_token(N) * D in this convention
    param_convention: str = "nonembedding"  # the N of the rules and of the prior
    min_steps: int = 20  # isoflop: points with fewer optimizer steps are dropped
    seeds: list[int] = field(default_factory=lambda: [0])
    # isoflop: the smallest budget also runs these seeds (the cheapest place to measure the
    # seed-to-seed spread that a fit's noise and a design check need)
    smallest_budget_seeds: list[int] = field(default_factory=list)
    hparams: HparamRules = field(default_factory=HparamRules)
    # Points that share a shape (group_key) train together in one job, one jitted step for all
    # (scaling.train.loop), at most this many per job; 1 trains every point alone.
    group_models: int = 8
    group_max_params: int = 5_000_000  # larger rungs (in param_convention) always train alone


@dataclass(frozen=True)
class Rung:
    """One model size as a grid sees it: its N and training FLOPs per token."""

    name: str
    n_params: int
    flops_per_token: float


@dataclass(frozen=True)
class Point:
    """One run of a sweep."""

    rung: str
    n_params: int
    tokens: int
    lr: float
    lr_multiplier: float
    batch_size: int
    warmup_tokens: int
    seed: int
    budget: float | None = None  # isoflop only

    @property
    def run_name(self) -> str:
        return f"{self.rung}-D{self.tokens}-lr{_fmt(self.lr)}-s{self.seed}"

    @property
    def overrides(self) -> list[str]:
        return [
            f"model={self.rung}",
            f"train.tokens={self.tokens}",
            f"train.lr={_fmt(self.lr)}",
            f"train.warmup_tokens={self.warmup_tokens}",
            f"train.batch_size={self.batch_size}",
            f"train.seed={self.seed}",
            f"run_name={self.run_name}",
        ]

    def describe(self) -> dict[str, Any]:
        """JSON-able summary for the sweep manifest."""
        return {
            "run_name": self.run_name,
            "rung": self.rung,
            "n_params": self.n_params,
            "tokens": self.tokens,
            "budget": self.budget,
            "lr": self.lr,
            "lr_multiplier": self.lr_multiplier,
            "batch_size": self.batch_size,
            "warmup_tokens": self.warmup_tokens,
            "seed": self.seed,
            "overrides": self.overrides,
        }


def _fmt(value: float) -> str:
    # Three significant digits: short, stable names and the exact value the run is given.
    return f"{value:.3g}"


def _round3(value: float) -> float:
    return float(_fmt(value))


# --- rungs -------------------------------------------------------------------------------------


def planning_vocab_size(data: DataConfig) -> int:
    """The vocabulary the run will have, known without building the corpus."""
    if data.corpus == "memmap":
        if data.vocab_size is None:
            raise ConfigError("data.corpus=memmap needs data.vocab_size")
        return data.vocab_size
    return data.bpe_vocab_size if data.tokenizer == "bpe" else 256


def make_rung(
    model: ModelConfig,
    vocab_size: int,
    seq_len: int,
    flops_convention: str = accounting.FLOPS_6N,
    param_convention: str = "nonembedding",
) -> Rung:
    """N and FLOPs per token of `model`, counted by scaling.model.accounting in the named
    conventions."""
    if flops_convention not in accounting.FLOPS_CONVENTIONS:
        raise ConfigError(
            f"flops_convention={flops_convention!r} is not one of "
            f"{list(accounting.FLOPS_CONVENTIONS)}"
        )
    if param_convention not in PARAM_CONVENTIONS:
        raise ConfigError(
            f"param_convention={param_convention!r} is not one of {list(PARAM_CONVENTIONS)}"
        )
    counts = accounting.param_counts(model, vocab_size, seq_len)
    flops = accounting.flops_per_token(model, vocab_size, seq_len)[flops_convention]
    return Rung(model.name, getattr(counts, param_convention), flops)


# --- points -------------------------------------------------------------------------------------


def _points_at(
    rung: Rung,
    tokens: int,
    seq_len: int,
    rules: HparamRules,
    seeds: Sequence[int],
    budget: float | None = None,
    batch_size: int | None = None,
) -> list[Point]:
    base_lr = lr_for(rung.n_params, rules)
    batch = batch_size or batch_size_for(rung.n_params, seq_len, rules)
    return [
        Point(
            rung=rung.name,
            n_params=rung.n_params,
            tokens=tokens,
            lr=_round3(base_lr * mult),
            lr_multiplier=float(mult),
            batch_size=batch,
            warmup_tokens=warmup_tokens_for(rung.n_params, tokens, rules),
            seed=int(seed),
            budget=budget,
        )
        for mult in rules.lr_multipliers
        for seed in seeds
    ]


# --- grids ---------------------------------------------------------------------------------------


def nxd_grid(
    rungs: Sequence[Rung],
    tokens: Sequence[int],
    seq_len: int,
    rules: HparamRules | None = None,
    seeds: Sequence[int] = (0,),
) -> list[Point]:
    """Every rung at every D (x lr multipliers x seeds)."""
    rules = rules or HparamRules()
    points = [
        p for rung in rungs for d in tokens for p in _points_at(rung, int(d), seq_len, rules, seeds)
    ]
    return _unique(points)


def centre_index(rungs: Sequence[Rung], budget: float, tokens_per_param: float) -> int:
    """The rung whose D/N at this budget is nearest (in log) the prior's tokens per parameter.

    Under 6N, D/N = C/(6N^2), so this is the rung nearest N_opt = sqrt(C / (6 * prior)) in log.
    """

    def distance(rung: Rung) -> float:
        d = budget / rung.flops_per_token
        return abs(math.log(d / rung.n_params / tokens_per_param))

    return min(range(len(rungs)), key=lambda i: distance(rungs[i]))


def isoflop_window(n_rungs: int, centre: int, k: int) -> tuple[int, int]:
    """[lo, hi) of k rungs centred on `centre`, slid inside the ladder when it hits an end."""
    k = min(k, n_rungs)
    lo = centre - (k - 1) // 2
    lo = min(max(lo, 0), n_rungs - k)
    return lo, lo + k


def isoflop_grid(
    rungs: Sequence[Rung],
    budgets: Sequence[float],
    seq_len: int,
    rules: HparamRules | None = None,
    seeds: Sequence[int] = (0,),
    rungs_per_budget: int = 5,
    tokens_per_param: float = 20.0,
    min_steps: int = 20,
    smallest_budget_seeds: Sequence[int] = (),
) -> list[Point]:
    """For each budget C, the rungs around the prior's optimum with D = C / flops_per_token(N).

    `rungs` must be sorted by size. D is rounded to whole optimizer steps (the trainer would
    round it up anyway); a point left with fewer than `min_steps` steps (at least 1) is dropped
    with a log line. The smallest budget runs `smallest_budget_seeds` besides `seeds`.
    """
    rules = rules or HparamRules()
    ladder = sorted(rungs, key=lambda r: r.n_params)
    points: list[Point] = []
    for budget in budgets:
        centre = centre_index(ladder, budget, tokens_per_param)
        lo, hi = isoflop_window(len(ladder), centre, rungs_per_budget)
        if hi - lo < rungs_per_budget or lo != centre - (rungs_per_budget - 1) // 2:
            log.info(
                "budget %.3g: optimum near %s, at the end of the ladder; using %s..%s",
                budget,
                ladder[centre].name,
                ladder[lo].name,
                ladder[hi - 1].name,
            )
        for rung in ladder[lo:hi]:
            batch = batch_size_for(rung.n_params, seq_len, rules)
            tokens_per_step = batch * seq_len
            steps = round(budget / rung.flops_per_token / tokens_per_step)
            if steps < max(1, min_steps):
                log.info(
                    "budget %.3g: dropped %s: D = %.3g tokens is %d steps of %d (min_steps %d)",
                    budget,
                    rung.name,
                    budget / rung.flops_per_token,
                    steps,
                    tokens_per_step,
                    min_steps,
                )
                continue
            tokens = steps * tokens_per_step
            budget_seeds = list(seeds)
            if budget == min(budgets):
                budget_seeds += [s for s in smallest_budget_seeds if s not in budget_seeds]
            points.extend(
                _points_at(
                    rung, tokens, seq_len, rules, budget_seeds, budget=budget, batch_size=batch
                )
            )
    return _unique(points)


def _unique(points: list[Point]) -> list[Point]:
    names = [p.run_name for p in points]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"the grid names two runs alike: {duplicates[:5]}")
    bad = [n for n in names if not is_safe_run_name(n)]
    if bad:
        raise ConfigError(f"unsafe run names: {bad[:5]}")
    return points


def expand(spec: GridSpec, rungs: Sequence[Rung], seq_len: int) -> list[Point]:
    """The points of `spec`; `rungs` are those `spec.rungs` names (or the whole ladder)."""
    if spec.kind == "nxd":
        if not spec.rungs or not spec.tokens:
            raise ConfigError("hydra.sweeper.grid: kind nxd needs rungs and tokens")
        return nxd_grid(rungs, spec.tokens, seq_len, spec.hparams, spec.seeds)
    if spec.kind == "isoflop":
        if not spec.budgets:
            raise ConfigError("hydra.sweeper.grid: kind isoflop needs budgets")
        return isoflop_grid(
            rungs,
            spec.budgets,
            seq_len,
            spec.hparams,
            spec.seeds,
            spec.rungs_per_budget,
            spec.tokens_per_param,
            spec.min_steps,
            spec.smallest_budget_seeds,
        )
    raise ConfigError(f"hydra.sweeper.grid.kind={spec.kind!r} is not one of {list(GRID_KINDS)}")


def grid_spec(node: Any) -> GridSpec:
    """`hydra.sweeper.grid` (a DictConfig or dict) as a typed GridSpec."""
    merged = OmegaConf.merge(OmegaConf.structured(GridSpec), node)
    spec = OmegaConf.to_object(merged)
    assert isinstance(spec, GridSpec)
    return spec


def plan(spec: GridSpec, compose: Callable[[list[str]], PretrainConfig]) -> list[Point]:
    """The points of `spec`, counting each rung in the config its runs will have.

    `compose(extra_overrides)` returns the sweep's base config with the extra overrides applied
    (the sweeper composes through Hydra), so architecture, vocabulary and seq_len overrides on
    the command line change N and the FLOPs per token exactly as they change the runs.
    """
    names = list(spec.rungs) or [m.name for m in ladder()]
    rungs = []
    for name in names:
        cfg = compose([f"model={name}"])
        vocab = planning_vocab_size(cfg.data)
        rungs.append(
            make_rung(
                cfg.model, vocab, cfg.data.seq_len, spec.flops_convention, spec.param_convention
            )
        )
    return expand(spec, rungs, compose([]).data.seq_len)


# --- manifest ------------------------------------------------------------------------------------


def write_manifest(
    out_dir: Path, spec_name: str, points: Sequence[Point], extra: dict[str, Any]
) -> Path:
    """<out_dir>/.sweeps/<name>.json: every point with its budget, N and multiplier.

    Records know N and D but not the IsoFLOP budget or lr multiplier a point was made for;
    analyses join this manifest on run_name. Sweeps of one name add their points to it (under a
    lock, so workers started together on overlapping grids lose none of each other's).
    """
    path = Path(out_dir) / ".sweeps" / f"{spec_name}.json"
    with rundir.file_lock(path.with_suffix(".lock")):
        try:
            known = json.loads(path.read_text(encoding="utf-8"))["points"]
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            known = []  # none yet, or unreadable: this sweep's points replace it
        mine = [p.describe() for p in points]
        names = {p["run_name"] for p in mine}
        kept = [p for p in known if isinstance(p, dict) and p.get("run_name") not in names]
        body = {**extra, "points": kept + mine}
        records.atomic_write_text(path, json.dumps(body, indent=2) + "\n")
    return path
