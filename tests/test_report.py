"""The concurrency report: golden files, the seed's worked example, targets,
sketches and the command line.

Each ``tests/fixtures/report/NAME.py`` is a realistic module; its full report
(markdown, line references linked to ``NAME.py``) is compared with the reviewed
``NAME.expected.md``. After a deliberate change, regenerate them with
``CONC_LSP_UPDATE_GOLDEN=1 python -m pytest tests/test_report.py`` and review
the diff before committing it.
"""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import pytest

from conc_lsp.analysis.text import apply_edits, split_lines
from conc_lsp.cli import main, parse_report_target
from conc_lsp.diagnose import check_lines
from conc_lsp.report import (
    Report,
    Target,
    TargetNotFound,
    build_report,
    lens_targets,
    render_markdown,
    to_json,
)
from tests.rule_settings import SEED_SETTINGS, SELECT_ARGUMENT

FIXTURES = Path(__file__).parent / "fixtures" / "report"
MODULES = sorted(FIXTURES.glob("*.py"))
CACHE = FIXTURES / "cache.py"


def lines_of(path: Path) -> list[str]:
    return split_lines(path.read_text(encoding="utf-8"))


def report_of(path: Path, target: Target | None = None, source: list[str] | None = None) -> Report:
    lines = source if source is not None else lines_of(path)
    return build_report(lines, target, name=path.name, link=path.name, settings=SEED_SETTINGS)


def line_of(lines: list[str], text: str, start: int = 0) -> int:
    """0-based line of the first line at or after ``start`` that contains ``text``."""
    return next(index for index in range(start, len(lines)) if text in lines[index])


# -- golden files ----------------------------------------------------------------


def test_there_are_six_realistic_modules() -> None:
    names = {path.stem for path in MODULES}
    assert {"cache", "async_main", "pool", "broadcast", "supervisor", "clean"} <= names


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.stem)
def test_golden(path: Path) -> None:
    markdown = render_markdown(report_of(path))
    expected = path.with_name(f"{path.stem}.expected.md")
    if os.environ.get("CONC_LSP_UPDATE_GOLDEN"):
        expected.write_text(markdown, encoding="utf-8")
    assert markdown == expected.read_text(encoding="utf-8")


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.stem)
def test_json_holds_the_same_content(path: Path) -> None:
    report = report_of(path)
    data = json.loads(json.dumps(to_json(report)))
    assert data["target"] == report.target
    assert [row["state"] for row in data["shared_state"]] == [row.state for row in report.state]
    assert [f["code"] for f in data["findings"]] == [f.code for f in report.findings]
    for record, finding in zip(data["findings"], report.findings, strict=True):
        assert len(record["trace"]["steps"]) == len(finding.trace.steps)
        assert record["classification"] == finding.classification
        assert record["fixes"] and all(
            fix["effort"] in ("simple", "moderate", "complex") for fix in record["fixes"]
        )
    assert "[[L" not in json.dumps(data)  # line tokens become plain `L12`


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.stem)
def test_every_finding_has_a_trace_a_class_and_a_fix(path: Path) -> None:
    lines = lines_of(path)
    report = report_of(path)
    assert len(report.findings) == len(check_lines(lines, SEED_SETTINGS).findings)
    for finding in report.findings:
        trace = finding.trace
        assert trace.steps and trace.window is not None
        low, high = trace.window
        assert 1 <= low <= high <= len(trace.steps)
        assert {step.task for step in trace.steps} - {"Task A"}, "two tasks interleave"
        assert finding.classification != "unclassified"
        assert finding.fixes
        for fix in finding.fixes:
            assert fix.diff or fix.sketch
            assert fix.closes and fix.tradeoffs and fix.risk
            assert fix.effort in ("simple", "moderate", "complex")


def test_the_clean_module_has_guarded_state_and_no_findings() -> None:
    report = report_of(FIXTURES / "clean.py")
    assert report.findings == []
    assert {row.state: row.guard for row in report.state} == {
        "Registry._sessions": "`self._lock`",
        "Registry._users": "`self._lock`",
    }
    assert "no findings" in report.summary


# -- the seed's worked example (conc-anal sections 1-4) --------------------------


