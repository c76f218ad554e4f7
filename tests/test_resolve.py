"""Resolving checkpoints with jedi: fixture projects where the truth is known.

Each ``tests/fixtures/projects/<name>/main.py`` marks every checkpoint with
``# expect: always | sometimes | never | may-not-yield | unknown``; helpers
live in a package beside it (re-exports, aliases, methods, recursion, a
cycle). Every checkpoint must carry a mark, and every mark must be met.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from pathlib import Path

import pytest

from conc_lsp.analysis.model import HintKind, Resolution, Verdict
from conc_lsp.analysis.parse import analyse_lines
from conc_lsp.analysis.resolve import Resolver, keyed_hints
from conc_lsp.analysis.text import split_lines
from conc_lsp.config import Settings
from conc_lsp.diagnose import check_lines
from conc_lsp.labels import COMPACT, label
from tests.rule_settings import SEED_SETTINGS

PROJECTS = Path(__file__).parent / "fixtures" / "projects"
EXPECT = re.compile(r"#\s*expect:\s*(?P<verdict>[a-z-]+)")


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with an empty cache of verdicts on disk."""
    monkeypatch.setenv("CONC_LSP_CACHE_DIR", str(tmp_path / "cache"))


def resolved(root: Path, name: str = "main.py") -> tuple[list[str], dict[int, Resolution | None]]:
    """The lines of ``root/name`` and, per checkpoint keyword line, what resolved."""
    path = root / name
    lines = split_lines(path.read_text(encoding="utf-8"))
    result = Resolver(str(root)).resolve_lines(lines, str(path), budget=60)
    assert result.complete
    by_line: dict[int, Resolution | None] = {}
    for key, hint in keyed_hints(analyse_lines(lines).hints).items():
        by_line[hint.keyword_line] = result.resolutions.get(key)
    return lines, by_line


@pytest.mark.parametrize("project", ["trio_app", "anyio_app", "asyncio_app"])
def test_every_checkpoint_is_classified_right(project: str) -> None:
    lines, by_line = resolved(PROJECTS / project)
    assert len(by_line) >= 12
    wrong = []
    for line, resolution in sorted(by_line.items()):
        match = EXPECT.search(lines[line])
        assert match, f"line {line + 1} has a checkpoint but no '# expect:' mark"
        got = resolution.verdict.value if resolution is not None else "unknown"
        if got != match.group("verdict"):
            reason = resolution.reason if resolution else ""
            wrong.append(f"L{line + 1}: {lines[line].strip()} -> {got} ({reason})")
    assert wrong == []


def test_reasons_and_chains_name_the_path() -> None:
    _, by_line = resolved(PROJECTS / "trio_app")
    found = {r.callee: r for r in by_line.values() if r is not None}
    assert found["fetch_cached"].reason == "fetch_cached returns at L14 without one"
    assert found["via_log"].verdict is Verdict.NEVER
    # the chain goes one level down: via_log -> log_only
    assert any("log_only" in step for step in found["via_log"].chain)
    assert found["trio.Event.wait"].chain[0].startswith("`trio.Event.wait`: always checkpoints")
    assert "https://trio.readthedocs.io" in found["trio.Event.wait"].chain[0]


