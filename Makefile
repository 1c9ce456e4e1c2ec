# Set-up is part of every target: a fresh machine needs only Python 3.12 and make.
#   make study   the main job (the default study on the embedded corpus)
#   make test    the test suite (what CI runs)
# The first Python 3.12 that runs (a pyenv shim can exist without a 3.12 selected).
PYTHON ?= $(shell for p in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12 /usr/local/bin/python3.12 /usr/bin/python3.12; do "$$p" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null && { echo "$$p"; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: study gpu-study test lint ladder

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

# The flagship study for one GPU (issue 7): IsoFLOP sweeps on the synthetic corpus and on the
# Python standard library, the three task arms on every synthetic source, then the reports,
# the claims ledger and the cost, all under $(GPU_RESULTS). Every stage skips completed runs,
# so an interrupted study resumes with the same command. On a machine whose Python already has
# jax[cuda] (and Hydra): make gpu-study STAMP= PY=python3.12 (no venv, nothing installed).
# The same stages at CPU size, as a rehearsal of the pipeline (minutes):
#   make gpu-study GPU_ISOFLOP=isoflop_cpu GPU_ISOFLOP_ARGS='hydra.sweeper.grid.budgets=[1e11,3e11]' \
#     GPU_RUNS=runs/rehearsal GPU_RESULTS=results/rehearsal GPU_FT_TOKENS=16384,65536 \
#     GPU_SCRATCH_TOKENS=16384,65536,262144
GPU_ISOFLOP ?= isoflop_gpu
# 5 rungs per budget: 20 runs and 2.2e17 FLOPs per corpus (7 rungs: 27 runs, 3.1e17), so both
# corpora fit in ~19 min of an H100 at 40% MFU (989 TFLOP/s bf16 peak); not yet measured.
GPU_ISOFLOP_ARGS ?= hydra.sweeper.grid.rungs_per_budget=5
GPU_RUNS ?= runs/gpu
GPU_RESULTS ?= results/gpu
GPU_FT_TOKENS ?= 262144,1048576
GPU_SCRATCH_TOKENS ?= 262144,1048576,4194304
# The task arms' sources; a sweep with none stops the study here with the reason (exit 2).
SOURCES = $(PY) -m scaling.sources $(GPU_RUNS)/synthetic/pretrain
GPU_CMD = make gpu-study

gpu-study: $(STAMP)
	$(PY) experiments/pretrain.py -m experiment=$(GPU_ISOFLOP) data=synthetic \
		out_dir=$(GPU_RUNS)/synthetic/pretrain $(GPU_ISOFLOP_ARGS)
	$(PY) experiments/pretrain.py -m experiment=$(GPU_ISOFLOP) data=pystdlib \
		out_dir=$(GPU_RUNS)/pystdlib/pretrain $(GPU_ISOFLOP_ARGS)
	src=$$($(SOURCES)) && $(PY) experiments/finetune.py -m experiment=gpu_tasks \
		out_dir=$(GPU_RUNS)/synthetic/finetune init_from=$$src train.tokens=0
	src=$$($(SOURCES)) && $(PY) experiments/finetune.py -m experiment=gpu_tasks \
		out_dir=$(GPU_RUNS)/synthetic/finetune init_from=$$src train.tokens=$(GPU_FT_TOKENS)
	models=$$($(SOURCES) --field model) && seq_len=$$($(SOURCES) --field seq_len) && \
		$(PY) experiments/finetune.py -m experiment=gpu_tasks out_dir=$(GPU_RUNS)/synthetic/scratch \
		model=$$models data.seq_len=$$seq_len train.tokens=$(GPU_SCRATCH_TOKENS)
	$(PY) -m scaling.report $(GPU_RUNS)/synthetic/pretrain $(GPU_RESULTS)/isoflop_synthetic \
		--command "$(GPU_CMD)"
	$(PY) -m scaling.report $(GPU_RUNS)/pystdlib/pretrain $(GPU_RESULTS)/isoflop_pystdlib \
		--command "$(GPU_CMD)"
	$(PY) -m scaling.taskreport $(GPU_RUNS)/synthetic $(GPU_RESULTS)/tasks --command "$(GPU_CMD)"
	$(PY) -m scaling.claims --sweep $(GPU_RUNS)/synthetic/pretrain --tasks $(GPU_RUNS)/synthetic \
		--out $(GPU_RESULTS)/CLAIMS.md --command "$(GPU_CMD)"
	$(PY) -m scaling.cost $(GPU_RUNS) --out $(GPU_RESULTS)/COST.md --command "$(GPU_CMD)"

test: $(STAMP)
	$(PY) -m ruff check src experiments tests
	$(PY) -m pytest -q

ladder: $(STAMP)
	$(PY) -m scaling.ladder --readme README.md
