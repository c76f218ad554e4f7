"""Shared test setup."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest


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
