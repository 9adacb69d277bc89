"""records.py: reading, failed lines, atomic and resumable writing, shards, grouping (and
schema.py's ``record_failed``)."""

from __future__ import annotations

import io
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tf_tools.errors import InputError, UsageError
from tf_tools.records import (
    JsonlReader,
    JsonlWriter,
    group_by_id,
    in_shard,
    parse_shard,
    shard_of,
    skip_done,
)
from tf_tools.schema import is_failed, record_failed

from .conftest import read_jsonl, write_jsonl


def test_reader_names_file_and_line_of_bad_json(tmp_path):
    p = tmp_path / "in.jsonl"
    p.write_text('{"id": "a"}\n\n{"id": \n{"id": "c"}\n')
    reader = JsonlReader([str(p)])
    with pytest.raises(InputError) as exc:
        list(reader)
    assert exc.value.message.startswith(f"line 3 of {p} is not valid JSON")


def test_reader_rejects_non_object_lines(tmp_path):
    p = tmp_path / "in.jsonl"
    p.write_text('{"id": "a"}\n[1, 2]\n')
    with pytest.raises(InputError, match=r"line 2 of .* is not a JSON object \(got an array\)"):
        list(JsonlReader([str(p)]))


def test_keep_going_passes_bad_lines_on_marked_and_keeps_every_good_record(tmp_path):
    p = tmp_path / "in.jsonl"
    p.write_text('{"id": "a"}\nnot json\n{"id": "b"}\n"str"\n{"id": "c"}\n')
    reader = JsonlReader([str(p)], keep_going=True, step="grade")
    out = list(reader)
    assert [r.get("id") for r in out] == ["a", None, "b", None, "c"]
    assert reader.n_failed == 2
    bad = out[1]
    assert is_failed(bad)
    assert bad["_raw"] == "not json"
    assert bad["_tf"]["error"]["line"] == 2 and bad["_tf"]["error"]["step"] == "grade"


def test_reader_is_lazy_over_stdin():
    stream = io.BytesIO(b'{"id": 1}\n{"id": 2}\nbroken\n')
    it = iter(JsonlReader(["-"], stdin=stream))
    assert next(it) == {"id": 1}  # the broken third line has not been looked at yet
    assert next(it) == {"id": 2}
    with pytest.raises(InputError, match="line 3 of <stdin>"):
        next(it)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        list(JsonlReader([str(tmp_path / "nope.jsonl")]))


def test_writer_is_atomic_and_commit_renames(tmp_path):
    out = tmp_path / "out.jsonl"
    w = JsonlWriter(str(out))
    w.write({"id": "a"})
    assert not out.exists() and (tmp_path / "out.jsonl.tmp").exists()
    w.commit()
    assert out.exists() and not (tmp_path / "out.jsonl.tmp").exists()
    assert read_jsonl(out.read_bytes()) == [{"id": "a"}]


def test_resume_keeps_whole_lines_cuts_torn_line_and_counts_done(tmp_path):
    out = tmp_path / "out.jsonl"
    (tmp_path / "out.jsonl.tmp").write_bytes(b'{"id":"a","sample_idx":0}\n{"id":"a","sample_idx":1}\n{"id":"b","sam')

    def key(r):
        return (r.get("id"), r.get("sample_idx"))

    w = JsonlWriter(str(out), resume=True, key=key)
    assert dict(w.done) == {("a", 0): 1, ("a", 1): 1}
    inputs = [{"id": "a", "sample_idx": 0}, {"id": "a", "sample_idx": 1}, {"id": "b", "sample_idx": 0}]
    todo = list(skip_done(inputs, w.done, key))
    assert todo == [{"id": "b", "sample_idx": 0}]
    w.write_many(todo)
    w.commit()
    assert read_jsonl(out.read_bytes()) == inputs


def test_resume_of_a_finished_file_does_nothing_new(tmp_path):
    out = tmp_path / "out.jsonl"
    write_jsonl(out, [{"id": "a"}, {"id": "b"}])
    w = JsonlWriter(str(out), resume=True)
    assert sum(w.done.values()) == 2
    assert list(skip_done([{"id": "a"}, {"id": "b"}], w.done, lambda r: r["id"])) == []
    w.commit()
    assert read_jsonl(out.read_bytes()) == [{"id": "a"}, {"id": "b"}]


def test_resume_needs_an_output_file():
    with pytest.raises(UsageError):
        JsonlWriter(None, resume=True)


SLURM_TASK_1_OF_4 = {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "4",
                     "SLURM_ARRAY_TASK_MIN": "0"}


def test_parse_shard_never_switches_itself_on_inside_an_array_job():
    assert parse_shard("2/8") == (2, 8)
    assert parse_shard(None, env={}) is None
    # an array task processes all its input unless told --shard (DESIGN §5)
    assert parse_shard(None, env=SLURM_TASK_1_OF_4) is None
    for bad in ("3", "8/8", "-1/2", "a/b", "1/0", "slurmy"):
        with pytest.raises(UsageError):
            parse_shard(bad, env=SLURM_TASK_1_OF_4)


def test_shard_slurm_reads_the_array_variables():
    assert parse_shard("slurm", env=SLURM_TASK_1_OF_4) == (1, 4) == parse_shard("1/4")
    assert parse_shard("slurm", env={"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4"}) == (3, 4)
    # arrays that start at 1 (--array=1-4)
    env = {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "1",
           "SLURM_ARRAY_TASK_MAX": "4"}
    assert parse_shard("slurm", env=env) == (0, 4)


