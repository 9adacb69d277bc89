"""The formats records come in besides plain JSONL, chosen by the file name's suffix.

- ``.gz`` (gzip, stdlib), ``.zst``/``.zstd`` (the ``zstandard`` package), ``.bz2`` and ``.xz``
  (stdlib): compressed JSONL, decoded as a stream (``members``). A file may hold several
  compressed members one after the other (gzip members, zstd frames), which every reader of
  these formats reads as one stream: ``encoder`` writes each chunk of whole lines as one
  member, so a killed job leaves whole members plus at most one cut short, and ``read_back``
  finds the lines of an earlier run and where the file can be cut for ``--resume``.
  A file that ends inside a member is reported as truncated, never read as if complete.
- ``.parquet`` (``pyarrow``): read lazily by record batches, each row as a dict; nested and
  list columns come as Python objects and a column of JSON text (``datasets``' ``Json``
  feature, Arrow's ``arrow.json`` type) as the values it holds. Parquet has one schema per
  file, so a key that some rows lack reads as null in those rows.

It writes compressed JSONL (``.gz``, ``.zst``) but no Parquet: tf-tools' output is JSONL,
which pyarrow, pandas and ``datasets`` convert in one line. ``pyarrow`` and ``zstandard``
are the optional ``data`` extra, imported only when a file needs them.
"""

from __future__ import annotations

import bz2
import lzma
import os
import zlib
from collections.abc import Callable, Iterator
from typing import IO, Any

from tf_tools.errors import InputError, MissingDependency, UsageError

CHUNK = 1 << 20
#: compressed JSONL: suffix -> codec
CODECS = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd", ".bz2": "bz2", ".xz": "xz"}
WRITABLE = ("gzip", "zstd")
#: the first bytes of a stream in each codec (stdin is recognised by them)
MAGIC = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd"}


def codec_of(path: str) -> str | None:
    """The compression of a file by its name (``x.jsonl.gz`` -> gzip), or None for plain."""
    return CODECS.get(os.path.splitext(path)[1].lower())


def is_parquet(path: str) -> bool:
    return path.lower().endswith(".parquet")


def sniff(stream: IO[bytes]) -> str | None:
    """The codec of a stream by its first bytes (without consuming them), when it can be
    peeked at (stdin is a buffered reader); None for plain text."""
    peek = getattr(stream, "peek", None)
    if peek is None:
        return None
    head = peek(4)[:4]
    return next((codec for magic, codec in MAGIC.items() if head.startswith(magic)), None)


def _zstandard(what: str) -> Any:
    try:
        import zstandard
    except ImportError:
        raise MissingDependency(f"{what} needs zstandard", "data") from None
    return zstandard


def _decompressor(codec: str, what: str) -> Callable[[], Any]:
    """A factory of one-member decompressors, each with ``decompress``, ``eof`` and
    ``unused_data`` (what follows its member)."""
    if codec == "gzip":
        return lambda: zlib.decompressobj(wbits=31)
    if codec == "zstd":
        zstd = _zstandard(what)
        return lambda: zstd.ZstdDecompressor().decompressobj()
    if codec == "bz2":
        return bz2.BZ2Decompressor
    return lzma.LZMADecompressor


class Truncated(Exception):
    """The data ends inside a compressed member (a file cut short)."""


class Corrupt(Exception):
    """Bytes that do not decode in the file's codec."""


def members(f: IO[bytes], codec: str, what: str) -> Iterator[tuple[bytes, int | None]]:
    """Decode a stream of compressed members: ``(data, end)`` pairs, where ``end`` is the
    byte offset just after a member that ``data`` finishes, else None. Raises ``Truncated``
    when the stream ends inside a member and ``Corrupt`` at bytes that do not decode."""
    new = _decompressor(codec, what)
    errors: tuple[type[BaseException], ...] = (zlib.error, OSError, EOFError, lzma.LZMAError)
    if codec == "zstd":
        errors += (_zstandard(what).ZstdError,)
    dec = None
    offset = 0  # bytes of the stream handed to decompressors so far
    while chunk := f.read(CHUNK):
        offset += len(chunk)
        while chunk:
            if dec is None:
                dec = new()
            try:
                out = dec.decompress(chunk)
            except errors as exc:
                raise Corrupt(str(exc) or type(exc).__name__) from None
            if dec.eof:
                chunk = dec.unused_data
                dec = None
                yield out, offset - len(chunk)
            else:
                chunk = b""
                if out:
                    yield out, None
    if dec is not None:
        raise Truncated


def _lines(pieces: Iterator[tuple[bytes, int | None]]) -> Iterator[bytes | int]:
    """Whole lines of decoded pieces (bytes), and between them the offsets where a member
    ends right after a whole line (int: where the file may be cut). A last line without a
    newline comes last, as it is."""
    pending: list[bytes] = []
    for data, end in pieces:
        parts = data.split(b"\n")
        last = parts.pop()
        for part in parts:
            yield b"".join([*pending, part, b"\n"]) if pending else part + b"\n"
            pending = []
        if last:
            pending.append(last)
        if end is not None and not pending:
            yield end
    if pending:
        yield b"".join(pending)


