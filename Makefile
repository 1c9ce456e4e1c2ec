# Set-up is part of every target: a fresh machine needs only Python 3.12 and make.
#   make study   the main job (the default study on the embedded corpus)
#   make test    the test suite (what CI runs)
# The first Python 3.12 that runs (a pyenv shim can exist without a 3.12 selected).
PYTHON ?= $(shell for p in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12 /usr/local/bin/python3.12 /usr/bin/python3.12; do "$$p" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null && { echo "$$p"; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: study test lint ladder

$(STAMP): pyproject.toml requirements.lock
	@test -n "$(PYTHON)" || { echo "error: Python 3.12 not found; set PYTHON=/path/to/python3.12"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements.lock -e '.[test,hf,sweep]'
	touch $(STAMP)

# The default study on the synthetic corpus: the N x D sweep with its fits, the task study
# (pre-train-only / fine-tuned / from scratch, D_T, emergence), the ablations, the claims ledger.
# Every stage skips the runs already completed, so an interrupted study resumes.
study: $(STAMP)
	$(PY) experiments/pretrain.py -m experiment=smoke
	$(PY) experiments/pretrain.py -m experiment=tasks
	$(PY) experiments/finetune.py -m experiment=tasks_fewshot
	$(PY) experiments/finetune.py -m experiment=tasks_finetune
	$(PY) experiments/finetune.py -m experiment=tasks_scratch
	$(PY) experiments/pretrain.py -m experiment=ablation_memorise
	$(PY) experiments/pretrain.py -m experiment=ablation_corrupt
	$(PY) experiments/finetune.py -m experiment=ablation_corrupt_eval
	$(PY) experiments/pretrain.py -m experiment=ablation_schedule
	$(PY) -m scaling.report runs/smoke results/smoke --command "make study"
	$(PY) -m scaling.taskreport runs/tasks results/tasks --command "make study"
	$(PY) -m scaling.claims --sweep runs/smoke --tasks runs/tasks --ablations runs/ablations \
		--out results/CLAIMS.md --command "make study"

test: $(STAMP)
	$(PY) -m ruff check src experiments tests
	$(PY) -m pytest -q

ladder: $(STAMP)
	$(PY) -m scaling.ladder --readme README.md
