"""tf-fuse: the worked example (golden), k policies, assembly, budget, CLI and bad input."""

from __future__ import annotations

import math

import orjson
import pytest
from typer.testing import CliRunner

from tf_tools.cli.fuse import app
from tf_tools.errors import InputError, UsageError
from tf_tools.fusion import (
    REFLECTIONS,
    FuseConfig,
    FuseStats,
    HFTokenCounter,
    assemble,
    choose_k,
    fuse_records,
    load_reflections,
    strip_markers,
)
from tf_tools.schema import DEFAULT_SYSTEM

from .conftest import read_jsonl, write_jsonl
from .test_cluster import GOLDEN_COMPLETIONS, PROBLEM, golden_summary

runner = CliRunner()
R = "Wait, let me check that again."
SEP = "\n\n"
W7 = [GOLDEN_COMPLETIONS[i][0] for i in (2, 3, 4)]
W15 = GOLDEN_COMPLETIONS[5][0]
W9 = GOLDEN_COMPLETIONS[7][0]
C0 = GOLDEN_COMPLETIONS[0][0]
C1 = GOLDEN_COMPLETIONS[1][0].removesuffix("<|im_end|>")  # the marker is stripped


def lines(records) -> str:
    return "".join(orjson.dumps(r).decode() + "\n" for r in records)


# --------------------------------------------------------------------------- golden


def test_worked_example_golden():
    """DESIGN §4: e = 0.75, H = 0.950, D = 2.586, k = min(3, 3, floor(0.75 * 2.586 + 0.5)) = 2;
    sample 0 = wrong(7) + R + wrong(15) + R + correct_0; sample 1 = wrong(15) + R + wrong(9)
    + R + correct_1; the truncated sample appears in neither."""
    s = golden_summary()
    e, d = s["error_rate"], math.exp(s["entropy"])
    assert (e, round(d, 3)) == (0.75, 2.586)
    assert min(3, 3, math.floor(e * d + 0.5)) == 2 == choose_k("adaptive", e, s["entropy"], 3)
    out = list(fuse_records([s], FuseConfig(reflections=(R,), seed=0)))
    assert [(o["id"], o["kind"], o["k"]) for o in out] == [("golden", "fused", 2)] * 2
    # the seeded choice within the 3-member cluster of 7 (seed 0) is its first member
    text0 = W7[0] + SEP + R + SEP + W15 + SEP + R + SEP + C0
    text1 = W15 + SEP + R + SEP + W9 + SEP + R + SEP + C1
    assert text0 == (
        "3 + 4 = 7, so the answer is \\boxed{7}.\n\nWait, let me check that again.\n\n"
        "3 \\times 5 = 15, so the answer is \\boxed{15}.\n\nWait, let me check that again.\n\n"
        "Each box holds 3 apples and there are 4 boxes, so 3 \\times 4 = 12. "
        "The answer is \\boxed{12}.")
    # system: tf-sample's default (the trajectories carry no _tf.sample), DESIGN §3
    assert out[0]["messages"] == [{"role": "system", "content": DEFAULT_SYSTEM},
                                  {"role": "user", "content": PROBLEM},
                                  {"role": "assistant", "content": text0}]
    assert out[1]["messages"][-1]["content"] == text1
    assert out[0]["segments"] == [
        {"kind": "incorrect", "start": 0, "end": 38}, {"kind": "reflection", "start": 40, "end": 70},
        {"kind": "incorrect", "start": 72, "end": 117}, {"kind": "reflection", "start": 119, "end": 149},
        {"kind": "correct", "start": 151, "end": 243}]
    assert out[1]["segments"] == [
        {"kind": "incorrect", "start": 0, "end": 45}, {"kind": "reflection", "start": 47, "end": 77},
        {"kind": "incorrect", "start": 79, "end": 122}, {"kind": "reflection", "start": 124, "end": 154},
        {"kind": "correct", "start": 156, "end": 226}]
    fuse0, fuse1 = out[0]["_tf"]["fuse"], out[1]["_tf"]["fuse"]
    assert fuse0["sources"] == [2, None, 5, None, 0] and fuse1["sources"] == [5, None, 7, None, 1]
    assert fuse0["clusters"] == [0, 1] and fuse1["clusters"] == [1, 2]
    assert fuse0["policy"] == "adaptive" and fuse0["seed"] == 0 and fuse0["k_policy"] == 2
    assert "cluster" in out[0]["_tf"]  # earlier provenance stays
    assert all(6 not in o["_tf"]["fuse"]["sources"] for o in out)  # the truncated sample


