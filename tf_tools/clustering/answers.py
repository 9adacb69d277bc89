"""Clusters of equivalent answers, without comparing all pairs and mostly without SymPy.

A candidate answer (in sample order) is placed by, in turn:

1. its canonical key (normalised text, or the exact value of a number: ``1/2``,
   ``\\frac{1}{2}`` and ``0.5`` share one) looked up in a dict: equal keys imply equal;
2. one representative per existing cluster: two different exact numbers are different
   without a call; otherwise ``fast_equal`` (both ways round); a pair it cannot decide is
   told apart by its *form* when it can be (two constants with different values,
   ``answers/values.py``, or plain words against a constant), and only the rest goes to
3. math-verify, in the killable ``VerifyPool`` (never SymPy in this process), after checking
   once per answer that math-verify can read it at all (one it cannot read equals nothing
   through math-verify, so its pairs need no call). Pair results are cached for the run. A
   comparison that times out or fails counts as "not equal" and is counted.

The representative plays the gold's part in every math-verify comparison (it is the
earlier sample). This module decides which pairs to compare; ``Equivalence``
(``equivalence.py``) decides one pair (steps 2 and 3) and keeps the readability checks and
the caches. Plain-text math is read as LaTeX first (``answers.values.latexify``); canonical
keys, forms and ``fast_decision`` are in ``tf_tools.answers.forms``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

from tf_tools.answers.forms import Form, canonical_key, form_of, forms_differ
from tf_tools.answers.values import latexify
from tf_tools.clustering.equivalence import Equivalence


@dataclass(frozen=True)
class ClusterConfig:
    id_key: str = "id"
    unsorted: bool = False
    tolerance: float = 1e-6
    workers: int = 2
    timeout: float = 5.0  # seconds per math-verify comparison; then the worker is killed
    memory_mb: int = 4096
    math_verify: bool = True  # False: pairs the fast paths cannot decide count as different
    shortcuts: bool = True  # False: no decisions by value / form (every undecided pair to math-verify)
    keep_going: bool = False


@dataclass
class ClusterStats:
    problems: int = 0
    trajectories: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    clustered: int = 0  # answers clustered
    clusters: int = 0
    key_hits: int = 0  # answers placed by the canonical key, no comparison
    answers_mv: int = 0  # answers whose placement needed math-verify
    checks: int = 0  # answer pairs compared (fast_equal; math-verify when it cannot decide)
    number_decided: int = 0  # pairs of two different exact numbers: not compared at all
    form_decided: int = 0  # pairs fast_equal could not decide, told apart by value or form
    mv_checks: int = 0  # pairs compared by math-verify (in the pool)
    mv_cached: int = 0  # pairs math-verify had already compared earlier in the run
    mv_reads: int = 0  # answers checked once for whether math-verify can read them
    mv_unreadable: int = 0  # pairs settled: math-verify cannot read one side
    print_decided: int = 0  # pairs settled: fingerprints far apart (see Equivalence)
    timeouts: int = 0  # math-verify calls that ran out of time (= not equal)
    mv_failures: int = 0  # math-verify crashed (= not equal)
    mv_seconds: float = 0.0  # worker time spent in math-verify
    all_pairs: int = 0  # what naive all-pairs clustering would compare
    closure_merges: int = 0  # clusters merged through a member that is not the representative
    failed: int = 0

    @property
    def mv_calls(self) -> int:
        """Every task sent to math-verify: pair comparisons and readability checks."""
        return self.mv_checks + self.mv_reads

    def summary_lines(self) -> list[str]:
        """The run for a reader (tf-cluster prints it on stderr); none for no problems."""
        if not self.problems:
            return []
        v = self.verdicts
        parts = ", ".join(f"{k} {v[k]}" for k in ("correct", "incorrect", "no_answer", "truncated",
                                                  "ungradable") if v[k])
        return [
            f"{self.problems} problems, {self.trajectories} trajectories ({parts})",
            f"clustered {self.clustered} wrong answers into {self.clusters} clusters; "
            f"{self.key_hits} placed by canonical key, {self.answers_mv} needed math-verify",
            f"{self.checks} pair checks (all pairs: {self.all_pairs}), {self.number_decided} more "
            f"told apart as different numbers, {self.form_decided} by value or form and "
            f"{self.print_decided} by fingerprint; "
            f"math-verify: {self.mv_checks} pairs, {self.mv_reads} readability checks, "
            f"{self.timeouts} timeouts",
        ]


def cluster_answers(preds: list[str], eq: Equivalence) -> list[list[int]]:
    """Partition ``preds`` (in sample order) into clusters of equivalent answers.

    Returns lists of indices into ``preds`` in order of creation; each cluster's first
    member is its representative. Plain-text math is read as LaTeX first (``latexify``);
    answers with the same canonical key are one candidate.
    Each candidate is compared with the representatives of the clusters before it (and, to
    keep the math-verify workers busy, with the at most ``2 * workers`` earlier candidates
    still waiting for math-verify, any of which may become a representative); it joins the
    first cluster, in creation order, whose representative equals it (a fast "equal" wins
    at once), else it starts one. That is the partition of comparing all pairs whenever
    equivalence is transitive; ``_close`` then merges the clusters that a non-representative
    member links, so the result is the connected components of "equal" over all pairs even
    where lenient readings make it not transitive.
    """
    run = _Placement(preds, eq)
    for i in range(len(run.texts)):
        while run.added - run.done >= run.window:
            run.absorb()
            run.place()
        run.add(i)
    while not run.place():
        run.absorb()
    if run.pending:
        run.absorb()  # comparisons the placement did not need may still run: the closure uses them
    final = [c for c in run.cluster_of if c is not None]
    _close(final, len(run.reps), run.texts, run.forms, run.known, run.pending, eq)
    merged: dict[int, list[int]] = {}
    for g, c in zip(run.groups, final, strict=True):
        merged.setdefault(c, []).extend(g)
    return sorted((sorted(m) for m in merged.values()), key=lambda m: m[0])


class _Placement:
    """The representative pass of ``cluster_answers`` over one problem's candidates.

    Candidates are added in order (``add``) and placed in order (``place``) as soon as the
    comparisons their placement needs are known; math-verify answers arrive through
    ``absorb``. Candidate ``i`` either follows an earlier one it is fast-equal to
    (``follows``), or joins a cluster (``cluster_of``), or starts one (``reps``).
    """

    def __init__(self, preds: list[str], eq: Equivalence) -> None:
        self.eq = eq
        latex = [latexify(p) for p in preds]  # math-verify misreads plain-text roots
        members: dict[Hashable, list[int]] = {}
        for i, text in enumerate(latex):
            members.setdefault(canonical_key(text), []).append(i)
        self.groups = list(members.values())  # distinct candidates, in order of first appearance
        eq.stats.key_hits += len(preds) - len(self.groups)
        self.texts = [latex[g[0]] for g in self.groups]
        self.forms = [form_of(t) for t in self.texts]
        self.cluster_of: list[int | None] = [None] * len(self.groups)
        self.follows: list[int | None] = [None] * len(self.groups)  # fast-equal to an earlier candidate
        self.pending: dict[tuple[int, int], int] = {}  # (earlier, later) -> math-verify ticket
        self.known: dict[tuple[int, int], bool] = {}  # (earlier, later) -> decided equal?
        self.ready: dict[int, bool] = {}  # math-verify answers not yet matched to a pair
        self.reps: list[int] = []  # candidates that started a cluster, in creation order
        self.window = 2 * max(1, eq.cfg.workers)
        self.prefetched = False
        self.added = 0  # candidates [0, added) are compared with what came before them
        self.done = 0  # candidates [0, done) are placed

    def add(self, i: int) -> None:
        """Compare candidate ``i`` with those before it, send math-verify what it must decide."""
        needs_mv = self._compare(i)
        if needs_mv:
            self._send(i, needs_mv)
        self.added += 1
        self.place()

    def _compare(self, i: int) -> list[int]:
        """The earlier candidates only math-verify can tell ``i`` apart from; [] also when a
        fast "equal" places ``i`` at once."""
        eq, stats, forms, texts = self.eq, self.eq.stats, self.forms, self.texts
        # representatives, then the waiting candidates that may still become one
        earlier = self.reps + [k for k in range(self.done, self.added)
                               if self.cluster_of[k] is None and self.follows[k] is None]
        needs_mv: list[int] = []
        for j in earlier:
            if forms[i].exact is not None and forms[j].exact is not None:
                stats.number_decided += 1  # different exact numbers (equal ones share a key)
                continue
            verdict = eq.fast(texts[j], texts[i])
            if verdict:
                if self.cluster_of[j] is not None:
                    self.cluster_of[i] = self.cluster_of[j]
                else:
                    self.follows[i] = j
                return []
            if verdict is None:
                if eq.cfg.shortcuts and forms_differ(forms[j], forms[i]):
                    stats.form_decided += 1
                else:
                    needs_mv.append(j)
        return needs_mv

    def _send(self, i: int, needs_mv: list[int]) -> None:
        self.eq.stats.answers_mv += 1
        if not self.prefetched:
            self.eq.prefetch(self.texts)
            self.prefetched = True
        for j in needs_mv:
            answer, ticket = self.eq.submit(self.texts[j], self.texts[i])
            if answer is None:
                self.pending[(j, i)] = ticket
            else:
                self.known[(j, i)] = answer

    def place(self) -> bool:
        """Place candidates in order while their comparisons are known; False if waiting."""
        while self.done < self.added:
            i = self.done
            leader = self.follows[i]
            if leader is not None:
                self.cluster_of[i] = self.cluster_of[leader]
            elif self.cluster_of[i] is None:
                for c, j in enumerate(self.reps):
                    if (j, i) in self.pending:
                        return False
                    if self.known.get((j, i)):
                        self.cluster_of[i] = c
                        break
                else:
                    self.cluster_of[i] = len(self.reps)
                    self.reps.append(i)
            self.done += 1
        return True

    def absorb(self) -> None:
        """Take the math-verify answers finished so far (waiting briefly for one)."""
        self.ready.update(self.eq.results())
        for pair, ticket in list(self.pending.items()):
            if ticket in self.ready:
                self.known[pair] = self.ready.pop(ticket)
                del self.pending[pair]


class DisjointSets:
    """Union-find over ``0 .. n-1`` with path halving."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        """The root of ``x``'s set."""
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def join(self, a: int, b: int) -> None:
        """Merge ``b``'s set into ``a``'s (``a``'s root stays the root)."""
        self.parent[self.find(b)] = self.find(a)


