"""The worker processes (conc_lsp/processes.py inside, conc_lsp/server/workers.py
outside): answers and errors, the memory cap, the time limits, shutdown in the
middle of a job, a worker that sees the end of its input and one whose parent
dies; a slow report that does not hold the diagnostics; the resolver over its
memory cap. Nothing here asserts a duration: waits have generous timeouts."""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from pygls.exceptions import JsonRpcInternalError

from conc_lsp import config
from conc_lsp.processes import FRAME, MEMORY_EXIT, worker_arguments
from conc_lsp.server import diagnostics, report_features, resolution
from conc_lsp.server.documents import Document
from conc_lsp.server.workers import OutOfMemory, OutOfTime, WorkerDied, WorkerProcess
from tests.live_processes import HAS_PROC, is_alive, wait_until, wait_until_gone
from tests.rule_settings import SEED_SETTINGS

WAIT = 120.0  # seconds: generous, for a busy machine
FOREVER = 3600.0  # a job that would never end during a test
TEXT = """import trio


async def handler(event, registry):
    try:
        pass
    finally:
        await event.wait()
        registry.pop(event)
"""


def started_at(pid: int) -> tuple[int, int]:
    """The pid with its start time, as tests/live_processes.py counts processes."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return pid, int(fields[19])


def fail(message: str) -> None:
    raise ValueError(message)


def sleep_then_write(path: str, seconds: float) -> None:
    """Announce the start of the job, then take a long time."""
    Path(path).write_text("started", encoding="utf-8")
    time.sleep(seconds)


def slow_report(*arguments: Any) -> str:
    time.sleep(FOREVER)
    return "never"


# -- the worker process ----------------------------------------------------------


def test_a_job_answers_and_its_exception_comes_back() -> None:
    worker = WorkerProcess("test worker")

    async def scenario() -> tuple[int, str]:
        try:
            pid = await worker.run(os.getpid)
            with pytest.raises(ValueError, match="from the worker"):
                await worker.run(fail, "from the worker")
            return pid, await worker.run(str.upper, "still there")
        finally:
            worker.shutdown()

    pid, text = asyncio.run(scenario())
    assert pid != os.getpid()
    assert text == "STILL THERE"


def test_over_the_memory_cap_the_job_fails_and_a_new_process_follows() -> None:
    worker = WorkerProcess("test worker", memory_limit=200)

    async def scenario() -> tuple[int, int]:
        try:
            first = await worker.run(os.getpid)
            with pytest.raises(OutOfMemory, match="memory limit of 200 MB"):
                await worker.run(bytearray, 2**31)  # 2 GB
            return first, await worker.run(os.getpid)
        finally:
            worker.shutdown()

    first, second = asyncio.run(scenario())
    assert first != second


def test_the_memory_cap_is_the_exit_status_the_server_reads() -> None:
    """Whatever fails under the cap, the worker exits with MEMORY_EXIT (no
    traceback that would need more memory)."""
    process = subprocess.Popen(
        worker_arguments(0, 150), stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    body = pickle.dumps((bytearray, (2**31,)))
    assert process.stdin is not None
    process.stdin.write(FRAME.pack(1, len(body)) + body)
    process.stdin.flush()
    assert process.wait(timeout=WAIT) == MEMORY_EXIT
    process.stdin.close()
    assert process.stdout is not None
    process.stdout.close()


def test_a_job_over_its_time_limit_is_stopped() -> None:
    worker = WorkerProcess("test worker")

    async def scenario() -> tuple[int, int]:
        try:
            first = await worker.run(os.getpid)
            with pytest.raises(OutOfTime):
                await worker.run(time.sleep, FOREVER, timeout=0.5)
            return first, await worker.run(os.getpid)
        finally:
            worker.shutdown()

    first, second = asyncio.run(scenario())
    assert first != second


@pytest.mark.skipif(not HAS_PROC, reason="reads /proc")
def test_shutdown_in_the_middle_of_a_job_ends_it_at_once(tmp_path: Path) -> None:
    """`exit` while jedi resolves must not wait for jedi: shutdown kills the
    process, the job fails, and later jobs fail at once."""
    worker = WorkerProcess("test worker")
    marker = tmp_path / "started"

    async def scenario() -> tuple[int, int]:
        pid = await worker.run(os.getpid)
        job = asyncio.ensure_future(worker.run(sleep_then_write, str(marker), FOREVER))
        while not marker.exists():
            await asyncio.sleep(0.05)
        process = started_at(pid)
        worker.shutdown()
        with pytest.raises(WorkerDied):
            await asyncio.wait_for(job, WAIT)
        with pytest.raises(WorkerDied, match="shut down"):
            await worker.run(os.getpid)
        return process

    process = asyncio.run(scenario())
    assert wait_until_gone(lambda: [process], timeout=WAIT) == []


def test_a_call_cut_short_by_shutdown_answers_its_default_without_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A job that shutdown ends is no failure to warn of (every benchmark's
    teardown printed "resolver stopped"); one that fails otherwise (out of
    time) is."""
    worker = WorkerProcess("test worker")
    marker = tmp_path / "started"

    async def scenario() -> tuple[object, object]:
        # Out of time (the job sleeps for ever): a failure, worth a warning.
        with caplog.at_level(logging.DEBUG, logger="conc_lsp"):
            late = await worker.call(
                sleep_then_write, str(marker), FOREVER, default="default", timeout=0.5
            )
        assert levels(caplog) == [logging.WARNING]
        marker.unlink(missing_ok=True)  # the time may run out before the job starts
        job = asyncio.ensure_future(
            worker.call(sleep_then_write, str(marker), FOREVER, default="default")
        )
        while not marker.exists():
            await asyncio.sleep(0.05)
        with caplog.at_level(logging.DEBUG, logger="conc_lsp"):
            caplog.clear()
            worker.shutdown()
            return late, await asyncio.wait_for(job, WAIT)

    late, cut_short = asyncio.run(scenario())
    assert late == cut_short == "default"
    assert levels(caplog) == [logging.DEBUG]
    assert "at shutdown" in caplog.records[-1].getMessage()


