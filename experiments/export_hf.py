"""Export a finished run's checkpoint as a Hugging Face directory (config.json and
model.safetensors) that `transformers.AutoModelForCausalLM.from_pretrained` loads.

python experiments/export_hf.py runs/<run> exported/<name>

A model neither GPT-2 nor Llama can hold (e.g. model.qk_norm) is refused in one line, exit 2.
"""

import argparse
import sys

from scaling.config import ConfigError
from scaling.train.source import export_run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", help="a run dir with config.yaml, record.json and ckpt/")
    p.add_argument("out", help="the directory to write")
    args = p.parse_args(argv)
    try:
        out = export_run(args.run_dir, args.out)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"exported: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
