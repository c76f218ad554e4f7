"""The indexes behind the rules (issue 15: no quadratic rule) answer exactly what
the plain scans they replace answered, on every fixture and generated file."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from conc_lsp.analysis.event_index import none_exclusive_before, writes_between
from conc_lsp.analysis.events import EventKind, FunctionFacts, exclusive
from conc_lsp.analysis.flow import module_facts
from conc_lsp.analysis.reach import Parents, function_parents, reaches
from conc_lsp.analysis.text import split_lines
from conc_lsp.diagnose import module_tree
from tests.long_code import long_methods

FIXTURES = Path(__file__).parent / "fixtures"


def _functions() -> Iterator[FunctionFacts]:
    texts = [path.read_text("utf-8") for path in sorted(FIXTURES.rglob("*.py"))]
    texts.append(long_methods(200, 100))
    for text in texts:
        lines = split_lines(text)
        tree, _ = module_tree(lines)
        yield from module_facts(tree, lines).functions


FUNCTIONS = list(_functions())


# What `reaches` was before its blocks were indexed (a scan of the rest of the
# block per step): the reference the indexed one must agree with.
def _ends_block(rest: list[ast.stmt]) -> bool:
    if any(isinstance(node, (ast.Break, ast.Continue)) for stmt in rest for node in ast.walk(stmt)):
        return False
    return any(isinstance(stmt, (ast.Return, ast.Raise)) for stmt in rest)


def _contains(parents: Parents, ancestor: ast.AST, node: ast.AST) -> bool:
    while node is not ancestor:
        if node not in parents:
            return False
        node = parents[node][0]
    return True


def _reaches_by_scan(parents: Parents, first: ast.AST, second: ast.AST) -> bool:
    route: dict[ast.AST, str] = {}
    node = second
    while node in parents:
        parent, name = parents[node]
        route[parent] = name
        node = parent
    returns = raises = False
    node = first
    while node in parents:
        parent, name = parents[node]
        if parent in route:
            other = route[parent]
            if isinstance(parent, (ast.Try, ast.TryStar)) and (
                other == "finalbody" or (other == "handlers" and name == "body")
            ):
                return True
            if other == name and isinstance(node, ast.stmt):
                block: list[ast.stmt] = getattr(parent, name)
                target = next((stmt for stmt in block if _contains(parents, stmt, second)), None)
                if (
                    target is not None
                    and block.index(node) < block.index(target)
                    and _ends_block(block[block.index(node) : block.index(target)])
                ):
                    return False
            return not (returns or raises)
        if isinstance(node, ast.stmt) and isinstance(getattr(parent, name, None), list):
            rest = getattr(parent, name)[getattr(parent, name).index(node) :]
            if _ends_block(rest):
                if any(isinstance(stmt, ast.Return) for stmt in rest):
                    returns = True
                else:
                    raises = True
        if isinstance(parent, (ast.Try, ast.TryStar)) and name == "body" and parent.handlers:
            raises = False
        node = parent
    return not (returns or raises)


def test_reaches_agrees_with_the_scan_on_every_pair_of_events() -> None:
    pairs = 0
    unreached = 0
    for function in FUNCTIONS:
        parents = function_parents(function)
        events = function.events[:60]
        for first in events:
            for second in events:
                expected = _reaches_by_scan(parents, first.node, second.node)
                assert reaches(parents, first.node, second.node) == expected, (
                    function.qualname,
                    first.location,
                    second.location,
                )
                pairs += 1
                unreached += not expected
    assert pairs > 10_000 and unreached > 100  # the fixtures exercise both answers


def test_checkpoints_between_agrees_with_the_scan() -> None:
    for function in FUNCTIONS:
        events = function.events
        for first in events[:40]:
            for second in events[:40]:
                expected = [
                    event
                    for event in events[first.order + 1 : second.order]
                    if event.kind is EventKind.CHECKPOINT
                    and not exclusive(event, first)
                    and not exclusive(event, second)
                ]
                assert function.checkpoints_between(first, second) == expected


def test_writes_between_agrees_with_the_scan() -> None:
    for function in FUNCTIONS:
        events = function.events
        for first in events[:40]:
            for second in events[:40]:
                target = (second.state, second.key)
                expected = [
                    event
                    for event in events[first.order + 1 : second.order]
                    if event.kind is EventKind.WRITE and (event.state, event.key) == target
                ]
                assert writes_between(function, target, first.order, second.order) == expected


@pytest.mark.parametrize("function", [f for f in FUNCTIONS if any(e.path for e in f.events)][:40])
def test_none_exclusive_before_agrees_with_the_scan(function: FunctionFacts) -> None:
    for event in function.events:
        expected = not any(exclusive(other, event) for other in function.events[: event.order])
        assert none_exclusive_before(function, event) == expected
