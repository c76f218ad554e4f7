"""Let an older interpreter's ``ast`` read newer syntax, positions unchanged.

The server parses with the ``ast`` module of the Python it runs on.  On 3.11
two kinds of 3.12+ code fail to parse: PEP 695 type parameters
(``def f[T](x: T)``, ``class C[T]``, ``type Alias = ...``) and PEP 701
f-strings (the same quote, a backslash or a comment inside a replacement
field).  Neither can hold a checkpoint that matters to us except an
``await`` inside such an f-string, which is then not seen.  So we rewrite
them into 3.11 syntax of exactly the same length and line structure: type
parameter lists become blanks, ``type X = v`` becomes ``X = v``, and a 3.12
f-string becomes a plain string of blanks.  Every other column stays put.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(
    r"""(?P<comment>\#)
      | (?P<string>(?P<prefix>[rRbBuUfF]{0,2})(?P<quote>\"\"\"|'''|"|'))
      | (?P<keyword>\b(?:def|class)\b)
      | (?P<type>^[ \t]*type\b)
    """,
    re.VERBOSE | re.MULTILINE,
)
# Where a rewrite can start: an f-string (an "f" just before a quote), a
# `type X =` line; and `def name[` / `class name[` (see _may_need_rewrite).
_FSTRING_START = re.compile(r"""[fF][rRbBuUfF]?["']""")
_TYPE_LINE = re.compile(r"^[ \t]*type\s+[A-Za-z_]\w*\s*[\[=]", re.MULTILINE)
_NAME_AND_BRACKET = re.compile(r"\s+[A-Za-z_]\w*\s*\[")
_TYPE_ALIAS = re.compile(r"([ \t]*)type(\s+)([A-Za-z_]\w*)(\s*)(\[)?")


def _blank(text: str) -> str:
    """Same length and line breaks, nothing else."""
    return re.sub(r"[^\r\n]", " ", text)


def _closing_bracket(text: str, start: int) -> int:
    """Index just past the bracket matching the one at ``start``; -1 if none."""
    depth = 0
    for index in range(start, len(text)):
        char = text[index]
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth == 0:
                return index + 1
    return -1


def _string_end(text: str, start: int, quote: str, raw: bool) -> int:
    """Index just past the closing ``quote`` of a plain string body at ``start``."""
    index = start
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if text.startswith(quote, index):
            return index + len(quote)
        if char in "\r\n" and len(quote) == 1:
            return -1
        index += 1
    return -1


def _fstring_end(text: str, start: int, quote: str) -> tuple[int, bool]:
    """End of an f-string body at ``start`` and whether it needs 3.12."""
    index = start
    needs_312 = False
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if text.startswith(quote, index):
            return index + len(quote), needs_312
        if char in "\r\n" and len(quote) == 1:
            return -1, needs_312
        if char == "{":
            if text.startswith("{{", index):
                index += 2
                continue
            end, nested = _field_end(text, index + 1, quote)
            if end < 0:
                return -1, needs_312
            needs_312 = needs_312 or nested
            index = end
            continue
        index += 1
    return -1, needs_312


def _field_end(text: str, start: int, quote: str) -> tuple[int, bool]:
    """End of a replacement field (after its ``}``) and whether it needs 3.12."""
    depth = 1
    index = start
    needs_312 = False
    while index < len(text):
        char = text[index]
        if char in "'\"":
            inner = text[index : index + 3] if text[index : index + 3] in ('"""', "'''") else char
            if inner == quote or inner[0] == quote[0]:
                needs_312 = True
            prefix_start = index
            while prefix_start > start and text[prefix_start - 1] in "rRbBuUfF":
                prefix_start -= 1
            is_f = "f" in text[prefix_start:index].lower()
            if is_f:
                end, nested = _fstring_end(text, index + len(inner), inner)
                needs_312 = needs_312 or nested
            else:
                end = _string_end(text, index + len(inner), inner, raw=False)
            if end < 0:
                return -1, needs_312
            index = end
            continue
        if char in "\\#" or (char in "\r\n" and len(quote) == 1):
            needs_312 = True
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth == 0:
                return index + 1, needs_312
        index += 1
    return -1, needs_312


def _may_need_rewrite(text: str) -> bool:
    """Whether ``text`` holds what the scan below starts a rewrite from; a few
    searches, where the scan costs as much as a parse of a long text."""
    if _FSTRING_START.search(text) or ("type" in text and _TYPE_LINE.search(text)):
        return True
    for keyword in ("def", "class"):
        index = text.find(keyword)
        while index >= 0:
            if _NAME_AND_BRACKET.match(text, index + len(keyword)):
                return True
            index = text.find(keyword, index + 1)
    return False


def downlevel(text: str) -> str | None:
    """``text`` with its 3.12+ syntax rewritten for 3.11; None if there was none."""
    return _rewritten(text) if _may_need_rewrite(text) else None


def _rewritten(text: str) -> str | None:
    """The scan behind `downlevel`."""
    pieces: list[str] = []
    position = 0  # text before this index is in ``pieces``
    skip = 0  # matches before this index are inside a string or comment
    changed = False
    for match in _TOKEN.finditer(text):
        if match.start() < max(position, skip):
            continue
        if match.group("comment"):
            end = text.find("\n", match.start())
            skip = len(text) if end < 0 else end
            continue
        if match.group("string") is not None:
            prefix, quote = match.group("prefix"), match.group("quote")
            body = match.end()
            if "f" in prefix.lower():
                end, needs_312 = _fstring_end(text, body, quote)
                if end < 0:
                    return None
                if needs_312:
                    pieces.append(text[position : match.start()])
                    literal = text[match.start() : end]
                    inner = _blank(literal[len(prefix) + len(quote) : -len(quote)])
                    pieces.append(" " * len(prefix) + quote + inner + quote)
                    changed = True
                    position = end
                    continue
            else:
                end = _string_end(text, body, quote, raw="r" in prefix.lower())
                if end < 0:
                    return None
            pieces.append(text[position:end])
            position = end
            continue
        if match.group("keyword"):
            header = _NAME_AND_BRACKET.match(text, match.end())
            if header:
                bracket = header.end() - 1
                close = _closing_bracket(text, bracket)
                if close > 0:
                    pieces.append(text[position:bracket])
                    pieces.append(_blank(text[bracket:close]))
                    position = close
                    changed = True
            continue
        alias = _TYPE_ALIAS.match(text, match.start())
        if alias and (alias.group(5) or text[alias.end() : alias.end() + 1] == "="):
            indent, space, name, gap = alias.group(1, 2, 3, 4)
            end = alias.end()
            if alias.group(5):
                close = _closing_bracket(text, alias.end() - 1)
                if close < 0:
                    continue
                end = close
            original = text[match.start() : end]
            replacement = indent + name
            pieces.append(text[position : match.start()])
            pieces.append(replacement + _blank(original[len(replacement) :]))
            del space, gap
            position = end
            changed = True
    if not changed:
        return None
    pieces.append(text[position:])
    return "".join(pieces)
