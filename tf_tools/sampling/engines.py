"""Generation engines behind tf-sample: vLLM (default when it imports) and transformers.

Both take the same requests (prompt token ids + a per-sample seed) and the same sampling
parameters, and return the same completions, so tf-sample writes the same records from
either. Heavy imports happen inside the constructors.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tf_tools.errors import MissingDependency, TfError, UsageError

ENGINES = ("vllm", "hf")


@dataclass(frozen=True)
class SamplingConfig:
    n: int = 8
    temperature: float = 0.7
    top_p: float = 1.0
    top_k: int = 0  # 0: off
    max_tokens: int = 1024
    stop: tuple[str, ...] = ()
    seed: int = 0


@dataclass(frozen=True)
class EngineConfig:
    model: str
    engine: str | None = None  # None: vllm when it imports, else hf
    dtype: str = "auto"
    max_model_len: int | None = None
    tp: int = 1
    gpu_memory_utilization: float = 0.9
    batch_size: int = 16  # hf engine only
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Request:
    prompt_ids: list[int]
    seed: int


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str  # "stop" | "length"
    n_tokens: int


class Engine(Protocol):
    name: str
    tokenizer: Any
    max_model_len: int

    def generate(self, requests: list[Request], sp: SamplingConfig) -> list[Completion]: ...


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def resolve_engine(name: str | None) -> str:
    if name is None:
        return "vllm" if vllm_available() else "hf"
    if name not in ENGINES:
        raise UsageError(f"unknown engine {name!r}; choose one of: {', '.join(ENGINES)}")
    return name


def check_model_path(model: str) -> None:
    """A local folder must exist and hold a config.json; hub ids are left to transformers."""
    looks_local = model.startswith((".", "/", "~"))
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise TfError(f"{model} is not a model folder (no config.json)")
        return
    if looks_local or model.count("/") != 1:
        raise TfError(f"model not found: {model}",
                      hint="give a local model folder (tf-tools runs offline), e.g. -m models/smollm2")


def make_engine(cfg: EngineConfig) -> Engine:
    check_model_path(cfg.model)
    name = resolve_engine(cfg.engine)
    if name == "vllm":
        if not vllm_available():
            raise MissingDependency("the vllm engine needs vLLM (or use --engine hf)", extra="vllm")
        from tf_tools.sampling.vllm_engine import VllmEngine

        return VllmEngine(cfg)
    from tf_tools.sampling.hf_engine import HfEngine

    return HfEngine(cfg)
