"""Stable ids and shards: ``--shard I/N`` and ``--shard slurm`` (part of ``tf_tools.records``).

- ``content_id``: a deterministic id from a record's content, for records without one;
- ``shard_of`` / ``in_shard``: shard I of N by a stable hash of the id (the same on every
  machine and Python run);
- ``parse_shard``: ``I/N`` or the SLURM array task, never implicitly inside an array job.

It does not read or write records; ``tf_tools.records`` re-exports all of it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import orjson

from tf_tools.errors import UsageError
from tf_tools.schema import Record, is_failed


def content_id(rec: Record, fields: Sequence[str]) -> str:
    """A deterministic id from a record's content (never a random one)."""
    payload = orjson.dumps([rec.get(f) for f in fields], option=orjson.OPT_SORT_KEYS)
    return "h" + hashlib.blake2b(payload, digest_size=8).hexdigest()


def shard_of(record_id: Any, n_shards: int) -> int:
    """Stable shard index of an id: the same on every machine and Python run."""
    key = record_id if isinstance(record_id, str) else orjson.dumps(record_id).decode()
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % n_shards


def parse_shard(spec: str | None, env: Mapping[str, str] | None = None) -> tuple[int, int] | None:
    """``"I/N"`` -> (I, N) with 0 <= I < N; ``"slurm"`` -> the SLURM array task; None -> None.

    Never implicit: a command inside an array job processes all its input unless told
    ``--shard``. ``slurm`` reads SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT and
    SLURM_ARRAY_TASK_MIN (default 0) and refuses an array whose task ids are not one
    contiguous range (``--array=3,7``, ``--array=0-15:2``, a rerun ``--array=3``).
    """
    if spec is None:
        return None
    if spec.strip().lower() == "slurm":
        return _slurm_shard(os.environ if env is None else env)
    try:
        i_text, n_text = spec.split("/")
        i, n = int(i_text), int(n_text)
    except ValueError:
        raise UsageError(f"--shard must look like I/N (e.g. 0/8) or be 'slurm', got {spec!r}") from None
    if n < 1 or not 0 <= i < n:
        raise UsageError(f"--shard {spec}: need 0 <= I < N")
    return i, n


_SLURM_HINT = "spell the shard out with --shard I/N (e.g. --shard 3/16 to redo task 3 of 16)"


def _slurm_shard(env: Mapping[str, str]) -> tuple[int, int]:
    missing = [k for k in ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT") if k not in env]
    if missing:
        raise UsageError(f"--shard slurm: {' and '.join(missing)} not set: not a SLURM array task",
                         hint="submit with sbatch --array=0-15 (say), or " + _SLURM_HINT)
    try:
        task = int(env["SLURM_ARRAY_TASK_ID"])
        count = int(env["SLURM_ARRAY_TASK_COUNT"])
        first = int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
        last = int(env["SLURM_ARRAY_TASK_MAX"]) if "SLURM_ARRAY_TASK_MAX" in env else first + count - 1
    except ValueError:
        raise UsageError("--shard slurm: the SLURM_ARRAY_TASK_* variables are not integers",
                         hint=_SLURM_HINT) from None
    i = task - first
    if count < 1 or not 0 <= i < count or last - first + 1 != count:
        # sbatch --array=3,7 (a rerun of two tasks): ids 3 and 7 are not shards 0 and 1 of 2
        raise UsageError(f"--shard slurm: array task {task} is not a shard: the array's ids "
                         f"(from {first} to {last}, {count} tasks) are not one contiguous range "
                         "(need 0 <= ID - MIN < COUNT)", hint=_SLURM_HINT)
    if count == 1 and first != 0:
        # sbatch --array=3 (a rerun of one task) is an array of one task: all of the input
        raise UsageError(f"--shard slurm: array task {task} is the only task of its array, "
                         f"not shard {task} of a larger one", hint=_SLURM_HINT)
    return i, count


def in_shard(records: Iterable[Record], shard: tuple[int, int] | None,
             id_key: str = "id") -> Iterator[Record]:
    """Keep the records of shard I of N (by a stable hash of the id)."""
    if shard is None or shard[1] == 1:
        yield from records
        return
    i, n = shard
    for rec in records:
        if is_failed(rec) or shard_of(rec.get(id_key), n) == i:
            yield rec
