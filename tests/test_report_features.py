"""`conc.analyse` and the code lenses without a client: arguments, the cache
folder, reading a file that is not open, and no `window/showDocument` for a
client that cannot show documents (the protocol tests cover the clients that
can, in tests/lsp/test_report.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from conc_lsp.config import Settings, apply
from conc_lsp.report import Target
from conc_lsp.server import report_features
from conc_lsp.server.documents import Document
from tests.rule_settings import SEED_SETTINGS

CACHE = Path(__file__).parent / "fixtures" / "report" / "cache.py"


class FakeWorker:
    """Runs the worker functions in this process."""

    def __init__(self) -> None:
        self.reports = self

    async def call(
        self, function: Callable[..., Any], *arguments: Any, default: Any, timeout: Any = None
    ) -> Any:
        return function(*arguments)

    async def run(self, function: Callable[..., Any], *arguments: Any, timeout: Any = None) -> Any:
        return function(*arguments)


class FakeWorkspace:
    root_path: str | None = str(CACHE.parent)  # files not open are read inside it only
    folders: dict[str, Any] = {}  # noqa: RUF012 - never changed


class FakeServer:
    def __init__(self, *, shows: bool) -> None:
        self.documents: dict[str, Document] = {}
        self.worker = FakeWorker()
        self.settings = SEED_SETTINGS
        self.encoding = "utf-16"
        self.workspace = FakeWorkspace()
        self.shows = shows
        self.shown: list[types.ShowDocumentParams] = []

    def capability(self, getter: Callable[[Any], Any]) -> Any:
        return self.shows

    def window_show_document(self, params: types.ShowDocumentParams) -> None:
        self.shown.append(params)


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


@pytest.mark.parametrize(
    ("arguments", "target"),
    [
        (["file:///a.py"], Target()),
        (["file:///a.py", None], Target()),
        (["file:///a.py", "Pool.acquire"], Target.function("Pool.acquire")),
        (["file:///a.py", {"start": 4, "end": 9}], Target.lines(4, 9)),
        (["file:///a.py", {"start": 9, "end": 4}], Target.lines(4, 9)),
        (
            ["file:///a.py", {"start": {"line": 4, "character": 0}, "end": {"line": 9}}],
            Target.lines(4, 9),
        ),
        (["file:///a.py", {"start": 7}], Target.lines(7, 7)),
        (["file:///a.py", {"at": 12}], 12),  # the function around line 12: found later
        (["file:///a.py", {"at": {"line": 12, "character": 3}}], 12),
    ],
)
def test_arguments(arguments: list[Any], target: Target | int) -> None:
    assert report_features.parse_arguments(arguments) == ("file:///a.py", target)


@pytest.mark.parametrize(
    "arguments",
    [
        [],
        [3],
        ["file:///a.py", 3],
        ["file:///a.py", {"start": -1, "end": 2}],
        ["file:///a.py", {"at": -1}],
        ["file:///a.py", {"at": "x"}],
        ["u", "q", "x"],
    ],
)
def test_bad_arguments(arguments: list[Any]) -> None:
    with pytest.raises(JsonRpcInvalidParams):
        report_features.parse_arguments(arguments)


def test_reports_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert report_features.reports_folder() == tmp_path / "conc-lsp" / "reports"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # not absolute: ignored, as the spec says
    assert report_features.reports_folder() == Path.home() / ".cache" / "conc-lsp" / "reports"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert report_features.reports_folder() == Path.home() / ".cache" / "conc-lsp" / "reports"


def test_one_report_file_per_document_and_target(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = report_features.report_path
    a = path("file:///x/cache.py", "cache.py", Target.function("_Cache.run_ctx"))
    assert a.name.startswith("cache-_Cache.run_ctx-") and a.suffix == ".md"
    assert a == path("file:///x/cache.py", "cache.py", Target.function("_Cache.run_ctx"))
    assert a != path("file:///y/cache.py", "cache.py", Target.function("_Cache.run_ctx"))
    assert path("file:///x/cache.py", "cache.py", Target.lines(2, 5)).name.startswith("cache-L3-6-")
    assert path("file:///x/cache.py", "cache.py", Target()).name.startswith("cache-module-")


def test_no_show_document_for_a_client_that_cannot(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    server = FakeServer(shows=False)
    uri = CACHE.resolve().as_uri()  # not open: read from disk
    result = run(report_features.analyse(server, [uri, "_Cache"]))  # type: ignore[arg-type]
    assert result["markdown"].startswith("## Concurrency analysis: `_Cache`")
    assert Path(result["uri"].removeprefix("file://")).read_text("utf-8") == result["markdown"]
    assert server.shown == []
    shows = FakeServer(shows=True)
    again = run(report_features.analyse(shows, [uri, "_Cache"]))  # type: ignore[arg-type]
    assert [params.uri for params in shows.shown] == [again["uri"]]
    assert shows.shown[0].take_focus


def test_the_open_text_wins_over_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    server = FakeServer(shows=False)
    uri = CACHE.resolve().as_uri()
    text = CACHE.read_text("utf-8").replace("_Cache", "_Store")
    server.documents[uri] = Document.open(uri, 3, text)
    result = run(report_features.analyse(server, [uri, "_Store.run_ctx"]))  # type: ignore[arg-type]
    assert result["markdown"].startswith("## Concurrency analysis: `_Store.run_ctx`")


def test_a_document_that_is_neither_open_nor_a_file() -> None:
    server = FakeServer(shows=False)
    with pytest.raises(JsonRpcInvalidParams, match="not open"):
        run(report_features.analyse(server, ["untitled:Untitled-1"]))  # type: ignore[arg-type]


def test_code_lenses(monkeypatch: pytest.MonkeyPatch) -> None:
    server = FakeServer(shows=False)
    uri = "untitled:cache"
    server.documents[uri] = Document.open(uri, 1, CACHE.read_text("utf-8"))
    params = types.CodeLensParams(text_document=types.TextDocumentIdentifier(uri=uri))
    lenses = run(report_features.code_lenses(server, params))  # type: ignore[arg-type]
    titles = {lens.command.arguments[1]: lens.command.title for lens in lenses}
    assert titles["maybe_open_context"] == "2 checkpoints · 3 findings · Analyse concurrency"
    assert titles["_Cache"] == "2 checkpoints · 1 finding · Analyse concurrency"
    # Cached per version: a second request does not run the worker again.
    calls: list[object] = []

    async def counting(function: Callable[..., Any], *arguments: Any, default: Any) -> Any:
        calls.append(function)
        return function(*arguments)

    monkeypatch.setattr(server.worker, "call", counting)
    assert run(report_features.code_lenses(server, params)) == lenses  # type: ignore[arg-type]
    assert calls == []


def test_lens_setting_and_placement() -> None:
    server = FakeServer(shows=False)
    uri = "untitled:cache"
    text = CACHE.read_text("utf-8") + "\n\nasync def quiet() -> None:\n    await trio.sleep(0)\n"
    server.documents[uri] = Document.open(uri, 1, text)
    lines = text.splitlines()
    params = types.CodeLensParams(text_document=types.TextDocumentIdentifier(uri=uri))

    def shown() -> dict[str, str]:
        lenses = run(report_features.code_lenses(server, params))  # type: ignore[arg-type]
        return {lens.command.arguments[1]: lines[lens.range.start.line] for lens in lenses}

    # default "findings": `quiet` has none; each lens on its `def` / `class` line
    assert shown() == {
        "_Cache": "class _Cache:",
        "_Cache.run_ctx": "    async def run_ctx(",
        "maybe_open_context": "async def maybe_open_context(",
    }
    server.settings = replace(SEED_SETTINGS, lens="all")
    assert set(shown()) == {"_Cache", "_Cache.run_ctx", "maybe_open_context", "quiet"}
    server.settings = replace(SEED_SETTINGS, lens="off")
    assert shown() == {}


def test_lens_setting_values() -> None:
    assert Settings().lens == "findings"
    for value in ("off", "findings", "all"):
        loaded = apply(Settings(), {"lens": value}, "test")
        assert loaded.warnings == [] and loaded.settings.lens == value
    loaded = apply(Settings(), {"lens": "some"}, "test")
    assert loaded.settings.lens == "findings"
    assert loaded.warnings == [
        "test: setting 'lens': expected one of off, findings, all, got 'some' (ignored)"
    ]


def test_report_links_are_relative_to_the_report(tmp_path: Path) -> None:
    report = tmp_path / "cache" / "conc-lsp" / "reports" / "x.md"
    source = tmp_path / "my project" / "a.py"
    link = report_features.report_link(str(source), report)
    assert link == "../../../my%20project/a.py"
    assert report_features.report_link(None, report) is None
