"""Fit scaling laws to a CSV and print them as JSON, or plan the next runs from a fitted law.

    python experiments/fit.py ../shared/data/chinchilla_svg_extracted.csv \
        --n-col "Model Size" --c-col "Training FLOP" --loss-col loss --drop-highest 5
    python experiments/fit.py records.csv --n-col n_params_total --d-col tokens_seen \
        --loss-col final_val_loss --unique-col unique_tokens --base-law fits.json
    python experiments/fit.py suggest --law results/epoch_chinchilla/fit.json --budget 1e21
    python experiments/fit.py suggest --law fits.json --n 4e5 --ladder cpu --tokens-per-step 2048

Bad input (missing file or column, non-positive values) prints one error line, exit code 2.
"""

from __future__ import annotations

import sys

from scaling.reports.fit import main

if __name__ == "__main__":
    sys.exit(main())
