# What examples/Makefile and examples/fidelity/Makefile share: a strict bash, no built-in
# rules, the project's own virtual environment on PATH (made by `make install` at the top)
# when there is one, offline models, and SmolLM2 (exported on first use into the cache).
# Include it after setting HERE (the including Makefile's folder).
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:
.SUFFIXES:
MAKEFLAGS += --no-builtin-rules

ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/..)
ifneq ($(wildcard $(ROOT)/.venv/bin/tf-sample),)
export PATH := $(ROOT)/.venv/bin:$(PATH)
endif
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM := false
PYTHON ?= python

CACHE    ?= $(or $(TF_TOOLS_CACHE),$(HOME)/.cache/tf-tools)
SMOLLM2  := $(CACHE)/smollm2-135m-instruct

$(SMOLLM2)/config.json:
	$(PYTHON) -m tf_tools.models smollm2 $(SMOLLM2)
# the rule above is not the including Makefile's default goal
.DEFAULT_GOAL :=
