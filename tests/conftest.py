"""Shared test setup."""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
import uuid
from collections.abc import Iterator

import pytest

from conc_lsp.analysis import resolve
from conc_lsp.analysis.jedi_setup import tolerate_broken_cache
from tests.live_processes import HAS_PROC, command_line, wait_until_gone, with_environment

# Tests that run jedi in process share ~/.cache/jedi with every other process.
tolerate_broken_cache()

# Every process the test run starts inherits this mark, even once its parent is
# gone: the run can tell which processes are its own at the end.
RUN_MARK = "CONC_LSP_TEST_RUN"


def pytest_configure(config: pytest.Config) -> None:
    os.environ[RUN_MARK] = f"{os.getpid()}-{uuid.uuid4().hex}"


@pytest.fixture(scope="session", autouse=True)
def no_process_outlives_the_run() -> Iterator[None]:
    """Fail the run if a process started by a test (a server, a worker of a
    server, anything they started) is still alive once every test is done."""
    yield
    if not HAS_PROC:
        return
    # Tests that run jedi in this process leave cached resolvers and jedi's
    # cached default environment, each holding jedi's helper process for its
    # interpreter: let them go (in the server, they end with the resolver process).
    resolve._RESOLVERS.clear()
    jedi_environments = sys.modules.get("jedi.api.environment")
    if jedi_environments is not None:
        jedi_environments._get_cached_default_environment.clear_cache()
    gc.collect()  # what nobody holds any more closes its pipes, and its process ends
    mark = os.environ[RUN_MARK]
    left = wait_until_gone(lambda: with_environment(RUN_MARK, mark), timeout=60)
    if left:
        described = [f"{pid}: {command_line(pid)}" for pid, _ in left]
        for pid, _ in left:  # not left for the next run either
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        pytest.fail("processes started by the tests outlived them:\n" + "\n".join(described))


@pytest.fixture(autouse=True)
def plain_import_system(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """jedi (in process) asks every finder of ``sys.meta_path`` where a module
    is; pytest's assertion-rewriting hook answers for pytest's plugins (anyio
    is one) with a loader jedi cannot read, so ``import anyio`` would not
    resolve under pytest. The server and the command line never have that
    hook: take it away while a test runs."""
    kept = [finder for finder in sys.meta_path if type(finder).__name__ != "AssertionRewritingHook"]
    monkeypatch.setattr(sys, "meta_path", kept)
    yield
