"""The served engine (``--engine openai``): any OpenAI-compatible endpoint, through the
official ``openai`` SDK's async client.

One request per sample (``n=1``, the sample's own seed: vLLM's server honours it, so a
sample can be regenerated alone), at most ``concurrency`` in flight, spread round-robin
over the base URLs. The SDK's own retries are off: this module retries 408/409/429/5xx,
connection errors and timeouts itself, ``max_retries`` times, with exponential backoff and
jitter (or the server's ``Retry-After``), so that it can count them. A request that still
fails comes back as a ``Completion`` with ``error`` set: the sampler marks its record and
the run goes on. Completions come back in request order, each as soon as it and all before
it are done, so the sampler writes a problem as soon as its samples are in.

The asyncio loop runs in a thread of its own for the engine's life; ``close`` (or an
interrupt in the caller) cancels what is in flight.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import random
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from tf_tools.errors import MissingDependency, UsageError
from tf_tools.sampling.engines.base import Completion, EngineConfig, Request, SamplingConfig

#: HTTP statuses worth another try: timeout, conflict, rate limit, server errors
RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
#: the longest single wait between tries, whatever the server's Retry-After says
MAX_WAIT_S = 60.0


def host_of(url: str) -> str:
    """The endpoint as records show it: scheme, host and port; never a user or password."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}"


class ServedEngine:
    name = "openai"
    tokenizer = None  # prompts are sent as chat messages or text: the server tokenizes
    max_model_len = None  # the server's: a prompt too long comes back as a failed request

    def __init__(self, cfg: EngineConfig) -> None:
        try:
            import openai
        except ImportError as exc:
            raise MissingDependency("--engine openai needs the openai package", extra="served") from exc
        if not cfg.base_urls:
            raise UsageError("--engine openai needs the server's address: --base-url http://HOST:PORT/v1")
        if cfg.api not in ("chat", "completions"):
            raise UsageError(f"--api must be chat or completions, not {cfg.api!r}")
        self.openai = openai
        self.cfg = cfg
        self.model = cfg.model
        self.dtype = None
        key = os.environ.get(cfg.api_key_env) or "EMPTY"  # a local vllm serve needs none
        self.endpoints = [host_of(u) for u in cfg.base_urls]
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="tf-sample-openai")
        self._thread.start()

        async def setup() -> None:
            self._clients = [openai.AsyncOpenAI(base_url=u, api_key=key, max_retries=0,
                                                timeout=cfg.request_timeout) for u in cfg.base_urls]
            self._slots = asyncio.Semaphore(max(1, cfg.concurrency))

        self._call(setup()).result()
        self._next = 0

    def _call(self, coro: Any) -> concurrent.futures.Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    # ------------------------------------------------------------------ generating

    def generate(self, requests: list[Request], sp: SamplingConfig) -> Iterator[Completion]:
        """The requests' completions in order, each as soon as it and those before it are
        in; all requests are sent at once (``concurrency`` of them in flight)."""
        futures = []
        for r in requests:
            idx = self._next % len(self._clients)
            self._next += 1
            futures.append(self._call(self._one(idx, r, sp)))
        return self._in_order(futures)

    def _in_order(self, futures: list[concurrent.futures.Future[Completion]]) -> Iterator[Completion]:
        try:
            for fut in futures:
                while True:  # a timed wait, so that Ctrl-C reaches the caller at once
                    try:
                        yield fut.result(timeout=0.5)
                        break
                    except concurrent.futures.TimeoutError:
                        continue
        finally:
            for fut in futures:
                fut.cancel()

    async def _one(self, idx: int, r: Request, sp: SamplingConfig) -> Completion:
        async with self._slots:
            retries = 0
            while True:
                try:
                    out = await self._send(self._clients[idx], r, sp)
                    return Completion(*out, retries=retries, endpoint=self.endpoints[idx])
                except Exception as exc:  # noqa: BLE001 - the SDK's errors, sorted below
                    wait = self._retry_wait(exc, retries)
                    if wait is None or retries >= self.cfg.max_retries:
                        return Completion("", "error", 0, retries=retries, endpoint=self.endpoints[idx],
                                          error=_describe(exc, retries))
                    retries += 1
                    await asyncio.sleep(wait)

    async def _send(self, client: Any, r: Request, sp: SamplingConfig) -> tuple[str, str, int, int | None]:
        kwargs: dict[str, Any] = dict(model=self.model, n=1, temperature=sp.temperature, top_p=sp.top_p,
                                      max_tokens=sp.max_tokens, seed=r.seed)
        if sp.stop:
            kwargs["stop"] = list(sp.stop)
        if sp.top_k > 0:
            kwargs["extra_body"] = {"top_k": sp.top_k}  # vLLM's and SGLang's extension
        if r.messages is not None:
            resp = await client.chat.completions.create(messages=r.messages, **kwargs)
            choice = resp.choices[0]
            text = choice.message.content or ""
        else:
            resp = await client.completions.create(prompt=r.text or "", **kwargs)
            choice = resp.choices[0]
            text = choice.text or ""
        usage = getattr(resp, "usage", None)
        n_prompt = getattr(usage, "prompt_tokens", None)
        n_completion = getattr(usage, "completion_tokens", None)
        reason = "length" if choice.finish_reason == "length" else "stop"
        return text, reason, int(n_completion or 0), n_prompt

    def _retry_wait(self, exc: Exception, retries: int) -> float | None:
        """Seconds to wait before the next try, or None when the error is not transient (a
        bad request, a missing model, a refused key)."""
        oa = self.openai
        if isinstance(exc, oa.APIStatusError):
            if exc.status_code not in RETRY_STATUS:
                return None
            after = _retry_after(exc.response.headers)
            if after is not None:
                return min(after, MAX_WAIT_S)
        elif not isinstance(exc, (oa.APIConnectionError, oa.APITimeoutError)):
            return None
        base = self.cfg.backoff * 2**retries
        return min(MAX_WAIT_S, base * (0.5 + random.random() / 2))  # jitter: no herd of retries

    # ------------------------------------------------------------------ closing

    def close(self) -> None:
        """Cancel what is in flight, close the clients, stop the loop."""
        if not self._loop.is_running():
            return

        async def shutdown() -> None:
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()
            for c in self._clients:
                await c.close()

        try:
            self._call(shutdown()).result(timeout=10)
        except (concurrent.futures.TimeoutError, RuntimeError):
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


def _retry_after(headers: Any) -> float | None:
    """The server's ``Retry-After`` (seconds) or ``retry-after-ms``, when given."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name) if headers is not None else None
        if value is not None:
            try:
                return max(0.0, float(value) / scale)
            except ValueError:
                continue
    return None


def _describe(exc: Exception, retries: int) -> str:
    status = getattr(exc, "status_code", None)
    what = f"HTTP {status}" if status else type(exc).__name__
    message = str(exc).splitlines()[0][:300] if str(exc) else ""
    return f"{what} after {retries} retries: {message}"
