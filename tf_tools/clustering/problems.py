"""tf-cluster's core: per-problem error statistics and clusters of equivalent wrong answers.

Reads graded trajectories (tf-grade's output) grouped by id and writes one *problem summary*
per id (DESIGN §3): ``n``, ``n_correct``, ``error_rate``, ``n_error_modes``, ``entropy``,
the correct trajectories, and the fusable wrong ones grouped into clusters of mathematically
equivalent final answers (``answers.py``), largest first (ties: the smaller first
sample_idx), DESIGN §4 step 3.

What counts:

- ``ungradable`` samples are left out of N and out of the clusters (kept in ``unclustered``);
- ``no_answer`` and ``truncated`` samples count as wrong in ``error_rate`` but are never
  clustered (kept in ``unclustered``);
- only ``incorrect`` samples with an answer and ``finish_reason`` ``stop`` (or none given)
  are clustered, and only they can be fused.

Fields equal across every sample of a problem (``problem``, ``answer``, user fields) are
lifted onto the problem record; each trajectory keeps the rest of its record (always its
``sample_idx``, ``completion``, ``finish_reason``, ``pred``, ``verdict``, ``correct``, ``_tf``).
Holds one problem in memory at a time (all of them with ``unsorted``). Writes nothing.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator

from tf_tools import __version__
from tf_tools.clustering.answers import (
    ClusterConfig,
    ClusterStats,
    cluster_answers,
    entropy,
)
from tf_tools.clustering.equivalence import Equivalence
from tf_tools.errors import InputError
from tf_tools.records import group_by_id
from tf_tools.schema import (
    TF_KEY,
    VERDICTS,
    Record,
    is_failed,
    is_fusable,
    record_failed,
    sample_order,
)

#: per-sample keys that stay on each trajectory even when every sample has the same value
SAMPLE_KEYS = frozenset({"sample_idx", "completion", "finish_reason", "pred", "verdict",
                         "correct", TF_KEY})
GRADE_HINT = "run tf-grade first: tf-grade trajectories.jsonl | tf-cluster > problems.jsonl"


def summarize_problem(group: list[Record], eq: Equivalence, cfg: ClusterConfig) -> Record:
    """The problem summary of one problem's graded trajectories."""
    t0 = time.perf_counter()
    stats = eq.stats
    checks_before, mv_before = stats.checks, stats.mv_calls
    timeouts_before = stats.timeouts
    trajs = [r for _, r in sorted(enumerate(group), key=lambda p: sample_order(p[1], p[0]))]
    first = trajs[0]
    common = {k: v for k, v in first.items()
              if k not in SAMPLE_KEYS and all(k in r and r[k] == v for r in trajs[1:])}
    common[cfg.id_key] = first.get(cfg.id_key)

    def own(rec: Record) -> Record:
        return {k: v for k, v in rec.items() if k not in common}

    verdicts = Counter(r["verdict"] for r in trajs)
    stats.verdicts.update(verdicts)
    n = len(trajs) - verdicts["ungradable"]
    n_correct = verdicts["correct"]
    fusable = [r for r in trajs if is_fusable(r)]
    parts = cluster_answers([str(r["pred"]) for r in fusable], eq)
    parts.sort(key=lambda p: (-len(p), sample_order(fusable[p[0]], p[0])))
    clusters = [{"answer": fusable[p[0]]["pred"], "size": len(p),
                 "trajectories": [own(fusable[i]) for i in p]} for p in parts]
    h = entropy(len(p) for p in parts)
    fusable_ids = {id(r) for r in fusable}
    stats.problems += 1
    stats.trajectories += len(trajs)
    stats.clustered += len(fusable)
    stats.clusters += len(parts)
    stats.all_pairs += len(fusable) * (len(fusable) - 1) // 2
    out: Record = {cfg.id_key: common.pop(cfg.id_key), **common}
    out.update({
        "n": n,
        "n_correct": n_correct,
        "error_rate": (n - n_correct) / n if n else None,
        "n_error_modes": len(parts),
        "entropy": h,
        "n_clustered": len(fusable),
        "n_ungradable": verdicts["ungradable"],
        "correct": [own(r) for r in trajs if r["verdict"] == "correct"],
        "clusters": clusters,
        "unclustered": [own(r) for r in trajs
                        if r["verdict"] != "correct" and id(r) not in fusable_ids],
    })
    out[TF_KEY] = {"cluster": {
        "version": __version__, "tolerance": cfg.tolerance, "timeout": cfg.timeout,
        "math_verify": cfg.math_verify, "checks": stats.checks - checks_before,
        "math_verify_calls": stats.mv_calls - mv_before,
        "timeouts": stats.timeouts - timeouts_before,
        "seconds": round(time.perf_counter() - t0, 6),
    }}
    return out


def _missing(rec: Record, id_key: str) -> tuple[str, str | None] | None:
    """Why ``rec`` is not a graded trajectory (message, hint), or None when it is."""
    absent = [k for k in ("verdict", "pred") if k not in rec]
    if absent:
        names = " and ".join(repr(k) for k in absent)
        return (f"record has no {names} field: tf-cluster reads graded trajectories", GRADE_HINT)
    if rec["verdict"] not in VERDICTS:
        return (f"unknown verdict {rec['verdict']!r} (expected one of {', '.join(VERDICTS)})",
                GRADE_HINT)
    if id_key not in rec:
        return (f"record has no {id_key!r} field (the problem id)", "name it with --id-key")
    return None


def cluster_records(records: Iterable[Record], cfg: ClusterConfig | None = None,
                    stats: ClusterStats | None = None,
                    where: Callable[[], str] | None = None) -> Iterator[Record]:
    """One problem summary per id, in input order, holding one problem at a time.

    Records already marked failed upstream are passed on as they are. A record that is not
    a graded trajectory raises InputError naming its line (``cfg.keep_going``: it is passed
    on marked failed and its problem is summarised without it). Any exception while
    summarising a problem does the same for the problem's trajectories (``record_failed``).
    """
    cfg = cfg if cfg is not None else ClusterConfig()
    stats = stats if stats is not None else ClusterStats()
    passing: list[Record] = []
    lines: dict[int, str] = {}  # id(record) -> where it was read, until its problem is done

    def checked() -> Iterator[Record]:
        for rec in records:
            if is_failed(rec):
                stats.failed += 1
                passing.append(rec)
                continue
            problem = _missing(rec, cfg.id_key)
            if problem is None:
                if where:
                    lines[id(rec)] = where()
                yield rec
                continue
            message, hint = problem
            passing.append(record_failed(rec, "cluster", InputError(message, hint=hint),
                                         keep_going=cfg.keep_going, where=where))
            stats.failed += 1

    eq = Equivalence(cfg, stats)
    try:
        for pid, group in group_by_id(checked(), cfg.id_key, unsorted=cfg.unsorted,
                                      where=where):
            yield from passing
            passing.clear()
            at = lines.get(id(group[0]))
            try:
                summary = summarize_problem(group, eq, cfg)
            except Exception as exc:  # one bad problem never ends the run
                # its trajectories go on, each marked (or, without keep_going, the run
                # stops naming the line where the problem starts)
                at = f"{at} (problem {pid!r}, {len(group)} trajectories)" if at else None
                for rec in group:
                    passing.append(record_failed(rec, "cluster", exc,
                                                 keep_going=cfg.keep_going, where=at))
                stats.failed += len(group)
            else:
                yield summary
            for rec in group:
                lines.pop(id(rec), None)
        yield from passing
    finally:
        eq.close()
