"""Parameter-count conventions in the compute-optimal frontier (Kaplan vs Chinchilla).

Kaplan et al. 2020 counted non-embedding parameters N_ne (and compute C_ne = 6 N_ne D), Hoffmann
et al. 2022 all of them, N_total (C_total = 6 N_total D). Pearce & Song 2024 ("Reconciling
Kaplan and Chinchilla Scaling Laws") showed that most of the two papers' disagreement (N_opt
as C^0.73 against C^0.50) is this choice made at small scale, where embeddings are a large share
of the model: the same frontier, read in N_ne, has a far steeper local slope.

An `EmbeddingRelation` maps one count to the other in their form N_total = N_ne + omega N_ne^gamma
(gamma = 1/3 when the width grows as N_ne^(1/3) at a fixed depth-to-width ratio): analytic from a
vocabulary, a context and an aspect ratio, or fitted to a ladder's own counts. `frontier` then
reports a law's compute-optimal frontier in either convention, for compute counted in either;
`convert_law` refits a law in the other convention over a range; `local_slopes` gives
d log N_opt / d log C in both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.optimize import minimize_scalar

from scaling.analysis.fit.chinchilla import ChinchillaLaw, fit_chinchilla
from scaling.analysis.format import percent
from scaling.analysis.format import table as markdown_table

CONVENTIONS = ("total", "nonembedding")


@dataclass(frozen=True)
class EmbeddingRelation:
    """N_total = N_ne + omega N_ne^gamma; `source` says where omega and gamma come from."""

    omega: float
    gamma: float
    source: str

    @classmethod
    def analytic(
        cls, vocab_size: int, context: int, aspect_ratio: float, learned_positions: bool = True
    ) -> EmbeddingRelation:
        """Pearce & Song's form: embeddings (V + T) d (V alone without learned positions),
        blocks N_ne = 12 L d^2 with d = aspect_ratio x L, so d = (aspect_ratio N_ne / 12)^(1/3)."""
        rows = vocab_size + (context if learned_positions else 0)
        omega = rows * (aspect_ratio / 12.0) ** (1.0 / 3.0)
        where = f"V={vocab_size}" + (f", T={context}" if learned_positions else "")
        return cls(omega, 1.0 / 3.0, f"analytic ({where}, d/L={aspect_ratio:g})")

    @classmethod
    def from_counts(
        cls, n_nonembedding: ArrayLike, n_total: ArrayLike, source: str
    ) -> EmbeddingRelation:
        """Fitted (least squares in logs) to models' counts, e.g. a ladder's."""
        ne, tot = np.asarray(n_nonembedding, float), np.asarray(n_total, float)
        if len(ne) < 2 or np.any(tot <= ne):
            raise ValueError("need 2+ models whose total count exceeds the non-embedding one")
        gamma, log_omega = np.polyfit(np.log(ne), np.log(tot - ne), 1)
        return cls(float(math.exp(log_omega)), float(gamma), source)

    def total(self, n_nonembedding: ArrayLike) -> np.ndarray:
        ne = np.asarray(n_nonembedding, float)
        return ne + self.omega * np.power(ne, self.gamma)

    def nonembedding(self, n_total: ArrayLike) -> np.ndarray:
        """The inverse, by bisection in log N_ne (total() is increasing; N_ne < N_total)."""
        tot = np.asarray(n_total, float)
        lo, hi = np.full(tot.shape, -10.0), np.log(tot)
        for _ in range(200):  # bisection halves a bracket of < 100 nats: 2^-200 is exact
            mid = 0.5 * (lo + hi)
            below = self.total(np.exp(mid)) < tot
            lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
        return np.exp(0.5 * (lo + hi))

    def convert(self, n: ArrayLike, source: str, target: str) -> np.ndarray:
        """N counted in `source` as counted in `target` (each "total" or "nonembedding")."""
        for name in (source, target):
            if name not in CONVENTIONS:
                raise ValueError(f"convention {name!r} is not one of {list(CONVENTIONS)}")
        if source == target:
            return np.asarray(n, float)
        return self.total(n) if target == "total" else self.nonembedding(n)


@dataclass(frozen=True)
class FrontierPoint:
    """The least-loss run at a budget C counted in `compute_in`, in both conventions."""

    C: float
    compute_in: str
    N_total: float
    N_nonembedding: float
    D: float
    loss: float

    @property
    def C_total(self) -> float:
        return 6.0 * self.N_total * self.D

    @property
    def C_nonembedding(self) -> float:
        return 6.0 * self.N_nonembedding * self.D


def frontier(
    law: ChinchillaLaw,
    relation: EmbeddingRelation,
    budgets: ArrayLike,
    *,
    law_in: str = "total",
    compute_in: str = "total",
) -> list[FrontierPoint]:
    """The compute-optimal frontier of `law` (its N counted in `law_in`) at each budget C,
    counted as 6 N D in `compute_in`: per budget, the N minimising L(N, D = C / (6 N_c)) with
    N_c that N in the compute convention (a bounded search in log N around the closed form,
    which it equals when the two conventions agree)."""
    out = []
    for c in np.atleast_1d(np.asarray(budgets, float)):
        centre = math.log(float(law.compute_optimal(c)[0]))

        def loss(log_n: float, c: float = c) -> float:
            n = math.exp(log_n)
            n_c = float(relation.convert(n, law_in, compute_in))
            return float(law.loss(n, c / (6.0 * n_c)))

        best = minimize_scalar(loss, bounds=(centre - 10, centre + 10), method="bounded",
                               options={"xatol": 1e-9})  # fmt: skip
        n = math.exp(best.x)
        other = "nonembedding" if law_in == "total" else "total"
        n_other = float(relation.convert(n, law_in, other))
        n_c = n if compute_in == law_in else n_other
        counts = {law_in: n, other: n_other}
        out.append(
            FrontierPoint(
                float(c),
                compute_in,
                counts["total"],
                counts["nonembedding"],
                float(c / (6.0 * n_c)),
                float(best.fun),
            )  # fmt: skip
        )
    return out


def local_slopes(
    law: ChinchillaLaw,
    relation: EmbeddingRelation,
    budgets: ArrayLike,
    *,
    law_in: str = "total",
    compute_in: str = "total",
    step: float = 0.05,
) -> dict[str, np.ndarray]:
    """d log N_opt / d log C of both counts at each budget (central differences of `step`
    nats in log C), with C counted in `compute_in`."""
    log_c = np.log(np.atleast_1d(np.asarray(budgets, float)))
    ends = [
        frontier(law, relation, np.exp(log_c + s), law_in=law_in, compute_in=compute_in)
        for s in (-step, step)
    ]
    slopes = {}
    for name in ("N_total", "N_nonembedding"):
        lo, hi = (np.log([getattr(p, name) for p in e]) for e in ends)
        slopes[name] = (hi - lo) / (2 * step)
    return slopes


@dataclass(frozen=True)
class ConvertedLaw:
    law: ChinchillaLaw  # the same losses, with N counted in `convention`
    convention: str
    max_rel_error: float  # of its losses against the original law over the range fitted


def convert_law(
    law: ChinchillaLaw,
    relation: EmbeddingRelation,
    *,
    law_in: str,
    to: str,
    n_range: tuple[float, float],
    d_range: tuple[float, float],
) -> ConvertedLaw:
    """A law of the same form in the other convention: the original's losses on a 16 x 16 grid
    over `n_range` (in `law_in`) and `d_range`, refitted as Approach 3 (the map between counts
    is not a power law, so the conversion holds over that range; the fit error says how well)."""
    grid_n, grid_d = np.meshgrid(np.geomspace(*n_range, 16), np.geomspace(*d_range, 16))
    n, d = grid_n.ravel(), grid_d.ravel()
    loss = law.loss(n, d)
    n_to = relation.convert(n, law_in, to)
    refit = fit_chinchilla(n_to, d, loss).law
    err = float(np.max(np.abs(refit.loss(n_to, d) / loss - 1.0)))
    return ConvertedLaw(refit, to, err)


def conventions_report(
    law: ChinchillaLaw,
    relations: list[EmbeddingRelation],
    budgets: ArrayLike,
    law_in: str = "total",
    command: str = "",
) -> tuple[str, pd.DataFrame]:
    """Markdown and a table: the frontier and local slopes per budget under `relations[0]`,
    the small-scale slopes under every relation, and the law converted to the other count."""
    budgets = np.asarray(budgets, float)
    main = relations[0]
    rows = []
    slopes = local_slopes(law, main, budgets, law_in=law_in)
    kaplan = local_slopes(law, main, budgets, law_in=law_in, compute_in="nonembedding")
    for i, p in enumerate(frontier(law, main, budgets, law_in=law_in)):
        rows.append(
            {
                "C": p.C,
                "N_opt_total": p.N_total,
                "N_opt_nonembedding": p.N_nonembedding,
                "D_opt": p.D,
                "embedding_share": 1 - p.N_nonembedding / p.N_total,
                "slope_N_total": slopes["N_total"][i],
                "slope_N_nonembedding": slopes["N_nonembedding"][i],
                "slope_N_nonembedding_vs_C_nonembedding": kaplan["N_nonembedding"][i],
            }
        )
    table = pd.DataFrame(rows)
    other = "nonembedding" if law_in == "total" else "total"
    small = budgets[:4]
    lines = [
        "# The frontier in both parameter conventions (Pearce & Song 2024)",
        "",
        f"The Approach 3 law (N counted in {law_in} parameters): A = {law.A:.2f}, "
        f"B = {law.B:.1f}, E = {law.E:.4f}, alpha = {law.alpha:.4f}, beta = {law.beta:.4f}. "
        f"Embeddings: N_total = N_ne + omega N_ne^gamma, {main.source} "
        f"(omega = {main.omega:.0f}, gamma = {main.gamma:.3f}). Slopes are d log N_opt / d log C "
        "at each budget (central differences); C = 6 N_total D unless the column says C_ne = "
        "6 N_ne D (Kaplan's count).",
        "",
    ]
    if command:
        lines += ["```bash", command, "```", ""]
    header = ["C (FLOPs)", "N_opt total", "N_opt non-emb.", "embedding share"]
    header += ["slope N_total", "slope N_ne", "slope N_ne vs C_ne"]
    frontier_rows = [
        [
            f"{r['C']:.0e}",
            f"{r['N_opt_total']:.3g}",
            f"{r['N_opt_nonembedding']:.3g}",
            percent(r["embedding_share"]),
            f"{r['slope_N_total']:.3f}",
            f"{r['slope_N_nonembedding']:.3f}",
            f"{r['slope_N_nonembedding_vs_C_nonembedding']:.3f}",
        ]
        for r in rows
    ]
    slope_rows = []
    for rel in relations:
        s = local_slopes(law, rel, small, law_in=law_in)
        k = local_slopes(law, rel, small, law_in=law_in, compute_in="nonembedding")
        slope_rows.append(
            [
                rel.source,
                f"{np.mean(s['N_total']):.3f}",
                f"{np.mean(s['N_nonembedding']):.3f}",
                f"{np.mean(k['N_nonembedding']):.3f}",
            ]
        )
    lines += [
        markdown_table(header, frontier_rows),
        "",
        f"Mean local slope over the smallest budgets ({small[0]:.0e}-{small[-1]:.0e}), by the "
        "assumed depth-to-width ratio:",
        "",
        markdown_table(
            ["embeddings", "slope N_total", "slope N_ne", "slope N_ne vs C_ne"], slope_rows
        ),
    ]
    n_lo, n_hi = (float(v) for v in (table["N_opt_total"].min(), table["N_opt_total"].max()))
    n_lo, n_hi = (float(main.convert(v, "total", law_in)) for v in (n_lo, n_hi))
    d_lo, d_hi = float(table["D_opt"].min()), float(table["D_opt"].max())
    conv = convert_law(law, main, law_in=law_in, to=other, n_range=(n_lo, n_hi),
                       d_range=(d_lo, d_hi))  # fmt: skip
    cl = conv.law
    lines += [
        "",
        f"The same law refitted with N counted in {other} parameters (over the frontier's N and "
        f"D above): A = {cl.A:.3g}, B = {cl.B:.4g}, E = {cl.E:.4f}, alpha = {cl.alpha:.4f}, "
        f"beta = {cl.beta:.4f}; its losses differ from the original's by at most "
        f"{conv.max_rel_error:.2%} there. No power law in N_ne holds exactly: the map between "
        "the counts bends it.",
        "",
    ]
    return "\n".join(lines), table
