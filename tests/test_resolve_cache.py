"""Resolution that finishes: verdicts kept on disk across runs (and what they
were read from), passes that go on where the last one stopped, and the
server merging each pass's results into the document's."""

from __future__ import annotations

import asyncio
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import pytest

from conc_lsp.analysis import resolve
from conc_lsp.analysis.jedi_setup import speed_up_parso
from conc_lsp.analysis.model import HintKey, Resolution, Verdict
from conc_lsp.analysis.parse import analyse_lines
from conc_lsp.analysis.resolve import Resolver, keyed_hints
from conc_lsp.analysis.resolve_cache import prune
from conc_lsp.analysis.text import split_lines
from conc_lsp.server import resolution
from conc_lsp.server.documents import Document
from tests.test_resolution_server import FakeServer

PROJECT = Path(__file__).parent / "fixtures" / "projects" / "trio_app"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "trio_app"
    shutil.copytree(PROJECT, root)
    return root


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("CONC_LSP_CACHE_DIR", str(folder))
    return folder


def main_lines(root: Path) -> list[str]:
    return split_lines((root / "main.py").read_text(encoding="utf-8"))


def by_code(lines: list[str]) -> dict[str, HintKey]:
    return {hint.code: key for key, hint in keyed_hints(analyse_lines(lines).hints).items()}


class NoJedi(Resolver):
    """A resolver that fails the test if it asks jedi anything."""

    def _infer(self, key: str, source: Any, expression: Any) -> Any:
        raise AssertionError(f"jedi asked about {key}")


class Walks(Resolver):
    """A resolver that notes every function it walks (not read from a cache)."""

    walked: list[str]

    def _walk_function(self, path, source, node, short, where, depth):  # type: ignore[no-untyped-def]
        self.walked.append(f"{os.path.basename(path)}:{node.name}")
        return super()._walk_function(path, source, node, short, where, depth)


def test_an_unchanged_module_is_never_inferred_again(project: Path) -> None:
    lines = main_lines(project)
    first = Resolver(str(project)).resolve_lines(lines, str(project / "main.py"), budget=120)
    assert first.complete and not first.cached
    # A new run (a new resolver, as a new process or server session would have).
    again = NoJedi(str(project)).resolve_lines(lines, str(project / "main.py"), budget=120)
    assert again.cached and again.complete
    assert again.resolutions == first.resolutions
    assert again.total == first.total


def test_a_changed_helper_file_is_inferred_again(project: Path) -> None:
    lines = main_lines(project)
    keys = by_code(lines)
    path = str(project / "main.py")
    first = Resolver(str(project)).resolve_lines(lines, path, budget=120)
    assert first.resolutions[keys['log_only("x")']].verdict is Verdict.NEVER
    net = project / "trio_app" / "net.py"
    net.write_text(
        net.read_text(encoding="utf-8").replace(
            "async def log_only(message):\n    print(message)\n",
            "async def log_only(message):\n    await trio.sleep(0)\n    print(message)\n",
        ),
        encoding="utf-8",
    )
    second = Resolver(str(project)).resolve_lines(lines, path, budget=120)
    assert not second.cached
    assert second.resolutions[keys['log_only("x")']].verdict is Verdict.ALWAYS
    assert second.resolutions[keys['via_log("x")']].verdict is Verdict.ALWAYS


def test_verdicts_of_unchanged_callees_are_read_not_walked(project: Path) -> None:
    lines = main_lines(project)
    path = str(project / "main.py")
    Resolver(str(project)).resolve_lines(lines, path, budget=120)
    edited = [*lines[:-1], "# an edit: this text is new", lines[-1]]
    resolver = Walks(str(project))
    resolver.walked = []
    result = resolver.resolve_lines(edited, path, budget=120)
    assert result.complete and not result.cached
    assert by_code(edited)['via_log("x")'] in result.resolutions
    assert not [name for name in resolver.walked if name.startswith("net.py")], resolver.walked


def test_a_broken_cache_entry_is_a_miss(project: Path, own_cache: Path) -> None:
    lines = main_lines(project)
    path = str(project / "main.py")
    first = Resolver(str(project)).resolve_lines(lines, path, budget=120)
    entries = list(own_cache.glob("resolve/*/*.json"))
    assert entries
    for entry in entries:
        entry.write_text('{"verdicts": {"3": [["alw', encoding="utf-8")  # half-written
    second = Resolver(str(project)).resolve_lines(lines, path, budget=120)
    assert not second.cached
    assert second.resolutions == first.resolutions
    assert not list(own_cache.glob("resolve/*/*.tmp"))


