"""bench/adaptive.py's simulation core on a tiny hand-made pool, against hand-computed rounds
and decisions (no grading, no math-verify: the answers are plain numbers)."""

from __future__ import annotations

import sys

import pytest

from tf_tools.clustering import ClusterConfig, cluster_records
from tf_tools.planning import PlanConfig

from .conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import adaptive_sim as sim  # noqa: E402

CCFG = ClusterConfig(math_verify=False, workers=1)


def graded(pid: str, i: int, pred: str | None) -> dict:
    """Sample i of problem pid: correct when pred is None, else a wrong answer pred."""
    ok = pred is None
    return {"id": pid, "problem": "What?", "answer": "1", "sample_idx": i,
            "completion": f"sol {pid}{i:03d}", "finish_reason": "stop",  # 8 characters
            "pred": "1" if ok else pred, "verdict": "correct" if ok else "incorrect",
            "correct": ok}


# A: all correct.  B: correct, 5, correct, 5 | 7, 7, 7, correct
EASY = [graded("a", i, None) for i in range(8)]
HARD = [graded("b", i, p) for i, p in enumerate([None, "5", None, "5", "7", "7", "7", None])]


@pytest.fixture()
def pool():
    pool = sim.Pool([EASY, HARD], CCFG)
    yield pool
    pool.close()


def test_rounds_and_decisions_by_hand(pool):
    cfg = PlanConfig(n_min=2, n_max=8, max_correct=2)
    fuser = sim.fuser_for(cfg)
    ref = [sim.fixed(pool, i, 99, cfg, fuser) for i in (0, 1)]
    # whole pool: A is RFT with its first two solutions; B has clusters "7" (3, first 4) and
    # "5" (2, first 1), e = 5/8, D = exp(H(3, 2)) = 1.96, k = round(1.23) = 1: cluster "7"
    assert ref[0].decision == sim.Decision(0, (), (0, 1))
    assert ref[1].decision == sim.Decision(1, (4,), (0, 2))
    assert [r.n for r in ref] == [8, 8] and ref[1].tokens == 16.0  # 8 x 8 characters / 4
    out = [sim.adaptive(pool, i, cfg, fuser) for i in (0, 1)]
    # A: its first 2 are correct. B: 2 samples (one correct) -> 4: 2 distinct correct, e = 1/2,
    # the Wilson interval's ends give k 0 and 1, but k = 1 as before the last round: stable,
    # taking cluster "5" (first sample 1), the only one it has seen
    assert (out[0].n, out[0].reason, out[0].decision) == (2, "all_correct", sim.Decision(0, (), (0, 1)))
    assert (out[1].n, out[1].reason, out[1].decision) == (4, "stable", sim.Decision(1, (1,), (0, 2)))
    members = [sim.members(pool.summary(i, 99), fuser) for i in (0, 1)]
    a = sim.compare(out, ref, members)
    assert (a.problems, a.identical, a.up_to_ties, a.k, a.clusters, a.correct) == (2, 1, 1, 2, 1, 2)
    assert (a.samples, a.ref_samples, a.sample_mismatch) == (6, 16, 0)
    assert dict(a.by_reason) == {"all_correct": 1, "stable": 1}
    # the stricter test waits: the Wilson interval is not settled at 4, so B goes to n_max
    strict = sim.adaptive(pool, 1, PlanConfig(n_min=2, n_max=8, max_correct=2, stable="decision"),
                          fuser)
    assert (strict.n, strict.reason, strict.decision) == (8, "n_max", ref[1].decision)
    # the oracle: B's pool decision first appears at 8 samples (2 and 4 give other clusters)
    assert sim.oracle(pool, 1, cfg, fuser, ref[1].decision) == 8
    # on no schedule it is 7: cluster "7" (3 samples) outgrows "5" (2) at the seventh sample;
    # A's decision is there from its first two
    assert sim.oracle_any(pool, 1, cfg, fuser, ref[1].decision) == 7
    assert sim.oracle_any(pool, 0, cfg, fuser, ref[0].decision) == 2
    # at 50% identical the problem with most to save (8 - 2) may stop after its first round
    assert sim.at_share([8, 2, 6], [2, 2, 2], 0.5) == 10
    assert sim.at_share([8, 2, 6], [2, 2, 2], 1.0) == 16


def test_prefix_summary_is_tf_clusters(pool):
    got = pool.summary(1, 4)
    want = next(cluster_records(HARD[:4], CCFG))
    strip = lambda r: {k: v for k, v in r.items() if k != "_tf"}  # noqa: E731 - timings
    assert strip(got) == strip(want)
    assert [c["answer"] for c in got["clusters"]] == ["5"] and got["n"] == 4


def test_up_to_ties():
    # pool clusters: first sample 3 (size 2), 5 (size 2), 9 (size 1)
    members = {3: (3, 2), 4: (3, 2), 5: (5, 2), 6: (5, 2), 9: (9, 1)}
    ref = sim.Decision(1, (3,), (0,))
    assert sim.same_up_to_ties(sim.Decision(1, (5,), (0,)), ref, members)  # a tie-break
    assert not sim.same_up_to_ties(sim.Decision(1, (9,), (0,)), ref, members)  # smaller
    assert not sim.same_up_to_ties(sim.Decision(1, (5,), (1,)), ref, members)  # other correct
    two = sim.Decision(2, (3, 5), (0,))
    assert not sim.same_up_to_ties(sim.Decision(2, (3, 4), (0,)), two, members)  # one cluster twice


def test_shuffled_is_a_fixed_renumbered_permutation():
    once, again = sim.shuffled(HARD, 0), sim.shuffled(list(reversed(HARD)), 0)
    assert once == again  # the order depends on the seed and the id, not the input order
    assert [r["sample_idx"] for r in once] == list(range(8))
    assert sorted(r["completion"] for r in once) == sorted(r["completion"] for r in HARD)
    assert sim.shuffled(HARD, 1) != once
