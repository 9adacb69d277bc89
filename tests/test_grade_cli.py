"""tf-grade end to end: verdicts, order, bad input, timeouts, resume, pipes, --check-gold."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import orjson
from typer.testing import CliRunner

from tf_tools.cli.grade import app

from .conftest import read_jsonl, tool, write_jsonl

runner = CliRunner()


def traj(i, answer, completion, finish="stop", **extra):
    return {"id": f"q{i}", "sample_idx": 0, "answer": answer, "completion": completion,
            "finish_reason": finish, **extra}


def run(records, *args):
    text = "".join(orjson.dumps(r).decode() + "\n" for r in records)
    return runner.invoke(app, [*args], input=text)


MIXED = [
    traj(0, "12", "so \\boxed{12}", user_field={"keep": [1, 2]}),
    traj(1, "\\frac{\\sqrt{3}}{2}", "\\boxed{\\frac{1}{2}\\sqrt{3}}"),  # needs SymPy
    traj(2, "12", "\\boxed{7}"),
    traj(3, "12", "I am not sure."),
    traj(4, "12", "Let me think step by step and \\boxed{12", finish="length"),
    traj(5, "\\frac{1}{2", "\\boxed{5}"),  # the gold cannot be parsed
    traj(6, "(1, 2)", "\\boxed{(2, 1)}"),  # needs SymPy
    traj(7, "Natalia sold 48/2 = 24 clips in May.\n#### 72", "The answer is 72."),
    traj(8, ["3", "three"], "The answer is three."),
]


def test_verdicts_order_and_unknown_keys_survive():
    result = run(MIXED, "--workers", "2")
    assert result.exit_code == 0, result.output
    out = read_jsonl(result.stdout)
    assert [r["id"] for r in out] == [r["id"] for r in MIXED]
    assert [r["verdict"] for r in out] == [
        "correct", "correct", "incorrect", "no_answer", "truncated", "ungradable",
        "incorrect", "correct", "correct"]
    assert [r["correct"] for r in out] == [v == "correct" for v in (r["verdict"] for r in out)]
    assert out[0]["user_field"] == {"keep": [1, 2]}
    assert out[0]["pred"] == "12" and out[3]["pred"] is None
    grade = out[5]["_tf"]["grade"]
    assert grade["grader"] == "tf-grade" and "gold" in grade["reason"] and "seconds" in grade
    assert out[1]["_tf"]["grade"]["path"] == "math-verify"
    assert out[0]["_tf"]["grade"]["path"] in ("exact", "normalized", "numeric")


def test_an_unparseable_gold_never_grades_true_or_false():
    recs = [traj(i, "\\sqrt{", f"\\boxed{{{p}}}") for i, p in enumerate(["1", "\\sqrt{2}", "x"])]
    out = read_jsonl(run(recs).stdout)
    assert [r["verdict"] for r in out] == ["ungradable"] * 3
    assert all("gold" in r["_tf"]["grade"]["reason"] for r in out)


def test_key_options_map_other_field_names():
    recs = [{"question": "1+1?", "target": "2", "output": "The answer is 2", "n": 1}]
    result = run(recs, "--answer-key", "target", "--completion-key", "output")
    assert read_jsonl(result.stdout)[0]["verdict"] == "correct"
    recs = [{"id": "a", "answer": "2", "extracted": "2.0", "completion": "junk"}]
    result = run(recs, "--pred-key", "extracted")
    assert read_jsonl(result.stdout)[0]["verdict"] == "correct"


def test_last_number_flag():
    recs = [traj(0, "7", "3 apples and 4 more make 7")]
    assert read_jsonl(run(recs).stdout)[0]["verdict"] == "no_answer"
    assert read_jsonl(run(recs, "--last-number").stdout)[0]["verdict"] == "correct"


def test_malformed_line_names_the_line_and_keep_going_keeps_good_records():
    text = orjson.dumps(MIXED[0]).decode() + "\n{not json\n" + orjson.dumps(MIXED[2]).decode() + "\n"
    result = runner.invoke(app, [], input=text)
    assert result.exit_code == 1
    assert "tf-grade: error: line 2 of <stdin> is not valid JSON" in result.stderr
    result = runner.invoke(app, ["--keep-going"], input=text)
    assert result.exit_code == 3
    out = read_jsonl(result.stdout)
    assert len(out) == 3
    assert out[0]["verdict"] == "correct" and out[2]["verdict"] == "incorrect"
    assert out[1]["_tf"]["error"]["line"] == 2 and out[1]["_raw"] == "{not json"


def test_missing_field_is_an_error_naming_the_line(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", [MIXED[0], {"id": "x", "completion": "\\boxed{1}"}])
    result = runner.invoke(app, [str(path)])
    assert result.exit_code == 1
    assert f"line 2 of {path}: record has no 'answer' field" in result.stderr
    assert "hint: name the gold field with --answer-key" in result.stderr
    result = runner.invoke(app, ["--keep-going", str(path)])
    assert result.exit_code == 3
    out = read_jsonl(result.stdout)
    assert out[0]["verdict"] == "correct" and "error" in out[1]["_tf"]


PATHOLOGICAL = ["9^{9^{9^9}}", "(x+1)^{2000}", "100!!", "\\boxed{1+{2"]


def test_pathological_answers_end_within_the_limit():
    recs = [traj(i, "x^2+1" if i == 1 else "5", f"\\boxed{{{p}}}") for i, p in enumerate(PATHOLOGICAL[:3])]
    recs.append(traj(3, "3", PATHOLOGICAL[3]))
    recs.append(traj(4, "12", "word " * 40_000 + "\\boxed{12}"))  # a 200,000-character output
    recs.append(traj(5, "12", "{" * 200_000))
    t0 = time.monotonic()
    result = run(recs, "--timeout", "2", "--workers", "2")
    elapsed = time.monotonic() - t0
    assert result.exit_code == 0, result.output
    out = read_jsonl(result.stdout)
    assert [r["verdict"] for r in out[:3]] == ["ungradable"] * 3
    assert all(r["_tf"]["grade"]["path"] == "timeout" for r in out[:3])
    assert out[3]["verdict"] == "no_answer"  # an unbalanced box is no answer, not a guess
    assert out[4]["verdict"] == "correct"
    assert out[5]["verdict"] == "no_answer"
    # generous: three 2 s limits on two workers plus start-up; a hang would be unbounded
    assert elapsed < 60


BIG = "9" * 200_000  # int(BIG) raises: Python converts at most 4300 digits
LONG_FLOAT = "3." + "1" * 5000
NEEDS_SYMPY = {"correct", "incorrect", "ungradable"}  # decided by math-verify, or timed out
# (answer, completion, the verdicts it may get); each is followed by a good record
HUGE_AND_ODD = [
    ("12", "\\boxed{" + BIG + "}", {"incorrect"}),
    (BIG, "\\boxed{12}", {"incorrect"}),
    (BIG, "so \\boxed{" + BIG + "}", {"correct"}),
    (BIG, "\\boxed{0" + BIG + "}", {"correct"}),  # equal by its digits
    (BIG, "\\boxed{" + BIG[:-1] + "8}", {"incorrect"}),
    ("1" + "0" * 300, "\\boxed{\\sqrt{2}}", NEEDS_SYMPY),  # no float holds the gold
    ("3.14", "\\boxed{" + LONG_FLOAT + "}", {"incorrect"}),
    (LONG_FLOAT, "\\boxed{" + LONG_FLOAT[:-1] + "2}", {"correct"}),  # within the tolerance
    ("12", "\\boxed{9^{9^{9^9}}}", NEEDS_SYMPY),
    ("10^{10^{10}}", "\\boxed{10^{10^{10}}}", {"correct"}),
    ("10^{10^{10}}", "\\boxed{12}", NEEDS_SYMPY),
    ("12", "x " * 500_000 + "\\boxed{12}", {"correct"}),  # a 1 MB completion
    ("12", "\\boxed{" + "\\frac{" * 5000 + "1}" * 5000 + "}", NEEDS_SYMPY),
    ("12", "\\boxed{NaN}", NEEDS_SYMPY - {"correct"}),
    ("\\infty", "\\boxed{inf}", NEEDS_SYMPY),
    ("12", "\\boxed{" + "1" * 5000 + "/" + "3" * 5000 + "}", NEEDS_SYMPY),
    (1e308, "\\boxed{1e308}", {"correct"}),
    ("12", ["a", "b"], {"no_answer"}),
    ("12", {"text": "\\boxed{12}"}, {"no_answer"}),
    ("12", None, {"no_answer"}),
    ("12", 12, {"correct"}),
    (["12", None, {"a": 1}], "\\boxed{12}", {"correct"}),
    ({"value": 12}, "\\boxed{12}", {"ungradable"}),
    (None, "\\boxed{12}", {"ungradable"}),
    # the notations of issue 13 at sizes no answer has: every one still ends as a verdict
    ("12345678", "\\boxed{" + "12," * 300_000 + "345}", NEEDS_SYMPY),
    ("2 3/4", "\\boxed{" + "1" * 200_000 + " 1/2}", {"incorrect"}),
    ("14:05", "\\boxed{" + "1:" * 300_000 + "00}", NEEDS_SYMPY),
    ("P", "\\boxed{P" + "'" * 500_000 + "}", {"incorrect"}),  # math-verify said correct
    ("[1, 2]", "\\boxed{\\begin{pmatrix}" + "1\\\\" * 100_000 + "\\end{pmatrix}}", NEEDS_SYMPY),
    ("x", "\\boxed{" + "\\bar{" * 3000 + "x" + "}" * 3000 + "}", NEEDS_SYMPY),
    ("-1+3i", "\\boxed{" + "i(" * 2000 + "1" + ")" * 2000 + "}", NEEDS_SYMPY),
    ("\\sin x", "\\boxed{\\cos(" + "90^\\circ+" * 10_000 + "x)}", NEEDS_SYMPY),
    ("C", "\\boxed{(C)" + " word" * 200_000 + "}", NEEDS_SYMPY),
    ("I_1", "\\boxed{" + "I_1 " * 200_000 + "}", NEEDS_SYMPY),
]


def test_huge_and_odd_answers_every_record_comes_out(tmp_path):
    recs, want = [], []
    for i, (answer, completion, verdicts) in enumerate(HUGE_AND_ODD):
        recs.append(traj(2 * i, answer, completion))
        want.append(verdicts)
        good = i % 2 == 0  # the good records around them keep their normal verdicts
        recs.append(traj(2 * i + 1, "7", "so \\boxed{7}" if good else "so \\boxed{8}"))
        want.append({"correct" if good else "incorrect"})
    path = write_jsonl(tmp_path / "huge.jsonl", recs)
    for flags in ([], ["--keep-going"]):
        done = subprocess.run([tool("tf-grade"), "--timeout", "1", "--workers", "2", *flags,
                               str(path)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "Traceback" not in done.stderr and "error" not in done.stderr.lower()
        out = read_jsonl(done.stdout)
        assert [r["id"] for r in out] == [r["id"] for r in recs]  # every one, in order
        for rec, verdicts in zip(out, want, strict=True):
            assert rec["verdict"] in verdicts, (rec["id"], rec["verdict"], rec["_tf"]["grade"])
            assert "error" not in rec["_tf"]
            if rec["verdict"] == "ungradable":
                assert rec["_tf"]["grade"]["reason"]
        assert f"graded {len(recs)}: " in done.stderr


def test_an_exception_grading_one_record_marks_it_or_names_its_line(monkeypatch):
    from tf_tools.grading import grader

    real = grader.extract_answer

    def explode(text, options):
        if "explode" in str(text):
            raise RuntimeError("the grader met a bug")
        return real(text, options)

    monkeypatch.setattr(grader, "extract_answer", explode)
    recs = [MIXED[0], traj(1, "12", "explode \\boxed{12}"), MIXED[2]]
    result = run(recs)
    assert result.exit_code == 1
    err = result.stderr.splitlines()
    assert err == ["tf-grade: error: line 2 of <stdin>: cannot grade this record: RuntimeError: "
                   "the grader met a bug",
                   "hint: --keep-going marks the record (_tf.error) and goes on; -vv shows the "
                   "traceback"]
    result = run(recs, "-vv")  # -vv: the traceback, through the exception it came from
    assert isinstance(result.exception.__cause__, RuntimeError)
    result = run(recs, "--keep-going")
    assert result.exit_code == 3
    out = read_jsonl(result.stdout)
    assert [r["verdict"] for r in out] == ["correct", "ungradable", "incorrect"]
    assert out[1]["_tf"]["error"] == {"step": "grade", "type": "RuntimeError",
                                      "message": "RuntimeError: the grader met a bug",
                                      "where": "line 2 of <stdin>"}
    assert out[1]["_tf"]["grade"]["reason"] == "error: RuntimeError: the grader met a bug"
    assert "1 records failed" in result.stderr


def test_check_gold_reports_bad_golds(tmp_path):
    problems = [{"id": "ok1", "answer": "42"}, {"id": "ok2", "answer": "\\frac{\\sqrt{3}}{2}"},
                {"id": "bad1", "answer": "\\frac{1}{2"}, {"id": "bad2", "answer": ""},
                {"id": "ok3", "answer": "Natalia ... #### 72"}, {"id": "bad3"}]
    path = write_jsonl(tmp_path / "p.jsonl", problems)
    result = runner.invoke(app, ["--check-gold", str(path)])
    assert result.exit_code == 1
    bad = read_jsonl(result.stdout)
    assert sorted(r["id"] for r in bad) == ["bad1", "bad2", "bad3"]
    assert all(r["where"].endswith(str(path)) for r in bad)


def test_check_gold_reports_ambiguous_golds(tmp_path):
    problems = [{"id": "two boxes", "answer": "so $\\boxed{3}$ cups, and then \\boxed{4} more"},
                {"id": "range", "answer": "3 to 5"}, {"id": "dash range", "answer": "10-12 years"},
                {"id": "money range", "answer": "between $5 and $7"},
                {"id": "a difference is fine", "answer": "x-12"}, {"id": "negative", "answer": "-12"},
                {"id": "list", "answer": "3, 5"}, {"id": "one box", "answer": "so \\boxed{12}"}]
    result = runner.invoke(app, ["--check-gold", str(write_jsonl(tmp_path / "p.jsonl", problems))])
    assert result.exit_code == 1
    bad = {r["id"]: r for r in read_jsonl(result.stdout)}
    assert sorted(bad) == ["dash range", "money range", "range", "two boxes"]
    assert bad["two boxes"]["problem"] == "ambiguous: 2 boxed answers in the gold"
    assert bad["range"]["problem"] == "ambiguous: a range written as text ('3 to 5')"
    assert bad["range"]["graded_as"] == ["3 to 5"]


def test_shards_partition_the_records():
    recs = [traj(i, "1", "\\boxed{1}") for i in range(40)]
    parts = [read_jsonl(run(recs, "--shard", f"{i}/3").stdout) for i in range(3)]
    ids = sorted(r["id"] for p in parts for r in p)
    assert ids == sorted(r["id"] for r in recs)


def test_help_imports_nothing_heavy():
    code = ("import sys; from tf_tools.cli import grade; "
            "heavy = [m for m in ('torch', 'transformers', 'vllm', 'sympy', 'math_verify') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    help_out = subprocess.run([tool("tf-grade"), "--help"], capture_output=True, text=True)
    assert help_out.returncode == 0 and "Examples:" in help_out.stdout and "--check-gold" in help_out.stdout


def test_no_input_on_a_terminal_is_a_usage_error():
    # CliRunner's stdin is not a terminal; run through a pseudo-terminal instead
    import pty

    pid, fd = pty.fork()
    if pid == 0:  # child: stdin is the terminal
        os.execv(tool("tf-grade"), ["tf-grade"])
    output = b""
    while True:
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 2
    assert b"no input" in output


def _strip_timing(records):
    for r in records:
        r["_tf"]["grade"].pop("seconds", None)
    return records


def test_killed_run_resumes_to_identical_output(tmp_path):
    recs = []
    for i in range(1500):
        if i % 20 == 7:  # a SymPy item now and then, each with its own gold
            recs.append(traj(i, f"({i}, x+1)", f"\\boxed{{({i}, 1+x)}}"))
        else:
            recs.append(traj(i, str(i), f"\\boxed{{{i if i % 3 else i + 1}}}"))
    src = write_jsonl(tmp_path / "in.jsonl", recs)
    full = tmp_path / "full.jsonl"
    # a generous limit: this test is about resuming, not about timeouts on a loaded machine
    args = ["-q", "--timeout", "60", str(src)]
    subprocess.run([tool("tf-grade"), *args, "-o", str(full)], check=True)

    out = tmp_path / "out.jsonl"
    proc = subprocess.Popen([tool("tf-grade"), *args, "-o", str(out)], stderr=subprocess.PIPE)
    tmp = tmp_path / "out.jsonl.tmp"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if tmp.exists() and tmp.read_bytes().count(b"\n") >= 256:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    time.sleep(0.5)  # orphaned workers notice the closed pipe and leave quietly
    assert not out.exists() and tmp.exists()
    partial = tmp.read_bytes().count(b"\n")
    assert 0 < partial < len(recs)

    subprocess.run([tool("tf-grade"), *args, "--resume", "-o", str(out)], check=True)
    assert not tmp.exists()
    assert _strip_timing(read_jsonl(out.read_bytes())) == _strip_timing(read_jsonl(full.read_bytes()))


def test_closed_pipe_exits_zero_quietly(tmp_path):
    recs = [traj(i, "5", "\\boxed{5}") for i in range(20_000)]
    src = write_jsonl(tmp_path / "big.jsonl", recs)
    grade = subprocess.Popen([tool("tf-grade"), str(src)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    head = subprocess.run(["head", "-1"], stdin=grade.stdout, capture_output=True)
    grade.stdout.close()
    _, err = grade.communicate(timeout=60)
    assert head.stdout.count(b"\n") == 1
    assert grade.returncode == 0
    assert b"Traceback" not in err and b"BrokenPipe" not in err


def test_progress_heartbeat_lines_on_stderr_when_not_a_terminal(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [traj(i, "5", "\\boxed{5}") for i in range(600)])
    env = {**os.environ, "TF_HEARTBEAT_S": "0"}
    done = subprocess.run([tool("tf-grade"), str(src)], capture_output=True, text=True, env=env)
    assert done.returncode == 0
    assert len(read_jsonl(done.stdout)) == 600
    beats = [line for line in done.stderr.splitlines() if line.startswith("tf-grade: ") and " records, " in line]
    assert beats and beats[-1].startswith("tf-grade: 600/600 records")
    assert "graded 600: correct 600" in done.stderr


def test_shard_slurm_array_tasks_partition_the_records():
    recs = [traj(i, "1", "\\boxed{1}") for i in range(30)]
    ids = []
    for task in ("1", "2", "3"):  # --array=1-3
        env = {"SLURM_ARRAY_TASK_ID": task, "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_MIN": "1"}
        text = "".join(orjson.dumps(r).decode() + "\n" for r in recs)
        assert len(read_jsonl(runner.invoke(app, [], input=text, env=env).stdout)) == 30
        part = read_jsonl(runner.invoke(app, ["--shard", "slurm"], input=text, env=env).stdout)
        assert 0 < len(part) < 30
        ids += [r["id"] for r in part]
    assert sorted(ids) == sorted(r["id"] for r in recs)


def test_a_big_answer_queued_behind_a_slow_one_does_not_hang(tmp_path):
    """A nested 24 KB answer sent to a worker stuck on 9^{9^{9^9}} filled the pipe: the parent
    blocked in send and never killed the worker (tf-grade hung for good). Tasks now go through
    a sender thread per worker, and answers nested hundreds of braces deep skip the parent's
    unclocked fast path."""
    nested = "\\boxed{\\sqrt{" * 2000 + "2" + "}}" * 2000
    recs = [{"id": "slow", "answer": "12", "completion": "\\boxed{9^{9^{9^9}}}"},
            {"id": "nested", "answer": "12", "completion": nested},
            {"id": "good", "answer": "12", "completion": "\\boxed{12}"}]
    path = write_jsonl(tmp_path / "in.jsonl", recs)
    t0 = time.monotonic()
    done = subprocess.run([tool("tf-grade"), "-q", "--timeout", "1", str(path)],
                          capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode()
    out = read_jsonl(done.stdout)
    assert [(r["id"], r["verdict"]) for r in out] == [
        ("slow", "ungradable"), ("nested", "ungradable"), ("good", "correct")]
    assert out[1]["_tf"]["grade"]["path"] == "timeout"
    assert time.monotonic() - t0 < 60


def test_workers_run_the_parents_code_not_a_tf_tools_in_the_current_folder(tmp_path):
    # The fork server behind the math-verify workers runs `python -c`, whose sys.path starts
    # with the current folder: it preloaded the worker module from a tf_tools package there
    # (another checkout, another version) instead of the one tf-grade itself runs.
    shadow = tmp_path / "tf_tools"
    shadow.mkdir()
    marker = tmp_path / "imported"
    (shadow / "__init__.py").write_text(f"open({str(marker)!r}, 'a').write('x')\n")
    write_jsonl(tmp_path / "t.jsonl", [traj(0, "x^2+2x+1", "so \\boxed{(x+1)^2}")])
    done = subprocess.run([tool("tf-grade"), "t.jsonl"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    [rec] = read_jsonl(done.stdout)
    assert (rec["verdict"], rec["_tf"]["grade"]["path"]) == ("correct", "math-verify")
    assert not marker.exists(), "a process imported the tf_tools of the current folder"


def _alive(pid: int, settle: float = 5.0) -> bool:
    """A process that exists and is not a zombie, ``settle`` seconds after it was killed: a
    SIGKILL is delivered at once but the process ends a moment later, longer on a loaded
    machine (the fork server was once seen running just after close() had killed it)."""
    deadline = time.monotonic() + settle
    while True:
        try:
            with open(f"/proc/{pid}/status") as f:
                if any(line.startswith("State:") and "Z" in line for line in f):
                    return False
        except OSError:
            return False
        if time.monotonic() > deadline:
            return True
        time.sleep(0.02)


def test_the_prestarted_fork_server_never_holds_stdout_and_dies_with_tf_grade(tmp_path):
    # tf-grade launches its workers' fork server before anything else (it imports
    # math-verify meanwhile); on a run that needs no worker it must not keep a pipe's
    # reader waiting, nor outlive tf-grade.
    script = tmp_path / "probe.py"
    script.write_text(
        "import os, sys\n"
        "from multiprocessing import forkserver\n"
        "from tf_tools.answers import pool\n"
        "pool.prestart()\n"
        "pid = forkserver._forkserver._forkserver_pid\n"
        "out = os.readlink(f'/proc/{pid}/fd/1')\n"
        "print(pid, out == os.readlink('/proc/self/fd/2'), out != os.readlink('/proc/self/fd/1'))\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    pid, on_stderr, not_on_stdout = done.stdout.split()
    assert (on_stderr, not_on_stdout) == ("True", "True")
    assert not _alive(int(pid)), "the fork server outlived its parent"

    src = write_jsonl(tmp_path / "t.jsonl", [traj(i, "5", f"\\boxed{{{i % 7}}}") for i in range(300)])
    grade = subprocess.run([tool("tf-grade"), str(src)], capture_output=True, text=True, timeout=60)
    assert grade.returncode == 0, grade.stderr
    recs = read_jsonl(grade.stdout)
    assert [r["correct"] for r in recs] == [i % 7 == 5 for i in range(300)]
    assert all(r["_tf"]["grade"]["path"] == "exact" or r["_tf"]["grade"]["path"] == "numeric" for r in recs)


def test_a_pool_started_ahead_and_never_used_is_stopped_and_the_next_one_works():
    from multiprocessing import forkserver

    from tf_tools.answers.pool import VerifyPool

    ahead = VerifyPool(2, timeout=20, background=True)
    ahead.close()  # while its fork server may still be importing math-verify
    assert ahead._starter is None or not ahead._starter.is_alive()
    assert not any(_alive(w.proc.pid) for w in ahead._workers)
    server = forkserver._forkserver._forkserver_pid
    assert server is None or not _alive(server), "an unused pool's fork server was left running"

    with VerifyPool(2, timeout=20, background=True) as used:
        assert used.submit((0, ("x^2+2x+1",), "(x+1)^2"))
        results = []
        while not results:
            results = used.collect(block=0.5)
    assert results[0][:3] == (0, "ok", True)


def test_tasks_go_to_the_worker_that_parsed_their_gold_unless_its_queue_is_much_longer():
    from tf_tools.answers.pool import AFFINITY_SLACK, VerifyPool

    with VerifyPool(2, timeout=20, max_queue=64) as pool:
        assert pool._started(60)
        same = [(i, ("\\frac{1}{3}",), f"{i}/3") for i in range(8)]  # one gold: parsed once, if possible
        for task in same:
            assert pool.submit(task)
        sizes = sorted(len(w.queue) for w in pool._workers)
        assert sizes[1] - sizes[0] <= AFFINITY_SLACK + 1 and sizes[1] > sizes[0], sizes
        holders = [w for w in pool._workers if "\\frac{1}{3}" in w.golds]
        assert holders, "the gold is remembered by the worker it went to"
        before = [len(w.queue) for w in pool._workers]
        fresh = [(100 + i, (f"{i}",), f"{i}") for i in range(10)]  # new golds: the shortest queue
        for task in fresh:
            assert pool.submit(task)
        after = [len(w.queue) for w in pool._workers]
        assert abs(after[0] - after[1]) <= 1, (before, after)
        results = []
        while len(results) < len(same) + len(fresh):
            results += pool.collect(block=0.5)
    verdicts = {seq: equal for seq, status, equal, *_ in results}
    assert [verdicts[i] for i in range(8)] == [i == 1 for i in range(8)]
    assert all(verdicts[100 + i] for i in range(10))
