# nmt: two commands do everything. `make train` trains the default model, `make test` runs
# the suite; both first set up the virtual environment (.venv) with torch and the package.
#
#   make data     clean, split and encode the corpus, train the vocabularies
#   make train    train the default experiment (CONFIG=...), resuming if a run exists; on a
#                 machine with a CUDA GPU the default is the GPU-sized config
#   make eval     score the best checkpoint on the test split of its own data (its direction;
#                 on the GPU if there is one)
#   make bench    the benchmark scripts (figures go to docs/benchmarks.md by hand)
#   make serve    the HTTP server and web page on http://127.0.0.1:5000 (docs/serving.md)
#   make export   the best checkpoint as an int8 CTranslate2 model (runs/<experiment>/ct2-int8)
#
# Variables: CONFIG (or CPU_CONFIG and GPU_CONFIG, the defaults), DATA_MIRROR (a folder of
# corpora to use instead of the copy embedded in data/corpora/; unset by default), PYTHON,
# TORCH_SPEC (the torch requirement installed when no torch is importable yet), CHECKPOINT
# (make eval/serve/export; default the experiment's best.pt), SERVE_ARGS (more nmt serve
# options, e.g. SERVE_ARGS="--port 8080 --engine ctranslate2").

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CPU_CONFIG ?= configs/tatoeba_zh_en_transformer.yaml
GPU_CONFIG ?= configs/tatoeba_zh_en_transformer_gpu.yaml
# The experiment: CONFIG when given, else GPU_CONFIG when torch sees a CUDA GPU, else CPU_CONFIG.
CHOSEN_CONFIG = $$($(PY) scripts/choose_config.py --cpu $(CPU_CONFIG) --gpu $(GPU_CONFIG) $(CONFIG))
TORCH_SPEC ?= torch==2.13.0
export DATA_MIRROR  # make data DATA_MIRROR=DIR: that mirror instead of the embedded copy

LOG := $(VENV)/setup.log
SERVE_ARGS ?=

.PHONY: setup data train eval test lint format bench serve export clean embed-corpus

setup: $(VENV)/.installed

# A torch already importable by $(PYTHON) (a CUDA build, say) is kept: the environment then
# sees the system's packages and pip finds the torch requirement satisfied. pip's output
# (a screenful of warnings even when all goes well) goes to $(LOG); a failure prints its end.
$(VENV)/.installed: pyproject.toml
	@mkdir -p $(VENV) && : > $(LOG); \
	fail() { \
		echo "setup: $$1 failed; the end of $(LOG):" >&2; \
		tail -n 25 $(LOG) >&2; \
		echo "setup: failed (full log: $(LOG))" >&2; \
		exit 1; \
	}; \
	if $(PYTHON) -c "import torch" >/dev/null 2>&1; then \
		torch_from=" (system)"; \
		$(PYTHON) -m venv --system-site-packages $(VENV) >>$(LOG) 2>&1 || fail "$(PYTHON) -m venv"; \
	else \
		torch_from=""; \
		$(PYTHON) -m venv $(VENV) >>$(LOG) 2>&1 || fail "$(PYTHON) -m venv"; \
		$(PY) -m pip install --upgrade pip >>$(LOG) 2>&1 || fail "pip install --upgrade pip"; \
		$(PY) -m pip install "$(TORCH_SPEC)" >>$(LOG) 2>&1 || fail "pip install $(TORCH_SPEC)"; \
	fi; \
	$(PY) -m pip install -e ".[dev,plot,serve,export]" >>$(LOG) 2>&1 || fail 'pip install -e ".[dev,plot,serve,export]"'; \
	versions=$$($(PY) -c "import importlib.metadata as m, torch; \
		print('torch', torch.__version__ + '$$torch_from' + ', nmt', m.version('nmt'))" 2>>$(LOG)) \
		|| fail "import torch"; \
	echo "setup: $(VENV) with $$versions [dev,plot,serve,export] (log: $(LOG))"
	@touch $@

data: setup
	@config=$(CHOSEN_CONFIG) && set -x && $(PY) -m nmt prepare --config $$config

train: setup
	@config=$(CHOSEN_CONFIG) && set -x && $(PY) -m nmt train --config $$config

# The test split of the checkpoint's own data section, in its direction (nmt evaluate --split).
eval: setup
	@config=$(CHOSEN_CONFIG) && name=$$(basename $$config .yaml) && \
	checkpoint=$(or $(CHECKPOINT),runs/$$name/best.pt) && set -x && \
	$(PY) -m nmt evaluate --checkpoint $$checkpoint --split test \
		--out $$(dirname $$checkpoint)/test.hyp --report $$(dirname $$checkpoint)/test_report.json

test: setup
	$(PY) -m pytest tests

serve: setup
	@config=$(CHOSEN_CONFIG) && name=$$(basename $$config .yaml) && set -x && \
	$(PY) -m nmt serve --checkpoint $(or $(CHECKPOINT),runs/$$name/best.pt) $(SERVE_ARGS)

export: setup
	@config=$(CHOSEN_CONFIG) && name=$$(basename $$config .yaml) && set -x && \
	$(PY) -m nmt export --checkpoint $(or $(CHECKPOINT),runs/$$name/best.pt) \
		--quantization int8 runs/$$name/ct2-int8

lint: setup
	$(VENV)/bin/ruff check nmt tests scripts
	$(VENV)/bin/ruff format --check nmt tests scripts

format: setup
	$(VENV)/bin/ruff check --fix nmt tests scripts
	$(VENV)/bin/ruff format nmt tests scripts

# scripts/bench_data.py times Traditional->Simplified on cmn-eng.txt, which only a mirror has:
# make bench DATA_MIRROR=../shared/data (without it that one figure is skipped).
bench: setup
	$(PY) scripts/bench_data.py
	$(PY) scripts/bench_models.py
	$(PY) scripts/bench_decoding.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

# Rebuild data/corpora/tatoeba-zh-en/ (the embedded canonical split) from a mirror holding the
# split and cmn-eng.txt: make embed-corpus DATA_MIRROR=../shared/data. gzip -9n stores no
# name or time, so the same inputs give the same bytes.
EMBEDDED := data/corpora/tatoeba-zh-en
embed-corpus: setup
	@test -n "$(DATA_MIRROR)" || { echo "embed-corpus: set DATA_MIRROR (the folder that holds tatoeba-zh-en/)" >&2; exit 2; }
	@mkdir -p $(EMBEDDED)
	@for name in train dev test; do for lang in zh en; do \
		gzip -9n -c "$(DATA_MIRROR)/tatoeba-zh-en/$$name.$$lang" > $(EMBEDDED)/$$name.$$lang.gz || exit 1; \
	done; done
	@$(PY) -c "import sys; from nmt.data.sources import embedded_credits; \
		sys.stdout.writelines(embedded_credits(sys.argv[1]))" "$(DATA_MIRROR)/tatoeba-zh-en" \
		> $(EMBEDDED)/credits.tsv
	@gzip -9n -f $(EMBEDDED)/credits.tsv
	@ls -l $(EMBEDDED)
