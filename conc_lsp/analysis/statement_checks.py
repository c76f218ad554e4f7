"""When statement_edit.py may keep a chunk whose statement does not parse: the
statement's error is its own (no text around it can heal it), and parse.py
would cut the chunk's class into exactly the chunks there are."""

from __future__ import annotations

import io
import re
import tokenize

from conc_lsp.analysis.chunks import (
    Chunk,
    body_indent,
    class_group,
    class_name_of,
    statement_starts,
)
from conc_lsp.analysis.statement_state import StatementState

DEF_START = re.compile(r"@|(?:async\s+def|def|class)\b")
CLASS_START = re.compile(r"@|class\b")
CLAUSE = re.compile(r"(?:else|elif|except|finally|case)\b")
# Tokens that no bracket can hold.
NEVER_IN_BRACKETS = frozenset(
    {"+=", "-=", "*=", "/=", "//=", "%=", "@=", "&=", "|=", "^=", ">>=", "<<=", "**=", ";"}
)
STATEMENT_KEYWORDS = frozenset(
    {
        "return",
        "pass",
        "raise",
        "del",
        "global",
        "nonlocal",
        "assert",
        "break",
        "continue",
        "try",
        "except",
        "finally",
        "while",
        "with",
        "def",
        "class",
        "elif",
    }
)


def local_error(text: list[str], error: SyntaxError) -> bool:
    """The statement's error cannot be healed by the lines around it.

    Either a token that no bracket can hold (`-=`, `;`, `return`...) stands
    inside a bracket the statement opened: every text holding these lines
    fails there.  Or the statement closes what it opens (brackets, strings,
    line continuations), starts no clause of a statement before it (`else:`),
    and ends with no decorator or block header waiting for what follows: its
    tokens then parse, or fail, alike wherever they stand.
    """
    if isinstance(error, IndentationError):
        return False
    depth = 0
    try:
        for token in tokenize.generate_tokens(io.StringIO("\n".join(text) + "\n").readline):
            kind, string = token.type, token.string
            if kind == tokenize.ERRORTOKEN:
                return False
            if kind == tokenize.OP:
                if string in ("(", "[", "{"):
                    depth += 1
                elif string in (")", "]", "}"):
                    depth -= 1
                    if depth < 0:
                        return False
                elif depth and string in NEVER_IN_BRACKETS:
                    return True
            elif kind == tokenize.NAME and depth and string in STATEMENT_KEYWORDS:
                return True
    except (tokenize.TokenError, SyntaxError):
        return False
    if depth or CLAUSE.match(text[0].lstrip()):
        return False
    code = [line.strip() for line in text if line.strip() and not line.strip().startswith("#")]
    return bool(code) and not code[-1].startswith("@") and not code[-1].endswith((":", "\\"))


def alone_at_column_zero(lines: list[str], start: re.Pattern[str] = DEF_START) -> bool:
    """The first line starts the definition (its decorators, then its `def`)
    and no later line stands at column 0 but comments: parse.py then keeps a
    broken definition as one piece (it cuts at lines that look like
    statement starts, and keeps blank lines above a statement apart)."""
    if not lines or not start.match(lines[0]):
        return False
    seen_header = False
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#") or line[0] in " \t\f":
            continue
        if seen_header or not start.match(line):
            return False
        if not line.startswith("@"):
            seen_header = True
    return seen_header


def group_splits_as_chunks(
    chunks: list[Chunk], index: int, state: StatementState, lines: list[str]
) -> bool:
    """parse.py cuts a class with a broken method into header and methods at
    the lines that look like their starts: true when that cut is the chunks'."""
    low, high = class_group(chunks, index)
    group = tuple(chunks[low : high + 1])
    key = tuple((chunk, chunk.start, chunk.length) for chunk in group)
    cached = state.group_check
    if cached is not None and _same_chunks(cached[0], key):
        return cached[1]
    answer = _group_check(lines, group, chunks[index])
    state.group_check = (key, answer)
    return answer


def _group_check(lines: list[str], group: tuple[Chunk, ...], chunk: Chunk) -> bool:
    header = group[0]
    if header.indent or header is chunk or len(group) < 2:
        return False
    text = lines[header.start : group[-1].end]
    if not alone_at_column_zero(text, CLASS_START):
        return False
    name = class_name_of(text)
    indent = body_indent(text) if name else None
    if not name or f"{name}." != chunk.prefix or indent != chunk.indent:
        return False
    starts = [
        position
        for position in statement_starts(text, indent)
        if DEF_START.match(text[position][len(indent) :])
    ]
    return starts == [member.start - header.start for member in group[1:]]


def _same_chunks(
    cached: tuple[tuple[object, int, int], ...], key: tuple[tuple[Chunk, int, int], ...]
) -> bool:
    return len(cached) == len(key) and all(
        old[0] is new[0] and old[1:] == new[1:] for old, new in zip(cached, key, strict=True)
    )
