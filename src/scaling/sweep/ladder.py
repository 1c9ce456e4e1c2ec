"""The model ladders, each from one rule, written to `conf/model/<rung>.yaml`.

The main ladder has 14 rungs (0.1M to 0.8B), the CPU ladder 6 rungs of 2 layers (25k to 0.9M).

The rule (aspect ratio d/L ≈ 64, as in Kaplan et al. 2020's well-shaped models):
  - target non-embedding (Kaplan) counts N_i = 1e5 · 2^i for i = 0..13 (0.1M to ~0.8B);
  - depth L_i = max(1, round((N_i / (12 · 64²))^(1/3)));
  - width d_i = sqrt(N_i / (12 · L_i)) rounded to the nearest multiple of 64, or of 32 when that
    square root is below 256 (small models would otherwise jump by large factors);
  - head dim 64 (32 when d_i < 256), so n_heads = d_i / head_dim.
Should two rungs ever come out with the same (d, L), the later one is widened by one rounding
step so that every rung is a distinct, larger model; the rule above yields no such collision.

The CPU ladder, for studies on a few CPU cores (`experiment=study_isoflop`): one depth, so that the
only thing that changes between rungs is width:
  - n_layers = 2, the fewest that can form induction heads (retrieval tasks need them);
  - widths 32, 48, 64, 96, 128, 192 (each 1.33-1.5x the last, N = 24 d^2 from 25k to 885k:
    a 36x span);
  - head dim 32, or 16 where the width is not a multiple of 32 (d = 48: 3 heads).
Its d96 and d128 rungs are the main ladder's n221k and n393k.

Rung names encode the actual Kaplan N of the GPT-2-style (default) configuration, truncated so a
name never overstates it: below 1M in thousands (`n110k`), below 10M with one decimal (`n1m8` =
1.8M), above in millions (`n25m`, `n201m`). Each yaml holds only `name`, `d_model`, `n_layers` and
`n_heads`; the architecture comes from `ModelConfig` defaults, and `model.arch=llama` switches the
preset (SwiGLU's d_ff = 8/3·d makes a Llama rung's N about 4% larger than its name).

`python -m scaling.sweep.ladder` (re)writes the yaml files (plus `tiny.yaml` for tests and smoke
runs) and prints the ladder as a Markdown table; `--readme README.md` also replaces the table
between the markers `<!-- ladder:start -->` and `<!-- ladder:end -->`.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from scaling.config import ModelConfig
from scaling.model.accounting import FLOPS_CONVENTIONS, flops_per_token, param_counts

N_RUNGS = 14
BASE_N = 1e5
ASPECT_RATIO = 64
TABLE_VOCAB_SIZE = 256  # byte-level tokenizer
TABLE_SEQ_LEN = 1024
CPU_TABLE_SEQ_LEN = 128  # the CPU studies' context
MARKER_START = "<!-- ladder:start -->"
MARKER_END = "<!-- ladder:end -->"
TINY = ModelConfig(name="tiny", d_model=32, n_layers=2, n_heads=2)
CPU_LAYERS = 2
CPU_WIDTHS = (32, 48, 64, 96, 128, 192)
_YAML_KEYS = ("name", "d_model", "n_layers", "n_heads")


def _quantum(width: float) -> int:
    return 32 if width < 256 else 64


def _head_dim(d_model: int) -> int:
    return 32 if d_model < 256 else 64


def rung_name(n_nonembedding: int) -> str:
    """`n110k`, `n1m8`, `n25m`: the Kaplan N truncated to the unit shown."""
    if n_nonembedding < 1_000_000:
        return f"n{n_nonembedding // 1000}k"
    if n_nonembedding < 10_000_000:
        tenths = n_nonembedding // 100_000
        return f"n{tenths // 10}m{tenths % 10}"
    return f"n{n_nonembedding // 1_000_000}m"


def ladder() -> list[ModelConfig]:
    """The rungs, smallest first, as (unresolved) `ModelConfig`s with default architecture."""
    rungs: list[ModelConfig] = []
    shapes: set[tuple[int, int]] = set()
    for i in range(N_RUNGS):
        target = BASE_N * 2**i
        n_layers = max(1, round((target / (12 * ASPECT_RATIO**2)) ** (1 / 3)))
        width = math.sqrt(target / (12 * n_layers))
        q = _quantum(width)
        d_model = max(q, round(width / q) * q)
        while (d_model, n_layers) in shapes:  # collision: widen by one rounding step
            d_model += _quantum(d_model)
        shapes.add((d_model, n_layers))
        n_heads = d_model // _head_dim(d_model)
        kaplan_n = 12 * n_layers * d_model**2
        rungs.append(
            ModelConfig(
                name=rung_name(kaplan_n), d_model=d_model, n_layers=n_layers, n_heads=n_heads
            )
        )
    return rungs


def cpu_ladder() -> list[ModelConfig]:
    """The CPU ladder (see the module doc), smallest first."""
    rungs = []
    for d_model in CPU_WIDTHS:
        head_dim = 32 if d_model % 32 == 0 else 16
        kaplan_n = 12 * CPU_LAYERS * d_model**2
        rungs.append(
            ModelConfig(
                name=rung_name(kaplan_n),
                d_model=d_model,
                n_layers=CPU_LAYERS,
                n_heads=d_model // head_dim,
            )
        )
    return rungs


def all_rungs() -> list[ModelConfig]:
    """Every rung of both ladders once (the shared ones from the main ladder), plus `tiny`."""
    rungs = {cfg.name: cfg for cfg in [*ladder(), *cpu_ladder(), TINY]}
    return list(rungs.values())


def to_yaml(cfg: ModelConfig) -> str:
    """A rung's conf/model yaml: its name and shape, the architecture left to the defaults."""
    lines = ["# Generated by `python -m scaling.sweep.ladder`; edit the rule there, not this file."]
    lines += [f"{key}: {getattr(cfg, key)}" for key in _YAML_KEYS]
    return "\n".join(lines) + "\n"


