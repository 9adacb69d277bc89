"""Answer equivalence for tf-cluster, one pair at a time: ``Equivalence`` (below).

It does not choose which pairs to compare: ``answers.py`` (``cluster_answers``) does.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from tf_tools.answers.forms import fast_decision
from tf_tools.answers.pool import VerifyPool

if TYPE_CHECKING:  # annotations only: answers.py imports this module
    from tf_tools.clustering.answers import ClusterConfig, ClusterStats


class Equivalence:
    """Answer equivalence for clustering: fast paths here, math-verify in a killable pool.

    math-verify comparisons are asynchronous (``submit`` / ``results``) so that the
    clustering can keep every worker busy. Before a problem's pairs are submitted, each of
    its non-numeric answers is checked once per run (``prefetch``) for whether math-verify
    reads a SymPy expression from it: one it cannot read ("___", "Cannot be determined")
    equals nothing through math-verify, as gold ("gold does not parse") or as prediction (a
    string never equals an expression), so its pairs need no call. Pair results are cached.
    """

    def __init__(self, cfg: ClusterConfig, stats: ClusterStats, cache_size: int = 100_000) -> None:
        self.cfg = cfg
        self.stats = stats
        self.cache_size = cache_size
        self._pool: Any = None
        self._seq = 0
        self._readable: OrderedDict[str, bool] = OrderedDict()
        self._pairs: OrderedDict[tuple[str, str], bool] = OrderedDict()
        self._reading: dict[int, str] = {}  # seq -> answer being checked for readability
        self._comparing: dict[int, tuple[str, str]] = {}  # seq -> pair being compared
        self._ready: dict[int, bool] = {}

    def fast(self, rep: str, cand: str) -> bool | None:
        self.stats.checks += 1
        return fast_decision(rep, cand, self.cfg.tolerance)

    def prefetch(self, answers: Iterable[str]) -> None:
        """Check, in parallel and once per run, whether math-verify can read each answer."""
        if not self.cfg.math_verify:
            return
        for answer in dict.fromkeys(a for a in answers if a not in self._readable):
            self.stats.mv_reads += 1
            self._reading[self._send(answer, answer)] = answer
        while self._reading:
            self._collect()

    def submit(self, rep: str, cand: str) -> tuple[bool | None, int]:
        """(answer, -1) when no call is needed, else (None, ticket) for ``results``."""
        if not self.cfg.math_verify:
            return False, -1
        if not (self._readable.get(rep, True) and self._readable.get(cand, True)):
            self.stats.mv_unreadable += 1
            return False, -1
        cached = self._pairs.get((rep, cand))
        if cached is not None:
            self.stats.mv_cached += 1
            return cached, -1
        self.stats.mv_checks += 1
        ticket = self._send(rep, cand)
        self._comparing[ticket] = (rep, cand)
        return None, ticket

    def results(self) -> dict[int, bool]:
        """Comparisons finished since the last call (waiting briefly for one): ticket -> equal."""
        if not self._ready and self._comparing:
            self._collect()
        ready, self._ready = self._ready, {}
        return ready

    def _send(self, gold: str, pred: str) -> int:
        if self._pool is None:
            self._pool = VerifyPool(self.cfg.workers, self.cfg.timeout, self.cfg.memory_mb)
        seq = self._seq
        self._seq += 1
        while not self._pool.submit((seq, (gold,), pred)):
            self._collect()
        return seq

    def _collect(self) -> None:
        for seq, status, equal, _reason, seconds in self._pool.collect(block=0.05):
            self.stats.timeouts += status == "timeout"
            self.stats.mv_seconds += seconds
            if seq in self._reading:
                # a timeout or crash says nothing about readability: compare as usual
                answer = self._reading.pop(seq)
                _remember(self._readable, answer, status != "gold_unparseable", self.cache_size)
                continue
            pair = self._comparing.pop(seq, None)
            if pair is None:
                continue
            self.stats.mv_failures += status not in ("ok", "timeout")
            same = status == "ok" and bool(equal)
            _remember(self._pairs, pair, same, self.cache_size)
            self._ready[seq] = same

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


def _remember(cache: OrderedDict, key: Any, value: bool, size: int) -> None:
    cache[key] = value
    if len(cache) > size:
        cache.popitem(last=False)