def levels(caplog: pytest.LogCaptureFixture) -> list[int]:
    """The levels of conc-lsp's own records (not asyncio's)."""
    return [record.levelno for record in caplog.records if record.name == "conc_lsp"]


@pytest.mark.skipif(not HAS_PROC, reason="reads /proc")
def test_a_worker_ends_when_its_input_ends() -> None:
    """Only the server holds the writing end of a worker's input: closing it
    ends the worker (a worker holding both ends would wait forever)."""
    process = subprocess.Popen(
        worker_arguments(0, 0), stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert process.stdin is not None and process.stdout is not None
    body = pickle.dumps((os.getpid, ()))
    process.stdin.write(FRAME.pack(7, len(body)) + body)
    process.stdin.flush()
    job, length = FRAME.unpack(process.stdout.read(FRAME.size))
    assert job == 7
    assert pickle.loads(process.stdout.read(length)) == (True, process.pid)
    process.stdin.close()
    assert process.wait(timeout=WAIT) == 0
    process.stdout.close()


# A worker's parent: starts a worker with only the watcher thread (no
# PR_SET_PDEATHSIG, its input left open), says its pid, then waits forever.
PARENT = """
import os, subprocess, sys, time
watched = (
    "import sys, threading, time\\n"
    "from conc_lsp.processes import watch_parent\\n"
    "threading.Thread(target=watch_parent, args=(int(sys.argv[1]),), daemon=True).start()\\n"
    "print('watching', flush=True)\\n"
    "time.sleep(3600)\\n"
)
child = subprocess.Popen([sys.executable, "-c", watched, str(os.getpid())], stdin=subprocess.PIPE)
print(child.pid, flush=True)
time.sleep(3600)
"""


@pytest.mark.skipif(not HAS_PROC, reason="reads /proc")
def test_the_watcher_thread_ends_a_worker_whose_parent_died() -> None:
    """Without the kernel's help and with its input still open, a busy worker
    ends once its parent is gone."""
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE)
    assert parent.stdout is not None
    child = started_at(int(parent.stdout.readline()))
    try:
        assert parent.stdout.readline() == b"watching\n"
        parent.kill()
        parent.wait(timeout=WAIT)
        assert wait_until_gone(lambda: [child], timeout=WAIT) == []
    finally:
        parent.stdout.close()
        if is_alive(child):
            os.kill(child[0], 9)


