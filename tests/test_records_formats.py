"""Records in the formats people have: compressed JSONL (.gz, .zst, .bz2, .xz) and Parquet in;
compressed JSONL out, atomically, and --resume on it after a kill (records/formats.py)."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from typer.testing import CliRunner

from tf_tools.cli import common
from tf_tools.cli.fuse import app as fuse_app
from tf_tools.cli.grade import app as grade_app
from tf_tools.errors import InputError, MissingDependency, UsageError
from tf_tools.records import JsonlReader, JsonlWriter, dumps, formats, read_jsonl_file
from tf_tools.schema import is_failed

from .conftest import ROOT, read_jsonl, tool, write_jsonl
from .openai_stub import OpenAIStub

runner = CliRunner()
BUNDLED = ROOT / "examples" / "data" / "qwen25math_math_25x8.jsonl"
RECORDS = [{"id": f"p{i // 3}", "sample_idx": i % 3, "text": "é" * i, "tags": ["a", str(i)],
            "meta": {"n": i, "ok": i % 2 == 0}} for i in range(12)]


def blob(records: list[dict]) -> bytes:
    return b"".join(dumps(r) for r in records)


def compress(codec: str, data: bytes) -> bytes:
    return {"gzip": lambda d: gzip.compress(d, mtime=0), "zstd": zstandard.ZstdCompressor().compress,
            "bz2": bz2.compress, "xz": lzma.compress}[codec](data)


def decompress(path: Path) -> list[dict]:
    """What any reader of the format sees: gzip's and zstd's own stream decoders."""
    data, name = path.read_bytes(), path.name.removesuffix(".tmp")
    if name.endswith(".gz"):
        data = gzip.decompress(data)
    elif name.endswith(".zst"):
        data = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True).read()
    return read_jsonl(data)


def whole_lines(path: Path) -> int:
    """Lines a killed job's compressed .tmp holds so far (lenient: what decodes)."""
    try:
        return sum(isinstance(x, bytes) for x in formats.read_back(str(path), formats.codec_of(str(path)[:-4])))
    except OSError:
        return 0


def kill_when(cmd: list[str], tmp: Path, lines: int, timeout: float = 60) -> None:
    """conftest.interrupt_when for compressed output: SIGKILL once ``tmp`` decodes to ``lines``."""
    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not (tmp.exists() and whole_lines(tmp) >= lines):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)


# --------------------------------------------------------------------------- reading


@pytest.mark.parametrize("suffix,codec", [(".jsonl.gz", "gzip"), (".json.gz", "gzip"),
                                          (".jsonl.zst", "zstd"), (".jsonl.bz2", "bz2"),
                                          (".jsonl.xz", "xz")])
def test_compressed_jsonl_reads_as_the_plain_file(tmp_path, suffix, codec):
    path = tmp_path / f"in{suffix}"
    data = blob(RECORDS)
    # two members one after the other (as `cat a.gz b.gz`, or tf-tools' own writer): one stream
    path.write_bytes(compress(codec, data[:500]) + compress(codec, data[500:]))
    reader = JsonlReader([str(path)])
    assert list(reader) == RECORDS
    assert reader.where() == f"line 12 of {path}" and reader.n_read == 12


def test_a_bad_line_in_a_compressed_file_is_named_by_file_and_line(tmp_path):
    path = tmp_path / "in.jsonl.gz"
    path.write_bytes(gzip.compress(blob(RECORDS[:2]) + b'{"id": \n' + blob(RECORDS[2:3])))
    with pytest.raises(InputError, match=rf"^line 3 of {path} is not valid JSON"):
        list(JsonlReader([str(path)]))
    reader = JsonlReader([str(path)], keep_going=True, step="grade")
    out = list(reader)
    assert len(out) == 4 and is_failed(out[2]) and reader.n_failed == 1
    assert out[2]["_tf"]["error"]["file"] == str(path) and out[2]["_tf"]["error"]["line"] == 3
    assert out[3] == RECORDS[2]


