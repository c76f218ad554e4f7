"""Keystrokes inside a long function: re-parse and re-walk one statement.

A large chunk (a long function, or a class holding one) keeps its tree and,
on every statement the collector reached, the state the walk entered it with
(context, the function's yield flags, the names bound to cancel scopes, the
name prefix) and the state it left it with.  An edit that stays inside one
statement of a function body and keeps the number of lines then costs a
parse of that statement (its lines verbatim under `if 1:`, so columns stay
exact) and a walk of it from its recorded state; when the walk leaves it in
the recorded state, every later hint is unchanged.

An edit that adds or removes lines (Enter inside brackets, a line joined to
the one above, lines pasted) works the same way when the statement still
parses: what follows moves (statement_lines.py).  So does an edit in the
blank lines below a statement that has a next sibling (Enter at its end, a
statement typed there): that statement and those lines are parsed again,
and may become several statements; a statement blanked out is parsed with
the sibling above it.

When the statement does not parse after an edit that kept the number of
lines, and nothing around it can heal it (no
bracket, string or continuation left open, no clause or decorator waiting
for a neighbour, the same indentation), the chunk keeps its hints moved
through the edit, as parse.py does for a broken function; the syntax
problem is computed when asked for (`resolve_problem`).  Anything else
returns False, and parse.py's chunk path, the reference, does the work.
"""

from __future__ import annotations

import ast
from bisect import bisect_right
from itertools import accumulate

from conc_lsp.analysis.chunks import (
    Chunk,
    dedented,
    move_hint,
)
from conc_lsp.analysis.collector import Collector
from conc_lsp.analysis.fragments import PARSE_ERRORS, parse_fragment, syntax_problem
from conc_lsp.analysis.keywords import KEYWORDS
from conc_lsp.analysis.libraries import ImportTable
from conc_lsp.analysis.model import Context, Hint, SyntaxProblem
from conc_lsp.analysis.shapes import falls_through
from conc_lsp.analysis.statement_checks import (
    alone_at_column_zero,
    group_splits_as_chunks,
    local_error,
)
from conc_lsp.analysis.statement_lines import (
    ancestor_ends,
    moved_below,
    shift_statements_below,
    statement_blocks,
    statements_and_gaps,
    with_previous,
)
from conc_lsp.analysis.statement_lines import (
    first_line as _first_line,
)
from conc_lsp.analysis.statement_state import (
    EditedStatement,
    EditsSinceRefresh,
    StatementState,
)
from conc_lsp.analysis.walk import FunctionWalk
from conc_lsp.analysis.walk_events import WalkState

