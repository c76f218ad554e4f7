"""Costs and failures that explode on odd input (issue 13, part 6): a chain of
2,000 `elif`s (2,000 levels deep in the tree) is walked in full, and code
nested deeper than Python's stack degrades to what could be computed, with a
line in the log, instead of losing every hint and fact of the function."""

from __future__ import annotations

import inspect
import logging
import sys
from collections.abc import Iterator

import pytest

from conc_lsp.analysis.flow import module_facts
from conc_lsp.analysis.model import HintKind
from conc_lsp.analysis.parse import analyse_lines
from conc_lsp.analysis.text import split_lines
from conc_lsp.diagnose import check_lines, module_tree
from tests.rule_settings import SEED_SETTINGS

ELIFS = 2000


def elif_chain(count: int) -> str:
    lines = ["import trio", "", "async def dispatch(ev, registry):", "    if ev.x0:"]
    lines.append("        await ev.wait()")
    for index in range(1, count):
        lines += [f"    elif ev.x{index}:", "        await ev.wait()"]
    lines += ["    else:", "        registry.pop(ev)", "    await trio.sleep(0)", ""]
    return "\n".join(lines)


def nested_withs(depth: int) -> str:
    lines = ["import trio", "", "async def deep(lock):"]
    for level in range(depth):
        lines.append("    " * (level + 1) + f"async with lock{level}:")
    lines.append("    " * (depth + 1) + "await trio.sleep(0)")
    return "\n".join(lines) + "\n"


def test_a_chain_of_2000_elifs_gets_every_hint_and_fact() -> None:
    lines = split_lines(elif_chain(ELIFS))
    hints = analyse_lines(lines).hints
    assert sum(hint.kind is HintKind.AWAIT for hint in hints) == ELIFS + 1
    result = check_lines(lines, SEED_SETTINGS)
    assert result.rule_errors == [] and result.problems == []
    assert result.facts is not None
    (function,) = result.facts.functions
    assert len(function.checkpoints) == ELIFS + 1
    # The `else` is exclusive with every branch, the last await with none.
    pop = next(event for event in function.events if event.method == "pop")
    assert len(pop.path) == ELIFS


@pytest.fixture
def shallow_stack() -> Iterator[None]:
    """Python's stack cut to what the test itself uses plus a little."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + 90)
    try:
        yield
    finally:
        sys.setrecursionlimit(limit)


def test_facts_nested_deeper_than_the_stack_are_cut_and_logged(
    shallow_stack: None, caplog: pytest.LogCaptureFixture
) -> None:
    lines = split_lines(nested_withs(60))
    tree, _ = module_tree(lines)
    with caplog.at_level(logging.WARNING, logger="conc_lsp"):
        facts = module_facts(tree, lines)
    (function,) = facts.functions
    assert 0 < len(function.checkpoints) < 2 * 60 + 1  # some, not all
    assert "`deep` nests too deeply" in caplog.text


def test_hints_nested_deeper_than_the_stack_are_cut_and_logged(
    shallow_stack: None, caplog: pytest.LogCaptureFixture
) -> None:
    lines = split_lines(nested_withs(60))
    with caplog.at_level(logging.WARNING, logger="conc_lsp"):
        hints = analyse_lines(lines).hints
    assert 0 < len(hints) < 60 + 1
    assert "nest too deeply" in caplog.text