def _close(cluster_of: list[int], n_clusters: int, texts: list[str], forms: list[Form],
           known: dict[tuple[int, int], bool], running: dict[tuple[int, int], int],
           eq: Equivalence) -> None:
    """Merge clusters that any cross pair of candidates joins (in place: ``cluster_of``).

    The representative pass gives the all-pairs partition when equivalence is transitive;
    lenient readings are not ("6" = "≤ 6" = "6 or less", but "6" != "6 or less"). A cluster
    with several distinct candidates ("9" and "3 * 3 = 9") can meet another cluster through
    a member that is not its representative, so those members are compared with the
    candidates of every other cluster (pairs already decided, two exact numbers, and
    clusters already merged are skipped), and linked clusters merge: the connected
    components of "equal", as comparing all pairs would give. Clusters of one distinct
    candidate, the common case, cost nothing here.
    """
    members: list[list[int]] = [[] for _ in range(n_clusters)]
    for g, c in enumerate(cluster_of):
        members[c].append(g)
    extra = [g for m in members for g in m[1:]]  # distinct candidates that are not representatives
    if not extra:
        return
    sets = DisjointSets(n_clusters)
    pairs = sorted({(min(a, b), max(a, b)) for a in extra for b in range(len(texts))
                    if cluster_of[a] != cluster_of[b]})
    waiting: dict[int, tuple[int, int]] = {}  # math-verify ticket -> pair
    for j, i in pairs:
        if sets.find(cluster_of[j]) == sets.find(cluster_of[i]):
            continue
        equal, ticket = _closure_pair(j, i, texts, forms, known, running, eq)
        if equal:
            sets.join(cluster_of[j], cluster_of[i])
        elif equal is None:
            waiting[ticket] = (j, i)
    while waiting:
        for ticket, same in eq.results().items():
            pair = waiting.pop(ticket, None)
            if pair is not None and same:
                sets.join(cluster_of[pair[0]], cluster_of[pair[1]])
    eq.stats.closure_merges += sum(1 for c in range(n_clusters) if sets.find(c) != c)
    for g, c in enumerate(cluster_of):
        cluster_of[g] = sets.find(c)


