"""A pool of math-verify worker processes with hard per-item time limits.

math-verify's own timeouts use SIGALRM: they fail in threads, cancel any outer alarm and
cannot interrupt C code (a SymPy big-integer power). So every comparison runs in a worker
process, and a worker whose current item overruns ``timeout`` seconds is killed and
replaced; the item comes back as ``("timeout", ...)`` and the worker's other queued items
are handed to its replacement. Items of one problem go to the same worker where possible,
so its gold answer is parsed once per problem, not once per sample.

Tasks reach a worker through a sender thread of its own: a pipe holds about 64 KB, and a
parent that wrote a big answer straight into the pipe of a worker stuck on a slow item
would block in ``send`` and never get to kill it (a nested 24 KB answer queued behind
``9^{9^{9^9}}`` hung tf-grade for good). The parent itself never blocks on a worker.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing as mp
import os
import queue
import signal
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

Task = tuple[int, tuple[str, ...], str | None]  # (seq, golds, pred); pred None: read the gold (worker.describe)
# (seq, status, equal, reason, seconds); for a reading task "equal" is the fingerprint
Result = tuple[int, str, Any, str, float]
READY = ("ready",)  # what a worker sends once it is warm (worker.READY)


def _context() -> Any:
    """A fork server with the worker module preloaded: cheap, clean worker restarts."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["tf_tools.answers.worker"])
    return ctx


@contextlib.contextmanager
def _parent_sys_path() -> Iterator[None]:
    """Start the fork server (on the first worker) with this process's ``sys.path``.

    The fork server runs ``python -c``, whose ``sys.path`` starts with the current folder,
    and preloads the worker module from there; a worker it forks takes the parent's
    ``sys.path`` only after that. So a ``tf_tools`` (or a ``math_verify.py``) in the folder
    tf-grade runs in was the code the workers ran, not the parent's. Here the server gets
    the parent's path through PYTHONPATH, and PYTHONSAFEPATH keeps the folder off it."""
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "PYTHONSAFEPATH")}
    os.environ["PYTHONPATH"] = os.pathsep.join(os.path.abspath(p or os.curdir) for p in sys.path)
    os.environ["PYTHONSAFEPATH"] = "1"
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def _main_hidden() -> Iterator[None]:
    """Start workers without re-running the caller's main module in them.

    The worker needs only ``tf_tools.answers.worker``; re-running ``__main__`` (what
    multiprocessing does for spawn and fork-server children) would restart a script that
    lacks an ``if __name__ == "__main__"`` guard, and fails for ``python -`` scripts."""
    main = sys.modules.get("__main__")
    saved_file = getattr(main, "__file__", None)
    saved_spec = getattr(main, "__spec__", None)
    if saved_file is not None:
        del main.__file__  # type: ignore[union-attr]
    main.__spec__ = None  # type: ignore[union-attr]
    try:
        yield
    finally:
        if saved_file is not None:
            main.__file__ = saved_file  # type: ignore[union-attr]
        main.__spec__ = saved_spec  # type: ignore[union-attr]


_STOP = object()
_LIVE: weakref.WeakSet[VerifyPool] = weakref.WeakSet()  # pools not closed yet


def _stop_fork_server() -> None:
    """Kill this process's fork server (the next worker start launches a new one): a
    worker start waiting on it fails at once instead of after its preload."""
    from multiprocessing import forkserver

    pid = getattr(forkserver._forkserver, "_forkserver_pid", None)  # noqa: SLF001
    if pid:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def prestart() -> None:
    """Launch this process's fork server now, before the caller's own start-up: it spends
    about a second importing math-verify and SymPy, which then overlaps the caller's imports
    and the first records instead of following them (``tf-grade``'s entry point calls this
    first). The server's standard output is this process's standard error, so that a
    server or worker never holds a pipe's reader (``tf-grade ... | head``) waiting; it is
    killed at exit. Any failure here only means the first pool starts it later."""
    from multiprocessing import forkserver

    _context()  # the worker module as the server's preload
    try:
        saved = os.dup(1)
    except OSError:
        return
    try:
        os.dup2(2, 1)
        with _main_hidden(), _parent_sys_path():
            forkserver.ensure_running()
    except (OSError, ValueError):
        return
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    atexit.register(_stop_fork_server)