def test_labels_say_what_is_known() -> None:
    lines, by_line = resolved(PROJECTS / "trio_app")
    hints = {h.keyword_line: h for h in analyse_lines(lines).hints if h.kind.is_checkpoint}

    def label_at(text: str, style: str = "arrow") -> str:
        line = next(i for i, source in enumerate(lines) if text in source)
        return label(hints[line], style, by_line[line])

    assert label_at("await cached_fetch(") == (
        "<- may checkpoint (fetch_cached returns at L14 without one)"
    )
    assert label_at("await log_only(") == "<- no checkpoint (log_only never yields)"
    assert label_at("await trio.sleep(1)") == "<- checkpoint"
    assert label_at("checkpoint_if_cancelled") == "<- may not yield (trio fast path)"
    assert label_at("async with trio.open_nursery()") == (
        "<- waits for children · no checkpoint on enter"
    )
    # a lock's exit only releases: what resolution found is what the plain label says
    assert label_at("async with lock:") == "<- checkpoint (enter)"
    assert label_at("await log_only(", COMPACT) == "∅"
    assert label_at("await cached_fetch(", COMPACT) == "⇄?"
    asyncio_lines, asyncio_by_line = resolved(PROJECTS / "asyncio_app")
    line = next(i for i, s in enumerate(asyncio_lines) if "await lock.acquire()" in s)
    hint = next(h for h in analyse_lines(asyncio_lines).hints if h.keyword_line == line)
    assert label(hint, "arrow", asyncio_by_line[line]) == "<- may not yield (asyncio fast path)"
    # a helper of the user's whose only checkpoint is a fast path names it
    line = next(i for i, s in enumerate(asyncio_lines) if "await worker.record(1)" in s)
    hint = next(h for h in analyse_lines(asyncio_lines).hints if h.keyword_line == line)
    assert label(hint, "arrow", asyncio_by_line[line]) == (
        "<- may not yield (record: asyncio fast path in asyncio.Lock)"
    )


def test_results_follow_edits_of_the_helper_file(tmp_path: Path) -> None:
    root = tmp_path / "trio_app"
    shutil.copytree(PROJECTS / "trio_app", root)
    main = root / "main.py"
    lines = split_lines(main.read_text(encoding="utf-8"))
    resolver = Resolver(str(root))
    keys = {h.code: key for key, h in keyed_hints(analyse_lines(lines).hints).items()}
    first = resolver.resolve_lines(lines, str(main), budget=60)
    assert first.resolutions[keys['log_only("x")']].verdict is Verdict.NEVER
    net = root / "trio_app" / "net.py"
    text = net.read_text(encoding="utf-8").replace(
        "async def log_only(message):\n    print(message)\n",
        "async def log_only(message):\n    await trio.sleep(0)\n    print(message)\n",
    )
    net.write_text(text, encoding="utf-8")
    os.utime(net, ns=(1, 10**18))  # a new mtime even on a coarse clock
    second = resolver.resolve_lines(lines, str(main), budget=60)
    assert second.resolutions[keys['log_only("x")']].verdict is Verdict.ALWAYS
    # via_log awaits log_only: its cached verdict went with the file's
    assert first.resolutions[keys['via_log("x")']].verdict is Verdict.NEVER
    assert second.resolutions[keys['via_log("x")']].verdict is Verdict.ALWAYS


def test_a_spent_budget_stops_and_says_so() -> None:
    """With no time at all, a pass still resolves one checkpoint (so that
    passes that go on where the last stopped come to an end), then stops."""
    root = PROJECTS / "trio_app"
    lines = split_lines((root / "main.py").read_text(encoding="utf-8"))
    result = Resolver(str(root)).resolve_lines(lines, str(root / "main.py"), budget=0)
    assert not result.complete
    assert len(result.attempted) == 1
    assert len(result.resolutions) <= 1
    assert result.total >= 20


def test_visible_lines_go_first() -> None:
    """With time for one checkpoint only, it is the one on the lines shown."""
    from conc_lsp.analysis import resolve

    class OneOnly(Resolver):
        calls = 0

        def _resolve_target(self, key, source, target):  # type: ignore[no-untyped-def]
            OneOnly.calls += 1
            if OneOnly.calls > 1:
                raise resolve.BudgetSpent
            return super()._resolve_target(key, source, target)

    root = PROJECTS / "trio_app"
    lines = split_lines((root / "main.py").read_text(encoding="utf-8"))
    wanted = next(i for i, line in enumerate(lines) if "await conn.flush()" in line)
    result = OneOnly(str(root)).resolve_lines(
        lines, str(root / "main.py"), budget=60, first_lines=(wanted, wanted + 1)
    )
    assert not result.complete
    assert [key[2] for key in result.resolutions] == ["conn.flush()"]


