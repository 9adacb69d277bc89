"""Invariants of tf-cluster | tf-fuse over random graded problems (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tf_tools.clustering import ClusterConfig, cluster_records
from tf_tools.fusion import REFLECTIONS, FuseConfig, FuseStats, fuse_records, strip_markers
from tf_tools.schema import DEFAULT_SYSTEM

GOLD = "42"
WRONG = ["7", "7.0", "\\frac{14}{2}", "8", "9", "-1", "\\sqrt{2}", "No solution", "1/2", "0.5"]
MARKERS = ["", "", "<|im_end|>", "</s>", "<|eot_id|>"]
CLUSTER_CFG = ClusterConfig(math_verify=False)


@st.composite
def sample(draw, idx):
    verdict = draw(st.sampled_from(["correct", "correct", "incorrect", "incorrect", "incorrect",
                                    "no_answer", "truncated", "ungradable"]))
    pred = {"correct": GOLD, "no_answer": None}.get(verdict) or draw(st.sampled_from(WRONG))
    finish = "length" if verdict == "truncated" else "stop"
    body = draw(st.sampled_from(["Let me think.", "Step 1: multiply.", "Hmm.", "  spaced  "]))
    completion = f"{body} sample {idx} gives \\boxed{{{pred}}}.{draw(st.sampled_from(MARKERS))}"
    if verdict == "correct" and draw(st.booleans()):
        completion = f"{body} gives \\boxed{{42}}."  # duplicates across samples
    return {"sample_idx": idx, "completion": completion, "finish_reason": finish, "pred": pred,
            "verdict": verdict, "correct": verdict == "correct"}


@st.composite
def problems(draw):
    out = []
    for p in range(draw(st.integers(1, 4))):
        n = draw(st.integers(1, 12))
        tag = draw(st.sampled_from([None, "a", {"nested": [1, 2]}]))
        for i in range(n):
            rec = {"id": f"p{p}", "problem": f"Problem {p}: what is 6 * 7?", "answer": GOLD,
                   "user_tag": tag, **draw(sample(i))}
            out.append(rec)
    return out


CONFIGS = st.builds(
    FuseConfig,
    policy=st.sampled_from(["adaptive", "threshold", "linear", "fixed", "rft"]),
    k_max=st.integers(0, 4), gamma=st.sampled_from([0.5, 1.0, 2.0]),
    max_correct=st.integers(1, 4), seed=st.integers(0, 3),
    max_tokens=st.sampled_from([None, None, 40, 80]),
)


def rft_reference(summary: dict, max_correct: int) -> list[str]:
    """Plain RFT, written independently: deduplicated correct texts in sample order."""
    texts: list[str] = []
    for t in sorted(summary["correct"], key=lambda t: t["sample_idx"]):
        text = strip_markers(t["completion"])
        if text and text not in texts:
            texts.append(text)
    return texts[:max_correct]


@settings(max_examples=120, deadline=None)
@given(problems(), CONFIGS)
def test_fused_samples_invariants(trajectories, cfg):
    summaries = list(cluster_records(trajectories, CLUSTER_CFG))
    by_idx = {(t["id"], t["sample_idx"]): t for t in trajectories}
    stats = FuseStats()
    out = list(fuse_records(summaries, cfg, stats))
    assert stats.samples == len(out) == stats.fused + stats.rft
    for s in out:
        text = s["messages"][-1]["content"]
        segs = s["segments"]
        sources = s["_tf"]["fuse"]["sources"]
        summary = next(p for p in summaries if p["id"] == s["id"])
        m = len(summary["clusters"])
        # ends with a correct trajectory, which ends the message
        assert segs[-1]["kind"] == "correct" and segs[-1]["end"] == len(text)
        assert [g["kind"] for g in segs] == ["incorrect", "reflection"] * s["k"] + ["correct"]
        assert s["k"] <= m and s["k"] <= cfg.k_max
        assert (s["kind"] == "fused") == (s["k"] > 0)
        # every segment is exactly its source text (or a reflection line)
        for g, src in zip(segs, sources, strict=True):
            piece = text[g["start"]:g["end"]]
            if g["kind"] == "reflection":
                assert src is None and piece in REFLECTIONS
                continue
            traj = by_idx[(s["id"], src)]
            assert piece == strip_markers(traj["completion"])
            # never a truncated, ungradable or answerless segment
            assert traj["finish_reason"] == "stop"
            assert traj["verdict"] == ("correct" if g["kind"] == "correct" else "incorrect")
            assert traj["pred"] is not None
        # the wrong attempts of one sample come from different clusters
        used = s["_tf"]["fuse"]["clusters"]
        assert len(set(used)) == len(used)
        # unknown input keys survive
        assert s["user_tag"] == by_idx[(s["id"], 0)]["user_tag"]
        assert s["problem"] == s["messages"][-2]["content"]
    # same seed, same output; another order of problems, the same samples per problem
    again = list(fuse_records(reversed(summaries), cfg))
    key = lambda r: (r["id"], r["_tf"]["fuse"]["sample"])  # noqa: E731
    assert sorted(again, key=key) == sorted(out, key=key)


@settings(max_examples=80, deadline=None)
@given(problems(), st.integers(1, 4))
def test_policy_rft_reproduces_plain_rft(trajectories, max_correct):
    summaries = list(cluster_records(trajectories, CLUSTER_CFG))
    out = list(fuse_records(summaries, FuseConfig(policy="rft", max_correct=max_correct)))
    want = [(p["id"], t) for p in summaries for t in rft_reference(p, max_correct)]
    assert [(s["id"], s["messages"][-1]["content"]) for s in out] == want
    assert all(s["kind"] == "rft" and s["k"] == 0 and len(s["segments"]) == 1 for s in out)
    assert all(s["messages"][:-1] == [{"role": "system", "content": DEFAULT_SYSTEM},
                                      {"role": "user", "content": s["problem"]}] for s in out)