def write_configs(conf_dir: Path) -> list[Path]:
    """Write one yaml per rung of both ladders plus `tiny.yaml` into `conf_dir`; return the
    paths written."""
    conf_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for cfg in all_rungs():
        path = conf_dir / f"{cfg.name}.yaml"
        path.write_text(to_yaml(cfg))
        paths.append(path)
    return paths


def ladder_table(vocab_size: int = TABLE_VOCAB_SIZE, seq_len: int = TABLE_SEQ_LEN) -> str:
    """Both ladders as Markdown tables, with the conventions and sizes they assume."""
    return (
        f"Model ladder (`python -m scaling.sweep.ladder`), GPT-2-style defaults, counted at vocab "
        f"{vocab_size} (byte-level) and seq_len {seq_len}. N: non-embedding (Kaplan), with head "
        f"(Porian), total (every parameter). FLOPs per training token: `6N` (Kaplan), `6N+attn` "
        f"(PaLM appendix B, used for MFU), `chinchilla` (Hoffmann et al. appendix F).\n\n"
        + _rung_table(ladder(), vocab_size, seq_len)
        + f"\nCPU ladder (2 layers), counted the same way at seq_len {CPU_TABLE_SEQ_LEN}, the CPU "
        "studies' context:\n\n" + _rung_table(cpu_ladder(), vocab_size, CPU_TABLE_SEQ_LEN)
    )


def _rung_table(rungs: list[ModelConfig], vocab_size: int, seq_len: int) -> str:
    lines = [
        "| rung | d_model | n_layers | n_heads | head_dim | n_params_nonembedding "
        "| n_params_with_head | n_params_total | "
        + " | ".join(f"FLOPs/token `{c}`" for c in FLOPS_CONVENTIONS)
        + " |",
        "| --- " + "| ---: " * (7 + len(FLOPS_CONVENTIONS)) + "|",
    ]
    for cfg in rungs:
        counts = param_counts(cfg, vocab_size, seq_len)
        flops = flops_per_token(cfg, vocab_size, seq_len)
        cells = [
            f"`{cfg.name}`",
            str(cfg.d_model),
            str(cfg.n_layers),
            str(cfg.n_heads),
            str(cfg.d_model // cfg.n_heads),
            f"{counts.nonembedding:,}",
            f"{counts.with_head:,}",
            f"{counts.total:,}",
            *(f"{flops[c]:.2e}" for c in FLOPS_CONVENTIONS),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def replace_between_markers(text: str, block: str) -> str:
    """`text` with everything between the ladder markers replaced by `block`.

    Raises ValueError when the markers are missing or out of order.
    """
    start = text.find(MARKER_START)
    end = text.find(MARKER_END)
    if start < 0 or end < 0 or end < start:
        raise ValueError(f"markers {MARKER_START} ... {MARKER_END} not found in order")
    head = text[: start + len(MARKER_START)]
    return head + "\n" + block.rstrip("\n") + "\n" + text[end:]


def _default_conf_dir() -> Path:
    # In a source checkout conf/ sits next to src/; elsewhere fall back to the working directory.
    root = Path(__file__).resolve().parents[3]
    return (root if (root / "pyproject.toml").exists() else Path.cwd()) / "conf" / "model"


def main(argv: list[str] | None = None) -> int:
    """Write the rung yamls (unless --no-write), print the table, update --readme; exit code."""
    parser = argparse.ArgumentParser(prog="python -m scaling.sweep.ladder", description=__doc__)
    parser.add_argument("--conf-dir", type=Path, default=None, help="default: <repo>/conf/model")
    parser.add_argument("--readme", type=Path, default=None, help="file with the ladder markers")
    parser.add_argument("--no-write", action="store_true", help="only print the table")
    args = parser.parse_args(argv)

    if not args.no_write:
        for path in write_configs(args.conf_dir or _default_conf_dir()):
            print(f"wrote {path}", file=sys.stderr)
    table = ladder_table()
    print(table, end="")
    if args.readme is not None:
        try:
            args.readme.write_text(replace_between_markers(args.readme.read_text(), table))
        except (OSError, ValueError) as err:
            print(f"error: cannot update {args.readme}: {err}", file=sys.stderr)
            return 1
        print(f"updated {args.readme}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
