"""Every fixture file states its expected hints inline; one test reads them all."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

from conc_lsp.analysis.fragments import parse_fragment
from conc_lsp.analysis.model import HintKind
from conc_lsp.analysis.parse import analyse_lines
from conc_lsp.analysis.text import split_lines
from conc_lsp.labels import label

FIXTURES = Path(__file__).parent / "fixtures" / "hints"
MARK = "# hints:"


def expected_hints(lines: list[str]) -> dict[int, list[str]]:
    expected: dict[int, list[str]] = {}
    for number, line in enumerate(lines):
        if MARK in line:
            labels = line.split(MARK, 1)[1]
            expected[number] = [part.strip() for part in labels.split("|")]
    return expected


def ast_checkpoint_count(source: str) -> int:
    count = 0
    # parse_fragment is ast.parse, with 3.12 syntax made readable on 3.11.
    for node in ast.walk(parse_fragment(split_lines(source))):
        if isinstance(node, (ast.Await, ast.AsyncFor)):
            count += 1
        elif isinstance(node, ast.AsyncWith):
            count += len(node.items)
        elif isinstance(node, ast.comprehension) and node.is_async:
            count += 1
    return count


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.py")), ids=lambda path: path.stem)
def test_fixture_hints(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    lines = split_lines(source)
    analysis = analyse_lines(lines)
    assert analysis.problems == []
    found: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for hint in analysis.hints:
        found[hint.keyword_line].append((hint.column, label(hint)))
    actual = {line: [text for _, text in sorted(items)] for line, items in found.items()}
    expected = expected_hints(lines)
    mismatches = {
        line + 1: {"expected": expected.get(line), "actual": actual.get(line)}
        for line in sorted(set(expected) | set(actual))
        if expected.get(line) != actual.get(line)
    }
    assert mismatches == {}
    checkpoints = sum(1 for hint in analysis.hints if hint.kind.is_checkpoint)
    assert checkpoints == ast_checkpoint_count(source)


def test_fixtures_cover_every_kind() -> None:
    kinds = set()
    for path in FIXTURES.glob("*.py"):
        analysis = analyse_lines(split_lines(path.read_text(encoding="utf-8")))
        kinds |= {hint.kind for hint in analysis.hints}
    assert kinds == set(HintKind)