def test_no_cache_reads_and_writes_nothing(project: Path, own_cache: Path) -> None:
    lines = main_lines(project)
    result = Resolver(str(project), cache=False).resolve_lines(
        lines, str(project / "main.py"), budget=120
    )
    assert result.complete and result.resolutions
    assert not own_cache.exists()


def test_the_cache_folder_is_pruned_oldest_first(tmp_path: Path) -> None:
    folder = tmp_path / "resolve"
    (folder / "ab").mkdir(parents=True)
    for number in range(10):
        entry = folder / "ab" / f"{number}.json"
        entry.write_bytes(b"x" * 1000)
        os.utime(entry, (number, number))
    prune(folder, limit=5000)
    left = sorted(int(entry.stem) for entry in folder.glob("*/*.json"))
    assert left == [6, 7, 8, 9]


def test_passes_go_on_where_the_last_one_stopped(project: Path) -> None:
    """With time for two checkpoints per pass, passes over the same text
    finish the document, and no checkpoint is resolved twice."""

    class TwoPerPass(Resolver):
        resolved: list[int]
        this_pass = 0

        def _resolve_target(self, key, source, target):  # type: ignore[no-untyped-def]
            if self.this_pass == 2:
                self.this_pass = 0
                raise resolve.BudgetSpent
            self.this_pass += 1
            self.resolved.append(target.line)
            return super()._resolve_target(key, source, target)

    lines = main_lines(project)
    resolver = TwoPerPass(str(project), cache=False)
    resolver.resolved = []
    passes = []
    while True:
        result = resolver.resolve_lines(lines, str(project / "main.py"), budget=120)
        passes.append(len(result.attempted))
        if result.complete:
            break
    assert passes[:3] == [2, 4, 6]
    assert len(resolver.resolved) == result.total == passes[-1]
    assert len(set(resolver.resolved)) == len({key for key in result.attempted})
    everything = Resolver(str(project), cache=False).resolve_lines(
        lines, str(project / "main.py"), budget=120
    )
    assert result.resolutions == everything.resolutions


def test_an_unfinished_pass_keeps_the_labels_it_did_not_reach() -> None:
    old = Resolution(Verdict.NEVER, "old", "")
    new = Resolution(Verdict.ALWAYS, "new", "")
    before = {("f", "await", "a()", 0): old, ("f", "await", "b()", 0): old}
    partial = resolution.merged_resolutions(
        before,
        {("f", "await", "a()", 0): new},
        {"complete": False, "attempted": {("f", "await", "a()", 0), ("f", "await", "c()", 0)}},
    )
    assert partial == {("f", "await", "a()", 0): new, ("f", "await", "b()", 0): old}
    finished = resolution.merged_resolutions(
        before, {("f", "await", "a()", 0): new}, {"complete": True}
    )
    assert finished == {("f", "await", "a()", 0): new}


def test_the_server_goes_on_until_the_document_is_done() -> None:
    """A pass that spends its budget is followed by another over the same
    text; each result is merged and announced; the hover status says
    "resolving..." until the last pass, then "not followed" for what was not found."""
    text = "import trio\n\n\nasync def main():\n    await trio.sleep(1)\n    await other()\n"
    server = FakeServer()
    document = Document.open("file:///tmp/doc.py", 1, text)
    server.documents[document.uri] = document
    keys = by_code(document.lines)
    sleep_key, other_key = keys["trio.sleep(1)"], keys["other()"]
    other = next(h for h in document.analyzer.analysis().hints if h.code == "other()")
    sleeps = Resolution(Verdict.ALWAYS, "trio.sleep", "")
    answers: list[tuple[dict[HintKey, Resolution], dict[str, Any]]] = [
        ({}, {"complete": False, "attempted": set()}),  # the budget ran out at once
        ({sleep_key: sleeps}, {"complete": False, "attempted": {sleep_key}}),
        ({sleep_key: sleeps}, {"complete": True}),
    ]
    statuses: list[str] = []
    announced: list[tuple[dict[HintKey, Resolution], bool]] = []
    resolutions = resolution.Resolutions()
    resolutions.visible[document.uri] = (0, 6)

    async def run(function: Any, *arguments: Any, timeout: Any = None) -> Any:
        statuses.append(document.resolution_status(other))
        found, stats = answers.pop(0)
        return found, {"total": 2, "resolved": len(found), "seconds": 0.1, **stats}

    async def scenario() -> None:
        resolutions.schedule(server, document, 0)  # type: ignore[arg-type]
        while document.resolving:  # each pass's announcement is what the test waits for
            await asyncio.sleep(0.01)
        resolutions.shutdown()

    server.resolutions_changed = lambda changed: announced.append(  # type: ignore[method-assign]
        (dict(changed.resolutions), changed.resolving)
    )
    resolutions.worker.run = run  # type: ignore[method-assign]
    asyncio.run(asyncio.wait_for(scenario(), timeout=120))
    assert answers == []
    assert statuses == ["resolving...", "resolving...", "resolving..."]
    assert announced == [({sleep_key: sleeps}, True)]  # once: the last pass changed nothing
    assert document.resolved_version == 1
    assert document.resolution_status(other) == "not followed"
    assert other_key not in document.resolutions


