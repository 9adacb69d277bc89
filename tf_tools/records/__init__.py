"""JSONL records in and out: lazy reading, atomic resumable writing, sharding, grouping.

Every tf-tools command reads and writes one JSON object per line. This package owns that
contract so each command spells it the same way:

- ``JsonlReader`` reads files or stdin lazily (orjson), names file and line for a bad line,
  and under ``keep_going`` passes a bad line on as a *failed record* instead of stopping.
  By the file name it also reads compressed JSONL (``.gz``, ``.zst``, ``.bz2``, ``.xz``;
  stdin by its first bytes: gzip, zstd) and Parquet (``row N of FILE``): ``formats.py``.
- ``JsonlWriter`` writes to stdout or atomically to ``FILE`` through ``FILE.tmp`` (renamed on
  success), one whole line per write so a killed job leaves only whole lines (``.gz`` and
  ``.zst`` names: one compressed member per write, so whole members); with ``resume`` it
  keeps the complete lines of an earlier run and reports which keys are done.
- ``parse_shard`` / ``shard_of`` / ``in_shard`` (``shards.py``) split records by a stable
  hash of the id, only when asked (``--shard I/N`` or ``--shard slurm``; never implicitly
  inside an array job).
- ``group_by_id`` yields contiguous runs of records that share an id.

It deliberately knows nothing about what a record means beyond ``id``: the reserved ``_tf``
key, ``_tf.error`` and ``record_failed`` are the record contract, in ``schema.py``.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from typing import IO, Any

import orjson

from tf_tools.errors import InputError, UsageError
from tf_tools.records import formats
from tf_tools.records.shards import content_id, in_shard, parse_shard, shard_of
from tf_tools.schema import Record, failed_line, is_failed

# --------------------------------------------------------------------------- reading


class JsonlReader:
    """Iterate the records of several JSONL files (``-`` or none = stdin), lazily; a
    ``.gz``/``.zst``/``.bz2``/``.xz`` file is decompressed, a ``.parquet`` file read by rows.

    ``where()`` names the line of the record yielded last, so a core function that rejects
    a record at the moment it pulls it can be reported as ``line 17 of runs/s.jsonl``
    (``row 17 of data.parquet``).
    """

    def __init__(
        self,
        paths: Sequence[str] | None = None,
        *,
        keep_going: bool = False,
        step: str = "read",
        stdin: IO[bytes] | None = None,
    ) -> None:
        self.paths = list(paths) if paths else ["-"]
        self.keep_going = keep_going
        self.step = step
        self.n_failed = 0
        self.n_read = 0
        self._stdin = stdin
        self._name = ""
        self._line = 0
        self._unit = "line"  # a Parquet file has rows

    def where(self) -> str:
        return f"{self._unit} {self._line} of {self._name}"

    def location(self) -> dict[str, Any]:
        return {"file": self._name, self._unit: self._line}

    def _open(self, path: str) -> tuple[str, IO[bytes]]:
        if path == "-":
            stream = self._stdin if self._stdin is not None else sys.stdin.buffer
            return "<stdin>", stream
        try:
            return path, open(path, "rb")  # noqa: SIM115 - closed in __iter__
        except FileNotFoundError:
            raise InputError(f"no such file: {path}") from None
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror}") from None

    def __iter__(self) -> Iterator[Record]:
        for path in self.paths:
            if path != "-" and formats.is_parquet(path):
                self._name, self._unit = path, "row"
                yield from self._rows(path)
                continue
            name, stream = self._open(path)
            self._name, self._unit = name, "line"
            try:
                codec = formats.sniff(stream) if path == "-" else formats.codec_of(path)
                lines = stream if codec is None else formats.compressed_lines(stream, codec, name)
                yield from self._read(name, lines)
            finally:
                if path != "-":
                    stream.close()

    def _rows(self, path: str) -> Iterator[Record]:
        for self._line, rec in enumerate(formats.parquet_rows(path), start=1):
            self.n_read += 1
            yield rec

    def _read(self, name: str, lines: Iterable[bytes]) -> Iterator[Record]:
        for lineno, raw in enumerate(lines, start=1):
            self._line = lineno
            if not raw.strip():
                continue
            try:
                rec = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                problem = f"is not valid JSON: {exc}"
                rec = None
            else:
                problem = "" if isinstance(rec, dict) else f"is not a JSON object (got {_kind(rec)})"
            self.n_read += 1
            if not problem:
                yield rec  # type: ignore[misc]
                continue
            if not self.keep_going:
                raise InputError(f"line {lineno} of {name} {problem}")
            self.n_failed += 1
            text = raw.decode("utf-8", errors="replace").rstrip("\n")
            yield failed_line(text, self.step, problem, name, lineno)


def _kind(value: Any) -> str:
    return {list: "an array", str: "a string", int: "a number", float: "a number",
            bool: "a boolean", type(None): "null"}.get(type(value), type(value).__name__)


# --------------------------------------------------------------------------- grouping


def group_by_id(
    records: Iterable[Record],
    id_key: str = "id",
    *,
    unsorted: bool = False,
    where: Callable[[], str] | None = None,
) -> Iterator[tuple[Any, list[Record]]]:
    """Yield (id, records) for each run of contiguous records sharing an id.

    An id that reappears after another id is an error (input must arrive grouped, as
    tf-sample writes it) unless ``unsorted``, which holds every record in memory.
    """
    if unsorted:
        groups: dict[Any, list[Record]] = {}
        for rec in records:
            groups.setdefault(_hashable(rec.get(id_key)), []).append(rec)
        yield from groups.items()
        return
    seen: set[Hashable] = set()
    current: Any = None
    batch: list[Record] = []
    for rec in records:
        rid = _hashable(rec.get(id_key))
        if batch and rid == current:
            batch.append(rec)
            continue
        if batch:
            yield current, batch
        if rid in seen:
            at = f"{where()}: " if where else ""
            raise InputError(
                f"{at}id {rid!r} appears again after other ids: input is not grouped by id",
                hint="sort the input by id (e.g. jq -s 'sort_by(.id)[]') or pass --unsorted",
            )
        seen.add(rid)
        current, batch = rid, [rec]
    if batch:
        yield current, batch


def _hashable(value: Any) -> Hashable:
    return value if isinstance(value, (str, int, float, bool, type(None))) else orjson.dumps(value)


# --------------------------------------------------------------------------- writing


class PipeClosed(Exception):
    """The downstream reader closed stdout (``| head -1``): stop work, exit 0 quietly."""


def dumps(rec: Record) -> bytes:
    return orjson.dumps(rec, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS) + b"\n"


class JsonlWriter:
    """Write records to stdout, or to ``path`` atomically through ``path.tmp``.

    Each call writes whole lines in one ``write`` and flushes, so a job killed at any
    moment leaves only whole lines in ``path.tmp``. ``commit()`` renames it into place;
    without ``commit()`` (an error, a kill) the ``.tmp`` stays for ``--resume``.

    With ``resume=True`` the complete lines of an earlier run (``path.tmp`` of a killed
    run, else ``path`` of a finished one) are kept, a torn last line is cut off, and
    ``done`` counts the keys (``key(record)``) already written.

    A ``path`` ending in ``.gz`` or ``.zst`` is written compressed, each write as one
    member (a gzip member, a zstd frame: the file is their concatenation, which gzip, zstd
    and every library that reads them read as one stream), so a killed job leaves whole
    members and at most one cut short; ``resume`` keeps the lines that decode whole, cuts
    the file where its last whole member ends and writes the lines after it again.
    """

    def __init__(
        self,
        path: str | None = None,
        *,
        resume: bool = False,
        key: Callable[[Record], Hashable] | None = None,
        stdout: IO[bytes] | None = None,
        group_complete: Callable[[list[Record]], bool] | None = None,
    ) -> None:
        self.path = None if path in (None, "-") else path
        self.done: Counter[Hashable] = Counter()
        self.kept: list[Record] = []
        self.n_written = 0
        if self.path is None:
            if resume:
                raise UsageError("--resume needs an output file (-o FILE)")
            self._out: IO[bytes] = stdout if stdout is not None else sys.stdout.buffer
            self._is_stdout = True
            return
        self._is_stdout = False
        self.codec, self._encode = formats.output_codec(self.path)
        self.tmp = self.path + ".tmp"
        parent = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(parent, exist_ok=True)
        if resume:
            tail = self._recover(key or (lambda r: r.get("id")), group_complete)
            self._out = open(self.tmp, "ab", buffering=0)  # noqa: SIM115
            if tail:
                self._write(self._encode(tail))
        else:
            self._out = open(self.tmp, "wb", buffering=0)  # noqa: SIM115

    def _recover(self, key: Callable[[Record], Hashable],
                 group_complete: Callable[[list[Record]], bool] | None) -> bytes:
        """Keep the whole records of an earlier run; returns the lines to write again
        after the file was cut at the end of its last whole member (compressed output)."""
        if not os.path.exists(self.tmp) and os.path.exists(self.path):  # type: ignore[arg-type]
            os.replace(self.path, self.tmp)  # type: ignore[arg-type]
        if not os.path.exists(self.tmp):
            return b""
        good = 0  # whole JSON lines so far
        starts: list[int] = []  # the line of each kept record
        cuts: list[tuple[int, int]] = [(0, 0)]  # (lines before, byte offset) the file may be cut at
        raws: list[bytes] = []  # compressed: the lines, to write again after a cut
        for item in formats.read_back(self.tmp, self.codec):
            if isinstance(item, int):
                cuts.append((good, item))
                continue
            if not item.endswith(b"\n"):
                break  # torn last line of a killed run
            try:
                rec = orjson.loads(item)
            except orjson.JSONDecodeError:
                break
            if isinstance(rec, dict):
                starts.append(good)
                self.kept.append(rec)
            if self.codec is not None:
                raws.append(item)
            good += 1
        if group_complete is not None and self.kept:
            # records of one id are written together: only the last group can be cut short
            last_id = self.kept[-1].get("id")
            first = len(self.kept)
            while first > 0 and self.kept[first - 1].get("id") == last_id:
                first -= 1
            if not group_complete(self.kept[first:]):
                good = starts[first]
                del self.kept[first:]
        for rec in self.kept:
            if not is_failed(rec):
                self.done[key(rec)] += 1
        before, offset = max(c for c in cuts if c[0] <= good)
        with open(self.tmp, "r+b") as f:
            f.truncate(offset)
        return b"".join(raws[before:good])

    def write(self, rec: Record) -> None:
        self.write_bytes(dumps(rec), 1)

    def write_many(self, recs: Iterable[Record]) -> None:
        chunk = b"".join(dumps(r) for r in recs)
        if chunk:
            self.write_bytes(chunk, chunk.count(b"\n"))

    def write_bytes(self, data: bytes, n_records: int) -> None:
        try:
            if self._is_stdout:
                self._out.write(data)
                self._out.flush()
            else:
                self._write(self._encode(data))
        except BrokenPipeError:
            raise PipeClosed from None
        self.n_written += n_records

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = self._out.write(view)
            view = view[written:]  # type: ignore[index]

    def commit(self) -> None:
        """Finish: rename ``path.tmp`` to ``path`` (stdout: flush)."""
        if self._is_stdout:
            try:
                self._out.flush()
            except BrokenPipeError:
                raise PipeClosed from None
            return
        self._out.close()
        os.replace(self.tmp, self.path)  # type: ignore[arg-type]

    def close(self) -> None:
        """Stop without committing (the ``.tmp`` stays for ``--resume``)."""
        if not self._is_stdout and not self._out.closed:
            self._out.close()


def skip_done(records: Iterable[Record], done: Counter[Hashable],
              key: Callable[[Record], Hashable]) -> Iterator[Record]:
    """Drop input records whose key an earlier run already wrote (counting repeats)."""
    if not done:
        yield from records
        return
    remaining = Counter(done)
    for rec in records:
        k = key(rec)
        if remaining.get(k, 0) > 0 and not is_failed(rec):
            remaining[k] -= 1
            continue
        yield rec


def skip_ids(records: Iterable[Record], done: Iterable[Hashable],
             id_key: str = "id") -> Iterator[Record]:
    """Drop the input records of ids an earlier run already finished (``--resume`` of the
    commands that write per problem, not per input record: tf-cluster, tf-fuse)."""
    done_ids = set(done)
    for rec in records:
        if is_failed(rec) or rec.get(id_key) not in done_ids:
            yield rec


def read_jsonl_file(path: str) -> Iterator[Record]:
    """Convenience for tests and library users: the records of one file, strictly."""
    yield from JsonlReader([path])


def write_jsonl_file(path: str, records: Iterable[Record]) -> int:
    """Convenience: write records to ``path`` atomically; returns the count."""
    writer = JsonlWriter(path)
    writer.write_many(records)
    writer.commit()
    return writer.n_written


__all__ = [
    "JsonlReader", "JsonlWriter", "PipeClosed", "Record", "content_id", "group_by_id",
    "in_shard", "parse_shard", "pump", "read_jsonl_file", "shard_of", "skip_done",
    "write_jsonl_file", "dumps",
]


def pump(records: Iterable[Record], writer: JsonlWriter, progress: Any = None,
         chunk: int = 256) -> int:
    """Write records as they come, in whole-line chunks; returns how many were written."""
    buf: list[bytes] = []
    n = 0
    for rec in records:
        buf.append(dumps(rec))
        if len(buf) >= chunk:
            writer.write_bytes(b"".join(buf), len(buf))
            n += len(buf)
            if progress is not None:
                progress.advance(len(buf))
            buf.clear()
    if buf:
        writer.write_bytes(b"".join(buf), len(buf))
        n += len(buf)
        if progress is not None:
            progress.advance(len(buf))
    return n