def test_worked_example_any_seed_keeps_the_structure():
    s = golden_summary()
    for seed in range(20):
        out = list(fuse_records([s], FuseConfig(seed=seed)))
        text = out[0]["messages"][-1]["content"]
        segs = out[0]["segments"]
        assert text[segs[0]["start"]:segs[0]["end"]] in W7
        assert text[segs[2]["start"]:segs[2]["end"]] == W15
        assert text[segs[1]["start"]:segs[1]["end"]] in REFLECTIONS
        assert out[1]["_tf"]["fuse"]["sources"][::2] == [5, 7, 1]


# --------------------------------------------------------------------------- policies


@pytest.mark.parametrize("policy,e,h,m,k_max,want", [
    ("adaptive", 0.75, 0.9502705, 3, 3, 2),
    ("adaptive", 0.5, 0.0, 1, 3, 1),  # 0.5 rounds half up
    ("adaptive", 0.25, 0.0, 1, 3, 0),  # uninformative errors: RFT
    ("adaptive", 1.0, math.log(5), 5, 3, 3),  # capped by k_max
    ("adaptive", 1.0, math.log(5), 2, 3, 2),  # capped by m
    ("adaptive", 0.375, math.log(4), 4, 3, 2),  # 1.5 -> 2 despite float error in e^ln4
    ("adaptive", 0.9, 0.0, 0, 3, 0),  # no fusable cluster
    ("linear", 0.5, 2.0, 3, 3, 2),  # round(0.5 * 3) = 2, diversity ignored
    ("linear", 0.1, 2.0, 3, 3, 0),
    ("threshold", 0.3, 0.0, 2, 3, 2),
    ("threshold", 0.2, 1.0, 3, 3, 0),
    ("fixed", 0.1, 0.0, 2, 3, 2),
    ("fixed", 0.1, 0.0, 5, 3, 3),
    ("rft", 1.0, 2.0, 5, 3, 0),
])
def test_k_policies(policy, e, h, m, k_max, want):
    assert choose_k(policy, e, h, m, k_max=k_max) == want


def test_threshold_min_modes_and_gamma():
    assert choose_k("threshold", 0.5, math.log(2), 2, min_modes=2.5) == 0
    assert choose_k("threshold", 0.5, math.log(3), 3, min_modes=2.5) == 3
    assert choose_k("adaptive", 0.75, 0.9502705, 3, gamma=0.5) == 1


# --------------------------------------------------------------------------- pieces


def test_strip_markers_and_assemble_offsets():
    assert strip_markers("x = 1 <|im_end|>") == "x = 1"
    assert strip_markers("a</s>b<|eot_id|>\n") == "ab"
    assert strip_markers("<|endoftext|>") == ""
    text, segs = assemble([("incorrect", "é≠"), ("reflection", "R"), ("correct", "ok")])
    assert text == "é≠\n\nR\n\nok"
    assert [text[s["start"]:s["end"]] for s in segs] == ["é≠", "R", "ok"]


def test_reflections_file(tmp_path):
    path = tmp_path / "r.txt"
    path.write_text("# my prompts\nHold on, let me check.\n\n  Is that right? Let me redo it.  \n")
    assert load_reflections(str(path)) == ("Hold on, let me check.", "Is that right? Let me redo it.")
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    with pytest.raises(UsageError, match="no reflection lines"):
        load_reflections(str(tmp_path / "empty.txt"))
    with pytest.raises(UsageError, match="no such file"):
        load_reflections(str(tmp_path / "missing.txt"))


def test_builtin_reflection_pool_is_varied():
    assert len(REFLECTIONS) >= 8 and len(set(REFLECTIONS)) == len(REFLECTIONS)
    assert len({r.split()[0] for r in REFLECTIONS}) >= 5  # not one opening word repeated


def summary(correct, clusters, e=0.5, h=None, pid="p", **extra):
    """A problem summary; ``correct`` is [(sample_idx, text)], ``clusters`` [[(idx, text)]]."""
    sizes = [len(c) for c in clusters]
    if h is None:
        total = sum(sizes)
        h = -sum(s / total * math.log(s / total) for s in sizes) if total else 0.0
    return {"id": pid, "problem": "What is 6 * 7?", "answer": "42", "n": 8, "error_rate": e,
            "entropy": h, "n_error_modes": len(clusters),
            "correct": [{"sample_idx": i, "completion": t, "verdict": "correct"} for i, t in correct],
            "clusters": [{"answer": str(j), "size": len(c),
                          "trajectories": [{"sample_idx": i, "completion": t, "verdict": "incorrect"}
                                           for i, t in c]} for j, c in enumerate(clusters)],
            **extra}


