"""The server's side of resolution, without a client: stale results are dropped,
fresh ones kept and announced; the configured interpreter is used, a broken
one reported once and replaced by the server's own."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conc_lsp.analysis.model import Resolution, Verdict
from conc_lsp.server import resolution
from conc_lsp.server.diagnostics import Worker
from conc_lsp.server.documents import Document
from tests.rule_settings import SEED_SETTINGS

PROJECT = Path(__file__).parent / "fixtures" / "projects" / "trio_app"
TEXT = "import trio\n\n\nasync def main():\n    await trio.sleep(1)\n"
FOUND = {("main", "await", "trio.sleep(1)", 0): Resolution(Verdict.ALWAYS, "trio.sleep", "")}


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with an empty cache of verdicts on disk."""
    monkeypatch.setenv("CONC_LSP_CACHE_DIR", str(tmp_path / "cache"))


class FakeServer:
    def __init__(self) -> None:
        self.settings = SEED_SETTINGS
        self.root: str | None = None
        self.documents: dict[str, Document] = {}
        self.background: set[Any] = set()
        self.changed: list[str] = []
        self.logs: list[str] = []
        self.warnings: list[str] = []

    def resolutions_changed(self, document: Document) -> None:
        self.changed.append(document.uri)

    def log(self, level: Any, message: str) -> None:
        self.logs.append(message)

    def warn_once(self, warnings: list[str]) -> None:
        self.warnings.extend(warnings)


def run_pass(edit_during_the_pass: bool) -> tuple[FakeServer, Document]:
    server = FakeServer()
    document = Document.open("file:///tmp/doc.py", 1, TEXT)
    server.documents[document.uri] = document
    resolutions = resolution.Resolutions()

    async def run(function: Any, *arguments: Any, timeout: Any = None) -> Any:
        if edit_during_the_pass:
            document.version = 2  # the user typed while jedi worked
        return FOUND, {"total": 1, "resolved": 1, "complete": True, "seconds": 0.1}

    resolutions.worker.run = run  # type: ignore[method-assign]
    asyncio.run(resolutions.run(server, document.uri))  # type: ignore[arg-type]
    return server, document


def test_a_result_for_an_older_version_is_dropped() -> None:
    server, document = run_pass(edit_during_the_pass=True)
    assert document.resolutions == {}
    assert document.resolution_generation == 0
    assert server.changed == []


def test_a_fresh_result_is_kept_and_announced() -> None:
    server, document = run_pass(edit_during_the_pass=False)
    assert document.resolutions == FOUND
    assert document.resolved_version == 1
    assert document.resolution_generation == 1
    assert server.changed == [document.uri]
    hint = next(h for h in document.analyzer.analysis().hints if h.kind.is_checkpoint)
    assert document.resolution_of(hint) == FOUND[("main", "await", "trio.sleep(1)", 0)]


def test_the_configured_interpreter_is_used() -> None:
    lines = (PROJECT / "main.py").read_text(encoding="utf-8").split("\n")
    found, stats = resolution.resolve_document(
        str(PROJECT), sys.executable, str(PROJECT / "main.py"), lines, 60.0, None
    )
    assert stats["warning"] == ""
    assert any(r.verdict is Verdict.NEVER for r in found.values())


def test_a_broken_interpreter_is_reported_and_replaced(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-python")
    lines = (PROJECT / "main.py").read_text(encoding="utf-8").split("\n")
    found, stats = resolution.resolve_document(
        str(PROJECT), missing, str(PROJECT / "main.py"), lines, 60.0, None
    )
    assert "cannot be used" in stats["warning"] and missing in stats["warning"]
    assert any(r.verdict is Verdict.NEVER for r in found.values())  # with our own Python


def test_a_worker_call_that_never_returns_is_killed() -> None:
    """A jedi call that hangs must not stop resolution for good: past its time
    the worker process is killed, the call answers its default, and the next
    call gets a new process. (How soon the answer comes is a figure of
    benchmarks/hostile_input.py; a call that was not killed would return
    None after its 60 s, not the default.)"""
    worker = Worker(niceness=10)

    async def scenario() -> tuple[object, object, object]:
        first = await worker.call(os.getpid, default=None)
        slow = await worker.call(time.sleep, 60, default="gave up", timeout=1.0)
        second = await worker.call(os.getpid, default=None)
        return first, slow, second

    try:
        first, slow, second = asyncio.run(scenario())
    finally:
        worker.shutdown()
    assert slow == "gave up"
    assert isinstance(first, int) and isinstance(second, int) and first != second
