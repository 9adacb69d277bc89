"""-o and --resume for every tf-* command: ``open_output`` gives a command its writer and
what an earlier run already wrote there (``Destination``), so no command holds resume logic
of its own. It does not read inputs or write records itself (``tf_tools.records``).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tf_tools import console
from tf_tools.schema import Record

if TYPE_CHECKING:
    from tf_tools.records import JsonlWriter


@dataclass
class Destination:
    """Where a command writes (``writer``), and what an earlier run already wrote there."""

    writer: JsonlWriter
    skip: Callable[[Iterable[Record]], Iterator[Record]]  # drops the input already done
    done_ids: set[Hashable] = field(default_factory=set)  # problems complete (per-problem output)
    n_done: int = 0  # records or problems already written: where the progress bar starts


def open_output(path: str | None, resume: bool, what: str, *, id_key: str = "id",
                per_record: bool = False,
                problem_size: int | Callable[[Record], int] | None = None,
                redo_last: bool = False, stdout: Any = None) -> Destination:
    """``-o``/``--resume`` for every command; ``what`` names the done units in the message
    (``"records already graded"``). The three ways an output file grows:

    - ``per_record`` (tf-grade): one output line per input record, keyed by
      (id, ``sample_idx``); the input records already written are skipped, repeats counted;
    - per problem (tf-cluster): the lines of one id are written together; the input of the
      ids already in the file is skipped. ``redo_last`` (tf-fuse, several samples per
      problem): the last problem of a killed run may be cut short, so it is always redone
      (fusing is cheap and seeded per problem: the redone samples are the same);
    - ``problem_size`` N (tf-sample): a problem is done when it has N lines (N may be a
      function of its first line: samples planned per problem); a shorter last group is cut
      off and redone, and the core skips the done ids itself (``done_ids``: it gives
      problems without an id theirs).
    """
    from tf_tools.records import JsonlWriter, skip_done, skip_ids

    key: Callable[[Record], Hashable]
    if per_record:
        def key(r: Record) -> Hashable:
            return (r.get(id_key), r.get("sample_idx"))
    else:
        def key(r: Record) -> Hashable:
            return r.get(id_key)
    complete: Callable[[list[Record]], bool] | None = None
    size: Callable[[Record], int] | None = None
    if problem_size is not None:
        size = problem_size if callable(problem_size) else lambda _r, n=problem_size: n

        def complete(group: list[Record]) -> bool:
            return len(group) >= size(group[0])
    elif redo_last:
        def complete(group: list[Record]) -> bool:
            return False
    writer = JsonlWriter(path, resume=resume, key=key, group_complete=complete, stdout=stdout)
    if per_record:
        out = Destination(writer, lambda records: skip_done(records, writer.done, key),
                     n_done=sum(writer.done.values()))
    else:
        first: dict[Hashable, Record] = {}
        for rec in writer.kept if size is not None else ():
            first.setdefault(key(rec), rec)
        done = {k for k, c in writer.done.items() if size is None or c >= size(first[k])}
        out = Destination(writer, lambda records: skip_ids(records, done, id_key), done, len(done))
    if out.n_done:
        console.info(f"resuming: {out.n_done} {what}")
    return out