def test_the_seed_cache_example() -> None:
    """The report of the seed's `_Cache` / `maybe_open_context` / `run_ctx` finds
    what the seed finds by hand.

    The seed's table: `_Cache.values` written by `run_ctx` (and, in the seed's
    table, `moc`: neither tractor nor this module writes `values` outside
    `run_ctx`; `moc` reads it), read by `moc`, guarded by the `ctx_key` lock;
    `_Cache.resources` written by both, read by both, UNGUARDED. The report
    adds where the lock protocol breaks (`run_ctx`'s `values.pop`) and the two
    other pieces of state the seed discusses (`users`, `locks`).
    """
    lines = lines_of(CACHE)
    report = report_of(CACHE)
    rows = {row.state: row for row in report.state}
    assert set(rows) == {"_Cache.values", "_Cache.resources", "_Cache.users", "_Cache.locks"}

    values = rows["_Cache.values"]
    assert values.writers == ["`run_ctx` (task)"]
    assert values.readers == ["`maybe_open_context`"]
    assert values.guard == "`_Cache.locks[ctx_key]` (`lock`)"  # the seed's "ctx_key lock"
    pop = line_of(lines, "value = cls.values.pop(ctx_key)")
    assert values.exceptions == [f"[[L{pop + 1}]] in `run_ctx`"]

    resources = rows["_Cache.resources"]
    assert set(resources.writers) == {"`run_ctx` (task)", "`maybe_open_context`"}
    assert set(resources.readers) == {"`run_ctx` (task)", "`maybe_open_context`"}
    assert resources.guard is None and resources.guard_text.startswith("UNGUARDED")
    for state in ("_Cache.users", "_Cache.locks"):
        assert rows[state].guard is None
        assert rows[state].writers == ["`maybe_open_context`"]

    # Section 2: the same checkpoints and look-alikes, in the seed's words.
    marks = {
        item.function: [(lines[m.line].strip(), m.mark) for m in item.marks]
        for item in report.checkpoints
    }
    moc = marks["maybe_open_context"]
    assert ("await lock.acquire()", "CHECKPOINT") in moc
    assert any(
        code.startswith("yielded = await service_n.start(") and mark.startswith("CHECKPOINT")
        for code, mark in moc
    )
    assert ("lock.release()", "(not a checkpoint, but changes lock state)") in moc
    assert ("yield False, yielded", "SUSPEND (caller runs)") in moc
    assert ("no_more_users.set()", "(wakes `run_ctx`, no switch yet)") in moc
    assert ("await no_more_users.wait()", "CHECKPOINT") in marks["_Cache.run_ctx"]

    # Section 3: the interleaving of the seed's trace, and its window.
    by_code = {finding.code: finding for finding in report.findings}
    trace = by_code["CONC204"].trace
    story = [(step.task, step.text.split(" ")[0]) for step in trace.steps]
    assert story == [
        ("Task A", "acquires"),  # 1. acquires lock
        ("Task A", "creates"),  # 2. cache miss → allocates resources
        ("Task A", "starts"),
        ("Task A", "releases"),  # 3. releases lock
        ("Task A", "yields"),  # 4. yields to caller
        ("Task A", "the"),  # 5. caller exits → finally runs
        ("Task A", "sets"),  # 6. ... sets no_more_users
        ("Task A", "pops"),  # 7. pops lock from _Cache.locks
        ("run_ctx", "wakes"),  # 8. wakes from no_more_users.wait()
        ("run_ctx", "removes"),  # 9. values.pop(ctx_key)
        ("run_ctx", "exit"),  # 10. acm __aexit__ → CHECKPOINT
        ("Task B", "creates"),  # 11. creates NEW lock (old one popped)
        ("Task B", "acquires"),  # 12. acquires immediately
        ("Task B", "`_Cache.values[ctx_key]`"),  # 13. values[ctx_key] → KeyError
        ("Task B", "writes"),  # 14. resources[ctx_key] → STILL EXISTS
        ("run_ctx", "removes"),
    ]
    assert "gone (KeyError)" in trace.steps[13].text
    assert "STILL EXISTS" in trace.steps[14].text
    low, high = trace.window or (0, 0)
    window = trace.steps[low - 1 : high]
    assert window[0].code == "value = cls.values.pop(ctx_key)"  # values gone ...
    assert any("STILL EXISTS" in step.text for step in window)  # ... resources still alive
    assert "`_Cache.values[ctx_key]` is gone while `_Cache.resources[ctx_key]` still exists" in (
        trace.window_text
    )
    gap = by_code["CONC201"].trace
    assert gap.window_text == (
        "`_Cache.values[ctx_key]` gone while `_Cache.resources[ctx_key]` still exists"
    )
    checkpoint = gap.steps[(gap.window or (0, 0))[0] - 1]
    assert checkpoint.text.startswith("exit of `async with mngr as value` → CHECKPOINT")

    # Section 4: the seed's classification.
    assert by_code["CONC201"].classification == "atomicity gap"
    assert by_code["CONC204"].classification == "lifetime mismatch"
    assert by_code["CONC203"].classification == "lifetime mismatch"  # global vs per-key counter