# -- reports and diagnostics -----------------------------------------------------


class Workspace:
    folders: dict[str, Any] = {}  # noqa: RUF012 - never changed

    def __init__(self, root: Path) -> None:
        self.root_path = str(root)


class Server:
    """What conc.analyse needs of the server, with the real worker processes."""

    def __init__(self, root: Path) -> None:
        self.documents: dict[str, Document] = {}
        self.worker = diagnostics.Worker()
        self.settings = SEED_SETTINGS
        self.encoding = "utf-16"
        self.workspace = Workspace(root)

    def capability(self, getter: Any) -> Any:
        return False


def test_a_slow_report_does_not_hold_the_diagnostics(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(report_features, "compute_report", slow_report)
    monkeypatch.setattr(report_features, "REPORT_SECONDS", FOREVER)
    server = Server(tmp_path)
    uri = (tmp_path / "doc.py").as_uri()
    server.documents[uri] = Document.open(uri, 1, TEXT)
    lines = TEXT.split("\n")

    async def scenario() -> tuple[list[Any], bool]:
        report = asyncio.ensure_future(report_features.analyse(server, [uri]))  # type: ignore[arg-type]
        assert await asyncio.to_thread(wait_until, lambda: server.worker.reports.running, WAIT)
        try:
            findings = await server.worker.compute(uri, lines, server.settings, None)
            return findings, report.done()
        finally:
            report.cancel()
            server.worker.shutdown()

    findings, report_done = asyncio.run(scenario())
    assert {finding.code for finding in findings} == {"CONC101", "CONC102"}
    assert not report_done


def test_a_report_over_its_time_limit_is_an_error_that_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(report_features, "compute_report", slow_report)
    monkeypatch.setattr(report_features, "REPORT_SECONDS", 0.5)
    server = Server(tmp_path)
    uri = (tmp_path / "doc.py").as_uri()
    server.documents[uri] = Document.open(uri, 1, TEXT)

    async def scenario() -> None:
        try:
            with pytest.raises(JsonRpcInternalError, match="took too long"):
                await report_features.analyse(server, [uri])  # type: ignore[arg-type]
        finally:
            server.worker.shutdown()

    asyncio.run(scenario())


# -- the resolver over its memory cap ----------------------------------------------


class ResolvingServer:
    def __init__(self) -> None:
        self.settings = SEED_SETTINGS
        self.root: str | None = None
        self.documents: dict[str, Document] = {}
        self.logs: list[str] = []

    def log(self, level: Any, message: str) -> None:
        self.logs.append(message)


def test_the_resolver_over_its_memory_cap_leaves_plain_labels_and_one_log_line() -> None:
    server = ResolvingServer()
    document = Document.open("file:///tmp/doc.py", 1, TEXT)
    server.documents[document.uri] = document
    resolutions = resolution.Resolutions()
    passes: list[float] = []

    async def run(function: Any, *arguments: Any, timeout: Any = None) -> Any:
        passes.append(resolutions.worker.memory_limit)
        raise OutOfMemory("went over its memory limit of 300 MB")

    resolutions.worker.run = run  # type: ignore[method-assign]
    server.settings = config.apply(
        server.settings, {"resolve": {"memory-limit": 300}}, "t"
    ).settings
    for _ in range(2):  # the same text again: no second try, no second line
        asyncio.run(resolutions.run(server, document.uri))  # type: ignore[arg-type]
    assert passes == [300]
    assert document.resolutions == {}
    assert len(server.logs) == 1
    assert "memory limit of 300 MB" in server.logs[0] and "plain labels" in server.logs[0]
    document.version = 2  # an edit: a new try
    asyncio.run(resolutions.run(server, document.uri))  # type: ignore[arg-type]
    assert passes == [300, 300]


@pytest.mark.parametrize(
    ("value", "accepted"),
    [(1024, True), (0, True), (100, True), (99, False), (-1, False), (True, False), ("2G", False)],
)
def test_the_memory_limit_setting(value: Any, accepted: bool) -> None:
    for key in ("memory-limit", "memoryLimit"):
        loaded = config.apply(config.Settings(), {"resolve": {key: value}}, "test")
        assert (loaded.warnings == []) is accepted
        assert (loaded.settings.resolve_memory_limit == value) is accepted
