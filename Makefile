# nmt: two commands do everything. `make train` trains the default model, `make test` runs
# the suite; both first set up the virtual environment (.venv) with torch and the package.
#
#   make data     clean, split and encode the corpus, train the vocabularies
#   make train    train the default experiment (CONFIG=...), resuming if a run exists
#   make eval     score the best checkpoint on the canonical test split
#   make bench    the benchmark scripts (figures go to docs/benchmarks.md by hand)
#   make serve    the HTTP server and web page on http://127.0.0.1:5000 (docs/serving.md)
#   make export   the best checkpoint as an int8 CTranslate2 model (runs/<experiment>/ct2-int8)
#
# Variables: CONFIG, DATA_MIRROR (corpora; default ../shared/data when present), PYTHON,
# TORCH_SPEC (the torch requirement installed when no torch is importable yet), CHECKPOINT,
# SERVE_ARGS (more nmt serve options, e.g. SERVE_ARGS="--port 8080 --engine ctranslate2").

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CONFIG ?= configs/tatoeba_zh_en_transformer.yaml
TORCH_SPEC ?= torch==2.13.0
DATA_MIRROR ?= $(if $(wildcard ../shared/data),../shared/data,)
export DATA_MIRROR
NAME = $(basename $(notdir $(CONFIG)))
CHECKPOINT ?= runs/$(NAME)/best.pt
TEST_SRC ?= data/tatoeba-zh-en/test.zh
TEST_REF ?= data/tatoeba-zh-en/test.en

SERVE_ARGS ?=

.PHONY: setup data train eval test lint format bench serve export clean

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
	$(PY) -m pip install -q -e ".[dev,plot,serve,export]"
	@touch $@

data: setup
	$(PY) -m nmt prepare --config $(CONFIG)

train: setup
	$(PY) -m nmt train --config $(CONFIG)

eval: setup
	$(PY) -m nmt evaluate --checkpoint $(CHECKPOINT) --src $(TEST_SRC) --ref $(TEST_REF) \
		--out runs/$(NAME)/test.hyp --report runs/$(NAME)/test_report.json

test: setup
	$(PY) -m pytest tests

serve: setup
	$(PY) -m nmt serve --checkpoint $(CHECKPOINT) $(SERVE_ARGS)

export: setup
	$(PY) -m nmt export --checkpoint $(CHECKPOINT) --quantization int8 runs/$(NAME)/ct2-int8

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