def test_markdown_follows_the_seed_layout_with_links() -> None:
    markdown = render_markdown(report_of(CACHE))
    headings = [line for line in markdown.splitlines() if line.startswith("#")]
    assert headings[0] == "## Concurrency analysis: `cache.py`"
    sections = [h for h in headings if h.startswith("### ")]
    assert sections == [
        "### Shared state",
        "### Checkpoints",
        "### Race trace",
        "### Classification",
        "### Fixes",
    ]
    assert "| State | Writers | Readers | Guard |" in markdown
    assert "[L53](cache.py#L53): `await lock.acquire()` <- CHECKPOINT" in markdown
    plain = render_markdown(build_report(lines_of(CACHE), name="cache.py", settings=SEED_SETTINGS))
    assert (
        "L53: `await lock.acquire()` <- CHECKPOINT" in plain and "](" not in plain.split("```")[0]
    )


# -- targets -----------------------------------------------------------------------


def test_a_function_target_takes_the_findings_whose_lines_touch_it() -> None:
    report = report_of(CACHE, Target.function("_Cache.run_ctx"))
    assert report.target == "_Cache.run_ctx"
    # CONC201 is in run_ctx; CONC204 is found in maybe_open_context but its race
    # runs through run_ctx's teardown.
    assert [f.code for f in report.findings] == ["CONC201", "CONC204"]
    assert [item.function for item in report.checkpoints] == ["_Cache.run_ctx"]
    assert {row.state for row in report.state} == {"_Cache.values", "_Cache.resources"}


def test_a_class_target_covers_its_methods() -> None:
    report = report_of(CACHE, Target.function("_Cache"))
    assert report.target == "_Cache"
    assert [item.function for item in report.checkpoints] == ["_Cache.run_ctx"]


def test_a_line_range_target() -> None:
    lines = lines_of(CACHE)
    start = line_of(lines, "async def maybe_open_context")
    end = line_of(lines, "yield False, yielded")
    report = report_of(CACHE, Target.lines(start, end))
    assert report.target == f"cache.py:{start + 1}-{end + 1}"
    marks = [lines[m.line].strip() for item in report.checkpoints for m in item.marks]
    assert marks[0] == "await lock.acquire()" and marks[-1] == "yield False, yielded"
    assert all(start <= m.line <= end for item in report.checkpoints for m in item.marks)
    assert {f.code for f in report.findings} == {"CONC103", "CONC203", "CONC204"}


def test_an_unknown_qualname_is_an_error() -> None:
    with pytest.raises(TargetNotFound, match="Nope"):
        report_of(CACHE, Target.function("Nope"))


def test_a_module_with_a_syntax_error_still_gets_a_report() -> None:
    lines = [*lines_of(CACHE), "", "def broken(:", "    pass"]
    report = report_of(CACHE, source=lines)
    assert report.notes and "syntax error" in report.notes[0]
    assert {f.code for f in report.findings} >= {"CONC201", "CONC204"}


# -- guards --------------------------------------------------------------------------

BRANCHES = """\
import trio

class Cache:
    values: dict[str, int] = {}
    count: int = 0

async def get(key: str, lock: trio.Lock) -> int:
    await lock.acquire()
    try:
        value = Cache.values[key]
    except KeyError:
        Cache.values[key] = value = 1
        Cache.count += 1
        lock.release()
        return value
    else:
        Cache.count += 1
        lock.release()
        return value
"""


def test_a_release_on_one_branch_does_not_end_the_lock_on_the_other() -> None:
    report = build_report(split_lines(BRANCHES), name="branches.py", settings=SEED_SETTINGS)
    rows = {row.state: row for row in report.state}
    assert rows["Cache.values"].guard == "`lock`"
    assert rows["Cache.count"].guard == "`lock`"  # `else:` still holds it


SEMAPHORE = """\
import trio

class Pool:
    def __init__(self) -> None:
        self._limit = trio.Semaphore(4)
        self._lock = trio.Lock()
        self.idle: list[int] = []
        self.used: list[int] = []

    async def take(self) -> int:
        async with self._limit:
            item = self.idle.pop()
        async with self._lock:
            self.used.append(item)
        return item

    async def give(self, item: int) -> None:
        async with self._limit:
            self.idle.append(item)
        async with self._lock:
            self.used.remove(item)
"""


