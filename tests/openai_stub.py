"""A small OpenAI-compatible server for tests that inject faults (loopback only, bounded).

It answers ``/v1/chat/completions`` and ``/v1/completions`` with a text that depends only
on the request's seed and prompt, and counts ``usage`` in words. ``faults(seed, attempt)``
picks what the ``attempt``-th request with that seed gets: ``None`` (an answer), ``"429"``
(with ``Retry-After``), ``"500"``, ``"drop"`` (the connection closed without an answer) or
``"stall"`` (no answer for ``stall_s`` seconds: past the client's timeout). It refuses
requests after ``max_requests`` (503) so a runaway client ends, and ``stop`` ends it.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def answer_text(seed: int, prompt: str) -> str:
    """The stub's completion for a seed and prompt: the same input, the same text."""
    h = zlib.crc32(f"{seed}|{prompt}".encode())
    return f"Let me think ({h % 1000}). The answer is \\boxed{{{h % 7}}}."


class OpenAIStub:
    def __init__(self, faults: Callable[[int, int], str | None] = lambda seed, attempt: None,
                 max_requests: int = 2000, stall_s: float = 3.0, delay_s: float = 0.0) -> None:
        self.faults = faults
        self.max_requests = max_requests
        self.stall_s = stall_s
        self.delay_s = delay_s
        self.attempts: Counter[int] = Counter()  # requests per seed
        self.served: Counter[str] = Counter()  # what was sent back, by kind
        self.bodies: list[dict] = []
        self.keys: list[str] = []  # the Authorization headers received
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                stub.handle(self, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def handle(self, h: BaseHTTPRequestHandler, body: dict) -> None:
        if not h.path.endswith(("/v1/chat/completions", "/v1/completions")):
            return self._send(h, 404, {"error": {"message": f"no route {h.path}"}})
        self.keys.append(h.headers.get("Authorization", ""))
        seed = int(body.get("seed", 0))
        with self.lock:
            total = sum(self.attempts.values())
            attempt = self.attempts[seed]
            self.attempts[seed] += 1
            self.bodies.append(body)
        if total >= self.max_requests:
            return self._send(h, 503, {"error": {"message": "stub: too many requests"}})
        fault = self.faults(seed, attempt)
        with self.lock:
            self.served[fault or "ok"] += 1
        if fault == "429":
            return self._send(h, 429, {"error": {"message": "rate limited"}}, {"Retry-After": "0"})
        if fault == "500":
            return self._send(h, 500, {"error": {"message": "internal error"}})
        if fault == "drop":
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return None
        if fault == "stall":
            time.sleep(self.stall_s)
            h.close_connection = True
            return None
        if self.delay_s:
            time.sleep(self.delay_s)
        if h.path.endswith("/chat/completions"):
            prompt = json.dumps(body["messages"], sort_keys=True)
            text = answer_text(seed, prompt)
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            kind = "chat.completion"
        else:
            prompt = body["prompt"]
            text = answer_text(seed, prompt)
            choice = {"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}
            kind = "text_completion"
        usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": len(text.split())}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return self._send(h, 200, {"id": f"stub-{seed}-{attempt}", "object": kind, "created": 0,
                                   "model": body.get("model", ""), "choices": [choice], "usage": usage})

    def _send(self, h: BaseHTTPRequestHandler, status: int, payload: dict,
              headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(data)
        except OSError:
            pass  # the client gave up (a stall past its timeout)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
