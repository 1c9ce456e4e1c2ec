"""Training throughput of our step against the PyTorch peer (HF GPT-2), side by side.

    python experiments/bench.py                      # CPU shapes here, GPU shapes on a GPU
    python experiments/bench.py --shapes gpt2-124m --reps 5
    python experiments/bench.py --grad-accum 1       # every side on the whole batch at once
    python experiments/bench.py --ladder             # GPU: peak memory per ladder rung, T=1024
    python experiments/bench.py --ladder n393m,n798m --out results/perf/gpu-ladder-big
    python experiments/bench.py --shapes gpt2-124m --variant xla:attention=xla --budget-s 300

Prints tokens/s, MFU and ours/peer per shape and writes results/perf/<cpu|gpu>.{md,json} (or
--out), rewritten after every shape and rung so that a kill loses at most the one in flight.
Each shape runs in its own process; on a GPU, JAX does not preallocate memory there.
`--variant NAME:key=value,...` adds a side `ours-NAME` (ModelConfig fields replaced) timed
beside ours and the peer; `--budget-s` bounds the whole command (shapes then ladder): the rest
are rows saying they were skipped. The peer needs the `bench` extra (torch, transformers);
without it only our side runs. Asserts nothing about speed.
"""

from __future__ import annotations

import sys
from pathlib import Path

from scaling.bench import command

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = command.parser(__doc__.split("\n\n")[0])
    return command.run(parser, parser.parse_args(), sys.argv[1:], ROOT / "results" / "perf")


if __name__ == "__main__":
    sys.exit(main())