def test_broken_text_resolves_nothing_and_does_not_raise() -> None:
    resolver = Resolver(str(PROJECTS / "trio_app"))
    result = resolver.resolve_lines(["async def f(:", "    await g()"], None, budget=5)
    assert result.resolutions == {}


def test_no_interpreter_of_the_workspace_is_run(tmp_path: Path) -> None:
    """jedi must not run a python it finds in the workspace: a trap records any run."""
    root = tmp_path / "project"
    shutil.copytree(PROJECTS / "trio_app", root)
    marker = tmp_path / "ran"
    for folder in (".venv/bin", "venv/bin", "env/bin"):
        (root / folder).mkdir(parents=True)
        trap = root / folder / "python"
        trap.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n", encoding="utf-8")
        trap.chmod(trap.stat().st_mode | stat.S_IEXEC)
    (root / ".venv" / "pyvenv.cfg").write_text("home = /usr/bin\n", encoding="utf-8")
    environment = dict(os.environ)
    os.environ["VIRTUAL_ENV"] = str(root / ".venv")  # as if the user's shell had it active
    by_line: dict[int, Resolution | None] = {}
    try:
        _lines, by_line = resolved(root)
    finally:
        os.environ.clear()
        os.environ.update(environment)
    assert not marker.exists()
    assert any(r is not None and r.verdict is Verdict.NEVER for r in by_line.values())


def test_conc111_uses_the_resolved_callees() -> None:
    root = PROJECTS / "trio_app"
    path = root / "trio_app" / "net.py"
    lines = split_lines(path.read_text(encoding="utf-8"))
    settings = Settings(select=("CONC111",))
    plain = check_lines(lines, settings, str(path)).findings
    resolutions = Resolver(str(root)).resolve_lines(lines, str(path), budget=60).resolutions
    with_resolved = check_lines(lines, settings, str(path), resolutions=resolutions).findings
    plain_functions = {f.function for f in plain}
    resolved_functions = {f.function for f in with_resolved}
    # syntactically, `await log_only(...)` counts as a checkpoint; resolved, it does not
    assert "via_log" not in plain_functions
    assert "via_log" in resolved_functions
    finding = next(f for f in with_resolved if f.function == "via_log")
    assert "never checkpoints" in finding.message
    assert any("log_only" in related.message for related in finding.related)
    # and a function that really checkpoints stays clean either way
    assert "sleep_then_log" not in resolved_functions
    assert {"fetch_cached", "log_only"} <= resolved_functions


def test_resolution_keys_survive_edits_elsewhere() -> None:
    root = PROJECTS / "trio_app"
    lines = split_lines((root / "main.py").read_text(encoding="utf-8"))
    result = Resolver(str(root)).resolve_lines(lines, str(root / "main.py"), budget=60)
    shifted = ["# a comment added above", "", *lines]
    keys = keyed_hints(analyse_lines(shifted).hints)
    matched = [result.resolutions[key] for key in keys if key in result.resolutions]
    assert len(matched) == len(result.resolutions)
    assert all(
        hint.kind in (HintKind.AWAIT, HintKind.ASYNC_WITH, HintKind.ASYNC_FOR)
        for hint in keys.values()
    )


def test_the_other_rules_read_the_resolution() -> None:
    """CONC102 drops an await whose callee never yields (no Cancelled can arrive
    there); CONC110 flags a timeout whose only checkpoint never yields."""
    root = PROJECTS / "trio_app"
    path = root / "trio_app" / "cleanup.py"
    lines = split_lines(path.read_text(encoding="utf-8"))
    plain = {
        (f.code, f.location.line) for f in check_lines(lines, SEED_SETTINGS, str(path)).findings
    }
    resolutions = Resolver(str(root)).resolve_lines(lines, str(path), budget=60).resolutions
    found = check_lines(lines, SEED_SETTINGS, str(path), resolutions=resolutions).findings
    resolved_codes = {(f.code, f.location.line) for f in found}
    close_line = next(i for i, line in enumerate(lines) if 'await log_only("closing")' in line)
    bounded_line = next(
        i for i, line in enumerate(lines) if "move_on_after(1):  # its only" in line
    )
    assert ("CONC102", close_line) in plain
    assert ("CONC102", close_line) not in resolved_codes
    assert ("CONC110", bounded_line) not in plain
    assert ("CONC110", bounded_line) in resolved_codes
    message = next(f.message for f in found if f.code == "CONC110")
    assert "log_only never yields" in message
    # the scope whose checkpoint is real stays clean
    assert sum(1 for f in found if f.code == "CONC110") == 1


