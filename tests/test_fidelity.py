"""examples/fidelity: the RFT-vs-TrajFusion recipe — its split, its proxy, and (slow) the
whole Makefile on a few problems of the real ZeroEval GSM8K pool."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import orjson
import pytest

from .conftest import BIN, ROOT, SHARED_DATA, model_cache, read_jsonl, write_jsonl

HERE = ROOT / "examples" / "fidelity"
sys.path.insert(0, str(HERE))
import preference  # noqa: E402
import report  # noqa: E402


def _prep(*args: str, data: bytes) -> bytes:
    done = subprocess.run([sys.executable, str(HERE / "prepare.py"), *args], input=data,
                          capture_output=True, check=True, timeout=60)
    return done.stdout


def _trajectories(n_problems: int, n: int) -> list[dict]:
    return [{"id": f"p{i}", "problem": f"q{i}", "answer": str(i), "sample_idx": j,
             "completion": f"\\boxed{{{i if j % 2 else i + 1}}}", "finish_reason": "stop",
             "verdict": "correct" if j % 2 else "incorrect"}
            for i in range(n_problems) for j in range(n)]


def test_split_keeps_every_record_and_never_puts_a_problem_on_both_sides(tmp_path):
    recs = _trajectories(200, 4)
    data = b"".join(orjson.dumps(r) + b"\n" for r in recs)
    train, held = tmp_path / "train.jsonl", tmp_path / "held.jsonl"
    _prep("split", "0.2", "0", str(train), str(held), data=data)
    a, b = read_jsonl(train.read_bytes()), read_jsonl(held.read_bytes())
    assert len(a) + len(b) == len(recs)
    assert not {r["id"] for r in a} & {r["id"] for r in b}
    assert 20 <= len({r["id"] for r in b}) <= 60  # about 20% of 200 problems
    # input order kept on each side; the split depends on the id only, not the order
    assert a == [r for r in recs if r["id"] in {x["id"] for x in a}]
    rev = b"".join(orjson.dumps(r) + b"\n" for r in reversed(recs))
    _prep("split", "0.2", "0", str(train), str(held), data=rev)
    assert {r["id"] for r in read_jsonl(held.read_bytes())} == {r["id"] for r in b}


def test_take_picks_the_same_problems_whatever_the_order():
    recs = _trajectories(30, 2)
    fwd = read_jsonl(_prep("take", "5", "0", data=b"".join(orjson.dumps(r) + b"\n" for r in recs)))
    rev = read_jsonl(_prep("take", "5", "0", data=b"".join(orjson.dumps(r) + b"\n"
                                                           for r in reversed(recs))))
    assert len({r["id"] for r in fwd}) == 5 and len(fwd) == 10
    assert {r["id"] for r in fwd} == {r["id"] for r in rev}


def test_problems_maps_svamp_fields_and_dedups_trajectories():
    svamp = {"Answer": 145.0, "Question": "How big is each group?", "Body": "There are 290 bananas.",
             "ID": "chal-777"}
    out = read_jsonl(_prep("problems", "svamp/", data=orjson.dumps(svamp) + b"\n"))
    assert out == [{"id": "svamp/chal-777", "problem": "There are 290 bananas. How big is each group?",
                    "answer": "145"}]
    trajs = _trajectories(3, 4)
    out = read_jsonl(_prep("problems", data=b"".join(orjson.dumps(r) + b"\n" for r in trajs)))
    assert out == [{"id": f"p{i}", "problem": f"q{i}", "answer": str(i)} for i in range(3)]


def test_preference_pairs_take_the_first_correct_and_incorrect_finished(tmp_path):
    recs = _trajectories(3, 4)
    recs[0]["finish_reason"] = "length"  # p0's first incorrect is cut: its next one is taken
    recs[4]["verdict"] = recs[6]["verdict"] = "no_answer"  # p1 has no incorrect left
    path = write_jsonl(tmp_path / "g.jsonl", recs)
    got = preference.pairs(str(path), 0, 0)
    assert [(e["id"], e["correct"][0], e["incorrect"][0]) for e in got] == [("p0", 1, 2), ("p2", 1, 0)]


def test_proxy_prefers_what_the_model_was_trained_on(tiny_model):
    """The log-likelihood is tf-train's: scored tokens are the answer and its end of turn;
    a text repeated in the prompt is more likely than a random one."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    ll = preference.mean_loglik(model, tok, None, "a b c", "a b c")
    assert ll < 0 and ll == preference.mean_loglik(model, tok, None, "a b c", "a b c")


def test_report_bootstrap_is_seeded_and_holds_the_mean():
    diffs = [0.1, -0.05, 0.2, 0.0, 0.3, 0.05]
    lo, hi = report.bootstrap(diffs, 2000)
    assert (lo, hi) == report.bootstrap(diffs, 2000)
    assert lo <= sum(diffs) / len(diffs) <= hi


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_make_fidelity_small_runs_every_arm(smollm2, tmp_path):
    if not SHARED_DATA.is_dir() or shutil.which("make") is None:
        pytest.skip("needs ../shared/data and make")
    run = tmp_path / "run"
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "HF_HUB_OFFLINE": "1",
           "TF_TOOLS_CACHE": str(model_cache())}
    proc = subprocess.run(["make", "--no-print-directory", "-C", str(HERE), "SMALL=1", f"RUN={run}",
                           f"PYTHON={BIN / 'python'}", f"SHARED={SHARED_DATA}", "EVAL_SETS=gsm_heldout"],
                          env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]
    held = {r["id"] for r in read_jsonl((run / "split" / "heldout.jsonl").read_bytes())}
    trained = {r["id"] for r in read_jsonl((run / "train.trajfusion.jsonl").read_bytes())}
    assert held and trained and not held & trained
    for arm in ("rft", "trajfusion", "masked"):
        manifest = json.loads((run / f"model.{arm}.json").read_text())
        assert manifest["skipped"]["too_long"] == 0
    for s in ("gsm_heldout",):
        for arm in ("base", "rft", "trajfusion", "masked"):
            assert len(read_jsonl((run / "eval" / f"{s}.{arm}.jsonl").read_bytes())) == 8
        cmp = json.loads((run / "compare" / f"{s}.rft-vs-trajfusion.json").read_text())
        assert cmp["problems"] == 8
    proxy = json.loads((run / "proxy" / "masked.json").read_text())
    assert proxy["problems"] == 8 and proxy["mean_ll_correct"] < 0
    text = (run / "report.md").read_text()
    for line in ("| gsm_heldout | TrajFusion (adaptive) | 8 |", "| TrajFusion --mask-incorrect | 8 |"):
        assert line in text, text