def test_correct_trajectories_deduplicated_and_capped():
    rec = summary([(0, "A \\boxed{42}"), (1, "A \\boxed{42}<|im_end|>"), (2, "B \\boxed{42}"),
                   (3, " A \\boxed{42} "), (4, "C"), (5, "D"), (6, "E")], [], e=0.0)
    out = list(fuse_records([rec], FuseConfig(policy="rft")))
    assert [o["_tf"]["fuse"]["sources"] for o in out] == [[0], [2], [4], [5]]
    out = list(fuse_records([rec], FuseConfig(policy="rft", max_correct=2)))
    assert [o["messages"][-1]["content"] for o in out] == ["A \\boxed{42}", "B \\boxed{42}"]


def test_no_correct_trajectory_is_dropped_and_counted():
    stats = FuseStats()
    rec = summary([], [[(0, "wrong")]], e=1.0)
    assert list(fuse_records([rec], FuseConfig(), stats)) == []
    assert stats.no_correct == 1 and stats.problems == 1 and stats.samples == 0


def test_rotation_across_samples_shows_different_mistakes():
    clusters = [[(1, "w1a"), (2, "w1b"), (3, "w1c")], [(4, "w2a"), (5, "w2b")], [(6, "w3")],
                [(7, "w4")]]
    rec = summary([(0, "c0"), (8, "c1"), (9, "c2"), (10, "c3")], clusters, e=0.9)
    out = list(fuse_records([rec], FuseConfig(policy="fixed", k_max=2)))
    used = [o["_tf"]["fuse"]["clusters"] for o in out]
    assert used == [[0, 1], [1, 2], [2, 3], [3, 0]]


def test_system_message():
    rec = summary([(0, "c")], [[(1, "w")]], e=0.5)
    (out,) = fuse_records([rec], FuseConfig(system="Please reason step by step."))
    assert [m["role"] for m in out["messages"]] == ["system", "user", "assistant"]


# --------------------------------------------------------------------------- budget


