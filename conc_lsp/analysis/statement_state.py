"""What a large chunk keeps of its last good parse, so that a keystroke inside
one statement of a function re-parses and re-walks that statement only
(statement_edit.py does the work; parse.py keeps one of these per chunk)."""

from __future__ import annotations

import ast
from dataclasses import dataclass

from conc_lsp.analysis.model import Hint


@dataclass(slots=True)
class EditedStatement:
    """The statement of the kept tree that an edit lies in, and where it hangs."""

    statement: ast.stmt
    parent: ast.AST  # the node whose statement list holds it
    siblings: list[ast.stmt]  # that list
    index: int
    first: int  # tree lines (1-based) of the statement, decorators included
    last: int
    ancestors: list[ast.stmt]  # the enclosing statements, outermost first
    count: int = 1  # siblings[index : index + count] are edited (first..last hold them)


@dataclass(slots=True)
class EditsSinceRefresh:
    """A chunk's hints at the last refresh and the statement edits made since
    (each: the chunk's first line then, start, end and the new lines); parse.py
    would carry those hints through these edits."""

    hints: list[Hint]
    edits: list[tuple[int, tuple[int, int], tuple[int, int], list[str]]]


@dataclass(slots=True)
class StatementState:
    """A chunk's tree, the lines it was parsed from and its good hints.

    Tree line ``n`` (1-based) is the chunk's line ``n - 1 - line_offset``;
    a document line is the tree's line once ``strip`` (the indentation of a
    method parsed apart) is taken off its front.
    """

    tree: ast.Module
    lines: list[str]
    flags: bytearray  # flags[n] = 1: tree line n holds a hint keyword
    counts: list[int]  # prefix sums of flags, as keyword_line_counts gives them
    column_offset: int
    strip: str
    hints: list[Hint]  # the chunk's hints after the last good parse, chunk lines
    line_offset: int = 0
    # The statement left broken by the edits since the last good parse; the
    # chunk's hints are then the good ones moved through those edits.
    broken: EditedStatement | None = None
    # A cached answer to "would parse.py split this chunk's class as it is
    # split now" (the chunks it was computed for, by identity, and the answer).
    group_check: tuple[tuple[tuple[object, int, int], ...], bool] | None = None
