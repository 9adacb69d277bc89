"""Per-sample seeds derived from (base seed, problem id, sample index).

Each sample gets its own seed, so one sample can be regenerated alone and none changes
when the batch size, the shard or the order of the input changes (DESIGN §3).
"""

from __future__ import annotations

import hashlib
from typing import Any


def sample_seed(base_seed: int, problem_id: Any, sample_idx: int) -> int:
    """A stable 63-bit seed (fits torch generators and vLLM's SamplingParams)."""
    key = f"{base_seed}\x1f{problem_id}\x1f{sample_idx}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") & (2**63 - 1)
