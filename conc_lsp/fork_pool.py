"""The command line's worker processes on Linux: forks of this process that
serve jobs on a pair of pipes (``processes.serve``, the loop the server's
workers run), so that a worker starts with every module this process loaded.

multiprocessing and concurrent.futures cost about 25 ms to import and more
to start (a manager thread, queues with feeder threads); on a two-core run
of `check` over trio and anyio that is a tenth of the time the second core
saves. A fork and two pipes cost about a millisecond.
"""

from __future__ import annotations

import contextlib
import gc
import os
import pickle
import select
import signal
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from conc_lsp.processes import FRAME, serve

Result = TypeVar("Result")
AHEAD = 2  # jobs sent to a worker before it answers, so that it never waits for one


class WorkerDied(RuntimeError):
    """A worker ended before it answered (killed, or out of memory)."""


@dataclass(slots=True)
class _Worker:
    pid: int
    jobs: int  # the write end of its job pipe
    replies: int  # the read end of its reply pipe
    pending: list[int] = field(default_factory=list)  # jobs sent, not yet answered


def run_forked(
    function: Callable[..., Result], jobs: Sequence[tuple[Any, ...]], workers: int
) -> Iterator[tuple[int, Result]]:
    """``function(*jobs[i])`` in ``workers`` forked processes: (i, result) pairs as
    they finish. An exception a job raised is raised here; so is WorkerDied."""
    started: list[_Worker] = []
    waiting = iter(range(len(jobs)))
    try:
        # Frozen while forking: the workers' collections then leave the pages they
        # inherit shared. Thawed at once here, where frozen garbage would never go.
        gc.freeze()
        try:
            for _ in range(min(workers, len(jobs))):
                started.append(_fork(started))
        finally:
            gc.unfreeze()
        for _ in range(AHEAD):
            for worker in started:
                _send_next(worker, function, jobs, waiting)
        by_reply = {worker.replies: worker for worker in started}
        while any(worker.pending for worker in started):
            ready, _, _ = select.select([w.replies for w in started if w.pending], [], [])
            for reply in ready:
                worker = by_reply[reply]
                index, (ok, value) = _receive(worker)
                if not ok:
                    raise value if isinstance(value, BaseException) else RuntimeError(value)
                _send_next(worker, function, jobs, waiting)
                yield index, value
    finally:
        _stop(started)


def _fork(siblings: list[_Worker]) -> _Worker:
    job_read, job_write = os.pipe()
    reply_read, reply_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker: serve until the job pipe ends, never return
        status = 0
        try:
            os.close(job_write)
            os.close(reply_read)
            for sibling in siblings:
                os.close(sibling.jobs)
                os.close(sibling.replies)
            with os.fdopen(job_read, "rb") as jobs, os.fdopen(reply_write, "wb") as replies:
                serve(jobs, replies)
        except BaseException:  # noqa: BLE001 - Ctrl-C or a dead parent: just end
            status = 1
        finally:
            os._exit(status)  # not the parent's atexit handlers and buffers
    os.close(job_read)
    os.close(reply_write)
    return _Worker(pid, job_write, reply_read)


def _send_next(
    worker: _Worker,
    function: Callable[..., Any],
    jobs: Sequence[tuple[Any, ...]],
    waiting: Iterator[int],
) -> None:
    index = next(waiting, None)
    if index is None:
        return
    body = pickle.dumps((function, jobs[index]))
    worker.pending.append(index)
    try:
        _write_all(worker.jobs, FRAME.pack(index, len(body)) + body)
    except BrokenPipeError as error:
        raise WorkerDied(f"a worker (pid {worker.pid}) ended before it answered") from error


def _receive(worker: _Worker) -> tuple[int, tuple[bool, Any]]:
    header = _read_exactly(worker, FRAME.size)
    index, length = FRAME.unpack(header)
    reply = pickle.loads(_read_exactly(worker, length))
    worker.pending.remove(index)
    return index, reply


def _read_exactly(worker: _Worker, size: int) -> bytes:
    # Unbuffered: a buffer could hold the next reply where select() cannot see it.
    parts: list[bytes] = []
    while size:
        data = os.read(worker.replies, min(size, 1 << 20))
        if not data:
            raise WorkerDied(f"a worker (pid {worker.pid}) ended before it answered")
        parts.append(data)
        size -= len(data)
    return b"".join(parts)


def _write_all(descriptor: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(descriptor, view) :]


def _stop(started: list[_Worker]) -> None:
    """End the workers: the end of its job pipe ends an idle one; one still busy
    (after an error or Ctrl-C here) is killed. Each is waited for."""
    for worker in started:
        with contextlib.suppress(OSError):
            os.close(worker.jobs)
    for worker in started:
        if worker.pending:
            with contextlib.suppress(OSError):
                os.kill(worker.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.close(worker.replies)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(worker.pid, 0)
