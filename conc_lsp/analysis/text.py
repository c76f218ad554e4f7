"""Lines and columns the way Python and LSP count them.

Python and LSP end a line at ``\\r\\n``, ``\\r`` or ``\\n`` only.
``str.splitlines`` also splits at ``\\f``, ``\\v``, ``\\x1c-\\x1e``, ``\\x85``,
U+2028 and U+2029, which would shift every position after such a character.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
from functools import lru_cache
from itertools import accumulate
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conc_lsp.analysis.model import TextEdit

LINE_BREAK = re.compile(r"\r\n|\r|\n")


def split_lines(text: str) -> list[str]:
    """Split ``text`` into lines without their terminators.

    A text ending in a line break has an empty last line, as in LSP, so
    that a position just after the final newline exists.
    """
    return LINE_BREAK.split(text)


# Up to this many code points, slicing and encoding the line (in C) is
# cheaper than building its offset table (in Python).
SHORT_LINE = 256


@lru_cache(maxsize=16)
def _unit_offsets(line: str, encoding: str) -> Sequence[int]:
    """``offsets[i]``: the ``encoding`` units before code point ``i`` of ``line``.

    Built once per (long, non-ASCII) line and kept for the next conversions:
    converting every column of a line by slicing it is quadratic.
    """
    if encoding == "utf-8":
        widths = [
            1 if code < 0x80 else 2 if code < 0x800 else 3 if code < 0x10000 else 4
            for code in map(ord, line)
        ]
    else:
        widths = [2 if code >= 0x10000 else 1 for code in map(ord, line)]
    return list(accumulate(widths, initial=0))


def _to_codepoint(line: str, units: int, encoding: str) -> int:
    """The code point at which ``units`` falls (rounded down), for a non-ASCII line."""
    if len(line) > SHORT_LINE:
        offsets = _unit_offsets(line, encoding)
        return min(bisect_right(offsets, units) - 1, len(line))
    if encoding == "utf-8":
        return len(line.encode("utf-8")[:units].decode("utf-8", errors="ignore"))
    # UTF-16: a unit count that splits a surrogate pair rounds down.
    encoded = line.encode("utf-16-le")[: units * 2]
    return len(encoded.decode("utf-16-le", errors="ignore"))


def utf8_to_codepoint(line: str, byte_column: int) -> int:
    """Convert an ast column (UTF-8 bytes) into a code-point column."""
    if byte_column <= 0:
        return 0
    if line.isascii():
        return byte_column
    return _to_codepoint(line, byte_column, "utf-8")


def end_position(lines: Sequence[str], node: object) -> tuple[int, int]:
    """Where an ast node ends: 0-based line, code-point column (the anchor of
    a checkpoint's hint, by which resolutions are found)."""
    last: int = getattr(node, "end_lineno", None) or getattr(node, "lineno", None) or 1
    line = last - 1
    text = lines[line] if 0 <= line < len(lines) else ""
    return line, utf8_to_codepoint(text, getattr(node, "end_col_offset", None) or 0)


def codepoint_to_units(line: str, column: int, encoding: str) -> int:
    """Convert a code-point column into ``encoding`` units (utf-8/16/32)."""
    if encoding == "utf-32" or line.isascii():
        return column
    column = max(0, min(column, len(line)))
    if len(line) > SHORT_LINE:
        return _unit_offsets(line, encoding)[column]
    prefix = line[:column]
    if encoding == "utf-8":
        return len(prefix.encode("utf-8"))
    return len(prefix.encode("utf-16-le")) // 2


def units_to_codepoint(line: str, units: int, encoding: str) -> int:
    """Convert a column in ``encoding`` units into a code-point column.

    Columns past the end of the line clamp to its end, and a column that
    falls inside a character (half a surrogate pair, a partial UTF-8
    sequence) rounds down to that character's start.
    """
    if units <= 0:
        return 0
    if encoding == "utf-32" or line.isascii():
        return min(units, len(line))
    return _to_codepoint(line, units, encoding)


def apply_edits(lines: list[str], edits: Sequence[TextEdit]) -> list[str]:
    """The lines after applying non-overlapping edits (positions in code points)."""
    text = "\n".join(lines)
    starts = [0]
    for line in lines[:-1]:
        starts.append(starts[-1] + len(line) + 1)

    def offset(position: tuple[int, int]) -> int:
        line, column = position
        line = min(max(line, 0), len(lines) - 1)
        return starts[line] + min(column, len(lines[line]))

    for edit in sorted(edits, key=lambda e: (e.start, e.end), reverse=True):
        text = text[: offset(edit.start)] + edit.text + text[offset(edit.end) :]
    return split_lines(text)


def line_ending(text: str) -> str:
    """The file's line break: the first one found, "\\n" when there is none."""
    match = LINE_BREAK.search(text)
    return match.group(0) if match else "\n"


def changed_span(old: Sequence[str], new: Sequence[str]) -> tuple[int, int, int]:
    """The lines that differ: (first, old_end, new_end), so that ``old[first:old_end]``
    became ``new[first:new_end]``, with the common first and last lines left out."""
    limit = min(len(old), len(new))
    first = 0
    while first < limit and old[first] == new[first]:
        first += 1
    last = 0
    while last < limit - first and old[len(old) - 1 - last] == new[len(new) - 1 - last]:
        last += 1
    return first, len(old) - last, len(new) - last
