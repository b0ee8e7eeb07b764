# mona_scale developer targets. The environment lives in .venv/ (never the system Python).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mona_env_ok
# DeepSpeed JIT-compiles its CPU comm op on first use: keep the build in the project cache.
export TORCH_EXTENSIONS_DIR ?= $(CURDIR)/.cache/torch_extensions
export WANDB_MODE ?= offline

.PHONY: env test test-fast test-demo demo lint bench gpu-check

$(STAMP): setup.py requirements.txt tools/setup_env.sh tools/install_detectron2.sh
	bash tools/setup_env.sh

## env: create or refresh the environment in .venv/
env:
	bash tools/setup_env.sh

## test: create the environment if missing, then run every tier CI needs (the unit tier and
## the slow, slurm, real_data and gpu tiers; gpu tests skip themselves without a GPU)
test: $(STAMP)
	$(PY) -m pytest tests -m "not demo" --durations=25

## test-demo: the full quickstart (15-25 min on 2 cores): Mona must beat the fixed baseline
test-demo: $(STAMP)
	$(PY) -m pytest tests -m demo

## test-fast: the unit tier only, for the edit-test loop (about a minute on 2 cores): leaves out the
## slow (train_net / multi-process runs), slurm, gpu and real_data tiers
test-fast: $(STAMP)
	$(PY) -m pytest tests -m "not slow and not slurm and not gpu and not real_data and not demo"

## demo: create the environment if missing, then run the quickstart (CPU, minutes):
## the tuning report, tiny Swin pretraining, Mona Cascade Mask R-CNN, evaluation table
demo: $(STAMP)
	$(PY) -m mona_scale.tuning_report --model swin_b
	$(PY) projects/quickstart.py --output output/demo

## lint: ruff over the whole tree
lint: $(STAMP)
	$(VENV)/bin/ruff check .

## bench: the benchmarks (minutes; not part of the tests)
bench: $(STAMP)
	$(PY) benchmarks/bench_mona.py

## gpu-check: the one-GPU check (tests marked gpu, bench_gpu.py, report in output/gpu_check);
## without a GPU it runs what needs none. tools/gpu_check.sh --prepare builds its offline bundle
gpu-check:
	bash tools/gpu_check.sh