def _kill(proc: Any) -> None:
    """SIGKILL by pid: a fork-server child whose server is gone reads as dead to
    ``Process.kill`` (its status pipe closed) while it still runs."""
    if proc.pid:
        with contextlib.suppress(OSError):
            os.kill(proc.pid, signal.SIGKILL)


class _Sender(threading.Thread):
    """Writes a worker's task batches into its pipe, so that a full pipe blocks this
    thread, not the parent. Ends at _STOP or when the worker is gone."""

    def __init__(self, conn: Connection) -> None:
        super().__init__(daemon=True, name="tf-grade-sender")
        self.conn = conn
        self.outbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.start()

    def run(self) -> None:
        while True:
            item = self.outbox.get()
            if item is _STOP:
                return
            try:
                self.conn.send(item)
            except (OSError, ValueError):
                return  # the worker was killed (or the pipe closed): nothing left to do

    def stop(self, timeout: float = 2.0) -> None:
        self.outbox.put(_STOP)
        self.join(timeout)


@dataclass
class _Worker:
    proc: Any
    conn: Connection
    sender: _Sender
    queue: deque[Task] = field(default_factory=deque)
    started: float = 0.0  # when the item at the head of the queue began
    ready: bool = False  # warmed up (math-verify imported and exercised)
    born: float = field(default_factory=time.monotonic)
    golds: set[str] = field(default_factory=set)  # the golds sent to it (it parsed them once)


#: how much longer than the shortest a queue may be and still get the tasks of a gold it parsed
AFFINITY_SLACK = 2


def _serve(conn: Connection, memory_mb: int) -> None:
    """A worker's main: ``worker.serve``, imported here in the worker (the fork server has it
    preloaded), so that the parent never imports math-verify."""
    from tf_tools.answers import worker

    worker.serve(conn, memory_mb)


