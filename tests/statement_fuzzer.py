"""Random keystrokes inside a long function body (statement edits, issue 15).

Two documents get the same edits: one analysed with statement edits (a
chunk keeps its tree from ``min_lines`` lines up), one with the chunk path
alone (no chunk keeps a tree: the reference).  After every edit their hints
must be equal, and, every few edits, their problems and stale-hint counts
too; whenever the text parses, the hints must also equal those of a fresh
analysis (now and then a few edits go in before the next request, as the
changes of one notification do).  Edits type and delete characters (brackets, colons, quotes,
backslashes, `#`), break and repair lines, change indentation, press Enter,
and type whole lines that change the walk's state: `yield`, `with
trio.CancelScope(shield=True):`, `scope = trio.CancelScope()`,
`scope.shield = True`, `try:` / `finally:`, `return`; Enter after an open
bracket or a comma or at the end of a line, a line joined to the one above,
a few lines pasted (edits that change the number of lines: `Counts` tells how many took the
statement edit).  After every edit the kept trees' statements must sit on
the lines a fresh parse gives them (statement_lines.py moves only those).

Used by tests/test_statement_edits.py (fixed seeds) and by
benchmarks/fuzz_edits.py --statements (many seeds).
"""

from __future__ import annotations

import ast
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from conc_lsp.analysis import parse, statement_edit
from conc_lsp.analysis.chunks import Chunk
from conc_lsp.analysis.fragments import PARSE_ERRORS, parse_fragment
from conc_lsp.analysis.model import Hint, ModuleAnalysis
from conc_lsp.analysis.parse import Analyzer
from conc_lsp.server.documents import Document

BODY_UNIT = """\
        value_{k} = await self.fetch(key, {k})
        if key in self.pending:
            self.pending.pop(key)
        elif key is None:
            await trio.sleep(0)
        else:
            self.users += 1
        scope_{k} = trio.CancelScope()
        with scope_{k}:
            scope_{k}.shield = True
            await self.flush(key)
        with trio.CancelScope(shield=True):
            await trio.sleep({k})
        try:
            await self.done.wait()
        except (KeyError, ValueError) as error:
            await self.report(error)
        finally:
            self.closed.set()
        async with self.lock:
            self.cache[key] = [x async for x in self.items(
                {k},
            )]
        for item in self.items:
            await item.close()
        else:
            self.ready.set()
        while self.users:  # a comment
            self.users -= 1; await trio.sleep(0)
        text_{k} = '''a string
            spanning lines'''
        def inner_{k}(x):
            return x + {k}
        match key:
            case 1:
                await trio.sleep(1)
            case _:
                pass
"""

HEADER = """\
import trio
from contextlib import asynccontextmanager


class Pool:
    def __init__(self):
        self.users = 0

    async def waiter(self, key):
        await self.ready.wait()

    @asynccontextmanager
    async def opened(self, key):
"""

MIDDLE = """\
        yield self
        await self.after(key)

    async def finisher(self):
        self.done.set()


async def long_function(self, key):
"""

TRAILER = """\

async def tail():
    await trio.sleep(0)
    return '''a string
at column 0'''
"""

SNIPPETS = (
    "await trio.sleep(0)",
    "yield",
    "yield key",
    "with trio.CancelScope(shield=True):",
    "scope = trio.CancelScope()",
    "scope.shield = True",
    "scope.shield = False",
    "scope.deadline = 1",
    "try:",
    "finally:",
    "except Exception:",
    "else:",
    "return",
    "raise",
    "pass",
    "async with self.lock:",
    "self.users -= 1",
    "(self.users -= 1",
    "x = (",
    ")",
    '"""',
    "'",
    "ev.set()",
    "nursery.start_soon(f)",
    "@decorator",
    "def f():",
    "if x:",
    "elif y:",
)
CHARACTERS = "()[]{}:'\"\\#,=x ;@\t"


def source(units: int) -> str:
    """A module whose acm method and top-level function hold ``units`` units each."""
    body = "".join(BODY_UNIT.format(k=k) for k in range(units))
    return HEADER + body + MIDDLE + body + TRAILER


@contextmanager
def keeping_trees(min_lines: int) -> Iterator[None]:
    saved = statement_edit.MIN_LINES
    statement_edit.MIN_LINES = min_lines
    try:
        yield
    finally:
        statement_edit.MIN_LINES = saved