@pytest.mark.parametrize(("env", "says"), [
    ({}, "SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT not set"),
    ({"SLURM_ARRAY_TASK_ID": "2"}, "SLURM_ARRAY_TASK_COUNT not set"),
    # sbatch --array=3,7 (a rerun of two failed tasks): task 7 is not shard 4 of 2 ...
    ({"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_COUNT": "2", "SLURM_ARRAY_TASK_MIN": "3"},
     "array task 7 is not a shard"),
    # ... and task 3 is not shard 0 of 2 either, when SLURM says the ids run up to 7
    ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "2", "SLURM_ARRAY_TASK_MIN": "3",
      "SLURM_ARRAY_TASK_MAX": "7"}, "not one contiguous range"),
    # sbatch --array=0-15:2
    ({"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "8", "SLURM_ARRAY_TASK_MIN": "0",
      "SLURM_ARRAY_TASK_MAX": "14"}, "not one contiguous range"),
    # sbatch --array=3 (a rerun of one task): an array of one task, not shard 3
    ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "1", "SLURM_ARRAY_TASK_MIN": "3",
      "SLURM_ARRAY_TASK_MAX": "3"}, "the only task of its array"),
    ({"SLURM_ARRAY_TASK_ID": "x", "SLURM_ARRAY_TASK_COUNT": "2"}, "not integers"),
])
def test_shard_slurm_refuses_what_is_not_a_shard(env, says):
    with pytest.raises(UsageError) as exc:
        parse_shard("slurm", env=env)
    assert says in exc.value.message
    assert "\n" not in exc.value.message and "--shard I/N" in (exc.value.hint or "")


def test_record_failed_marks_or_stops_naming_the_line():
    rec = {"id": "a"}
    with pytest.raises(InputError) as exc:
        record_failed(rec, "grade", ValueError("x" * 10_000), keep_going=False,
                      where=lambda: "line 3 of f.jsonl")
    assert exc.value.message.startswith("line 3 of f.jsonl: cannot grade this record: ValueError: xxx")
    assert len(exc.value.message) < 600 and "--keep-going" in exc.value.hint
    assert isinstance(exc.value.__cause__, ValueError)  # the traceback -vv prints
    with pytest.raises(InputError) as exc:
        record_failed(rec, "grade", InputError("no answer", hint="use --answer-key"),
                      keep_going=False, where="line 4 of f.jsonl")
    assert exc.value.message == "line 4 of f.jsonl: no answer" and exc.value.hint == "use --answer-key"
    out = record_failed(rec, "grade", KeyError("k"), keep_going=True, where="line 5 of f.jsonl")
    assert out is rec and is_failed(rec)
    assert rec["_tf"]["error"] == {"step": "grade", "message": "KeyError: 'k'", "type": "KeyError",
                                   "where": "line 5 of f.jsonl"}
    with pytest.raises(UsageError):  # not about the record: it goes on up as it is
        record_failed({}, "grade", UsageError("bad flag"), keep_going=True)


def test_shard_hash_is_stable_across_processes():
    # fixed expectations: a change here would move records between shards of a running job
    assert [shard_of(f"q{i}", 4) for i in range(8)] == [shard_of(f"q{i}", 4) for i in range(8)]
    assert shard_of("gsm8k-test/0", 1000) == shard_of("gsm8k-test/0", 1000)
    assert isinstance(shard_of(17, 3), int)


@settings(max_examples=50, deadline=None)
@given(ids=st.lists(st.text(min_size=0, max_size=8), max_size=40), n=st.integers(1, 6))
def test_shards_partition_the_input_exactly_and_keep_order(ids, n):
    records = [{"id": i, "pos": k} for k, i in enumerate(ids)]
    parts = [list(in_shard(records, (i, n))) for i in range(n)]
    merged = sorted((r for part in parts for r in part), key=lambda r: r["pos"])
    assert merged == records
    for part in parts:
        assert [r["pos"] for r in part] == sorted(r["pos"] for r in part)
        assert len({shard_of(r["id"], n) for r in part}) <= 1


def test_group_by_id_contiguous_and_error_on_reappearing_id():
    recs = [{"id": "a"}, {"id": "a"}, {"id": "b"}, {"id": "c"}, {"id": "c"}]
    assert [(k, len(v)) for k, v in group_by_id(recs)] == [("a", 2), ("b", 1), ("c", 2)]
    bad = [{"id": "a"}, {"id": "b"}, {"id": "a"}]
    with pytest.raises(InputError, match="'a' appears again"):
        list(group_by_id(bad, where=lambda: "line 3 of x.jsonl"))
    assert [(k, len(v)) for k, v in group_by_id(bad, unsorted=True)] == [("a", 2), ("b", 1)]


def test_group_by_id_streams(tmp_path):
    def gen():
        yield {"id": "a"}
        yield {"id": "b"}
        raise AssertionError("read too far")

    it = group_by_id(gen())
    assert next(it) == ("a", [{"id": "a"}])  # emitted as soon as the next id shows up


def test_writer_writes_whole_lines_only(tmp_path):
    out = tmp_path / "o.jsonl"
    w = JsonlWriter(str(out))
    w.write_many([{"x": "y" * 1000} for _ in range(50)])
    data = (tmp_path / "o.jsonl.tmp").read_bytes()
    assert data.endswith(b"\n") and data.count(b"\n") == 50
    w.close()
    assert os.path.exists(tmp_path / "o.jsonl.tmp") and not out.exists()