def test_a_semaphore_is_no_guard() -> None:
    report = build_report(split_lines(SEMAPHORE), name="semaphore.py", settings=SEED_SETTINGS)
    rows = {row.state: row for row in report.state}
    assert rows["Pool.idle"].guard is None
    assert rows["Pool.used"].guard == "`self._lock`"


# -- sketches --------------------------------------------------------------------------


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.stem)
def test_every_diff_applies_and_parses(path: Path) -> None:
    lines = lines_of(path)
    for finding in report_of(path).findings:
        for fix in finding.fixes:
            if fix.kind in ("sketch", "pseudocode"):
                continue
            assert fix.edits, fix.title
            ast.parse("\n".join(apply_edits(lines, fix.edits)))


def _findings_after(
    lines: list[str], code: str, kind: str = "sketch-diff"
) -> list[tuple[str, str]]:
    report = report_of(CACHE, source=lines)
    fix = next(
        fix
        for finding in report.findings
        if finding.code == code
        for fix in finding.fixes
        if fix.kind == kind
    )
    fixed = apply_edits(lines, fix.edits)
    return [(f.code, f.function) for f in check_lines(fixed, SEED_SETTINGS).findings]


def test_the_lifetime_sketch_closes_the_seed_race() -> None:
    after = _findings_after(lines_of(CACHE), "CONC204")
    assert "CONC204" not in {code for code, _ in after}
    # run_ctx no longer removes anything: its atomicity gap is gone too.
    assert ("CONC201", "_Cache.run_ctx") not in after


def test_the_counter_fix_counts_per_key() -> None:
    # CONC203's per-key rewrite is a quick fix now: the report shows it as a diff.
    after = _findings_after(lines_of(CACHE), "CONC203", kind="diff")
    assert "CONC203" not in {code for code, _ in after}


# -- command line --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("a.py", ("a.py", Target())),
        ("a.py::Cls.method", ("a.py", Target.function("Cls.method"))),
        ("a.py:3-5", ("a.py", Target.lines(2, 4))),
        ("a.py:7", ("a.py", Target.lines(6, 6))),
        ("dir/a.py:9-2", ("dir/a.py", Target.lines(1, 8))),
    ],
)
def test_report_targets_on_the_command_line(spec: str, expected: tuple[str, Target]) -> None:
    assert parse_report_target(spec) == expected


def test_cli_report(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # Links are relative to the current folder, where a report written to
    # stdout is kept: VS Code's preview shows a `file:` link as plain text.
    monkeypatch.chdir(CACHE.parent.parent)
    assert main(["report", f"{CACHE}::_Cache.run_ctx", "--select", SELECT_ARGUMENT]) == 0
    out = capsys.readouterr().out
    assert out.startswith("## Concurrency analysis: `_Cache.run_ctx`\n")
    assert f"]({CACHE.parent.name}/{CACHE.name}#L41)" in out
    assert "file:" not in out
    assert main(["report", str(CACHE), "--format", "json", "--no-links", "--select", "ALL"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["target"] == str(CACHE)
    assert {f["code"] for f in data["findings"]} == {"CONC201", "CONC103", "CONC203", "CONC204"}


def test_cli_report_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["report", f"{CACHE}::Nope"]) == 2
    assert "no function or class `Nope`" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing.py")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["report", f"{CACHE}:0-3"]) == 2


# -- code lens data ------------------------------------------------------------------


def test_lens_targets() -> None:
    lines = lines_of(CACHE)
    result = check_lines(lines, SEED_SETTINGS)
    assert result.facts is not None
    found = {t.qualname: t for t in lens_targets(result.facts, result.findings, lines)}
    assert set(found) == {"_Cache", "_Cache.run_ctx", "maybe_open_context"}
    assert lines[found["_Cache"].line].startswith("class _Cache")
    assert lines[found["maybe_open_context"].line] == "@acm"
    assert (found["_Cache.run_ctx"].checkpoints, found["_Cache.run_ctx"].findings) == (2, 1)
    assert (found["maybe_open_context"].checkpoints, found["maybe_open_context"].findings) == (
        2,
        3,
    )


def test_render_ends_with_one_newline() -> None:
    markdown = render_markdown(report_of(CACHE))
    assert markdown.endswith("\n") and not markdown.endswith("\n\n")
