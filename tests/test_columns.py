"""Column conversions: the per-line offset tables of long lines give the same
answers as slicing the line (issue 13: a 10,000-await line with one emoji)."""

from __future__ import annotations

import random

import pytest
from lsprotocol import types

from conc_lsp.analysis.text import (
    SHORT_LINE,
    codepoint_to_units,
    units_to_codepoint,
    utf8_to_codepoint,
)
from conc_lsp.server.positions import to_lsp

ALPHABET = "ab é中🐍\U0010ffff"


def sliced_units(line: str, column: int, encoding: str) -> int:
    prefix = line[:column]
    if encoding == "utf-8":
        return len(prefix.encode("utf-8"))
    if encoding == "utf-16":
        return len(prefix.encode("utf-16-le")) // 2
    return len(prefix)


def rounded_down(line: str, units: int, encoding: str) -> int:
    """The last code point whose start is at or before ``units``."""
    best = 0
    for column in range(len(line) + 1):
        if sliced_units(line, column, encoding) <= units:
            best = column
    return best


@pytest.mark.parametrize("length", [7, SHORT_LINE + 1, 3 * SHORT_LINE])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-32"])
def test_conversions_agree_with_slicing(length: int, encoding: str) -> None:
    rnd = random.Random(length)
    line = "".join(rnd.choice(ALPHABET) for _ in range(length))
    total = sliced_units(line, len(line), encoding)
    for column in range(len(line) + 1):
        units = sliced_units(line, column, encoding)
        assert codepoint_to_units(line, column, encoding) == units
        assert units_to_codepoint(line, units, encoding) == column
    # Inside a character: round down; past the end: clamp.
    for units in [*range(0, total + 3, max(1, total // 97)), total + 50]:
        assert units_to_codepoint(line, units, encoding) == rounded_down(line, units, encoding)
    if encoding == "utf-8":
        for units in range(0, total + 1, max(1, total // 89)):
            assert utf8_to_codepoint(line, units) == rounded_down(line, units, encoding)


def test_long_line_with_one_emoji() -> None:
    line = '    x = "🐍"; ' + "; ".join("await g()" for _ in range(2_000))
    column = len(line)
    assert codepoint_to_units(line, column, "utf-16") == column + 1
    assert codepoint_to_units(line, column, "utf-8") == column + 3
    assert units_to_codepoint(line, column + 1, "utf-16") == column
    assert utf8_to_codepoint(line, column + 3) == column


def test_lsp_positions_stay_inside_the_document() -> None:
    lines = ["a = '🐍'", "b"]
    assert to_lsp(lines, 0, 99, "utf-16") == types.Position(line=0, character=8)
    assert to_lsp(lines, 7, 3, "utf-16") == types.Position(line=1, character=1)
    assert to_lsp(lines, -2, 3, "utf-8") == types.Position(line=0, character=0)
    assert to_lsp([], 3, 3, "utf-8") == types.Position(line=0, character=0)
