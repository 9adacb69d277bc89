"""tf-cluster's clustering against naive all-pairs clustering, and tf-cluster | tf-fuse memory.

Workload: the ZeroEval MATH level-5 answers of 40 models (721 problems, 40 samples each, one
per model), converted with ``examples/convert_trajectories.py zeroeval`` and graded with
``tf-grade`` (cached under ``runs/bench/``; ``--graded FILE`` reuses a graded file).

1. Clustering, in one process, on the fusable wrong answers of every problem:

   - ours: ``tf_tools.clustering.cluster_answers`` as tf-cluster runs it (canonical keys,
     one representative per cluster, fast paths, value/form shortcuts, math-verify in the
     killable pool with readability checks and a pair cache);
   - naive: every pair of answers compared with the same pairwise rule (answers read as
     LaTeX, ``fast_equal`` both ways round, then the value/form shortcut, then math-verify in a fresh pool of the same size, all
     undecided pairs of a problem submitted at once so the workers stay busy), connected
     components of "equal". No keys, no representatives, no caches.

   The two take turns over chunks of ``--chunk`` problems, so that load from other
   processes falls on both alike. Prints equivalence checks per problem (pairs compared),
   math-verify calls, wall time, their ratios, and whether the two partitions are identical
   problem by problem.

2. Peak memory (max RSS from ``wait4``) of ``tf-cluster | tf-fuse`` on the graded file and on
   the file repeated ``--repeat`` times with new ids; prints the ratio (flat: <= 1.3x).

    python bench/cluster.py [--graded FILE] [--limit-problems N] [--workers 2] [--skip-naive]
                            [--skip-memory] [--repeat 10] [--tokenizer PATH] [--audit-shortcuts]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import orjson

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from tf_tools.answers.forms import fast_decision, form_of, forms_differ  # noqa: E402
from tf_tools.answers.values import latexify  # noqa: E402
from tf_tools.clustering import (  # noqa: E402
    ClusterConfig,
    ClusterStats,
    Equivalence,
    cluster_answers,
)
from tf_tools.clustering.answers import DisjointSets  # noqa: E402
from tf_tools.clustering.equivalence import far_apart  # noqa: E402
from tf_tools.records import group_by_id, read_jsonl_file  # noqa: E402
from tf_tools.schema import is_fusable  # noqa: E402

BIN = os.path.dirname(sys.executable)
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


# --------------------------------------------------------------------------- workload


def graded_workload(data: str, out_dir: str, workers: int, name: str = "zeroeval_math_l5",
                    fmt: str = "zeroeval", inputs: tuple[str, ...] = ("zeroeval/math-l5",)) -> str:
    """A pool of ``trajectories/`` (``inputs``) converted with ``convert_trajectories.py fmt``
    and graded with tf-grade, cached as ``out_dir/name.graded.jsonl``."""
    path = os.path.join(out_dir, f"{name}.graded.jsonl")
    if os.path.exists(path):
        print(f"bench: using {path} (delete it to regrade)")
        return path
    os.makedirs(out_dir, exist_ok=True)
    raw = os.path.join(out_dir, f"{name}.jsonl")
    with open(raw, "wb") as f:
        subprocess.run([sys.executable, os.path.join(ROOT, "examples", "convert_trajectories.py"),
                        fmt, *(os.path.join(data, "trajectories", i) for i in inputs)],
                       check=True, stdout=f, stderr=subprocess.DEVNULL)
    print(f"bench: grading {raw} with tf-grade ...", flush=True)
    subprocess.run([os.path.join(BIN, "tf-grade"), "-q", "--workers", str(workers), raw,
                    "-o", path], check=True, env=ENV)
    return path


def problems(path: str, limit: int | None) -> list[tuple[Any, list[str], list[int]]]:
    """(id, fusable wrong answers in sample order, their sample_idx) per problem."""
    out = []
    for pid, group in group_by_id(read_jsonl_file(path)):
        wrong = sorted((r for r in group if is_fusable(r)), key=lambda r: r["sample_idx"])
        out.append((pid, [str(r["pred"]) for r in wrong], [r["sample_idx"] for r in wrong]))
        if limit and len(out) >= limit:
            break
    return out


# --------------------------------------------------------------------------- clustering


class Clusterer:
    """One way of clustering, run over chunks of problems: each problem's partition, pairs
    compared and math-verify calls, and the wall time of all its chunks."""

    def __init__(self) -> None:
        self.parts: list[list[list[int]]] = []
        self.checks: list[int] = []
        self.mv: list[int] = []
        self.seconds = 0.0

    def run(self, chunk) -> None:
        t0 = time.perf_counter()
        for _pid, preds, _idx in chunk:
            part, checks, mv = self.cluster(preds)
            self.parts.append(part)
            self.checks.append(checks)
            self.mv.append(mv)
        self.seconds += time.perf_counter() - t0

    def cluster(self, preds: list[str]) -> tuple[list[list[int]], int, int]:
        """One problem's partition, pairs compared, math-verify calls."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class Ours(Clusterer):
    """tf-cluster's clustering, one Equivalence (pool, caches) for the whole run."""

    def __init__(self, cfg: ClusterConfig) -> None:
        super().__init__()
        self.stats = ClusterStats()
        self.eq = Equivalence(cfg, self.stats)

    def cluster(self, preds: list[str]) -> tuple[list[list[int]], int, int]:
        c0, m0 = self.stats.checks, self.stats.mv_calls
        part = cluster_answers(preds, self.eq)
        return part, self.stats.checks - c0, self.stats.mv_calls - m0

    def close(self) -> None:
        self.eq.close()


