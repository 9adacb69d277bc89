"""Shared test fixtures. Tests run offline (HF_HUB_OFFLINE=1) on the CPU."""

from __future__ import annotations

import os
import sys
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
