"""Hints, flow events and their cancellation context come from one walk
(``analysis/walk.py``; issue 15, item 1: "one pass").

The hints of the editor (a walk for hints alone, statement by statement), the
report's hints (the same walk run for hints and events at once) and the
events the rules read must agree on every checkpoint's context; the report
and `check --resolve` must not parse the text a second time for the hints.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conc_lsp.analysis import parse
from conc_lsp.analysis.collector import tree_hints
from conc_lsp.analysis.events import Event, EventKind, FunctionFacts, ModuleFacts
from conc_lsp.analysis.flow import module_facts
from conc_lsp.analysis.model import Context, Hint, HintKind, anchor_keys
from conc_lsp.analysis.parse import analyse_lines
from conc_lsp.analysis.resolve import Resolver
from conc_lsp.analysis.text import split_lines
from conc_lsp.config import Settings
from conc_lsp.diagnose import check_lines, module_tree, parse_module
from conc_lsp.report import build_report

FIXTURES = Path(__file__).parent / "fixtures"


def facts_of(text: str) -> ModuleFacts:
    lines = split_lines(text)
    tree, _ = module_tree(lines)
    return module_facts(tree, lines)


def by_anchor(hints: list[Hint]) -> dict[tuple[int, int, HintKind], Hint]:
    return {(hint.line, hint.column, hint.kind): hint for hint in hints}


def described(event: Event) -> tuple[object, ...]:
    branches = tuple(branch for _, branch in event.path)
    return (event.kind, event.location, event.context, branches, event.guards, event.state)


def checkpoint_contexts(function: FunctionFacts) -> dict[tuple[int, int], Context]:
    """Each checkpoint event's context by where its node ends (a hint's anchor)."""
    return {
        (event.location.end_line, event.location.end_column): event.context
        for event in function.events
        if event.kind is EventKind.CHECKPOINT and not event.exit
    }


SAMPLE = """\
import trio
from contextlib import asynccontextmanager

try:
    from trio import move_on_after as bounded
except ImportError:
    bounded = None


class Pool:
    def __init__(self):
        self.count = 0

    async def bump(self, event):
        with bounded(5):
            await trio.sleep(1)
        try:
            await trio.sleep(0)
        except trio.Cancelled:
            await self.close()
            raise
        finally:
            with trio.CancelScope(shield=True):
                await self.close()
            event.set()

    async def close(self):
        async def helper():
            await trio.sleep(0)
        value = compute(current=self.count, done=await helper())
        self.count = value


@asynccontextmanager
async def opened(nursery):
    await trio.sleep(0)
    if (yield nursery):
        await trio.sleep(0)
    nursery.start_soon(trio.sleep, 1)
    await trio.sleep(0)