@pytest.mark.parametrize("suffix", [".gz", ".zst"])
def test_a_cut_or_corrupt_compressed_file_is_an_error_never_read_as_complete(tmp_path, suffix):
    codec = formats.codec_of("x" + suffix)
    whole = compress(codec, blob(RECORDS[:6])) + compress(codec, blob(RECORDS[6:]))
    cut = tmp_path / f"cut.jsonl{suffix}"
    cut.write_bytes(whole[:-6])  # the second member loses its end
    reader = JsonlReader([str(cut)])
    got = []
    with pytest.raises(InputError, match=rf"^{cut} ends inside a {codec} block after line \d+: the file is cut short"):
        got.extend(reader)
    assert got[:6] == RECORDS[:6]
    bad = tmp_path / f"bad.jsonl{suffix}"
    bad.write_bytes(whole[: len(whole) // 2] + b"\x00not compressed at all" * 4)
    with pytest.raises(InputError, match=rf"^{bad} (is not valid {codec} data|ends inside)"):
        list(JsonlReader([str(bad)]))


def test_stdin_is_plain_jsonl_or_recognised_gzip_and_zstd():
    for data in (blob(RECORDS), gzip.compress(blob(RECORDS)), zstandard.ZstdCompressor().compress(blob(RECORDS))):
        assert list(JsonlReader(["-"], stdin=io.BufferedReader(io.BytesIO(data)))) == RECORDS


def test_gzip_on_a_real_stdin_pipe(tmp_path):
    src = write_jsonl(tmp_path / "g.jsonl", [{"id": "a", "sample_idx": 0, "verdict": "correct", "correct": True}])
    gz = gzip.compress(src.read_bytes())
    result = subprocess.run([tool("tf-stats"), "--json"], input=gz, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    assert orjson.loads(result.stdout)["records"] == 1


def test_parquet_rows_round_trip_as_records_with_nested_and_list_columns(tmp_path):
    path = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist(RECORDS), path, row_group_size=5)  # 3 row groups
    reader = JsonlReader([str(path)])
    got = []
    for rec in reader:
        got.append(rec)
        assert reader.where() == f"row {len(got)} of {path}"
    assert got == RECORDS
    assert reader.location() == {"file": str(path), "row": 12}
    assert common.count_lines([str(path)]) == 12
    assert common.count_lines([str(tmp_path / "x.jsonl.gz")]) is None


def test_parquet_keys_some_rows_lack_read_as_null_and_a_null_error_is_no_failure(tmp_path):
    rows = [{"id": "a", "_tf": {"grade": {"v": 1}}},
            {"id": "b", "_tf": {"error": {"step": "grade", "message": "boom"}}}]
    path = tmp_path / "mixed.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    a, b = JsonlReader([str(path)])
    assert a["_tf"]["error"] is None and not is_failed(a)  # Parquet's one schema: null, not absent
    assert is_failed(b) and b["_tf"]["error"]["message"] == "boom"


def test_parquet_json_columns_come_back_as_their_values(tmp_path):
    # datasets' Json feature (a column whose rows mix types) is Arrow's arrow.json: JSON text
    table = pa.table({"id": ["a", "b"], "answer": pa.array(['"12"', "[1, 2]"], type=pa.json_())})
    pq.write_table(table, tmp_path / "j.parquet")
    assert [r["answer"] for r in JsonlReader([str(tmp_path / "j.parquet")])] == ["12", [1, 2]]


def test_a_record_level_error_in_a_parquet_file_names_the_row(tmp_path):
    path = tmp_path / "problems.parquet"
    pq.write_table(pa.Table.from_pylist([{"id": "a", "clusters": [], "correct": [], "problem": "x"},
                                         {"id": "b", "clusters": [], "problem": "y"}]), path)
    result = runner.invoke(fuse_app, [str(path)])
    assert result.exit_code == 1
    assert f"error: row 2 of {path}: record has no 'correct' field" in result.stderr


def test_a_file_that_is_not_parquet_is_a_clear_error(tmp_path):
    path = tmp_path / "oops.parquet"
    path.write_bytes(blob(RECORDS))
    with pytest.raises(InputError, match=rf"^{path} is not a readable Parquet file"):
        list(JsonlReader([str(path)]))
    with pytest.raises(InputError, match="no such file"):
        list(JsonlReader([str(tmp_path / "none.parquet")]))


def test_a_missing_package_says_which_extra_to_install(tmp_path, monkeypatch):
    pq.write_table(pa.Table.from_pylist(RECORDS), tmp_path / "in.parquet")
    (tmp_path / "in.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(blob(RECORDS)))
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow raises ImportError
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    monkeypatch.setitem(sys.modules, "zstandard", None)
    with pytest.raises(MissingDependency, match="needs pyarrow") as exc:
        list(JsonlReader([str(tmp_path / "in.parquet")]))
    assert exc.value.hint == "pip install 'tf-tools[data]'"
    with pytest.raises(MissingDependency, match="needs zstandard"):
        list(JsonlReader([str(tmp_path / "in.jsonl.zst")]))
    result = runner.invoke(grade_app, [str(tmp_path / "in.jsonl.zst")])
    assert result.exit_code == 1
    assert f"error: reading {tmp_path / 'in.jsonl.zst'} needs zstandard" in result.stderr
    assert "hint: pip install 'tf-tools[data]'" in result.stderr
    result = runner.invoke(grade_app, [str(tmp_path / "in.parquet"), "-o", str(tmp_path / "out.jsonl.zst")])
    assert result.exit_code == 1 and "needs zstandard" in result.stderr
    assert not (tmp_path / "out.jsonl.zst.tmp").exists()  # refused before any work


# --------------------------------------------------------------------------- writing


@pytest.mark.parametrize("suffix", [".gz", ".zst"])
def test_writer_compresses_atomically_one_member_per_write(tmp_path, suffix):
    out = tmp_path / f"out.jsonl{suffix}"
    w = JsonlWriter(str(out))
    for i in range(0, 12, 3):
        w.write_many(RECORDS[i:i + 3])
    assert not out.exists()  # only out.jsonl.gz.tmp until commit
    tmp = Path(w.tmp)
    assert decompress(tmp) == RECORDS  # valid up to the last write, before any close
    w.commit()
    assert not tmp.exists() and decompress(out) == RECORDS
    assert list(read_jsonl_file(str(out))) == RECORDS
    # four writes, four members: a cut file loses the last member, never the earlier ones
    cuts = [x for x in formats.read_back(str(out), formats.codec_of("x" + suffix)) if isinstance(x, int)]
    assert len(cuts) == 4 and cuts[-1] == out.stat().st_size


def test_output_that_cannot_be_written_is_a_usage_error_before_any_work(tmp_path):
    for name in ("out.parquet", "out.jsonl.bz2"):
        with pytest.raises(UsageError, match=f"cannot write {tmp_path / name}"):
            JsonlWriter(str(tmp_path / name))
    result = runner.invoke(grade_app, [str(BUNDLED), "-o", str(tmp_path / "g.parquet")])
    assert result.exit_code == 2
    assert "tf-tools writes JSONL (plain, .gz or .zst), not Parquet" in result.stderr
    assert not list(tmp_path.iterdir())


def test_tf_grade_writes_the_same_records_compressed(tmp_path):
    plain, gz = tmp_path / "g.jsonl", tmp_path / "g.jsonl.gz"
    for out in (plain, gz):
        result = runner.invoke(grade_app, [str(BUNDLED), "--workers", "1", "-q", "-o", str(out)])
        assert result.exit_code == 0, result.stderr
    strip = lambda recs: [{**r, "_tf": {**r["_tf"], "grade": {**r["_tf"]["grade"], "seconds": 0}}} for r in recs]  # noqa: E731
    assert strip(decompress(gz)) == strip(read_jsonl(plain.read_bytes())) and len(decompress(gz)) == 200
    assert gz.stat().st_size < plain.stat().st_size / 4


# --------------------------------------------------------------------------- resume


@pytest.mark.parametrize("suffix", [".gz", ".zst"])
def test_resume_keeps_the_whole_lines_of_a_member_cut_short(tmp_path, suffix):
    codec = formats.codec_of("x" + suffix)
    out = tmp_path / f"out.jsonl{suffix}"
    tmp = Path(str(out) + ".tmp")
    # a killed run: problems p0, p1 in one member, then p2 and half of p3 in a member whose
    # end is gone (the kill came mid-write): p2's lines decode whole, p3's last line is torn
    second = compress(codec, blob(RECORDS[6:11]))
    tmp.write_bytes(compress(codec, blob(RECORDS[:6])) + second[: len(second) - 8])
    w = JsonlWriter(str(out), resume=True, key=lambda r: (r["id"], r["sample_idx"]),
                    group_complete=lambda group: len(group) >= 3)
    assert w.kept == RECORDS[:len(w.kept)] and len(w.kept) in (6, 9)
    assert sum(w.done.values()) == len(w.kept)
    w.write_many(RECORDS[len(w.kept):])
    w.commit()
    assert decompress(out) == RECORDS


def test_resume_of_a_single_member_file_cut_inside_a_problem(tmp_path):
    # a file compressed in one piece (gzip out.jsonl): the problem cut short is inside the
    # only member, so the file is cut to nothing and the whole problems written again
    out = tmp_path / "out.jsonl.gz"
    out.write_bytes(gzip.compress(blob(RECORDS[:8])))
    w = JsonlWriter(str(out), resume=True, group_complete=lambda group: len(group) >= 3)
    assert w.kept == RECORDS[:6] and w.done == {"p0": 3, "p1": 3}
    w.write_many(RECORDS[6:])
    w.commit()
    assert decompress(out) == RECORDS


def test_resume_refuses_a_file_that_is_not_in_its_codec_and_keeps_it(tmp_path):
    out = tmp_path / "out.jsonl.gz"
    out.write_bytes(blob(RECORDS))  # plain JSONL under a .gz name: no killed run of ours
    with pytest.raises(InputError, match=rf"--resume: {out}.tmp is not gzip data") as exc:
        JsonlWriter(str(out), resume=True)
    assert "remove it to start over" in exc.value.hint
    assert Path(str(out) + ".tmp").read_bytes() == blob(RECORDS)  # kept, as the .tmp to resume
    # zeros after the last whole member (a crash that extended the file): the members stay
    Path(str(out) + ".tmp").write_bytes(gzip.compress(blob(RECORDS[:6])) + b"\0" * 64)
    w = JsonlWriter(str(out), resume=True)
    assert w.kept == RECORDS[:6]
    w.write_many(RECORDS[6:])
    w.commit()
    assert decompress(out) == RECORDS


def test_tf_fuse_resume_on_compressed_output_matches_an_uninterrupted_run(tmp_path):
    problems = tmp_path / "p.jsonl.zst"
    for cmd in ([tool("tf-grade"), "--workers", "1", "-q", str(BUNDLED), "-o", str(tmp_path / "g.jsonl.gz")],
                [tool("tf-cluster"), "--workers", "1", "-q", str(tmp_path / "g.jsonl.gz"), "-o", str(problems)]):
        subprocess.run(cmd, check=True, timeout=120)
    full = tmp_path / "full.jsonl"
    assert runner.invoke(fuse_app, [str(problems), "-o", str(full), "-q"]).exit_code == 0
    lines = full.read_bytes().splitlines(keepends=True)
    ids = [orjson.loads(line)["id"] for line in lines]
    cut = next(i for i in range(len(ids) // 2, len(ids)) if ids[i] == ids[i - 1])  # inside a problem
    out = tmp_path / "out.jsonl.gz"
    tail = gzip.compress(b"".join(lines[cut - 1:cut + 1]))
    (tmp_path / "out.jsonl.gz.tmp").write_bytes(gzip.compress(b"".join(lines[:cut - 1])) + tail[:-10])
    result = runner.invoke(fuse_app, [str(problems), "-o", str(out), "--resume", "-v"])
    assert result.exit_code == 0, result.stderr
    assert "resuming:" in result.stderr
    assert decompress(out) == read_jsonl(full.read_bytes())
    assert not (tmp_path / "out.jsonl.gz.tmp").exists()


def test_tf_grade_killed_mid_run_resumes_compressed_output_to_the_same_records(tmp_path):
    recs = []
    for i in range(900):
        gold, pred = (f"({i}, x+1)", f"\\boxed{{({i}, 1+x)}}") if i % 20 == 7 else (str(i), f"\\boxed{{{i + i % 2}}}")
        recs.append({"id": f"t{i}", "sample_idx": 0, "problem": "p", "answer": gold, "completion": pred})
    src = write_jsonl(tmp_path / "in.jsonl", recs)
    args = [tool("tf-grade"), "-q", "--workers", "1", "--timeout", "60", str(src)]
    full = tmp_path / "full.jsonl"
    subprocess.run([*args, "-o", str(full)], check=True, timeout=300)
    out = tmp_path / "out.jsonl.zst"
    tmp = tmp_path / "out.jsonl.zst.tmp"
    kill_when([*args, "-o", str(out)], tmp, 256)
    time.sleep(0.5)  # orphaned workers notice the closed pipe and leave
    assert not out.exists() and 256 <= whole_lines(tmp) < len(recs)
    subprocess.run([*args, "--resume", "-o", str(out)], check=True, timeout=300)
    assert not tmp.exists()

    def strip(rs):
        return [{**r, "_tf": {"grade": {**r["_tf"]["grade"], "seconds": 0}}} for r in rs]
    assert strip(decompress(out)) == strip(read_jsonl(full.read_bytes()))


def test_tf_sample_killed_mid_run_resumes_compressed_output_to_the_same_records(tmp_path):
    server = OpenAIStub(delay_s=0.05)
    try:
        src = write_jsonl(tmp_path / "p.jsonl", [{"id": f"r{i}", "problem": f"What is {i} times 3?"} for i in range(30)])
        args = [tool("tf-sample"), "--engine", "openai", "--base-url", server.url, "-m", "teacher",
                "-n", "2", "--concurrency", "2", "-q", str(src)]
        full = tmp_path / "full.jsonl"
        subprocess.run([*args, "-o", str(full)], check=True, timeout=120)
        out = tmp_path / "out.jsonl.gz"
        kill_when([*args, "-o", str(out)], tmp_path / "out.jsonl.gz.tmp", 10)
        assert 10 <= whole_lines(tmp_path / "out.jsonl.gz.tmp") < 60
        subprocess.run([*args, "--resume", "-o", str(out)], check=True, timeout=120)
    finally:
        server.stop()
    assert gzip.decompress(out.read_bytes()) == full.read_bytes()