def compressed_lines(f: IO[bytes], codec: str, name: str) -> Iterator[bytes]:
    """The lines of a compressed JSONL stream; a truncated or corrupt stream is an error
    naming the file and the last whole line read."""
    n = 0
    try:
        for line in _lines(members(f, codec, f"reading {name}")):
            if isinstance(line, bytes):
                n += 1
                yield line
    except Truncated:
        raise InputError(f"{name} ends inside a {codec} block after line {n}: the file is "
                         "cut short (a copy or job that did not finish?)") from None
    except Corrupt as exc:
        raise InputError(f"{name} is not valid {codec} data after line {n}: {exc}") from None


def read_back(path: str, codec: str | None) -> Iterator[bytes | int]:
    """An earlier run's output for ``--resume``: its lines (bytes) and, between them, the
    byte offsets the file can be cut at (int). Plain JSONL can be cut after any line;
    compressed JSONL where a member ends. Lines stop where the data stops decoding: the
    whole lines a killed job left are what comes back. A file that does not decode from its
    first byte is no output of a killed run (a plain file under a .gz name): an error, so
    that --resume never throws away what it holds."""
    with open(path, "rb") as f:
        if codec is None:
            offset = 0
            for line in f:
                offset += len(line)
                yield line
                yield offset
            return
        decoded = False
        try:
            for item in _lines(members(f, codec, f"--resume of {path}")):
                decoded = True
                yield item
        except Truncated:
            return
        except Corrupt as exc:
            if decoded:
                return  # what follows the last whole member is lost, as a torn line is
            raise InputError(f"--resume: {path} is not {codec} data ({exc})",
                             hint="remove it to start over, or resume into the file's own "
                                  "format (-o without .gz/.zst for plain JSONL)") from None


def encoder(codec: str | None, path: str) -> Callable[[bytes], bytes]:
    """Bytes of whole lines -> what to append to the file: one compressed member each, so
    the file is valid up to the last whole write (plain JSONL: the bytes themselves)."""
    if codec is None:
        return lambda data: data
    if codec not in WRITABLE:
        raise UsageError(f"cannot write {path}: tf-tools writes JSONL as it is, .gz or .zst",
                         hint=f"-o {os.path.splitext(path)[0]}.gz, or compress it afterwards")
    if codec == "gzip":
        # level 6 as the gzip tool; mtime 0: the same lines give the same bytes
        return lambda data: _gzip_member(data)
    compressor = _zstandard(f"writing {path}").ZstdCompressor(level=3)
    return compressor.compress  # type: ignore[no-any-return]


def _gzip_member(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data, compresslevel=6, mtime=0)


def output_codec(path: str) -> tuple[str | None, Callable[[bytes], bytes]]:
    """The codec ``path`` is written in and its ``encoder``; Parquet and the codecs tf-tools
    only reads are usage errors, a missing package an error with its hint: before any work."""
    if is_parquet(path):
        raise UsageError(f"cannot write {path}: tf-tools writes JSONL (plain, .gz or .zst), "
                         "not Parquet",
                         hint="write JSONL and convert it: python -c \"import pyarrow.json as j, "
                              "pyarrow.parquet as p; p.write_table(j.read_json('out.jsonl'), "
                              "'out.parquet')\"")
    codec = codec_of(path)
    return codec, encoder(codec, path)


# --------------------------------------------------------------------------- parquet


def parquet_rows(path: str, batch_size: int = 1024) -> Iterator[dict[str, Any]]:
    """The rows of a Parquet file as dicts, one record batch in memory at a time."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingDependency(f"reading {path} needs pyarrow", "data") from None
    try:
        pf = pq.ParquetFile(path)
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path} is not a readable Parquet file: {exc}") from None
    json_type = getattr(pa, "JsonType", None)
    json_cols = [f.name for f in pf.schema_arrow
                 if json_type is not None and isinstance(f.type, json_type)]
    n = 0
    batches = pf.iter_batches(batch_size=batch_size)
    while True:
        try:
            batch = next(batches, None)
            if batch is None:
                return
            rows = batch.to_pylist()
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"row {n + 1} of {path} cannot be read: {exc}") from None
        if json_cols:
            _decode_json(rows, json_cols, path, n)
        n += len(rows)
        yield from rows


def _decode_json(rows: list[dict[str, Any]], cols: list[str], path: str, before: int) -> None:
    import orjson

    for i, row in enumerate(rows, start=before + 1):
        for col in cols:
            if isinstance(row.get(col), str):
                try:
                    row[col] = orjson.loads(row[col])
                except orjson.JSONDecodeError as exc:
                    raise InputError(f"row {i} of {path}: column {col!r} is not valid JSON: "
                                     f"{exc}") from None


def parquet_rows_count(path: str) -> int | None:
    """Rows of a Parquet file from its footer (no data read); None when it cannot say."""
    try:
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    except Exception:  # noqa: BLE001 - only a progress total: the read reports the error
        return None
