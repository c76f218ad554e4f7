"""The server's worker processes, seen from the server: start, run jobs, stop.

A worker is one process (its inside: conc_lsp/processes.py) that runs one
job at a time: the rules, the reports, jedi. It starts on first use. A job
that outlives its time limit gets its process killed (the next job starts a
new one); a process that dies in a job (a crash, its memory cap) fails that
job and is started again on the next one. ``shutdown`` kills the process at
once: nothing in the server waits for a job when it exits, and the worker
itself exits when the server dies (it watches its parent).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import pickle
from collections.abc import Callable
from typing import Any, TypeVar

from conc_lsp.processes import FRAME, MEMORY_EXIT, worker_arguments

logger = logging.getLogger("conc_lsp")
T = TypeVar("T")


class JobFailed(Exception):
    """A job got no answer from its worker process."""


class OutOfTime(JobFailed):
    """The job outlived its time limit: the process was killed."""


class OutOfMemory(JobFailed):
    """The process went over its memory cap during the job."""


class WorkerDied(JobFailed):
    """The process died (or was stopped) during the job."""


class _Process:
    """One running worker process and the jobs waiting for its answers."""

    def __init__(
        self,
        transport: asyncio.SubprocessTransport,
        protocol: asyncio.subprocess.SubprocessStreamProtocol,
        memory_limit: int,
    ) -> None:
        # asyncio's Process, keeping its transport: closing it releases the pipes
        self.transport = transport
        self.process = asyncio.subprocess.Process(transport, protocol, asyncio.get_running_loop())
        self.memory_limit = memory_limit
        self.waiting: dict[int, asyncio.Future[bytes]] = {}
        self.failure: JobFailed | None = None  # set once the process is gone
        self.reader = asyncio.ensure_future(self._read_answers())

    async def run(
        self,
        job: int,
        function: Callable[..., Any],
        arguments: tuple[Any, ...],
        timeout: float | None,
    ) -> Any:
        if self.failure is not None:
            raise self.failure
        body = pickle.dumps((function, arguments))
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.waiting[job] = future
        stdin = self.process.stdin
        assert stdin is not None
        try:
            stdin.write(FRAME.pack(job, len(body)) + body)
            await stdin.drain()
            answer = await asyncio.wait_for(future, timeout)
        except ConnectionError as error:
            raise self.failure or WorkerDied(f"cannot be reached ({error})") from error
        except TimeoutError:
            failure = OutOfTime(f"took over {timeout:g} s: stopped")
            self.stop(failure)
            raise failure from None
        finally:
            self.waiting.pop(job, None)
        succeeded, value = pickle.loads(answer)
        if succeeded:
            return value
        raise value

    def stop(self, failure: JobFailed) -> None:
        """Kill the process; the jobs waiting for it fail with ``failure``."""
        if self.failure is None:
            self.failure = failure
        with contextlib.suppress(ProcessLookupError):
            self.transport.kill()
        self._close()
        self._fail_waiting()

    def _close(self) -> None:
        with contextlib.suppress(RuntimeError):  # its event loop is closed: nothing to release
            self.transport.close()

    async def _read_answers(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        try:
            while True:
                job, length = FRAME.unpack(await stdout.readexactly(FRAME.size))
                body = await stdout.readexactly(length)
                future = self.waiting.pop(job, None)
                if future is not None and not future.done():
                    future.set_result(body)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the process ended
        status = await self.process.wait()
        if self.failure is None:
            self.failure = (
                OutOfMemory(f"went over its memory limit of {self.memory_limit} MB")
                if status == MEMORY_EXIT
                else WorkerDied(f"exited with status {status}")
            )
        self._close()
        self._fail_waiting()

    def _fail_waiting(self) -> None:
        waiting, self.waiting = self.waiting, {}
        for future in waiting.values():
            if not future.done():
                with contextlib.suppress(RuntimeError):  # its event loop is closed
                    future.set_exception(self.failure or WorkerDied("stopped"))


class WorkerProcess:
    """A worker process, started on first use, that runs one job at a time."""

    def __init__(self, name: str, *, niceness: int = 0, memory_limit: int = 0) -> None:
        self.name = name  # for the log
        self.niceness = niceness  # > 0: a background process that yields the CPU to typing
        self.memory_limit = memory_limit  # MB (0: none); a new value applies from the next job
        self._current: _Process | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = asyncio.Lock()  # one job at a time: time limits count the job's own time
        self._jobs = itertools.count(1)
        self._closed = False

    @property
    def running(self) -> bool:
        return self._current is not None and self._current.failure is None

    @property
    def closed(self) -> bool:
        """Shut down: no job runs any more."""
        return self._closed

    async def run(
        self, function: Callable[..., T], *arguments: object, timeout: float | None = None
    ) -> T:
        """``function(*arguments)`` in the worker process: its result, or its
        exception raised here. Raises ``JobFailed`` when no answer came; a
        process that died is replaced once before giving up."""
        self._follow_loop()
        try:
            return await self._run_once(function, arguments, timeout)
        except WorkerDied as died:
            if self.closed:
                raise
            logger.warning("%s died (%s); restarting it", self.name, died)
        return await self._run_once(function, arguments, timeout)

    async def call(
        self,
        function: Callable[..., T],
        *arguments: object,
        default: T,
        timeout: float | None = None,
    ) -> T:
        """Like ``run``, but answers ``default`` (and logs why) when no answer came."""
        try:
            return await self.run(function, *arguments, timeout=timeout)
        except JobFailed as failure:
            if self.closed:  # the server is shutting down: nothing went wrong
                logger.debug("%s %s at shutdown", self.name, failure)
            else:
                logger.warning("%s %s", self.name, failure)
            return default

    def kill(self) -> None:
        """Stop the process now, even in the middle of a job (the next job starts another)."""
        current, self._current = self._current, None
        if current is not None:
            current.stop(WorkerDied("stopped"))

    def shutdown(self) -> None:
        """Kill the process for good: later jobs fail at once."""
        self._closed = True
        self.kill()

    async def _run_once(
        self, function: Callable[..., T], arguments: tuple[object, ...], timeout: float | None
    ) -> T:
        async with self._lock:
            process = await self._started()
            result: T = await process.run(next(self._jobs), function, arguments, timeout)
            return result

    async def _started(self) -> _Process:
        if self._closed:
            raise WorkerDied("shut down")
        current = self._current
        if current is not None:
            if current.failure is None and current.memory_limit == self.memory_limit:
                return current
            current.stop(WorkerDied("replaced"))
        loop = asyncio.get_running_loop()
        try:
            transport, protocol = await loop.subprocess_exec(
                lambda: asyncio.subprocess.SubprocessStreamProtocol(limit=2**16, loop=loop),
                *worker_arguments(self.niceness, self.memory_limit),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
        except OSError as error:
            raise WorkerDied(f"cannot start: {error}") from error
        self._current = _Process(transport, protocol, self.memory_limit)
        return self._current

    def _follow_loop(self) -> None:
        """A process and a lock serve one event loop: a new loop gets new ones."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self.kill()
            self._loop = loop
            self._lock = asyncio.Lock()