# Chunks shorter than this are parsed again whole: that is cheap, and keeping
# a tree per chunk would cost memory for every open file.
MIN_LINES = 1500
# Set while the chunk's problem has not been computed (see resolve_problem).
PENDING = SyntaxProblem(0, 0, "not parsed yet", 0, 0)
_ENTRY = "_conc_entry"
_EXIT = "_conc_exit"
_DEFINITIONS = (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


class _Entry:
    """The walk's state when it reached a statement."""

    __slots__ = ("after_yield", "context", "function", "prefix", "scopes")

    def __init__(self, walk: FunctionWalk, context: Context) -> None:
        self.function = walk.function
        self.after_yield = walk.after_yield
        self.context = context
        self.prefix = walk.prefix
        self.scopes = walk.scope_names


class _RecordingWalk(FunctionWalk):
    """The walk, noting on each statement it reaches its entry and exit state."""

    def step(self, statement: ast.stmt, state: WalkState) -> WalkState:
        setattr(statement, _ENTRY, _Entry(self, state.context))
        state = super().step(statement, state)
        setattr(statement, _EXIT, (state.context, self.after_yield))
        return state


class RecordingCollector(Collector):
    """The collector, noting on each statement it reaches its entry and exit state."""

    walk_type = _RecordingWalk


def kept_statements(tree: ast.Module, indent: str, starts: list[int], length: int) -> list[int]:
    """Which chunks of a parsed region (by position) keep the tree: the long
    functions and classes that are a chunk of their own."""
    body = tree.body
    if len(starts) != len(body):
        return []
    ends = [*starts[1:], length]
    return [
        position
        for position, statement in enumerate(body)
        if ends[position] - starts[position] >= MIN_LINES and isinstance(statement, _DEFINITIONS)
    ]


def attach_states(
    tree: ast.Module,
    lines: list[str],
    counts: list[int],
    indent: str,
    chunks: list[Chunk],
    kept: list[int],
) -> None:
    """Give the chunks at ``kept`` the region's tree (collected by a RecordingCollector)."""
    flags = bytearray(len(counts))
    for line in range(1, len(counts)):
        flags[line] = counts[line] - counts[line - 1]
    region_start = chunks[0].start
    for position in kept:
        chunk = chunks[position]
        chunk.statements = StatementState(
            ast.Module(body=[tree.body[position]], type_ignores=[]),
            lines,
            flags,
            counts,
            len(indent),
            indent,
            chunk.hints,
            line_offset=chunk.start - region_start,
        )


def transferred(state: StatementState, offset: int, length: int) -> StatementState | None:
    """The state of a chunk that parse.py cut out of the chunk of ``state`` (a
    method of a class, ``offset`` lines below the class's first line) while the
    statement ``state.broken`` inside it was broken."""
    broken = state.broken
    if broken is None:
        return None
    low = offset + state.line_offset
    if not (low < broken.first and broken.last <= low + length):
        return None
    hints = [
        hint.shifted(-offset)
        for hint in state.hints
        if offset <= hint.keyword_line < offset + length
    ]
    return StatementState(
        state.tree,
        state.lines,
        state.flags,
        state.counts,
        state.column_offset,
        state.strip,
        hints,
        line_offset=low,
        broken=broken,
    )


def resolve_problem(chunk: Chunk, lines: list[str], *, keep_state: bool) -> None:
    """Compute the syntax problem of a chunk left broken by a statement edit,
    as parse.py computes it for a broken piece; without ``keep_state``, a
    broken chunk forgets its tree (parse.py is about to rework the chunks)."""
    if not keep_state and chunk.problem is not None:
        chunk.statements = None
    if chunk.problem is not PENDING:
        return
    own = lines[chunk.start : chunk.end]
    indent = chunk.indent
    dedent = dedented(own, indent)
    if dedent is None:  # cannot happen: the edit kept every line's indentation
        dedent, indent = own, ""
    chunk.problem = syntax_problem(dedent, len(indent))


def settle_statement_edits(chunks: list[Chunk], lines: list[str]) -> bool:
    """Before parse.py refreshes: whether any chunk is dirty.

    The chunks edited here since the last refresh take the state parse.py
    would have left them in: with work to do, dirty, carrying their hints of
    the last refresh through the edits (parse.py then reworks them with the
    rest); without, a broken one holds those carried hints (as parse.py's
    stale piece would) and a good one its fresh hints."""
    work = any(chunk.dirty for chunk in chunks)
    for chunk in chunks:
        if chunk.edited is not None and (work or chunk.problem is not None):
            settle_chunk(chunk)
            if work:
                chunk.dirty = True
                chunk.statements = None
                if chunk.problem is PENDING:
                    chunk.problem = None
        chunk.edited = None
        if work:
            resolve_problem(chunk, lines, keep_state=False)
    return work


def settle_chunk(chunk: Chunk) -> None:
    """Give the chunk the hints parse.py would carry: those of the last refresh
    moved through the statement edits since."""
    edited = chunk.edited
    if edited is None:
        return
    hints = edited.hints
    for chunk_start, start, end, new_lines in edited.edits:
        hints = _moved(hints, chunk_start, start, end, new_lines)
    chunk.hints = hints
    chunk.stale = len(hints)
    chunk.edited = None


def _moved(
    hints: list[Hint],
    chunk_start: int,
    start: tuple[int, int],
    end: tuple[int, int],
    new_lines: list[str],
) -> list[Hint]:
    """``hints`` moved through an edit: those on the edited lines move as
    parse.py moves them, those below by the lines the edit adds."""
    low, high = start[0] - chunk_start, end[0] - chunk_start
    delta = len(new_lines) - 1 - (end[0] - start[0])
    moved: list[Hint] = []
    for hint in hints:
        if hint.line < low and hint.keyword_line < low:
            moved.append(hint)
        elif hint.line > high and hint.keyword_line > high:
            moved.append(hint.shifted(delta) if delta else hint)
        else:
            landed = move_hint(hint, chunk_start, start, end, new_lines)
            if landed is not None:
                moved.append(landed)
    return moved


def edit_statement(
    chunks: list[Chunk],
    index: int,
    start: tuple[int, int],
    end: tuple[int, int],
    new_lines: list[str],
    lines_after: list[str],
    table: ImportTable,
) -> tuple[bool, StatementState | None]:
    """Apply an edit to ``chunks[index]`` by re-parsing one statement; False
    when parse.py must do it, with the state to hand to the piece of a class
    that parse.py will cut out around a broken statement (`transferred`)."""
    done = _edit(chunks, index, start, end, new_lines, lines_after, table)
    state = chunks[index].statements
    if done or state is None or state.broken is None or chunks[index].problem is not None:
        return done, None
    return False, state


def _edit(
    chunks: list[Chunk],
    index: int,
    start: tuple[int, int],
    end: tuple[int, int],
    new_lines: list[str],
    lines_after: list[str],
    table: ImportTable,
) -> bool:
    chunk = chunks[index]
    state = chunk.statements
    if state is None or chunk.dirty:
        return False
    delta = len(new_lines) - 1 - (end[0] - start[0])
    if (chunk.problem is None) != (state.broken is None) or (delta and state.broken):
        return False
    for other in chunks:
        if other is not chunk and (other.dirty or other.problem is not None):
            return False
    shift = state.line_offset - chunk.start + 1  # document line -> tree line
    first_edited, last_edited = start[0] + shift, end[0] + shift
    target = state.broken
    if target is not None:
        if not (target.first <= first_edited and last_edited <= target.last):
            return False
    else:
        target = find_statement(state.tree, first_edited, last_edited)
        if target is None:
            return False
    text = _statement_lines(state, target, lines_after, shift, delta)
    if text is None and state.broken is None:
        # A statement blanked or deleted: parse it with the one above.
        target = with_previous(target)
        if target is not None:
            text = _statement_lines(state, target, lines_after, shift, delta)
    if text is None or target is None:
        return False
    since = chunk.edited or EditsSinceRefresh(chunk.hints, [])
    try:
        wrapped = parse_fragment(["if 1:", *text])
    except SyntaxError as error:
        if delta:  # a broken statement keeps the lines of its last parse
            return False
        edit = (start, end, new_lines)
        done = _broken(chunks, index, state, target, text, error, edit, lines_after)
    except PARSE_ERRORS:
        return False
    else:
        done = _splice(chunk, state, target, text, wrapped, table, delta)
    if done:
        since.edits.append((chunk.start, start, end, new_lines))
        chunk.edited = since
        if delta:
            chunk.length += delta
            for later in chunks[index + 1 :]:
                later.start += delta
    return done


def find_statement(tree: ast.Module, first: int, last: int) -> EditedStatement | None:
    """The deepest statement inside a function whose lines hold lines
    first..last; or, when they reach into the blank or comment lines after
    a statement or into its next siblings, those statements and the blank
    lines after them (`statements_and_gaps`)."""
    parent: ast.AST = tree
    ancestors: list[ast.stmt] = []
    found: EditedStatement | None = None
    in_function = False
    while True:
        child = _child_holding(parent, first, last)
        if child is None:
            if in_function or isinstance(parent, ast.FunctionDef | ast.AsyncFunctionDef):
                run = statements_and_gaps(parent, first, last)
                if run is not None:
                    siblings, position, count, end = run
                    statement = siblings[position]
                    first_of_run = _first_line(statement)
                    return EditedStatement(
                        statement, parent, siblings, position, first_of_run, end, ancestors, count
                    )
            break
        siblings, position, statement = child
        found = EditedStatement(
            statement,
            parent,
            siblings,
            position,
            _first_line(statement),
            statement.end_lineno or statement.lineno,
            list(ancestors),
        )
        if isinstance(parent, ast.FunctionDef | ast.AsyncFunctionDef):
            in_function = True
        if not in_function and not isinstance(statement, _DEFINITIONS):
            return None  # module or class level: imports and the chunk's shape may change
        ancestors.append(statement)
        parent = statement
    if found is None or not in_function:
        return None
    return found


def _child_holding(
    node: ast.AST, first: int, last: int
) -> tuple[list[ast.stmt], int, ast.stmt] | None:
    for block in statement_blocks(node):
        position = bisect_right(block, first, key=_first_line) - 1
        if position < 0:
            continue
        statement = block[position]
        if (statement.end_lineno or statement.lineno) >= last:
            return block, position, statement
    return None


def _statement_lines(
    state: StatementState,
    target: EditedStatement,
    lines_after: list[str],
    shift: int,
    delta: int,
) -> list[str] | None:
    """The statement's lines after the edit (``delta`` lines more), in tree
    form; None when its indentation changed (the first line's, or a line
    less indented than it)."""
    strip = state.strip
    text: list[str] = []
    for line_number in range(target.first, target.last + delta + 1):
        line = lines_after[line_number - shift]
        if strip:
            if line.startswith(strip):
                line = line[len(strip) :]
            elif line.strip():
                return None
            else:
                line = ""
        text.append(line)
    old_first = state.lines[target.first - 1]
    lead = old_first[: len(old_first) - len(old_first.lstrip())]
    if (
        not lead
        or not text[0].startswith(lead)
        or text[0][len(lead) : len(lead) + 1] in ("", " ", "\t", "\f")
    ):
        return None
    if any(line.strip() and not line.startswith(lead) for line in text):
        return None
    if target.statement.col_offset != len(lead.encode("utf-8")) or _shares_a_line(target):
        return None
    return text


def _shares_a_line(target: EditedStatement) -> bool:
    """Another statement on the statement's first or last line (`a; b`)."""
    siblings, index, following = target.siblings, target.index, target.index + target.count
    if index > 0 and (siblings[index - 1].end_lineno or 0) >= target.first:
        return True
    return following < len(siblings) and _first_line(siblings[following]) <= target.last


def _splice(
    chunk: Chunk,
    state: StatementState,
    target: EditedStatement,
    text: list[str],
    wrapped: ast.Module,
    table: ImportTable,
    delta: int,
) -> bool:
    outer = wrapped.body
    if len(outer) != 1 or not isinstance(outer[0], ast.If):
        return False
    old = target.statement  # the first edited statement
    replaced_last = target.siblings[target.index + target.count - 1]
    news = outer[0].body  # one statement, or more when lines were added
    if news[0].col_offset != old.col_offset:
        return False
    for new in news:
        ast.increment_lineno(new, target.first - 2)
    if _first_line(news[0]) != target.first or (news[-1].end_lineno or 0) > target.last + delta:
        return False
    entry = getattr(old, _ENTRY, None)
    if not isinstance(entry, _Entry):
        return False
    parent, siblings = target.parent, target.siblings
    replaced = [*siblings[: target.index], *news, *siblings[target.index + target.count :]]
    if isinstance(parent, ast.If):
        # The walk of an `if` looks at how its branches end, and takes a
        # lone `if` in the `else` as an `elif`.
        if falls_through(siblings) != falls_through(replaced):
            return False
        if siblings is parent.orelse and any(
            len(block) == 1 and isinstance(block[0], ast.If) for block in (siblings, replaced)
        ):
            return False
    flags = bytearray(state.flags)
    flags[target.first : target.last + 1] = bytes(
        1 if KEYWORDS.search(line) else 0 for line in text
    )
    counts = list(accumulate(flags))
    ends = ancestor_ends(target.ancestors, target.last, delta, news[-1].end_lineno or 0)
    for ancestor, end in zip(target.ancestors, ends, strict=True):
        if counts[min(end, len(counts) - 1)] - counts[_first_line(ancestor) - 1] <= 0:
            return False  # the walk would skip it now
    lines = list(state.lines)
    lines[target.first - 1 : target.last] = text
    collector = RecordingCollector(lines, table, counts, column_offset=state.column_offset)
    walk = collector.walk(entry.function, entry.prefix)
    walk.after_yield = entry.after_yield
    walk.scope_names = entry.scopes
    try:
        walk.block(news, WalkState(context=entry.context))
    except RecursionError:
        return False
    if getattr(news[-1], _EXIT) != getattr(replaced_last, _EXIT):
        return False  # what follows is walked in another state
    low = target.first - 1 - state.line_offset
    high = target.last - 1 - state.line_offset
    hints = state.hints
    inside = [position for position, hint in enumerate(hints) if low <= hint.keyword_line <= high]
    if inside and inside[-1] - inside[0] + 1 != len(inside):
        return False
    cut = inside[0] if inside else _insertion_point(hints, low)
    if cut is None:
        return False
    fresh = collector.hints
    if state.line_offset:
        fresh = [hint.shifted(-state.line_offset) for hint in fresh]
    if delta:
        below = moved_below(hints, high, delta)
        if below is None:
            return False
        shift_statements_below(state.tree, target.last, delta, replaced_last)
        hints = below
    for ancestor, end in zip(target.ancestors, ends, strict=True):
        ancestor.end_lineno = end
    siblings[target.index : target.index + target.count] = news
    state.lines, state.flags, state.counts = lines, flags, counts
    state.hints = [*hints[:cut], *fresh, *hints[cut + len(inside) :]]
    state.broken = None
    chunk.hints = state.hints
    chunk.problem = None
    chunk.stale = 0
    return True


def _insertion_point(hints: list[Hint], line: int) -> int | None:
    """Where hints of a statement that had none go: after the hints above it,
    provided the hints are in line order around that place."""
    cut = 0
    while cut < len(hints) and hints[cut].keyword_line < line:
        cut += 1
    if any(hint.keyword_line < line for hint in hints[cut:]):
        return None
    return cut


def _broken(
    chunks: list[Chunk],
    index: int,
    state: StatementState,
    target: EditedStatement,
    text: list[str],
    error: SyntaxError,
    edit: tuple[tuple[int, int], tuple[int, int], list[str]],
    lines: list[str],
) -> bool:
    chunk = chunks[index]
    start, end, new_lines = edit
    if not local_error(text, error):
        return False
    root = state.tree.body[0]
    if chunk.indent:
        if not group_splits_as_chunks(chunks, index, state, lines):
            return False
    elif isinstance(root, ast.ClassDef) or not alone_at_column_zero(lines[chunk.start : chunk.end]):
        # parse.py splits a broken class into its methods; note the statement
        # so that the piece it lands in keeps the tree (`transferred`).
        if isinstance(root, ast.ClassDef):
            state.broken = target
        return False
    moved = _moved(chunk.hints, chunk.start, start, end, new_lines)
    chunk.hints = moved
    chunk.stale = len(moved)
    chunk.problem = PENDING
    state.broken = target
    return True