WORKER_SECONDS = [0.0]


def run_pool(pool, pairs: list[tuple[str, str]]) -> list[bool]:
    results: dict[int, bool] = {}

    def take() -> None:
        for s, status, equal, _r, seconds in pool.collect():
            results[s] = status == "ok" and bool(equal)
            WORKER_SECONDS[0] += seconds

    for seq, (gold, pred) in enumerate(pairs):
        while not pool.submit((seq, (gold,), pred)):
            take()
    while len(results) < len(pairs):
        take()
    return [results[i] for i in range(len(pairs))]


class Naive(Clusterer):
    """Every pair, the same pairwise rule, connected components; a pool of the same size."""

    def __init__(self, cfg: ClusterConfig) -> None:
        from tf_tools.answers.pool import VerifyPool

        super().__init__()
        self.cfg = cfg
        self.pool = VerifyPool(cfg.workers, cfg.timeout, cfg.memory_mb)

    def cluster(self, raw: list[str]) -> tuple[list[list[int]], int, int]:
        preds = [latexify(p) for p in raw]
        n = len(preds)
        forms = [form_of(p) for p in preds]
        edges, undecided = [], []
        for i in range(n):
            for j in range(i + 1, n):
                same = fast_decision(preds[i], preds[j], self.cfg.tolerance)
                if same is not None:
                    if same:
                        edges.append((i, j))
                elif not forms_differ(forms[i], forms[j]):
                    undecided.append((i, j))
        equal = run_pool(self.pool, [(preds[i], preds[j]) for i, j in undecided])
        edges += [e for e, ok in zip(undecided, equal, strict=True) if ok]
        return components(n, edges), n * (n - 1) // 2, len(undecided)

    def close(self) -> None:
        self.pool.close()


def components(n: int, edges: list[tuple[int, int]]) -> list[list[int]]:
    sets = DisjointSets(n)
    for i, j in edges:
        sets.join(i, j)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(sets.find(i), []).append(i)
    return list(groups.values())


def as_partition(parts: list[list[int]], idx: list[int]) -> set[frozenset[int]]:
    return {frozenset(idx[i] for i in p) for p in parts}