"""


def test_the_report_walk_gives_the_editor_hints_and_walks_each_function_once() -> None:
    lines = split_lines(SAMPLE)
    facts = facts_of(SAMPLE)
    hints = facts.hints()
    editor = analyse_lines(lines).hints
    assert by_anchor(hints) == by_anchor(editor)
    assert len(hints) == len(editor) == 12
    # The one walk listed every function's events on the way ...
    assert all(function.walk is None for function in facts.functions)
    # ... the same events a walk of each function alone lists (another parse:
    # the branch paths name other nodes, so only their branch numbers compare).
    alone = facts_of(SAMPLE)
    for walked, lazy in zip(facts.functions, alone.functions, strict=True):
        assert [described(event) for event in walked.events] == [
            described(event) for event in lazy.events
        ]
        assert walked.events, walked.qualname


def test_events_and_hints_share_each_checkpoints_context() -> None:
    facts = facts_of(SAMPLE)
    hints = by_anchor(facts.hints())
    compared = 0
    for function in facts.functions:
        for (line, column), context in checkpoint_contexts(function).items():
            hint = hints.get((line, column, HintKind.AWAIT)) or hints.get(
                (line, column, HintKind.ASYNC_WITH)
            )
            if hint is not None:
                assert hint.context == context, (function.qualname, line)
                compared += 1
    assert compared >= 8
    # The import inside `try:` counts for the events too: the first sleep is bounded.
    bump = next(f for f in facts.functions if f.qualname == "Pool.bump")
    first = next(e for e in bump.events if e.kind is EventKind.CHECKPOINT)
    assert first.context.bounded


def test_a_yield_makes_teardown_from_the_end_of_its_expression() -> None:
    facts = facts_of(SAMPLE)
    hints = sorted(facts.hints(), key=lambda hint: (hint.keyword_line, hint.keyword_column))
    opened = [hint for hint in hints if hint.function == "opened"]
    teardown = [(hint.keyword_line + 1, hint.context.acm_teardown) for hint in opened]
    # L36 before the yield; L37 the yield itself (in the `if` test); its body
    # L38 runs after the caller's block; so does what follows the `if`.
    assert teardown == [(36, False), (37, False), (38, True), (39, True), (40, True)]
    events = next(f for f in facts.functions if f.qualname == "opened")
    contexts = checkpoint_contexts(events)
    assert [contexts[key].acm_teardown for key in sorted(contexts)] == [False, True, True]


def test_keyword_arguments_have_events() -> None:
    facts = facts_of(SAMPLE)
    close = next(f for f in facts.functions if f.qualname == "Pool.close")
    kinds = [(event.kind, event.location.line + 1) for event in close.events]
    # `compute(current=self.count, done=await helper())`: the read, the call of
    # helper, its checkpoint, then the call of compute.
    assert (EventKind.READ, 30) in kinds
    assert (EventKind.CHECKPOINT, 30) in kinds
    reads = [e for e in close.events if e.kind is EventKind.READ]
    assert [e.state for e in reads] == ["Pool.count"]


def test_hints_of_a_tree_equal_the_chunked_analysis() -> None:
    checked = 0
    for path in sorted(FIXTURES.rglob("*.py")):
        lines = split_lines(path.read_text(encoding="utf-8"))
        parsed = parse_module(lines)
        if parsed.problems:
            continue
        editor = analyse_lines(lines).hints
        assert by_anchor(tree_hints(parsed.tree, lines)) == by_anchor(editor), path
        assert anchor_keys(tree_hints(parsed.tree, lines)) == anchor_keys(editor)
        checked += 1
    assert checked >= 20


def test_keys_and_report_do_not_parse_the_text_again(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = split_lines(SAMPLE)
    expected = anchor_keys(analyse_lines(lines).hints)

    def refuse(self: object) -> object:
        raise AssertionError("the chunked analysis ran again")

    monkeypatch.setattr(parse.Analyzer, "analysis", refuse)
    parsed = parse_module(lines)
    assert parsed.keys == expected
    result = check_lines(lines, Settings(), parsed=parsed)
    report = build_report(lines, settings=Settings(), result=result)
    marks = [mark for function in report.checkpoints for mark in function.marks]
    assert len(marks) == len(expected) == 12  # every hint of the sample is in a function


def test_the_resolver_keys_its_checkpoints_from_the_tree_it_parsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The resolver process gets no keys from the server: it takes them from
    # its own parse, not from a second (chunked) one, and resolves the same.
    path = tmp_path / "main.py"
    path.write_text(SAMPLE, encoding="utf-8")
    lines = split_lines(SAMPLE)
    keys = anchor_keys(analyse_lines(lines).hints)
    monkeypatch.setenv("CONC_LSP_CACHE_DIR", str(tmp_path / "given"))
    given = Resolver(str(tmp_path)).resolve_lines(lines, str(path), budget=60, hint_keys=keys)

    def refuse(self: object) -> object:
        raise AssertionError("the chunked analysis ran again")

    monkeypatch.setattr(parse.Analyzer, "analysis", refuse)
    monkeypatch.setenv("CONC_LSP_CACHE_DIR", str(tmp_path / "own"))
    own = Resolver(str(tmp_path)).resolve_lines(lines, str(path), budget=60)
    assert own.complete and given.complete and not own.cached
    assert own.total == given.total == 9  # the sample's checkpoints
    assert own.resolutions == given.resolutions