def test_a_lock_known_by_its_type_guards_state() -> None:
    """`self.guard = trio.Lock()`: the name says nothing, the resolved type does."""
    root = PROJECTS / "trio_app"
    path = root / "trio_app" / "guarded.py"
    lines = split_lines(path.read_text(encoding="utf-8"))
    plain = [f.code for f in check_lines(lines, SEED_SETTINGS, str(path)).findings]
    resolutions = Resolver(str(root)).resolve_lines(lines, str(path), budget=60).resolutions
    resolved_codes = [
        f.code
        for f in check_lines(lines, SEED_SETTINGS, str(path), resolutions=resolutions).findings
    ]
    assert plain == ["CONC202"]
    assert resolved_codes == []
    nursery = next(r for r in resolutions.values() if r.callee == "trio.open_nursery")
    assert (nursery.enter, nursery.exit) == (Verdict.NEVER, Verdict.ALWAYS)


def test_resolution_stays_honest() -> None:
    """Stubs and abstract methods are unknown, never "never yields"; a callee
    that may be one of several that disagree is "sometimes"."""
    lines, by_line = resolved(PROJECTS / "trio_app", "honest.py")
    wrong = []
    for line, resolution in sorted(by_line.items()):
        match = EXPECT.search(lines[line])
        assert match, f"line {line + 1} has a checkpoint but no '# expect:' mark"
        got = resolution.verdict.value if resolution is not None else "unknown"
        if got != match.group("verdict"):
            wrong.append(f"L{line + 1}: {lines[line].strip()} -> {got}")
    assert wrong == []
    assert len(by_line) == 5


def test_a_half_written_parso_cache_file_is_a_cache_miss(tmp_path: Path) -> None:
    """Another process writing ~/.cache/jedi at the same time leaves a truncated
    pickle: jedi must parse the file again, not fail with EOFError."""
    import parso.cache

    from conc_lsp.analysis.jedi_setup import tolerate_broken_cache

    tolerate_broken_cache()
    source = tmp_path / "module.py"
    source.write_text("x = 1\n", encoding="utf-8")
    cached = Path(parso.cache._get_hashed_path("grammar", source, cache_path=tmp_path))
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(b"\x80\x04\x95")  # a pickle cut short
    assert parso.cache._load_from_file_system("grammar", source, 0.0, tmp_path) is None


def test_a_method_of_an_abstract_class_is_unknown(tmp_path: Path) -> None:
    """`opened().__aenter__()` of an `@asynccontextmanager`: jedi lands on
    contextlib's `AbstractAsyncContextManager.__aenter__` (`return self`), but
    what runs is the generator's. A method of an abstract class or a protocol
    is its overrides' business: unknown, never "never yields" (--resolve added
    wrong CONC110 findings on mcp's tests with it)."""
    (tmp_path / "main.py").write_text(
        "import contextlib\nimport abc\nimport trio\n\n"
        "@contextlib.asynccontextmanager\nasync def opened():\n"
        "    await trio.sleep(1)\n    yield 1\n\n"
        "class Store(abc.ABC):\n    async def load(self):\n        return None\n\n"
        "async def main(store: Store):\n"
        "    await opened().__aenter__()\n"
        "    await store.load()\n",
        encoding="utf-8",
    )
    _, by_line = resolved(tmp_path)
    assert by_line[14] is None or by_line[14].verdict is not Verdict.NEVER, by_line[14]
    assert by_line[15] is None or by_line[15].verdict is not Verdict.NEVER, by_line[15]