def describe(name: str, values: list[int]) -> str:
    return (f"{name}: total {sum(values)}, per problem mean {statistics.mean(values):.1f}, "
            f"median {statistics.median(values):g}, max {max(values)}")


def audit_shortcuts(work, cfg: ClusterConfig, eq: Equivalence) -> None:
    """math-verify, both ways round, on every pair of distinct answers of a problem that the
    value/form shortcut or the fingerprints (read in ours' run: ``eq``) told apart."""
    from tf_tools.answers.pool import VerifyPool

    pairs: dict[str, list[tuple[str, str]]] = {"value/form": [], "fingerprint": []}
    for _pid, preds, _idx in work:
        reps = list(dict.fromkeys(latexify(p) for p in preds))
        for i, a in enumerate(reps):
            for b in reps[i + 1:]:
                if fast_decision(a, b, cfg.tolerance) is not None:
                    continue
                if forms_differ(form_of(a), form_of(b)):
                    pairs["value/form"] += [(a, b), (b, a)]
                elif far_apart(eq._prints.get(a), eq._prints.get(b)):  # noqa: SLF001
                    pairs["fingerprint"] += [(a, b), (b, a)]
    with VerifyPool(cfg.workers, cfg.timeout, cfg.memory_mb) as pool:
        for name, todo in pairs.items():
            equal = run_pool(pool, todo)
            disagree = [p for p, e in zip(todo, equal, strict=True) if e]
            print(f"audit: {len(todo) // 2} answer pairs told apart by {name}; math-verify calls "
                  f"{len(disagree)} of their {len(todo)} orderings equal")
            for a, b in disagree[:12]:
                print(f"  {a!r} vs {b!r}")


# --------------------------------------------------------------------------- memory


def repeated(src: str, dst: str, times: int) -> None:
    with open(dst, "wb") as out:
        for r in range(times):
            with open(src, "rb") as f:
                for line in f:
                    rec = orjson.loads(line)
                    rec["id"] = f"{rec['id']}~{r}" if r else rec["id"]
                    out.write(orjson.dumps(rec) + b"\n")


def peak_rss(path: str, workers: int, tokenizer: str | None) -> tuple[int, int, float]:
    """Max RSS (KiB) of tf-cluster and of tf-fuse in ``tf-cluster FILE | tf-fuse``, and wall s."""
    fuse_args = ["--tokenizer", tokenizer] if tokenizer else []
    t0 = time.perf_counter()
    cluster = subprocess.Popen([os.path.join(BIN, "tf-cluster"), "-q", "--workers", str(workers),
                                path], stdout=subprocess.PIPE, env=ENV)
    fuse = subprocess.Popen([os.path.join(BIN, "tf-fuse"), "-q", *fuse_args],
                            stdin=cluster.stdout, stdout=subprocess.DEVNULL, env=ENV)
    assert cluster.stdout is not None
    cluster.stdout.close()
    rss = {}
    for p in (cluster, fuse):
        _pid, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            raise SystemExit(f"bench: {p.args[0]} exited {p.returncode}")
        rss[p] = usage.ru_maxrss
    return rss[cluster], rss[fuse], time.perf_counter() - t0


