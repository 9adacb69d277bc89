"""Sampling in rounds (tf-plan) against a fixed N, simulated on pools of existing samples.

Pools (``../shared/data/trajectories``, converted with ``examples/convert_trajectories.py``
and graded once with tf-grade, cached in ``runs/bench/`` like bench/cluster.py's):

- ``math-l5``: ZeroEval MATH level 5, 40 models = 40 samples per problem (721 problems; two
  models' files miss a few problems, so some have 38 or 39);
- ``gsm8k-16``: ZeroEval GSM8K, 16 models = 16 samples per problem (1,319 problems). This is
  the 16-model GSM8K pool; MathCoder (4 models), ToRA (2) and GSM8K-OpenAI (4) are smaller;
- ``qwen25math``: Qwen2.5-Math on MATH, 100 problems x 8 samples.

Each problem's samples get a fixed random order (``--seed``), renumbered sample_idx 0..N-1,
as tf-sample's per-sample seeds give. The adaptive rule is tf-plan's own ``decide`` /
``next_round`` (``tf_tools.planning``) on summaries made by tf-cluster's own core over each
round's prefix; the pool size is a hard n_max. Reference: the whole pool. Compared with it:
the k tf-fuse chooses, the clusters it takes (the k largest, tf-fuse's order) and the
correct solutions it keeps (the first ``--max-correct`` distinct ones in sample_idx order),
exactly and up to ties (see bench/adaptive_sim.py); a fixed N at the same mean budget and
fixed N = n_max are compared the same way. Completion tokens are characters / 4 (the pools
carry no token counts).

Prints, per pool: the default setting in detail, then the trade-off over ``--grid-n-min`` x
``--grid-n-max`` x ``--grid-stable`` (samples saved vs identical decisions), the oracle (the
fewest samples on the doubling schedule that give the pool's decision on every problem:
no stopping rule on that schedule saves more at 100%), what any rule can save at most at
95% identical, on that schedule and on none (rounds of one sample), and whether the target (>= 40% fewer
samples at >= 95% identical decisions) is reached.

    python bench/adaptive.py                       # all three pools, ~3-4 min on 2 CPUs
    python bench/adaptive.py --pools gsm8k-16 qwen25math --seed 1
    python bench/adaptive.py --n-min 8 --n-max 0 --stable decision --grid-n-min 4 8
    python bench/adaptive.py --pools gsm8k-16 --grid-n-min 5 --grid-n-max 0 \
        --grid-stable decision --grid-confidence 0.95 0.8 0.6 0 --no-any-prefix
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from dataclasses import replace
from itertools import product

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

from adaptive_sim import (  # noqa: E402
    Agreement,
    Outcome,
    Pool,
    adaptive,
    at_share,
    compare,
    fixed,
    fuser_for,
    members,
    oracle,
    oracle_any,
    shuffled,
)
from cluster import graded_workload  # noqa: E402

from tf_tools.clustering import ClusterConfig  # noqa: E402
from tf_tools.planning import PlanConfig, next_round  # noqa: E402
from tf_tools.records import group_by_id, read_jsonl_file  # noqa: E402

# name -> (cache name, convert_trajectories format, inputs under trajectories/, title)
POOLS = {
    "math-l5": ("zeroeval_math_l5", "zeroeval", ("zeroeval/math-l5",),
                "ZeroEval MATH level 5, 40 models as 40 samples"),
    "gsm8k-16": ("zeroeval_gsm", "zeroeval", ("zeroeval/gsm",),
                 "ZeroEval GSM8K, 16 models as 16 samples"),
    "qwen25math": ("qwen25math_math_100x8", "qwen25math", ("qwen25math_math_cot_100_x8.jsonl",),
                   "Qwen2.5-Math on MATH, 8 samples"),
}
WHOLE = 10 ** 9  # n_max / N meaning "the whole pool"
TARGET_SAVED, TARGET_SAME = 0.40, 0.95


def load(args: argparse.Namespace, name: str) -> list[list[dict]]:
    cache, fmt, inputs, _title = POOLS[name]
    path = graded_workload(args.data, args.cache, args.workers, cache, fmt, inputs)
    problems = [shuffled(g, args.seed) for _, g in group_by_id(read_jsonl_file(path))]
    return problems[: args.limit_problems] if args.limit_problems else problems


class Bench:
    """One pool: its reference decisions and the rules run against them."""

    def __init__(self, pool: Pool, base: PlanConfig) -> None:
        self.pool = pool
        self.base = base
        self.fuser = fuser_for(base)  # decisions depend on the fusion parameters only
        self.ids = range(len(pool.problems))
        self.ref = [fixed(pool, i, WHOLE, base, self.fuser) for i in self.ids]
        self.members = [members(pool.summary(i, WHOLE), self.fuser) for i in self.ids]

    def adaptive(self, cfg: PlanConfig) -> tuple[list[Outcome], Agreement]:
        out = [adaptive(self.pool, i, cfg, self.fuser) for i in self.ids]
        return out, compare(out, self.ref, self.members)

    def fixed(self, n: int) -> Agreement:
        out = [fixed(self.pool, i, n, self.base, self.fuser) for i in self.ids]
        return compare(out, self.ref, self.members)

    def oracle(self, n_min: int, schedule: bool = True) -> tuple[float, float]:
        """Samples saved by the oracle at 100% identical decisions, and the most any rule can
        save at TARGET_SAME; on the doubling schedule, or one sample at a time."""
        cfg = replace(self.base, n_min=n_min, n_max=WHOLE)
        find = oracle if schedule else oracle_any
        drawn = [find(self.pool, i, cfg, self.fuser, r.decision)
                 for i, r in zip(self.ids, self.ref, strict=True)]
        first = [min(next_round(0, cfg), self.pool.size(i)) for i in self.ids]
        total = sum(r.n for r in self.ref)
        return 1 - sum(drawn) / total, 1 - at_share(drawn, first, TARGET_SAME) / total


def pct(x: float) -> str:
    return f"{100 * x:5.1f}%"


def row(label: str, a: Agreement) -> str:
    s = a.share
    shares = (s(a.identical), s(a.up_to_ties), s(a.k), s(a.clusters), s(a.correct),
              s(a.sample_mismatch))
    return (f"{label:30} {a.samples:7} {pct(a.samples / a.ref_samples)} {a.tokens / 1e6:6.2f}M "
            f"{pct(a.tokens / a.ref_tokens)}" + "".join(f"{pct(x):>12}" for x in shares))


def header(bench: Bench, name: str) -> None:
    pool, ref = bench.pool, bench.ref
    sizes = Counter(len(p) for p in pool.problems)
    k = Counter(r.decision.k for r in ref)
    ks = ", ".join(f"k={v} {k[v]}" for v in sorted(x for x in k if x is not None))
    print(f"\n== {name}: {POOLS[name][3]}; {len(ref)} problems, {sum(r.n for r in ref)} samples "
          f"(per problem: {', '.join(f'{n} x{c}' for n, c in sorted(sizes.items()))}), "
          f"{sum(r.tokens for r in ref) / 1e6:.2f}M completion tokens (characters / 4)")
    print(f"whole pool: {ks}; no training sample (no correct solution) {k[None]}")


def detail(bench: Bench, cfg: PlanConfig) -> None:
    out, a = bench.adaptive(cfg)
    same_n = round(a.samples / a.problems)
    f_max = bench.fixed(cfg.n_max)
    f_same = bench.fixed(same_n)
    biggest = max(len(p) for p in bench.pool.problems)
    n_max = "pool" if cfg.n_max >= WHOLE else cfg.n_max
    n_fixed = f"N={cfg.n_max}" if cfg.n_max < biggest else "N=pool"
    print(f"setting: n_min {cfg.n_min}, n_max {n_max}, stable {cfg.stable} (confidence "
          f"{cfg.confidence:g}), max_correct {cfg.max_correct}, policy {cfg.policy} (k_max {cfg.k_max}, gamma {cfg.gamma:g})")
    print(f"{'rule':30} {'samples':>14} {'tokens':>14}" + "".join(
        f"{c:>12}" for c in ("identical", "up-to-ties", "k", "clusters", "correct", "sample/none")))
    print(row("adaptive (tf-plan)", a))
    print(row(f"fixed N={same_n} (same budget)", f_same))
    if cfg.n_max < biggest:
        print(row(f"fixed N={cfg.n_max} (n_max)", f_max))
    print(row("whole pool (reference)", bench.fixed(WHOLE)))
    why = ", ".join(f"{r} {a.by_reason[r]} ({a.same_by_reason[r]} identical)"
                    for r in sorted(a.by_reason))
    print(f"adaptive stopped: {why}")
    print(f"adaptive drew {pct(a.samples / a.ref_samples).strip()} of the pool's samples and "
          f"{pct(a.tokens / a.ref_tokens).strip()} of its tokens; "
          f"{pct(a.samples / f_max.samples).strip()} of fixed {n_fixed}'s samples, "
          f"{pct(a.tokens / f_max.tokens).strip()} of its tokens")


def grid(bench: Bench, args: argparse.Namespace) -> None:
    biggest = max(len(p) for p in bench.pool.problems)
    n_maxes = sorted({min(n or WHOLE, WHOLE) for n in args.grid_n_max if (n or WHOLE) < biggest}
                     | {WHOLE})
    print(f"\ntrade-off: {'n_min':>5} {'n_max':>5} {'stable':>8} {'conf':>5}  {'saved':>6} {'tokens':>6}  "
          f"{'identical':>9} {'up-to-ties':>10}   {'fixed N (same budget)':>22}")
    hits = []
    for n_min in args.grid_n_min:
        for n_max in n_maxes:
            for stable, conf in product(args.grid_stable, args.grid_confidence):
                cfg = replace(bench.base, n_min=n_min, n_max=n_max, stable=stable,
                              confidence=conf)
                _, a = bench.adaptive(cfg)
                same_n = round(a.samples / a.problems)
                f = bench.fixed(same_n)
                saved, same = 1 - a.samples / a.ref_samples, a.share(a.identical)
                mark = "  <- target" if saved >= TARGET_SAVED and same >= TARGET_SAME else ""
                if mark:
                    hits.append(f"n_min {n_min} n_max {n_max} stable {stable} confidence {conf}")
                print(f"           {n_min:5} {'pool' if n_max >= WHOLE else n_max:>5} {stable:>8} {conf:5.2f}  "
                      f"{pct(saved)} {pct(1 - a.tokens / a.ref_tokens)}  {pct(same):>9} "
                      f"{pct(a.share(a.up_to_ties)):>10}   N={same_n:<3} {pct(f.share(f.identical))} "
                      f"{pct(f.share(f.up_to_ties))}{mark}")
    sys.stdout.flush()
    found = {n: bench.oracle(n) for n in args.grid_n_min}
    best = ", ".join(f"n_min {n}: {pct(o[0]).strip()}" for n, o in found.items())
    print(f"oracle (stop at the first prefix on the doubling schedule whose decision is the "
          f"pool's; 100% identical): samples saved {best}")
    bound = ", ".join(f"n_min {n}: {pct(o[1]).strip()}" for n, o in found.items())
    print(f"  the most any rule on that schedule can save at {TARGET_SAME:.0%} identical (the "
          f"oracle, letting the {1 - TARGET_SAME:.0%} with most to save stop at once): {bound}")
    if args.any_prefix:
        every, share = bench.oracle(bench.base.n_min, schedule=False)
        print(f"  on no schedule (rounds of one sample), n_min {bench.base.n_min}: the oracle saves "
              f"{pct(every).strip()} at 100% identical, any rule at most {pct(share).strip()} at "
              f"{TARGET_SAME:.0%}")
    verdict = "reached by " + "; ".join(hits) if hits else "not reached by any setting"
    print(f"target (>= {TARGET_SAVED:.0%} fewer samples at >= {TARGET_SAME:.0%} identical "
          f"decisions): {verdict}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pools", nargs="+", choices=list(POOLS), default=list(POOLS))
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--cache", default=os.path.join(ROOT, "runs", "bench"),
                    help="where the graded pools are kept (default: runs/bench)")
    ap.add_argument("--workers", type=int, default=2, help="math-verify workers (grade, cluster)")
    ap.add_argument("--seed", type=int, default=0, help="seed of each problem's sample order")
    ap.add_argument("--limit-problems", type=int)
    defaults = PlanConfig()
    ap.add_argument("--n-min", type=int, default=defaults.n_min)
    ap.add_argument("--n-max", type=int, default=defaults.n_max, help="0: the whole pool")
    ap.add_argument("--stable", choices=("k", "decision"), default=defaults.stable)
    ap.add_argument("--confidence", type=float, default=defaults.confidence,
                    help="tf-plan --confidence: level of the error rate's interval")
    ap.add_argument("--max-correct", type=int, default=defaults.max_correct)
    ap.add_argument("--k-max", type=int, default=defaults.k_max)
    ap.add_argument("--gamma", type=float, default=defaults.gamma)
    ap.add_argument("--policy", default=defaults.policy)
    ap.add_argument("--grid-n-min", type=int, nargs="+", default=[2, 4, 8])
    ap.add_argument("--grid-n-max", type=int, nargs="+", default=[16, 32, 0],
                    help="0: the whole pool; values at or above a pool's size are skipped")
    ap.add_argument("--grid-stable", nargs="+", choices=("k", "decision"), default=["k", "decision"])
    ap.add_argument("--grid-confidence", type=float, nargs="+", default=[defaults.confidence],
                    help="tf-plan --confidence values in the trade-off (e.g. 0.95 0.8 0.6 0)")
    ap.add_argument("--no-any-prefix", dest="any_prefix", action="store_false",
                    help="skip the bound on no schedule (it summarises every prefix of the pool)")
    args = ap.parse_args()
    base = PlanConfig(n_min=args.n_min, n_max=args.n_max or WHOLE, stable=args.stable,
                      max_correct=args.max_correct, k_max=args.k_max, gamma=args.gamma,
                      policy=args.policy, confidence=args.confidence)
    t0 = time.perf_counter()
    for name in args.pools:
        pool = Pool(load(args, name), ClusterConfig(workers=args.workers))
        try:
            bench = Bench(pool, base)
            header(bench, name)
            detail(bench, base)
            grid(bench, args)
        finally:
            pool.close()
        print(f"({time.perf_counter() - t0:.0f} s so far)", flush=True)


if __name__ == "__main__":
    main()