def test_a_shared_jedi_state_does_not_give_up_after_many_files(project: Path) -> None:
    """jedi stops inferring a node it has inferred 300 times in one state; one
    state serves many files of a run, so the count must start again for each
    question (it once left checkpoints unresolved after a few hundred files)."""

    class Saturated(dict[Any, int]):
        def __getitem__(self, key: Any) -> int:
            return 10**6  # as if every node had been inferred in a thousand files

    lines = main_lines(project)
    resolver = Resolver(str(project), cache=False)
    resolver.resolve_lines(["import trio", "async def f():", "    await trio.sleep(0)"], None)
    assert resolver._state is not None
    resolver._state.inferred_element_counts = Saturated()
    found = resolver.resolve_lines(lines, str(project / "main.py"), budget=120)
    fresh = Resolver(str(project), cache=False).resolve_lines(
        lines, str(project / "main.py"), budget=120
    )
    assert found.resolutions == fresh.resolutions
    assert len(found.resolutions) >= 12


def test_jedi_warnings_about_unimportable_modules_stay_quiet() -> None:
    """`check --resolve` printed jedi's "Module src.trio._abc not importable in
    path [...]" on stderr, once per module of a src/ layout."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        speed_up_parso()
        message = "Module src.trio._abc not importable in path ['/x']."
        warnings.warn(message, UserWarning, stacklevel=1)
        warnings.warn("something else", UserWarning, stacklevel=1)
    assert [str(warning.message) for warning in caught] == ["something else"]


def test_a_whole_document_request_keeps_the_range_on_screen_first() -> None:
    """Neovim asks for the whole buffer's hints; the range its plugin asked
    for before (the lines on screen) stays the one resolved first."""
    server = FakeServer()
    text = "".join(f"x{number} = {number}\n" for number in range(100))
    document = Document.open("file:///tmp/long.py", 1, text)
    resolutions = resolution.Resolutions()
    resolutions.shown(server, document, 0, len(document.lines))  # type: ignore[arg-type]
    assert resolutions.visible[document.uri] == (0, len(document.lines))
    resolutions.shown(server, document, 40, 80)  # type: ignore[arg-type]
    resolutions.shown(server, document, 0, len(document.lines))  # type: ignore[arg-type]
    assert resolutions.visible[document.uri] == (40, 80)
    resolutions.shown(server, document, 10, 50)  # type: ignore[arg-type]
    assert resolutions.visible[document.uri] == (10, 50)
    for handle in resolutions.pending.values():
        handle.cancel()


def test_a_pass_hands_over_the_lines_on_screen_as_soon_as_they_are_done(project: Path) -> None:
    lines = main_lines(project)
    path = str(project / "main.py")
    start = next(i for i, line in enumerate(lines) if "await log_only(" in line)
    resolver = Resolver(str(project), cache=False)
    first = resolver.resolve_lines(
        lines, path, budget=120, first_lines=(start, start + 2), stop_after_shown=True
    )
    assert not first.complete
    assert {key[2] for key in first.attempted} == {'log_only("x")', 'via_log("x")'}
    rest = resolver.resolve_lines(
        lines, path, budget=120, first_lines=(start, start + 2), stop_after_shown=True
    )
    assert rest.complete and len(rest.attempted) == rest.total


def test_an_idle_resolver_process_ends_and_the_next_pass_starts_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Freeing jedi's values inside the process gave no memory back: once
    nothing is left to resolve, the process ends; the next pass starts one."""
    monkeypatch.setattr(resolution, "IDLE_RELEASE", 0.0)
    server = FakeServer()
    resolutions = resolution.Resolutions()

    async def scenario() -> tuple[object, object]:
        first = await resolutions.worker.call(os.getpid, default=None)
        assert resolutions.worker.running
        resolutions._when_idle(server)  # type: ignore[arg-type]
        while resolutions.worker.running:  # until the idle timer has ended it
            await asyncio.sleep(0.01)
        second = await resolutions.worker.call(os.getpid, default=None)
        return first, second

    try:
        first, second = asyncio.run(asyncio.wait_for(scenario(), timeout=120))
    finally:
        resolutions.shutdown()
    assert isinstance(first, int) and isinstance(second, int) and first != second