@pytest.fixture(scope="module")
def tiny_tokenizer(tmp_path_factory):
    """A word-level BPE tokenizer trained here, offline, saved like a student's tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["[UNK]"])
    tok.train_from_iterator([t for t, _ in GOLDEN_COMPLETIONS] + list(REFLECTIONS) + [PROBLEM],
                            trainer)
    path = tmp_path_factory.mktemp("tok")
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(path)
    return str(path)


def test_budget_drops_smallest_cluster_first_then_the_sample(tiny_tokenizer):
    counter = HFTokenCounter(tiny_tokenizer)
    s = golden_summary()

    def tokens(*pieces):
        text = SEP.join(pieces)
        return counter.count([{"role": "system", "content": DEFAULT_SYSTEM},
                              {"role": "user", "content": PROBLEM},
                              {"role": "assistant", "content": text}])

    full0 = tokens(W7[0], R, W15, R, C0)
    k1_0 = tokens(W7[0], R, C0)  # sample 0 uses clusters 7 and 15: 15 is the smaller
    full1 = tokens(W15, R, W9, R, C1)
    k1_1 = tokens(W15, R, C1)  # sample 1 uses 15 and 9 (equal sizes): 9 comes later, goes first
    assert full0 > k1_0 and full1 > k1_1
    budget = max(k1_0, k1_1)
    assert budget < full0 and budget < full1
    stats = FuseStats()
    cfg = FuseConfig(reflections=(R,), max_tokens=budget, tokenizer=tiny_tokenizer)
    out = list(fuse_records([s], cfg, stats, counter))
    assert [o["k"] for o in out] == [1, 1]
    assert out[0]["_tf"]["fuse"]["sources"] == [2, None, 0]
    assert out[1]["_tf"]["fuse"]["sources"] == [5, None, 1]
    assert stats.trimmed == 2 and stats.k == {1: 2}
    assert all(o["_tf"]["fuse"]["k_policy"] == 2 for o in out)
    # a budget that not even the RFT sample fits: the sample is dropped and counted
    rft0, rft1 = tokens(C0), tokens(C1)
    assert rft1 < rft0
    stats = FuseStats()
    out = list(fuse_records([s], FuseConfig(reflections=(R,), max_tokens=rft1), stats, counter))
    assert [(o["kind"], o["_tf"]["fuse"]["sources"]) for o in out] == [("rft", [1])]
    assert stats.over_budget == 1 and stats.rft == 1


def test_cli_tokenizer_budget_and_summary(tmp_path, tiny_tokenizer):
    path = write_jsonl(tmp_path / "p.jsonl", [golden_summary()])
    result = runner.invoke(app, [str(path), "--tokenizer", tiny_tokenizer, "--max-tokens", "5"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert "1 problems in: 0 fused, 0 RFT only, 1 dropped (0 with no correct trajectory, 1 over the token budget)" in result.stderr
    result = runner.invoke(app, [str(path), "--tokenizer", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "--tokenizer: no such file or folder" in result.stderr


# --------------------------------------------------------------------------- CLI, bad input


def test_cli_summary_flags_and_unknown_keys(tmp_path):
    s = golden_summary(user_field={"keep": 1})
    refl = tmp_path / "r.txt"
    refl.write_text(R + "\n")
    result = runner.invoke(app, ["--reflections", str(refl), "--seed", "3"], input=lines([s]))
    assert result.exit_code == 0, result.stderr
    out = read_jsonl(result.stdout)
    assert len(out) == 2 and all(o["user_field"] == {"keep": 1} for o in out)
    assert all(o["problem"] == PROBLEM and "clusters" not in o and "correct" not in o for o in out)
    assert out[0]["_tf"]["fuse"]["parameters"]["reflections"] == str(refl)
    err = result.stderr
    assert "1 problems in: 1 fused, 0 RFT only, 0 dropped" in err
    assert "2 samples: 2 fused, 0 RFT" in err
    assert "k per sample: 2: 2" in err
    assert "token multiplier (fused / RFT tokens, approx):" in err
    rft = read_jsonl(runner.invoke(app, ["--policy", "rft"], input=lines([s])).stdout)
    assert [(o["kind"], o["k"], o["segments"]) for o in rft] == [
        ("rft", 0, [{"kind": "correct", "start": 0, "end": len(C0)}]),
        ("rft", 0, [{"kind": "correct", "start": 0, "end": len(C1)}])]


def test_cli_seed_is_deterministic_and_matters():
    s = golden_summary()
    a = runner.invoke(app, ["--seed", "1"], input=lines([s])).stdout
    b = runner.invoke(app, ["--seed", "1"], input=lines([s])).stdout
    assert a == b
    outs = {runner.invoke(app, ["--seed", str(i)], input=lines([s])).stdout for i in range(8)}
    assert len(outs) > 1


def test_not_a_problem_summary_says_run_tf_cluster_first(tmp_path):
    path = write_jsonl(tmp_path / "g.jsonl", [{"id": "a", "problem": "p", "verdict": "correct"}])
    result = runner.invoke(app, [str(path)])
    assert result.exit_code == 1
    assert f"line 1 of {path}: record has no 'clusters' field" in result.stderr
    assert "hint: run tf-cluster first" in result.stderr
    with pytest.raises(InputError, match="'problem'"):
        list(fuse_records([{"id": "a", "clusters": [], "correct": []}]))
    s = golden_summary()
    for t in s["correct"]:
        t["output"] = t.pop("completion")
    result = runner.invoke(app, [], input=lines([s]))
    assert result.exit_code == 1
    assert "line 1 of <stdin>: trajectory 0 has no 'completion' text" in result.stderr
    assert "--completion-key" in result.stderr


def test_an_exception_fusing_one_problem_marks_it_and_the_rest_come_out():
    good = summary([(0, "6 * 7 = \\boxed{42}")], [[(1, "6 * 7 = \\boxed{48}")]], e=0.5, h=0.0)
    words = dict(good, id="words", error_rate="high")  # TypeError in the policy's arithmetic
    huge = dict(good, id="huge", entropy=1e308)  # OverflowError: e^H
    recs = [dict(good, id="a"), words, dict(good, id="c"), huge]
    result = runner.invoke(app, [], input=lines(recs))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "tf-fuse: error: line 2 of <stdin>: cannot fuse this record: TypeError: can't multiply "
        "sequence by non-int of type 'float'",
        "hint: --keep-going marks the record (_tf.error) and goes on; -vv shows the traceback"]
    result = runner.invoke(app, ["--keep-going"], input=lines(recs))
    assert result.exit_code == 3
    out = read_jsonl(result.stdout)
    assert [(r["id"], "messages" in r) for r in out] == [
        ("a", True), ("words", False), ("c", True), ("huge", False)]
    assert out[1]["_tf"]["error"]["type"] == "TypeError" and out[1]["error_rate"] == "high"
    assert out[3]["_tf"]["error"] == {"step": "fuse", "type": "OverflowError",
                                      "message": "OverflowError: math range error",
                                      "where": "line 4 of <stdin>"}
    assert "2 records failed" in result.stderr


def test_empty_input_and_bad_flags():
    result = runner.invoke(app, [], input="")
    assert result.exit_code == 0 and result.stdout == "" and result.stderr == ""
    assert runner.invoke(app, ["--policy", "nope"], input="").exit_code == 2
    assert runner.invoke(app, ["--max-correct", "0"], input="").exit_code == 2


def test_failed_records_pass_through_with_exit_3():
    bad = {"_raw": "not json", "_tf": {"error": {"step": "grade", "message": "x"}}}
    result = runner.invoke(app, [], input=lines([bad, golden_summary()]))
    assert result.exit_code == 3
    out = read_jsonl(result.stdout)
    assert out[0] == bad and len(out) == 3
