"""Where a `# noqa: CONCxxx` comment goes to silence one finding (the
"Disable CONCxxx for this line" action), as plain text edits.

The rules honour a `# noqa` on a finding's first line (`diagnose.suppressed`,
whose pattern ``NOQA`` repeats; a test keeps the two equal). The comment can
only go where Python allows one: not after a line continued by a backslash,
not inside a string that runs over several lines.
"""

from __future__ import annotations

import io
import re
import tokenize
from dataclasses import dataclass

NOQA = re.compile(r"#\s*noqa(?::\s*(?P<codes>[A-Z]+[0-9]+(?:[\s,]+[A-Z]+[0-9]+)*))?", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class LineEdit:
    """Replace columns start..end (code points) of ``line`` with ``text``."""

    line: int
    start: int
    end: int
    text: str


def comment_lines(lines: list[str]) -> set[int] | None:
    """The 0-based lines whose end can take a comment; None if the text does not tokenize."""
    source = "\n".join(lines) + "\n"
    ends: set[int] = set()
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type in (tokenize.NEWLINE, tokenize.NL):
                ends.add(token.start[0] - 1)
    except (tokenize.TokenError, SyntaxError):
        return None
    return ends


def _fallback_takes_comment(text: str) -> bool:
    """For a text that does not tokenize: refuse the lines that may not take one."""
    stripped = text.rstrip()
    return not stripped.endswith("\\") and '"""' not in text and "'''" not in text


def noqa_edit(
    lines: list[str], line: int, code: str, takes_comment: set[int] | None
) -> LineEdit | None:
    """The edit that silences ``code`` on ``line``, or None where no comment can go.

    ``takes_comment`` is ``comment_lines(lines)`` (computed once per request)."""
    if not 0 <= line < len(lines):
        return None
    text = lines[line]
    match = NOQA.search(text) if "#" in text else None
    if match is not None:
        codes = match.group("codes")
        if not codes:
            return None  # a bare noqa comment silences every code already
        listed = [item.upper() for item in re.split(r"[\s,]+", codes) if item]
        if any(code.startswith(item) for item in listed):
            return None
        end = match.end("codes")
        return LineEdit(line, end, end, f", {code}")
    allowed = line in takes_comment if takes_comment is not None else _fallback_takes_comment(text)
    if not allowed:
        return None
    content = len(text.rstrip())
    return LineEdit(line, content, len(text), f"  # noqa: {code}")