# --------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--graded", help="a graded ZeroEval file (default: build runs/bench/...)")
    ap.add_argument("--limit-problems", type=int)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--chunk", type=int, default=25, help="problems per turn of ours / naive")
    ap.add_argument("--tokenizer", help="tf-fuse --tokenizer for the memory run")
    ap.add_argument("--skip-naive", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--audit-shortcuts", action="store_true")
    args = ap.parse_args()

    path = args.graded or graded_workload(args.data, os.path.join(ROOT, "runs", "bench"),
                                          args.workers)
    cfg = ClusterConfig(workers=args.workers, timeout=args.timeout)
    work = problems(path, args.limit_problems)
    n_answers = sum(len(p[1]) for p in work)
    print(f"bench: {len(work)} problems, {n_answers} fusable wrong answers, "
          f"{args.workers} math-verify workers, timeout {args.timeout:g}s")

    # ours and naive alternate over chunks of problems, so that load from other processes
    # on the machine falls on both alike; each keeps its own pool (and ours its caches)
    ours = Ours(cfg)
    naive = None if args.skip_naive else Naive(cfg)
    load0 = os.getloadavg()[0]
    try:
        for start in range(0, len(work), args.chunk):
            chunk = work[start:start + args.chunk]
            ours.run(chunk)
            if naive is not None:
                naive.run(chunk)
    finally:
        ours.close()
        if naive is not None:
            naive.close()
    stats = ours.stats
    print(f"(load average {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, "
          f"{os.cpu_count()} CPUs)")
    print(f"ours : {ours.seconds:.1f}s; " + describe("checks", ours.checks) + "; "
          + describe("math-verify calls", ours.mv))
    print(f"       {stats.key_hits} answers placed by key, {stats.answers_mv} needed math-verify; "
          f"{stats.number_decided} pairs told apart as numbers, {stats.form_decided} by value/form, "
          f"{stats.print_decided} by fingerprint; "
          f"{stats.mv_checks} math-verify pairs + {stats.mv_reads} readability checks "
          f"({stats.mv_cached} cached, {stats.mv_unreadable} unreadable), {stats.timeouts} timeouts; "
          f"worker time {stats.mv_seconds:.1f}s; {stats.closure_merges} clusters merged through a non-representative member")
    if naive is not None:
        print(f"naive: {naive.seconds:.1f}s; " + describe("checks", naive.checks) + "; "
              + describe("math-verify calls", naive.mv))
        print(f"       worker time {WORKER_SECONDS[0]:.1f}s")
        same = [as_partition(a, w[2]) == as_partition(b, w[2])
                for a, b, w in zip(ours.parts, naive.parts, work, strict=True)]
        print(f"ratio: {sum(naive.checks) / max(sum(ours.checks), 1):.1f}x fewer checks, "
              f"{sum(naive.mv) / max(sum(ours.mv), 1):.1f}x fewer math-verify calls, "
              f"{naive.seconds / ours.seconds:.1f}x faster")
        print(f"clusters identical in {sum(same)}/{len(same)} problems")
        for ok, w, a, b in zip(same, work, ours.parts, naive.parts, strict=True):
            if not ok:
                print(f"  differs: {w[0]}: ours {sorted(map(sorted, as_partition(a, w[2])))} "
                      f"naive {sorted(map(sorted, as_partition(b, w[2])))}")
    if args.audit_shortcuts:
        audit_shortcuts(work, cfg, ours.eq)
    if args.skip_memory:
        return
    with tempfile.TemporaryDirectory() as tmp:
        src = path
        if args.limit_problems:
            src = os.path.join(tmp, "one.jsonl")
            keep = {str(w[0]) for w in work}
            with open(path, "rb") as f, open(src, "wb") as out:
                out.writelines(line for line in f if str(orjson.loads(line)["id"]) in keep)
        big = os.path.join(tmp, "many.jsonl")
        repeated(src, big, args.repeat)
        c1, f1, s1 = peak_rss(src, args.workers, args.tokenizer)
        print(f"memory 1x : tf-cluster {c1 / 1024:.0f} MiB, tf-fuse {f1 / 1024:.0f} MiB ({s1:.0f}s)")
        cn, fn, sn = peak_rss(big, args.workers, args.tokenizer)
        print(f"memory {args.repeat}x: tf-cluster {cn / 1024:.0f} MiB, tf-fuse {fn / 1024:.0f} MiB "
              f"({sn:.0f}s)")
        print(f"ratio: tf-cluster {cn / c1:.2f}x, tf-fuse {fn / f1:.2f}x peak RSS for "
              f"{args.repeat}x the input (flat: <= 1.3x)")


if __name__ == "__main__":
    main()