@dataclass
class Counts:
    """Edits that change the number of lines inside a kept chunk: how many,
    and how many the statement edit took."""

    line_changes: int = 0
    fast_line_changes: int = 0
    fast: int = 0  # statement edits of any kind
    results: list[bool] = field(default_factory=list)


@contextmanager
def counting(counts: Counts) -> Iterator[None]:
    """Note in ``counts.results`` whether each statement edit was taken."""
    original = parse.edit_statement

    def noted(*arguments: object, **keywords: object) -> tuple[bool, object]:
        done, state = original(*arguments, **keywords)  # type: ignore[arg-type]
        counts.results.append(done)
        return done, state

    parse.edit_statement = noted  # type: ignore[assignment]
    try:
        yield
    finally:
        parse.edit_statement = original


def kept_statement_lines(chunks: list[Chunk]) -> None:
    """Every kept tree whose chunk parses has its statements on the lines a
    fresh parse of its text gives them (raises AssertionError otherwise)."""
    for chunk in chunks:
        state = chunk.statements
        if state is None or state.broken is not None or chunk.problem is not None:
            continue
        try:
            fresh = parse_fragment(state.lines)
        except PARSE_ERRORS:
            continue  # text of other chunks of the region, edited since
        root = state.tree.body[0]
        match = [node for node in fresh.body if node.lineno == root.lineno]
        assert match, f"no statement at line {root.lineno} of the kept text"
        assert _statement_lines(root) == _statement_lines(match[0]), "kept tree lines moved"


def _statement_lines(root: ast.AST) -> list[tuple[int, int | None, int]]:
    found = []
    for node in ast.walk(root):
        if isinstance(node, ast.stmt):
            decorators = getattr(node, "decorator_list", None)
            first = decorators[0].lineno if decorators else node.lineno
            found.append((node.lineno, node.end_lineno, first))
    return found


@dataclass
class Pair:
    fast: Document
    reference: Document
    min_lines: int

    @classmethod
    def open(cls, text: str, min_lines: int) -> Pair:
        with keeping_trees(min_lines):
            fast = Document.open("file:///fast.py", 1, text)
        with keeping_trees(10**9):
            reference = Document.open("file:///reference.py", 1, text)
        return cls(fast, reference, min_lines)

    def edit(self, start: tuple[int, int], end: tuple[int, int], text: str) -> None:
        with keeping_trees(self.min_lines):
            self.fast.edit(start, end, text)
        with keeping_trees(10**9):
            self.reference.edit(start, end, text)

    def hints(self) -> tuple[list[Hint], list[Hint]]:
        with keeping_trees(self.min_lines):
            fast = list(self.fast.analyzer.hints_between(0, len(self.fast.lines)))
        with keeping_trees(10**9):
            reference = list(self.reference.analyzer.hints_between(0, len(self.reference.lines)))
        return fast, reference

    def analyses(self) -> tuple[ModuleAnalysis, ModuleAnalysis]:
        with keeping_trees(self.min_lines):
            fast = self.fast.analyzer.analysis()
        with keeping_trees(10**9):
            reference = self.reference.analyzer.analysis()
        return fast, reference


def random_edit(
    rng: random.Random, lines: list[str], low: int, high: int
) -> tuple[tuple[int, int], tuple[int, int], str]:
    """One edit on a line in low..high (inclusive), mostly inside statements."""
    line = rng.randint(low, min(high, len(lines) - 1))
    text = lines[line]
    column = rng.randint(0, len(text))
    indent = len(text) - len(text.lstrip())
    choice = rng.random()
    if choice < 0.35:  # type a character
        return (line, column), (line, column), rng.choice(CHARACTERS)
    if choice < 0.6 and text:  # delete a character
        column = min(column, len(text) - 1)
        return (line, column), (line, column + 1), ""
    if choice < 0.7:  # replace the line's code, keeping its indentation
        return (line, indent), (line, len(text)), rng.choice(SNIPPETS)
    if choice < 0.78:  # indent or dedent
        if indent and rng.random() < 0.5:
            return (line, 0), (line, min(4, indent)), ""
        return (line, 0), (line, 0), "    "
    if choice < 0.84:  # Enter (often at the end of the line), or join with the next line
        if rng.random() < 0.6 or line + 1 >= len(lines):
            if rng.random() < 0.4:
                column = len(text)
            return (line, column), (line, column), "\n" + " " * indent
        return (line, len(text)), (line + 1, 0), ""
    if choice < 0.88:  # Enter after an open bracket or a comma, or paste lines there
        openings = [at + 1 for at, character in enumerate(text) if character in "([{,"]
        if openings:
            column = rng.choice(openings)
            deeper = "\n" + " " * (indent + 4)
            if rng.random() < 0.7:
                return (line, column), (line, column), deeper
            return (line, column), (line, column), f"{deeper}1,{deeper}key,"
        if line + 1 < len(lines):  # join the next line's code to this one
            following = lines[line + 1]
            return (line, len(text)), (line + 1, len(following) - len(following.lstrip())), " "
    if choice < 0.92:  # type a snippet inside the line
        return (line, column), (line, column), rng.choice(SNIPPETS)
    # delete a word
    end = min(len(text), column + rng.randint(1, 6))
    return (line, column), (line, end), ""


