# nmt: two commands do everything. `make train` trains the default model, `make test` runs
# the suite; both first set up the virtual environment (.venv) with torch and the package.
#
#   make data     clean, split and encode the corpus, train the vocabularies
#   make train    train the default experiment (CONFIG=...), resuming if a run exists; on a
#                 machine with a CUDA GPU the default is the GPU-sized config
#   make eval     score the best checkpoint on the canonical test split (on the GPU if any)
#   make bench    the benchmark scripts (figures go to docs/benchmarks.md by hand)
#
# Variables: CONFIG (or CPU_CONFIG and GPU_CONFIG, the defaults), CHECKPOINT (make eval),
# DATA_MIRROR (corpora; default ../shared/data when present), PYTHON,
# TORCH_SPEC (the torch requirement installed when no torch is importable yet).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CPU_CONFIG ?= configs/tatoeba_zh_en_transformer.yaml
GPU_CONFIG ?= configs/tatoeba_zh_en_transformer_gpu.yaml
# The experiment: CONFIG when given, else GPU_CONFIG when torch sees a CUDA GPU, else CPU_CONFIG.
CHOSEN_CONFIG = $$($(PY) scripts/choose_config.py --cpu $(CPU_CONFIG) --gpu $(GPU_CONFIG) $(CONFIG))
TORCH_SPEC ?= torch==2.13.0
DATA_MIRROR ?= $(if $(wildcard ../shared/data),../shared/data,)
export DATA_MIRROR
TEST_SRC ?= data/tatoeba-zh-en/test.zh
TEST_REF ?= data/tatoeba-zh-en/test.en

.PHONY: setup data train eval test lint format bench clean

setup: $(VENV)/.installed

# A torch already importable by $(PYTHON) (a CUDA build, say) is kept: the environment then
# sees the system's packages and pip finds the torch requirement satisfied.
$(VENV)/.installed: pyproject.toml
	@if $(PYTHON) -c "import torch" 2>/dev/null; then \
		echo "setup: using the torch that $(PYTHON) already has"; \
		$(PYTHON) -m venv --system-site-packages $(VENV); \
	else \
		$(PYTHON) -m venv $(VENV); \
		$(PY) -m pip install -q --upgrade pip; \
		$(PY) -m pip install -q "$(TORCH_SPEC)"; \
	fi
	$(PY) -m pip install -q -e ".[dev,plot]"
	@touch $@

data: setup
	@config=$(CHOSEN_CONFIG) && set -x && $(PY) -m nmt prepare --config $$config

train: setup
	@config=$(CHOSEN_CONFIG) && set -x && $(PY) -m nmt train --config $$config

# CHECKPOINT=... scores another checkpoint than the experiment's best.pt.
eval: setup
	@config=$(CHOSEN_CONFIG) && name=$$(basename $$config .yaml) && set -x && \
	$(PY) -m nmt evaluate --checkpoint $(or $(CHECKPOINT),runs/$$name/best.pt) \
		--src $(TEST_SRC) --ref $(TEST_REF) \
		--out runs/$$name/test.hyp --report runs/$$name/test_report.json

test: setup
	$(PY) -m pytest tests

lint: setup
	$(VENV)/bin/ruff check nmt tests scripts
	$(VENV)/bin/ruff format --check nmt tests scripts

format: setup
	$(VENV)/bin/ruff check --fix nmt tests scripts
	$(VENV)/bin/ruff format nmt tests scripts

bench: setup
	$(PY) scripts/bench_data.py
	$(PY) scripts/bench_models.py
	$(PY) scripts/bench_decoding.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
