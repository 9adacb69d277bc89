"""The ``Report``: tell what each record is, route it to its kind's accumulator, group by a field.

A record is, by the fields it has (DESIGN §3), checked in this order:

| kind | recognised by | written by |
|---|---|---|
| ``samples`` | ``messages`` | tf-fuse (or any chat data set) |
| ``problems`` | ``clusters`` and ``n_correct`` | tf-cluster |
| ``graded`` | ``verdict`` | tf-grade |
| ``loss`` | ``step`` and ``loss`` | tf-train's ``RUN/loss.jsonl`` |
| (manifest) | ``loss_log`` | tf-train's stdout: its loss log is read instead |
| ``trajectories`` | ``completion`` | tf-sample |

Several kinds may arrive in one stream (``tf-stats run/*.jsonl``); each gets its own
section. Records marked failed upstream (``_tf.error``) are counted, not summarised.
``--by FIELD`` splits every section by the value of a field (a dotted path reaches into
objects: ``source.model``); loss logs are split by run instead.

A record that cannot be summarised (any exception its accumulator raises, or an unreadable
line) goes through ``schema.record_failed``: it stops the run with one line naming its file
and line, or under ``keep_going`` is counted ``bad`` and left out (the first few are listed
with their error) while the rest is summarised. Accumulators check a record before they
change anything, so a bad record leaves no trace in the numbers.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import orjson

from tf_tools.errors import InputError
from tf_tools.models import load_counter
from tf_tools.schema import TF_KEY, Record, error_where, failed_by, guarded, is_failed, kind_of
from tf_tools.stats.problems import ProblemStats
from tf_tools.stats.training import LossStats, TrainingSampleStats
from tf_tools.stats.trajectories import GradedStats, TrajectoryStats

KINDS = ("trajectories", "graded", "problems", "samples", "loss")
LOSS_LOG = "loss.jsonl"  # tf_tools.training.checkpoints.LOSS_LOG (not imported: it pulls torch paths)
NONE = "(none)"
STEP = "stats"  # _tf.error.step of the records tf-stats could not summarise
SHOWN_BAD = 10  # bad records listed (with their error) in the report


@dataclass(frozen=True)
class StatsConfig:
    by: str | None = None  # group by this field (dotted path)
    id_key: str = "id"
    tolerance: float = 1e-6  # for grouping wrong answers in maj@k
    tokenizer: str | None = None  # token counts of training samples: None = tf-fuse's approximation
    keep_going: bool = False  # a record that cannot be summarised is counted bad, not fatal


def field_value(rec: dict[str, Any], path: str) -> str:
    """The value of ``path`` in ``rec`` as a group name; a dotted path reaches into objects."""
    if path in rec:
        value = rec[path]
    else:
        value = rec
        for part in path.split("."):
            if not isinstance(value, dict) or part not in value:
                return NONE
            value = value[part]
    if value is None:
        return NONE
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def resolve_inputs(paths: Sequence[str]) -> list[str]:
    """A training run folder stands for its loss log (``RUN/loss.jsonl``)."""
    out = []
    for p in paths:
        if p != "-" and os.path.isdir(p):
            log = os.path.join(p, LOSS_LOG)
            if not os.path.isfile(log):
                raise InputError(f"{p} is a folder without a {LOSS_LOG}",
                                 hint="give JSONL files, or the run folder tf-train wrote (-o)")
            p = log
        out.append(p)
    return out


def run_name(path: str) -> str:
    """runs/tf/loss.jsonl -> runs/tf; other.jsonl -> other.jsonl (a path: see run_labels)."""
    if path in ("-", "<stdin>"):
        return "loss"
    if os.path.basename(path) == LOSS_LOG:
        return os.path.dirname(path) or "."
    return path


def run_labels(names: Sequence[str]) -> dict[str, str]:
    """What a reader calls each run: the name of its folder (``/work/runs/model.rft`` ->
    ``model.rft``), with as many parent folders as it takes to tell the runs apart
    (``a/model.rft`` and ``b/model.rft``)."""
    parts = {n: Path(os.path.abspath(n)).parts[1:] or (n,) for n in names}
    depth = dict.fromkeys(names, 1)
    while True:
        labels = {n: "/".join(parts[n][-depth[n]:]) for n in names}
        seen = Counter(labels.values())
        clash = [n for n in names if seen[labels[n]] > 1 and depth[n] < len(parts[n])]
        if not clash:
            return labels
        for n in clash:
            depth[n] += 1


def natural_key(name: str) -> list[Any]:
    """"Level 2" before "Level 10"; "(none)" last."""
    parts = re.split(r"(\d+)", name)
    return [name == NONE, *((0, int(p)) if p.isdigit() else (1, p) for p in parts)]


class Section:
    """One kind's accumulators: everything together (``all``) and one per group."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make
        self.all = make()
        self.groups: dict[str, Any] = {}

    def add(self, rec: dict[str, Any], pos: int, group: str | None, where: str | None) -> None:
        if group is None:
            self.all.add(rec, pos, where)
            return
        acc = self.groups.get(group)
        if acc is None:
            acc = self.make()
        self.all.add(rec, pos, where)
        acc.add(rec, pos, where)
        self.groups[group] = acc  # a group appears with the first record that made it in