def parses(lines: list[str]) -> bool:
    try:
        parse_fragment(lines)
    except PARSE_ERRORS:
        return False
    return True


def _inverse(
    lines: list[str], start: tuple[int, int], end: tuple[int, int], typed: str
) -> tuple[tuple[int, int], tuple[int, int], str]:
    """The edit that takes ``typed`` (replacing start..end) back."""
    if start[0] == end[0]:
        removed = lines[start[0]][start[1] : end[1]]
    else:
        removed = "\n".join(
            [lines[start[0]][start[1] :], *lines[start[0] + 1 : end[0]], lines[end[0]][: end[1]]]
        )
    typed_lines = typed.split("\n")
    if len(typed_lines) == 1:
        new_end = (start[0], start[1] + len(typed))
    else:
        new_end = (start[0] + len(typed_lines) - 1, len(typed_lines[-1]))
    return start, new_end, removed


def _line_after(lines: list[str], header: str, rng: random.Random) -> int:
    for number, line in enumerate(lines):
        if line.strip() == header:
            return number + 1
    return rng.randrange(len(lines))


def run(
    seed: int, edits: int, units: int = 2, min_lines: int = 20, counts: Counts | None = None
) -> int:
    """Edit and compare; returns how many edits were compared (raises on a difference)."""
    counts = counts if counts is not None else Counts()
    rng = random.Random(seed)
    text = source(units)
    pair = Pair.open(text, min_lines)
    undo: list[tuple[tuple[int, int], tuple[int, int], str]] = []
    for number in range(edits):
        lines = pair.fast.lines
        if undo and (rng.random() < 0.25 or (rng.random() < 0.7 and not parses(lines))):
            start, end, typed = undo.pop()  # the user takes the keystroke back
        else:
            header = "async def opened(self, key):"
            if rng.random() < 0.5:
                header = "async def long_function(self, key):"
            first = _line_after(lines, header, rng)
            start, end, typed = random_edit(rng, lines, first, first + units * 40)
            undo.append(_inverse(lines, start, end, typed))
        del counts.results[:]
        with counting(counts):
            pair.edit(start, end, typed)
        taken = any(counts.results)  # the reference keeps no tree: never taken
        counts.fast += taken
        if typed.count("\n") != end[0] - start[0]:
            counts.line_changes += 1
            counts.fast_line_changes += taken
        assert pair.fast.lines == pair.reference.lines
        kept_statement_lines(pair.fast.analyzer.chunks)
        if rng.random() < 0.3:
            continue  # several edits before the next request (one notification)
        fast, reference = pair.hints()
        assert fast == reference, f"seed {seed}, edit {number}: hints differ"
        if number % 3 == 0 or rng.random() < 0.2:
            fast_analysis, reference_analysis = pair.analyses()
            assert fast_analysis == reference_analysis, (
                f"seed {seed}, edit {number}: analyses differ"
            )
        if parses(pair.fast.lines):
            fresh = Analyzer(list(pair.fast.lines)).analysis()
            assert fast == fresh.hints, f"seed {seed}, edit {number}: not a fresh analysis"
        if rng.random() < 0.02:  # start over from good code now and then
            pair = Pair.open(text, min_lines)
            undo.clear()
    return edits