def _closure_pair(j: int, i: int, texts: list[str], forms: list[Form],
                  known: dict[tuple[int, int], bool], running: dict[tuple[int, int], int],
                  eq: Equivalence) -> tuple[bool | None, int]:
    """Whether candidates ``j < i`` are equal, as ``Equivalence.submit`` says it:
    ``(equal, -1)`` when decided, ``(None, ticket)`` while math-verify compares them."""
    if (j, i) in known:  # math-verify answered in the first pass (a fast "equal" won there)
        return known[(j, i)], -1
    if (j, i) in running:  # sent in the first pass, answer not needed there: wait for it
        return None, running[(j, i)]
    if forms[i].exact is not None and forms[j].exact is not None:
        return False, -1  # two different exact numbers
    verdict = eq.fast(texts[j], texts[i])
    if verdict is not None:
        return verdict, -1
    if eq.cfg.shortcuts and forms_differ(forms[j], forms[i]):
        return False, -1
    return eq.submit(texts[j], texts[i])


def entropy(sizes: Iterable[int]) -> float:
    """Shannon entropy in nats of the distribution given by cluster sizes (0 for none)."""
    sizes = [s for s in sizes if s > 0]
    total = sum(sizes)
    if not total:
        return 0.0
    return -sum(s / total * math.log(s / total) for s in sizes) + 0.0
