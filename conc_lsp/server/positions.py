"""The one place where analysis positions become LSP positions."""

from __future__ import annotations

from lsprotocol import types

from conc_lsp.analysis.text import codepoint_to_units

ENCODINGS = {
    types.PositionEncodingKind.Utf8: "utf-8",
    types.PositionEncodingKind.Utf16: "utf-16",
    types.PositionEncodingKind.Utf32: "utf-32",
}


def encoding_name(kind: str | types.PositionEncodingKind | None) -> str:
    """The codec name of a negotiated LSP position encoding (UTF-16 by default)."""
    if kind is None:
        return "utf-16"
    for known, name in ENCODINGS.items():
        if kind == known or kind == known.value:
            return name
    return "utf-16"


def to_lsp(lines: list[str], line: int, column: int, encoding: str) -> types.Position:
    """(line, code-point column) -> LSP position in ``encoding`` units, clamped
    to the document (a position past its end is its end: never a range the
    client cannot place)."""
    if line < 0:
        return types.Position(line=0, character=0)
    if line >= len(lines):
        line, column = len(lines) - 1, len(lines[-1]) if lines else 0
        if line < 0:
            return types.Position(line=0, character=0)
    text = lines[line]
    column = min(max(column, 0), len(text))
    return types.Position(line=line, character=codepoint_to_units(text, column, encoding))
