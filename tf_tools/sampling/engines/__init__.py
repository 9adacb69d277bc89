"""Generation engines behind tf-sample: vLLM (default when it imports), transformers, and a
served model behind an OpenAI-compatible endpoint (``openai``).

The types every engine shares live in ``base``; each engine is one module (``vllm``,
``hf``, ``served``) that imports only ``base`` of this package; this module chooses and
builds one. Importing it is cheap: the engines import torch, transformers, vLLM and the
openai SDK inside their constructors.
"""

from __future__ import annotations

import importlib.util

from tf_tools.errors import MissingDependency, UsageError
from tf_tools.models import check_model_path
from tf_tools.sampling.engines.base import Completion, Engine, EngineConfig, Request, SamplingConfig
from tf_tools.sampling.engines.hf import HfEngine
from tf_tools.sampling.engines.served import ServedEngine
from tf_tools.sampling.engines.vllm import VllmEngine

__all__ = ["ENGINES", "Completion", "Engine", "EngineConfig", "Request", "SamplingConfig",
           "make_engine", "resolve_engine", "vllm_available"]

ENGINES = ("vllm", "hf", "openai")


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def resolve_engine(name: str | None) -> str:
    if name is None:
        return "vllm" if vllm_available() else "hf"
    if name not in ENGINES:
        raise UsageError(f"unknown engine {name!r}; choose one of: {', '.join(ENGINES)}")
    return name


def make_engine(cfg: EngineConfig) -> Engine:
    name = resolve_engine(cfg.engine)
    if name == "openai":
        return ServedEngine(cfg)  # -m is the served model's name, not a folder here
    check_model_path(cfg.model)
    if name == "vllm":
        if not vllm_available():
            raise MissingDependency("the vllm engine needs vLLM (or use --engine hf)", extra="vllm")
        return VllmEngine(cfg)
    return HfEngine(cfg)
