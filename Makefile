# Set-up is part of every target: a fresh machine needs only Python 3.12 and make.
#   make study      the main job (the default study on the embedded corpus)
#   make test       the test suite (what CI runs)
#   make test-fast  its fast set, without the lint (while working)
# The first Python 3.12 that runs (a pyenv shim can exist without a 3.12 selected).
PYTHON ?= $(shell for p in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12 /usr/local/bin/python3.12 /usr/bin/python3.12; do "$$p" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null && { echo "$$p"; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: study study-more lr-sweep design design-claim2 gpu-study bench-gpu test test-fast lint ladder

$(STAMP): pyproject.toml requirements.lock
	@test -n "$(PYTHON)" || { echo "error: Python 3.12 not found; set PYTHON=/path/to/python3.12"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements.lock -e '.[test,hf,sweep]'
	touch $(STAMP)

# The default study on the CPU world of the synthetic corpus (conf/data/synthetic_cpu.yaml), in
# two stages so that the first fits 20 minutes on 2 cores (README "The default study" times both):
#   make study       the IsoFLOP sweep and its fits (claims 1-2), the task sources and their
#                    pre-train-only evaluations (emergence: claim 5), the reports and the ledger;
#   make study-more  afterwards: a second seed at the smallest budget, the fine-tuned and
#                    from-scratch arms (claims 3-4), the ablations (claims 6-8), every report
#                    and the ledger again, now with all eight claims.
# Every stage skips the runs already completed, so an interrupted stage resumes.
SOURCES_CPU = $(PY) -m scaling.reports.sources
STUDY_REPORTS = $(PY) -m scaling.reports.sweep runs/isoflop results/isoflop --command "$(STUDY_CMD)" && \
	$(PY) -m scaling.reports.tasks runs/tasks results/tasks --command "$(STUDY_CMD)" && \
	$(PY) -m scaling.reports.claims --sweep runs/isoflop --tasks runs/tasks --ablations runs/ablations \
		--out results/CLAIMS.md --command "$(STUDY_CMD)"
study: STUDY_CMD = make study
study: $(STAMP)
	$(PY) experiments/pretrain.py -m experiment=isoflop_cpu
	$(PY) experiments/pretrain.py -m experiment=tasks
	src=$$($(SOURCES_CPU) runs/tasks/pretrain --all) && \
		$(PY) experiments/finetune.py -m experiment=tasks_fewshot init_from=$$src
	$(STUDY_REPORTS)

# Muennighoff et al.'s data-constrained law on the memorisation ablation's repeated-data runs:
# R_D* and R_N* fitted on the sweep's Approach 3 law (the other constants held).
MEMORISE_FIT = mkdir -p results/ablations && $(PY) -m scaling.records runs/ablations/memorise && \
	$(PY) experiments/fit.py runs/ablations/memorise/records.csv --n-col n_params_nonembedding \
		--d-col tokens_seen --unique-col unique_tokens --loss-col final_val_loss \
		--base-law results/isoflop/fits.json > results/ablations/memorise_data_constrained.json.tmp && \
	mv results/ablations/memorise_data_constrained.json.tmp results/ablations/memorise_data_constrained.json
study-more: STUDY_CMD = make study && make study-more
study-more: $(STAMP)
	$(PY) experiments/pretrain.py -m experiment=isoflop_cpu 'hydra.sweeper.grid.smallest_budget_seeds=[1]'
	src=$$($(SOURCES_CPU) runs/tasks/pretrain --models n24k,n98k,n393k) && \
		$(PY) experiments/finetune.py -m experiment=tasks_finetune init_from=$$src
	$(PY) experiments/finetune.py -m experiment=tasks_scratch model=n24k,n98k,n393k
	$(PY) experiments/pretrain.py -m experiment=ablation_memorise
	$(PY) experiments/pretrain.py -m experiment=ablation_corrupt
	src=$$($(SOURCES_CPU) runs/ablations/corrupt --all) && \
		$(PY) experiments/finetune.py -m experiment=ablation_corrupt_eval init_from=$$src
	$(PY) experiments/pretrain.py -m experiment=ablation_schedule
	$(STUDY_REPORTS)
	$(MEMORISE_FIT)

# The design check (results/design/): the law `make study` measured (Approach 3, E fixed) and
# the spread between its seeds, sampled on the study's own grid and on the grid the study used
# before (3 sizes x 4 token counts), fitted as the study fits: can each grid recover it?
DESIGN = $(PY) experiments/design.py --law-from results/isoflop/fits.json \
	--noise-from results/isoflop/points.csv
OLD_GRID = hydra.sweeper.grid.kind=nxd 'hydra.sweeper.grid.rungs=[n110k,n221k,n393k]' \
	'hydra.sweeper.grid.tokens=[196608,393216,786432,1572864]'
design: $(STAMP)
	$(DESIGN) experiment=isoflop_cpu --out results/design/isoflop_cpu.md
	$(DESIGN) experiment=isoflop_cpu $(OLD_GRID) --out results/design/old_nxd_grid.md

# Can the CPU study call claim 2's tokens per parameter (results/design/claim2_*.md)? After
# `make study`: the law its runs measured with N counted as the ledger counts it (every
# parameter, E fixed), sampled on the study's grid and on one with a fourth budget (2.5x the
# compute), with the scatter of its points around that law as the noise; each simulation is
# judged by the ledger's own rule. About 10 minutes on a 2-core AMD EPYC (shared at the time).
CLAIM2_DESIGN = $(PY) experiments/design.py --from-runs runs/isoflop --n-convention total \
	--residual-noise --claim2 experiment=isoflop_cpu
design-claim2: $(STAMP)
	$(CLAIM2_DESIGN) --out results/design/claim2_cpu.md
	$(CLAIM2_DESIGN) 'hydra.sweeper.grid.budgets=[5e11,1.5e12,3e12,6e12]' \
		--out results/design/claim2_cpu_6e12.md

# The check of the CPU study's learning-rate rule (results/lr_sweep/): three rungs at 0.5-4x
# the rule's lr, the table of every lr tried per rung.
lr-sweep: $(STAMP)
	$(PY) experiments/pretrain.py -m experiment=lr_sweep
	$(PY) -m scaling.reports.sweep runs/lr_sweep results/lr_sweep --command "make lr-sweep"

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
SOURCES = $(PY) -m scaling.reports.sources $(GPU_RUNS)/synthetic/pretrain
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
	$(PY) -m scaling.reports.sweep $(GPU_RUNS)/synthetic/pretrain $(GPU_RESULTS)/isoflop_synthetic \
		--command "$(GPU_CMD)"
	$(PY) -m scaling.reports.sweep $(GPU_RUNS)/pystdlib/pretrain $(GPU_RESULTS)/isoflop_pystdlib \
		--command "$(GPU_CMD)"
	$(PY) -m scaling.reports.tasks $(GPU_RUNS)/synthetic $(GPU_RESULTS)/tasks --command "$(GPU_CMD)"
	$(PY) -m scaling.reports.claims --sweep $(GPU_RUNS)/synthetic/pretrain --tasks $(GPU_RUNS)/synthetic \
		--out $(GPU_RESULTS)/CLAIMS.md --command "$(GPU_CMD)"
	$(PY) -m scaling.reports.cost $(GPU_RUNS) --out $(GPU_RESULTS)/COST.md --command "$(GPU_CMD)"

# Every GPU figure of issue 5 in one bounded command (a lease is ~15 min of device time, one
# command at most 10 min, at most 8 files back): in priority order, (a) ours, its variants and
# the compiled peer on gpt2-124m and gpt2-355m, (b) K=8 runs at once vs one at a time on
# n1m8,n3m1, (c) peak memory per ladder rung at T=1024 against one 80 GiB card (remat where
# needed), (d) L4-d256-v50k if time is left. One budget, BENCH_BUDGET_S: each part gets what is
# left of it less the reserves of the parts after it (so (a) cannot starve (b) or (c), and what a
# part leaves over flows on), runs with --budget-s (no shape, rung or rung group starts once it is
# spent; those are rows saying "skipped"), rewrites its tables after every shape or rung, and is
# killed BENCH_GRACE_S past its budget; a failed part does not stop the next. Writes 7 files under
# $(PERF_OUT): gpu.{md,json}, multimodel_gpu.md, gpu-ladder.{md,json}, gpu-v50k.{md,json}.
# Fewer reps and shorter blocks than bench.py's defaults (3 blocks of ~2 s per side): the
# compiles (ours per side, torch.compile) are most of each shape's time. On a machine whose
# python3 has jax[cuda], flax, optax, orbax, torch and transformers: make bench-gpu STAMP=
# PY=python3 (scaling is imported from src/; hydra-core and omegaconf, with antlr4, must be
# importable too: BENCH_PYTHONPATH names a folder holding them, results/perf/README.md says how).
# The same target at CPU size, as a rehearsal (1.5 min on 2 cores; BENCH_BUDGET_S=60 with both
# reserves at 15 shows the rows a spent budget leaves):
#   make bench-gpu PERF_OUT=/tmp/bench-rehearsal BENCH_BUDGET_S=240 BENCH_MM_RESERVE_S=60 \
#     BENCH_LADDER_RESERVE_S=60 BENCH_SHAPES=L2-d128-v256 BENCH_LAST_SHAPES=L4-d256-v256 \
#     BENCH_ARGS='--reps 2 --block-s 0.5 --warmup 1' BENCH_MM_RUNGS=tiny,n110k \
#     BENCH_MM_ARGS='--k 2 --steps 20 --reps 2 --block 5' BENCH_LADDER=n110k,n221k,n393k \
#     BENCH_LADDER_ARGS='--ladder-batch 2 --block-s 0.5 --memory-cap-gib 80'
BENCH_BUDGET_S ?= 540
# Reserves (s) of (b) and (c); (a) starts with BENCH_BUDGET_S less both, (d) has none.
BENCH_MM_RESERVE_S ?= 90
BENCH_LADDER_RESERVE_S ?= 160
BENCH_GRACE_S ?= 20
PERF_OUT ?= results/perf
BENCH_PYTHONPATH ?=
BENCH_SHAPES ?= gpt2-124m,gpt2-355m
BENCH_LAST_SHAPES ?= L4-d256-v50k
BENCH_VARIANTS ?= fusedce:loss_chunk_tokens=8192 xla:attention=xla
BENCH_ARGS ?= --reps 3 --block-s 2 --warmup 2
BENCH_MM_RUNGS ?= n1m8,n3m1
# Blocks of 50 steps: 10 (the default) last milliseconds on a GPU.
BENCH_MM_ARGS ?= --k 8 --batch-size 32 --reps 5 --block 50
BENCH_LADDER ?= all
BENCH_LADDER_ARGS ?= --block-s 1 --memory-cap-gib 80
BENCH_CMD = $(PY) experiments/bench.py $(foreach v,$(BENCH_VARIANTS),--variant $(v)) $(BENCH_ARGS)
# b = seconds left of the budget less $(1) kept for the later parts (at least 0), then the
# part's command under a kill BENCH_GRACE_S past b; set -x echoes it with b filled in.
bench_part = $(call bench_left,$(1)); set -x; timeout -k 10 $$(( b + $(BENCH_GRACE_S) ))
bench_left = b=$$(( $(BENCH_T0) + $(BENCH_BUDGET_S) - ($(1)) - $$(date +%s) )); [ $$b -gt 0 ] || b=0

# scaling from src/ (no install needed), then BENCH_PYTHONPATH, then the caller's PYTHONPATH.
BENCH_SYS_PATH = $(CURDIR)/src$(if $(BENCH_PYTHONPATH),:$(abspath $(BENCH_PYTHONPATH)))
bench-gpu: export PYTHONPATH := $(BENCH_SYS_PATH)$(if $(PYTHONPATH),:$(PYTHONPATH))
bench-gpu: export PYTHONUNBUFFERED := 1
bench-gpu: $(STAMP)
	$(eval BENCH_T0 := $(shell date +%s))
	@mkdir -p $(PERF_OUT)
	-@$(call bench_part,$(BENCH_MM_RESERVE_S) + $(BENCH_LADDER_RESERVE_S)) $(BENCH_CMD) \
		--shapes $(BENCH_SHAPES) --budget-s $$b --out $(PERF_OUT)/gpu
	-@$(call bench_part,$(BENCH_LADDER_RESERVE_S)) $(PY) experiments/bench_multimodel.py \
		--rungs $(BENCH_MM_RUNGS) $(BENCH_MM_ARGS) --budget-s $$b --out $(PERF_OUT)/multimodel_gpu.md
	-@$(call bench_part,0) $(PY) experiments/bench.py --ladder $(BENCH_LADDER) $(BENCH_LADDER_ARGS) \
		--budget-s $$b --out $(PERF_OUT)/gpu-ladder
	-@$(call bench_part,0) $(BENCH_CMD) --shapes $(BENCH_LAST_SHAPES) --budget-s $$b \
		--out $(PERF_OUT)/gpu-v50k
	@echo "bench-gpu: $$(( $$(date +%s) - $(BENCH_T0) )) s of $(BENCH_BUDGET_S)"; \
		ls -l $(addprefix $(PERF_OUT)/,gpu.md gpu.json multimodel_gpu.md gpu-ladder.md \
		gpu-ladder.json gpu-v50k.md gpu-v50k.json) || true

# The tests, after the lint: the fast set, then the slow set (pyproject.toml's `slow` marker), so
# that both gate every change; CI runs all of it (.ci/run calls make test). Each pytest's exit
# status fails the target, "no tests collected" (5) included.
#   make test-fast  the fast set alone, without the lint: what to run while working
test: lint
	$(PY) -m pytest -q -m "not slow" --durations=15
	$(PY) -m pytest -q -m slow --durations=15

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" --durations=15

# ruff's rules and format, and mypy's type check (settings in pyproject.toml).
lint: $(STAMP)
	$(PY) -m ruff check src experiments tests
	$(PY) -m ruff format --check src experiments tests
	$(PY) -m mypy

ladder: $(STAMP)
	$(PY) -m scaling.sweep.ladder --readme README.md

# The Hugging Face round trips through transformers (tests/test_hf.py: random transformers
# models imported, exported models loaded with from_pretrained, logits to 1e-5 both ways).
# torch and transformers live in their own venv, $(HF_VENV): gigabytes that the default install
# and CI never need (CI checks import and export against the committed fixtures instead). The
# tests call it through SCALING_HF_PYTHON. HF_PYTHON is any Python with a torch wheel at hand
# (this machine's is a CPU build for 3.11). The same venv remakes the fixtures:
#   $(HF_VENV)/bin/python tests/fixtures/hf/make_fixtures.py fixtures tests/fixtures/hf
HF_PYTHON ?= python3.11
HF_VENV := .venv-hf
.PHONY: test-hf
$(HF_VENV)/.installed:
	$(HF_PYTHON) -m venv $(HF_VENV)
	$(HF_VENV)/bin/pip install -q torch==2.13.0 transformers==5.23.0 safetensors numpy
	touch $@

test-hf: $(STAMP) $(HF_VENV)/.installed
	SCALING_HF_PYTHON=$(CURDIR)/$(HF_VENV)/bin/python $(PY) -m pytest -q -rs tests/test_hf.py
