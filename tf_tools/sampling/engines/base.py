"""What every generation engine shares: the configs, a request, a completion, the protocol.

Both engines take the same requests (prompt token ids + a per-sample seed) and the same
sampling parameters, and return the same completions, so tf-sample writes the same records
from either. This module holds only those types: the engines import it, and nothing else of
tf-sample's; choosing and building an engine is the package's ``make_engine``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


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
