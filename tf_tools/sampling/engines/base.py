"""What every generation engine shares: the configs, a request, a completion, the protocol.

Both engines take the same requests (prompt token ids + a per-sample seed) and the same
sampling parameters, and return the same completions, so tf-sample writes the same records
from either. This module holds only those types: the engines import it, and nothing else of
tf-sample's; choosing and building an engine is the package's ``make_engine``.
"""

from __future__ import annotations

from collections.abc import Iterable
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
    first_index: int = 0  # sample indices first_index .. first_index + n - 1 (rounds)


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
    # the openai engine only: a served model (``model`` is its served name)
    base_urls: tuple[str, ...] = ()
    api_key_env: str = "OPENAI_API_KEY"
    api: str = "chat"  # or "completions" (a prompt text from --template)
    concurrency: int = 64
    max_retries: int = 6
    request_timeout: float = 600.0
    backoff: float = 1.0  # seconds before the first retry; doubled each time, with jitter


@dataclass(frozen=True)
class Request:
    prompt_ids: list[int]
    seed: int
    messages: list[dict[str, str]] | None = None  # a served chat endpoint's conversation
    text: str | None = None  # a served completions endpoint's prompt


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str  # "stop" | "length" ("error" when ``error`` is set)
    n_tokens: int
    n_prompt_tokens: int | None = None  # as the server counted them (served engine)
    retries: int = 0
    endpoint: str | None = None
    error: str | None = None  # the request failed after its last retry


class Engine(Protocol):
    name: str
    tokenizer: Any  # None: the engine takes messages or text, not token ids (served)

    @property
    def max_model_len(self) -> int | None: ...  # None: unknown here (served)

    def generate(self, requests: list[Request], sp: SamplingConfig) -> Iterable[Completion]: ...