class VerifyPool:
    """``background=True``: the workers start in a thread, and tasks submitted meanwhile wait
    in a backlog of the pool's own. The first start of the fork server imports math-verify
    and SymPy (about a second), which the caller spends on its own work instead of waiting
    (tf-grade's fast paths, for the records that need no SymPy)."""

    def __init__(self, workers: int = 2, timeout: float = 5.0, memory_mb: int = 4096,
                 max_queue: int = 8, background: bool = False) -> None:
        self.n = max(1, workers)
        self.timeout = timeout
        self.memory_mb = memory_mb
        self.max_queue = max_queue
        self.startup_timeout = max(60.0, timeout)
        self.n_killed = 0
        self._ctx = _context()
        self._workers: list[_Worker] = []
        self._backlog: deque[Task] = deque()
        self._starter: threading.Thread | None = None
        self._used = False  # a task was submitted
        self._aborted = False  # closed unused while starting
        _LIVE.add(self)
        if background:
            self._starter = threading.Thread(target=self._start_all, daemon=True, name="tf-grade-pool-start")
            self._starter.start()
        else:
            self._start_all()

    def _start_all(self) -> None:
        try:
            for _ in range(self.n):
                if self._aborted:
                    return
                self._workers.append(self._start())
        except Exception:  # noqa: BLE001 - _started() reports a pool that could not start
            if self._starter is None:
                raise

    def _started(self, wait_s: float = 0.0) -> bool:
        """Whether the workers exist (waiting up to ``wait_s`` for them); hands the backlog
        over once they do."""
        if self._starter is not None:
            self._starter.join(wait_s)
            if self._starter.is_alive():
                return False
            self._starter = None
            if len(self._workers) < self.n:
                raise RuntimeError("the grading workers could not be started")
        while self._backlog and self._submit(self._backlog[0]):
            self._backlog.popleft()
        return True

    def _start(self) -> _Worker:
        parent, child = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(target=_serve, args=(child, self.memory_mb), daemon=True)
        with _main_hidden(), _parent_sys_path():
            proc.start()
        child.close()
        return _Worker(proc, parent, _Sender(parent))

    # ------------------------------------------------------------------ submitting

    @property
    def outstanding(self) -> int:
        return len(self._backlog) + sum(len(w.queue) for w in self._workers)

    def submit(self, task: Task) -> bool:
        """Queue a task on the worker that parsed its gold before; False if all are full."""
        self._used = True
        if not self._started() or self._backlog:
            if len(self._backlog) >= self.max_queue * self.n:
                return False
            self._backlog.append(task)
            return True
        return self._submit(task)

    def _submit(self, task: Task) -> bool:
        """To the worker that already parsed the task's gold, unless its queue is longer than
        the shortest by more than ``AFFINITY_SLACK`` (a parse costs about one item); a new
        gold goes to the shortest queue."""
        key = "\x00".join(task[1])
        shortest = min(self._workers, key=lambda w: len(w.queue))
        target = next((w for w in self._workers if key in w.golds), shortest)
        if len(target.queue) > len(shortest.queue) + AFFINITY_SLACK or len(target.queue) >= self.max_queue:
            target = shortest
        if len(target.queue) >= self.max_queue:
            return False
        if len(target.golds) >= 100_000:
            target.golds.clear()
        target.golds.add(key)
        self._send(target, [task])
        return True

    def _send(self, w: _Worker, tasks: list[Task]) -> None:
        if not w.queue and w.ready:
            w.started = time.monotonic()
        w.queue.extend(tasks)
        w.sender.outbox.put(tasks)

    # ------------------------------------------------------------------ collecting

    def collect(self, block: float = 0.05) -> list[Result]:
        """Results that are ready (waiting up to ``block`` seconds), timeouts included."""
        if not self._started(block):
            return []
        busy = [w for w in self._workers if w.queue]
        if not busy:
            return []
        now = time.monotonic()
        soonest = min(self._deadline(w) for w in busy)
        ready = wait([w.conn for w in busy], timeout=max(0.0, min(block, soonest - now)))
        out: list[Result] = []
        for w in busy:
            if w.conn in ready:
                out.extend(self._drain(w))
        now = time.monotonic()
        for i, w in enumerate(self._workers):
            if w.queue and now > self._deadline(w):
                if w.ready:
                    out.append(self._replace(i, "timeout", f"no verdict within {self.timeout:g}s; worker killed"))
                else:
                    out.append(self._replace(i, "error", "grading worker did not start"))
        return out

    def _deadline(self, w: _Worker) -> float:
        # a worker's warm-up does not count against its first item
        return w.started + self.timeout if w.ready else w.born + self.startup_timeout

    def _drain(self, w: _Worker) -> list[Result]:
        out: list[Result] = []
        try:
            while w.conn.poll():
                res: Result = w.conn.recv()
                if res == READY:
                    w.ready = True
                    w.started = time.monotonic()
                    continue
                if w.queue and w.queue[0][0] == res[0]:
                    w.queue.popleft()
                    w.started = time.monotonic()
                    out.append(res)
        except (EOFError, OSError):
            idx = self._workers.index(w)
            out.append(self._replace(idx, "error", "grading worker died"))
        return out

    def _replace(self, idx: int, status: str, reason: str) -> Result:
        """Kill worker ``idx``; its current item fails with ``status``; the rest move on."""
        w = self._workers[idx]
        head = w.queue.popleft()
        rest = list(w.queue)
        w.proc.kill()
        w.proc.join(timeout=5)
        w.sender.stop()  # its send (if any) fails now that the worker is gone
        w.conn.close()
        self.n_killed += 1
        fresh = self._start()
        self._workers[idx] = fresh
        if rest:
            self._send(fresh, rest)
        return (head[0], status, None, reason, self.timeout if status == "timeout" else 0.0)

    def close(self) -> None:
        """Stop the workers. A pool never given a task (started ahead of need) does not wait
        for its start: its fork server, perhaps still importing math-verify, is killed with
        it (unless another pool of this process is open); the next pool starts a new one."""
        _LIVE.discard(self)
        if not self._used and not _LIVE:
            self._aborted = True
            _stop_fork_server()
            while self._starter is not None and self._starter.is_alive():
                _stop_fork_server()  # (again, if the start had not launched it yet)
                self._starter.join(0.02)
        if self._starter is not None:
            self._starter.join()
        for w in self._workers:
            if not self._used:
                _kill(w.proc)
            elif w.queue:
                w.proc.kill()
            else:
                w.sender.outbox.put(None)  # the worker's own signal to end
        for w in self._workers:
            w.proc.join(timeout=2)
            if w.proc.is_alive():
                w.proc.kill()
            w.sender.stop()
            w.conn.close()

    def __enter__(self) -> VerifyPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