class Report:
    """What tf-stats found in its input: a section per kind of record."""

    def __init__(self, cfg: StatsConfig | None = None) -> None:
        self.cfg = cfg if cfg is not None else StatsConfig()
        self.records = 0
        self.failed = 0  # marked failed upstream (_tf.error)
        self.bad = 0  # could not be summarised here (only with keep_going)
        self.bad_records: list[dict[str, str]] = []  # the first SHOWN_BAD: where, error
        self.sections: dict[str, Section] = {}
        self.runs: dict[str, LossStats] = {}  # loss logs, by run path (run_labels names them)
        self._counter: Any = None

    def _section(self, kind: str) -> Section:
        """The kind's section; a new one is registered by ``_add`` once a record made it in."""
        if kind not in self.sections:
            cfg = self.cfg
            make: Callable[[], Any] = {
                "trajectories": lambda: TrajectoryStats(cfg.id_key),
                "graded": lambda: GradedStats(cfg.id_key, cfg.tolerance),
                "problems": lambda: ProblemStats(cfg.id_key, cfg.tolerance),
                "samples": lambda: TrainingSampleStats(cfg.id_key, self.counter()),
            }[kind]
            return Section(make)
        return self.sections[kind]

    def counter(self) -> Any:
        if self._counter is None:
            self._counter = load_counter(self.cfg.tokenizer)
        return self._counter

    def add(self, rec: dict[str, Any], where: str | None = None, source: str | None = None) -> None:
        """Summarise one record. One that cannot be (any exception) goes through
        ``record_failed``: an ``InputError`` naming ``where``, or with ``keep_going`` counted
        ``bad`` and left out."""
        pos = self.records
        self.records += 1
        log = self._guarded(rec, where, partial(self._add, rec, pos, where, source))
        if log is not None:
            self._read_loss_log(*log)

    def _guarded(self, rec: Record, where: str | None, work: Callable[[], Any]) -> Any:
        """``work()`` on one record, whatever it raises going through ``record_failed``."""
        if is_failed(rec):
            if failed_here(rec):  # a line the reader could not parse (keep_going)
                self._count_bad(rec)
            else:
                self.failed += 1
            return None
        result, failed = guarded(rec, STEP, work, keep_going=self.cfg.keep_going, where=where)
        if failed is not None:
            self._count_bad(failed)
        return result

    def _count_bad(self, rec: Record) -> None:
        self.bad += 1
        if len(self.bad_records) < SHOWN_BAD:
            self.bad_records.append(bad_entry(rec))

    def _add(self, rec: Record, pos: int, where: str | None,
             source: str | None) -> tuple[str, str] | None:
        """Route a record to its accumulator; a manifest returns the loss log it names."""
        kind = kind_of(rec)
        if kind is None:
            raise InputError(
                "cannot tell what this record is: it has none of 'completion' (trajectory), "
                "'verdict' (graded), 'clusters' (problem summary), 'messages' (training sample), "
                "'step'+'loss' (loss log)", where,
                "tf-stats reads the output of tf-sample, tf-grade, tf-cluster, tf-fuse or tf-train")
        if kind == "loss":
            self.run(run_name(source or "-")).add(rec, pos, where)
        elif kind == "manifest":
            return self._manifest_log(rec, where)
        else:
            group = field_value(rec, self.cfg.by) if self.cfg.by else None
            section = self._section(kind)
            section.add(rec, pos, group, where)
            self.sections[kind] = section
        return None

    def run(self, name: str) -> LossStats:
        name = os.path.normpath(name)
        if name not in self.runs:
            self.runs[name] = LossStats()
        return self.runs[name]

    def _manifest_log(self, rec: Record, where: str | None) -> tuple[str, str]:
        """tf-train's manifest stands for its loss log: (path, run name)."""
        path = str(rec["loss_log"])
        if not os.path.isfile(path):
            raise InputError(f"the loss log {path} named by tf-train's manifest does not exist", where,
                             "run tf-stats where tf-train ran, or give the run folder itself")
        return path, str(rec.get("run") or run_name(path))

    def _read_loss_log(self, path: str, name: str) -> None:
        # each line of the log is a record of its own, named by its own file and line
        from tf_tools.records import JsonlReader

        reader = JsonlReader([path], keep_going=self.cfg.keep_going, step=STEP)
        stats = self.run(name)
        for i, line in enumerate(reader):
            at = reader.where()
            self._guarded(line, at, partial(stats.add, line, i, at))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"records": self.records, "failed": self.failed, "bad": self.bad}
        if self.bad_records:
            out["bad_records"] = self.bad_records
        for kind in KINDS:
            if kind == "loss":
                if self.runs:
                    labels = run_labels(list(self.runs))
                    out["loss"] = {"runs": {labels[name]: {**s.summary(), "path": name}
                                            for name, s in self.runs.items()}}
                continue
            section = self.sections.get(kind)
            if section is None:
                continue
            entry: dict[str, Any] = {"all": section.all.summary()}
            if self.cfg.by:
                entry["by"] = self.cfg.by
                entry["groups"] = {g: section.groups[g].summary()
                                   for g in sorted(section.groups, key=natural_key)}
            out[kind] = entry
        return out


def failed_here(rec: Record) -> bool:
    """Marked failed by tf-stats itself (its reader's unparsable lines), not upstream: tf-stats
    writes no records, so no upstream step is called ``stats``."""
    return failed_by(rec, STEP)


def bad_entry(rec: Record) -> dict[str, str]:
    """Where a record marked failed by tf-stats was, and its error, for the report."""
    error = rec[TF_KEY]["error"]
    return {"where": error_where(error), "error": str(error.get("message"))}


def summarize(records: Iterable[dict[str, Any]], cfg: StatsConfig | None = None,
              where: Callable[[], str] | None = None,
              source: Callable[[], str] | None = None) -> Report:
    """Read every record and return the report (``Report.to_dict()`` for JSON).

    ``where`` names the current line for error messages; ``source`` names the current input
    file (loss logs of different runs are told apart by it). A record that cannot be
    summarised stops with an ``InputError`` naming ``where``, or with ``cfg.keep_going`` is
    counted in ``report.bad`` (the first few with their error in ``report.bad_records``).
    """
    report = Report(cfg)
    for rec in records:
        report.add(rec, where() if where else None, source() if source else None)
    return report
