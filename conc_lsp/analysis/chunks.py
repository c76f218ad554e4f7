"""Chunks: the pieces of a module that parse.py keeps, and how edits move them.

A chunk is a run of consecutive lines (one top-level statement, a method of
a class parsed apart, or a broken piece); these helpers find statement
starts, class pieces and where hints land after an edit, without parsing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from conc_lsp.analysis.libraries import ImportFact
from conc_lsp.analysis.model import Hint, SyntaxProblem
from conc_lsp.analysis.statement_state import EditsSinceRefresh, StatementState

CONTINUATION = re.compile(r"(else|elif|except|finally)\b")
TRIPLE_DOUBLE, TRIPLE_SINGLE = '"' * 3, "'" * 3


@dataclass(slots=True)
class Chunk:
    """Consecutive lines of the module; hint lines are relative to ``start``."""

    start: int
    length: int
    hints: list[Hint] = field(default_factory=list)
    imports: list[ImportFact] = field(default_factory=list)
    dirty: bool = False
    problem: SyntaxProblem | None = None  # set when the chunk does not parse
    stale: int = 0  # how many of ``hints`` were carried from an older parse
    table_fingerprint: tuple[tuple[str, str], ...] = ()
    indent: str = ""  # a method parsed apart from its class: the class body's indent
    prefix: str = ""  # ... and the class name, for function names
    statements: StatementState | None = None  # a large chunk's tree, for statement edits
    # Statement edits since the last refresh: the hints before them, and the edits.
    edited: EditsSinceRefresh | None = None

    @property
    def end(self) -> int:
        return self.start + self.length


def looks_like_statement_start(line: str, previous_code: str, *, trust_previous: bool) -> bool:
    """A line at column 0 that may start a new top-level statement.

    With ``trust_previous``, a line after an open bracket or a trailing
    comma or backslash continues that line; in broken code that bracket may
    be the very typo, so method splitting does not trust it.
    """
    if not line or line[0] in " \t\f#)]}":
        return False
    if CONTINUATION.match(line) or previous_code.startswith("@"):
        return False
    return not (trust_previous and previous_code.endswith(("\\", ",", "(", "[", "{")))


def statement_starts(lines: list[str], indent: str = "") -> list[int]:
    """Indexes of the lines that look like statement starts at ``indent``."""
    starts: list[int] = []
    previous = ""
    width = len(indent)
    for index, line in enumerate(lines):
        if not line.startswith(indent):
            if line.strip():
                previous = line.strip()
            continue
        body = line[width:]
        if looks_like_statement_start(body, previous, trust_previous=not indent):
            starts.append(index)
        stripped = body.strip()
        if stripped and not stripped.startswith("#"):
            previous = stripped
    return starts


def dedented(lines: list[str], indent: str) -> list[str] | None:
    """Lines without ``indent``; None when a line with code lacks it."""
    if not indent:
        return lines
    width = len(indent)
    result = []
    for line in lines:
        if line.startswith(indent):
            result.append(line[width:])
        elif line.strip():
            return None  # less indented than its method: not a method piece
        else:
            result.append("")
    return result


def class_group(chunks: list[Chunk], index: int) -> tuple[int, int]:
    """The chunks of the class whose method piece is ``chunks[index]``: header to last method."""
    indent, prefix = chunks[index].indent, chunks[index].prefix
    low = index
    while low > 0 and chunks[low - 1].indent == indent and chunks[low - 1].prefix == prefix:
        low -= 1
    if low > 0:
        low -= 1  # the class header
    high = index
    while (
        high + 1 < len(chunks)
        and chunks[high + 1].indent == indent
        and chunks[high + 1].prefix == prefix
    ):
        high += 1
    return low, high


def with_method_pieces(chunks: list[Chunk], index: int) -> int:
    """The index of the last chunk of ``chunks[index]`` and the method pieces
    that follow it (a class whose methods are chunks of their own)."""
    last = index
    while last + 1 < len(chunks) and chunks[last + 1].indent:
        last += 1
    return last


def merged(chunks: list[Chunk]) -> Chunk:
    """One dirty chunk covering ``chunks``, carrying their hints and imports."""
    start = chunks[0].start
    hints = [hint.shifted(chunk.start - start) for chunk in chunks for hint in chunk.hints]
    return Chunk(
        start,
        chunks[-1].end - start,
        hints=hints,
        imports=[fact for chunk in chunks for fact in chunk.imports],
        dirty=True,
        stale=sum(chunk.stale for chunk in chunks),
    )


def joined(chunks: list[Chunk], groups: dict[int, int]) -> list[Chunk]:
    """``chunks`` with each group (first index -> last index) merged into one."""
    result: list[Chunk] = []
    index = 0
    while index < len(chunks):
        last = groups.get(index, index)
        result.append(merged(chunks[index : last + 1]) if last > index else chunks[index])
        index = last + 1
    return result


def owner_of(starts: list[int], line: int) -> int:
    low, high = 0, len(starts) - 1
    while low < high:
        middle = (low + high + 1) // 2
        if starts[middle] <= line:
            low = middle
        else:
            high = middle - 1
    return low


def class_name_of(lines: list[str]) -> str | None:
    for line in lines:
        match = re.match(r"class\s+([A-Za-z_]\w*)", line)
        if match:
            return match.group(1)
        if line and not line.startswith(("@", "#")):
            return None
    return None


def body_indent(lines: list[str]) -> str | None:
    for line in lines[1:]:
        stripped = line.lstrip(" \t")
        if stripped and not stripped.startswith("#") and len(stripped) < len(line):
            return line[: len(line) - len(stripped)]
    return None


def absolute_problem(problem: SyntaxProblem, start: int) -> SyntaxProblem:
    return SyntaxProblem(
        problem.line + start,
        problem.column,
        problem.message,
        problem.start_line + start,
        problem.end_line + start,
    )


def may_close_below(lines: list[str], chunk: Chunk) -> bool:
    """A broken chunk whose triple-quoted string may close in a chunk below: three
    quotes there, even in a comment or a string of a chunk that parses alone
    (then only the whole text says which is code)."""
    problem = chunk.problem
    if problem is None or not problem.message.startswith("unterminated triple-quoted string"):
        return False
    return any(TRIPLE_DOUBLE in line or TRIPLE_SINGLE in line for line in lines[chunk.end :])


def first_code_line(lines: list[str], chunk: Chunk) -> str:
    """The chunk's first line that is neither blank nor a comment (a broken
    piece can start with blank lines)."""
    for line in lines[chunk.start : chunk.end]:
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return line
    return ""


def move_hint(
    hint: Hint,
    chunk_start: int,
    start: tuple[int, int],
    end: tuple[int, int],
    new_lines: list[str],
) -> Hint | None:
    """Where a hint of the old text lands after the edit; None if edited away."""
    anchor = move_position((hint.line + chunk_start, hint.column), start, end, new_lines)
    keyword = move_position(
        (hint.keyword_line + chunk_start, hint.keyword_column), start, end, new_lines
    )
    if anchor is None or keyword is None:
        return None
    width = hint.keyword_end_column - hint.keyword_column
    return Hint(
        kind=hint.kind,
        line=anchor[0] - chunk_start,
        column=anchor[1],
        keyword_line=keyword[0] - chunk_start,
        keyword_column=keyword[1],
        keyword_end_column=keyword[1] + width,
        function=hint.function,
        context=hint.context,
        code=hint.code,
        waits_for_children=hint.waits_for_children,
        bounded_call=hint.bounded_call,
        releases_on_exit=hint.releases_on_exit,
        in_async_function=hint.in_async_function,
    )


def move_position(
    position: tuple[int, int],
    start: tuple[int, int],
    end: tuple[int, int],
    new_lines: list[str],
) -> tuple[int, int] | None:
    if position <= start:
        return position
    if position < end:
        return None
    line, column = position
    if line == end[0]:
        base = start[1] if len(new_lines) == 1 else 0
        return (start[0] + len(new_lines) - 1, column - end[1] + base + len(new_lines[-1]))
    return (line + (len(new_lines) - 1) - (end[0] - start[0]), column)
