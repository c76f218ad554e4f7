"""Statement edits that change the number of lines (Enter inside a statement's
brackets, a line joined to the one above, a few lines pasted): what moves.

The edited statement is parsed again whole, so its nodes carry their true
lines.  Below it, only what later statement edits read moves: each
statement's ``lineno`` / ``end_lineno`` and its first decorator's line
(statement_edit.py finds the edited statement, checks its neighbours and
ancestors by those alone, and parses and walks an edited statement afresh).
The expressions inside an untouched statement keep the lines of the parse
that made them: nothing reads them while they are in the kept tree, and
``ast.increment_lineno`` over every later node would cost more than the
whole statement edit (tens of milliseconds in a 5,000-line function).
"""

from __future__ import annotations

import ast
from bisect import bisect_right

from conc_lsp.analysis.model import Hint
from conc_lsp.analysis.statement_state import EditedStatement

_BLOCK_FIELDS = ("body", "orelse", "finalbody")


def statement_blocks(node: ast.AST) -> list[list[ast.stmt]]:
    """The statement lists directly under ``node`` (bodies, handlers, cases)."""
    blocks: list[list[ast.stmt]] = []
    for field in _BLOCK_FIELDS:
        value = getattr(node, field, None)
        if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
            blocks.append(value)
    for handler in getattr(node, "handlers", ()):
        blocks.append(handler.body)
    for case in getattr(node, "cases", ()):
        blocks.append(case.body)
    return blocks


def first_line(statement: ast.stmt) -> int:
    """The statement's first line, its decorators included."""
    decorators: list[ast.expr] | None = getattr(statement, "decorator_list", None)
    if decorators:
        return min(statement.lineno, decorators[0].lineno)
    return statement.lineno


def statements_and_gaps(
    node: ast.AST, first: int, last: int
) -> tuple[list[ast.stmt], int, int, int] | None:
    """The statements of one of ``node``'s blocks that lines first..last start
    in, when no one of them holds those lines: from the statement line
    ``first`` is in (or in the blank and comment lines after) to the one line
    ``last`` is in, with the blank and comment lines before the next sibling
    (Enter at the end of a statement, a line typed below it, a blank line
    deleted, two lines joined).  Returns the block, the first statement's
    position, how many statements, and the region's last line."""
    for block in statement_blocks(node):
        position = bisect_right(block, first, key=first_line) - 1
        if position < 0:
            continue
        through = bisect_right(block, last, key=first_line) - 1
        if through + 1 < len(block):
            end = first_line(block[through + 1]) - 1
        else:
            end = block[through].end_lineno or block[through].lineno
        if last <= end:
            return block, position, through - position + 1, end
    return None


def with_previous(target: EditedStatement) -> EditedStatement | None:
    """The edited statements and the sibling above them (a statement whose
    lines are deleted or blanked joins the one above it, with the blank
    lines between them)."""
    if target.index == 0:
        return None
    previous = target.siblings[target.index - 1]
    return EditedStatement(
        previous,
        target.parent,
        target.siblings,
        target.index - 1,
        first_line(previous),
        target.last,
        target.ancestors,
        target.count + 1,
    )


def shift_statements_below(root: ast.AST, line: int, delta: int, skip: ast.stmt) -> None:
    """Move by ``delta`` lines every statement of ``root`` that starts below
    ``line`` (``skip``, the statement being replaced, and what it holds stay
    as they are; so do the statements holding ``line``: see `ancestor_ends`)."""
    for block in statement_blocks(root):
        position = bisect_right(block, line, key=first_line)
        if position:
            holder = block[position - 1]
            if holder is not skip and (holder.end_lineno or holder.lineno) >= line:
                shift_statements_below(holder, line, delta, skip)
        for statement in block[position:]:
            _shift_statement(statement, delta)


def ancestor_ends(ancestors: list[ast.stmt], last: int, delta: int, new_end: int) -> list[int]:
    """The last lines of the statements holding an edited region that ended on
    ``last``: those going on below it move by ``delta``; those it ended
    (its statement was their last) now end where the new statements end."""
    ends: list[int] = []
    for ancestor in ancestors:
        end = ancestor.end_lineno or ancestor.lineno
        ends.append(end + delta if end > last else new_end)
    return ends


def _shift_statement(statement: ast.stmt, delta: int) -> None:
    statement.end_lineno = (statement.end_lineno or statement.lineno) + delta
    statement.lineno += delta
    decorators: list[ast.expr] | None = getattr(statement, "decorator_list", None)
    if decorators:
        decorators[0].lineno += delta
    for block in statement_blocks(statement):
        for child in block:
            _shift_statement(child, delta)


def moved_below(hints: list[Hint], last_line: int, delta: int) -> list[Hint] | None:
    """``hints`` (chunk lines) with those below ``last_line`` moved by ``delta``;
    None when a hint has one line above it and one below (it cannot be moved
    as a whole)."""
    moved: list[Hint] = []
    for hint in hints:
        below = hint.keyword_line > last_line
        if below != (hint.line > last_line):
            return None
        moved.append(hint.shifted(delta) if below else hint)
    return moved
