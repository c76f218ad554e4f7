"""Inlay hints and hover: map analysis hints to LSP objects."""

from __future__ import annotations

import re

from lsprotocol import types

from conc_lsp.analysis.model import Hint, HintKind, Resolution
from conc_lsp.config import Settings
from conc_lsp.explanations import explanation
from conc_lsp.labels import COMPACT, COMPACT_LEGEND, is_shown, label
from conc_lsp.server.documents import Document
from conc_lsp.server.positions import to_lsp

LONGEST_CONSTRUCT = 500  # lines between a keyword and the end of its construct


def inlay_hints(
    document: Document,
    request: types.Range,
    settings: Settings,
    encoding: str,
    lazy_tooltips: bool = False,
) -> list[types.InlayHint]:
    """The hints whose label position lies inside the requested range, those
    ``hints.show`` asks for, their labels capped at ``hints.max-length``.

    With ``lazy_tooltips`` (the client resolves tooltips) each hint carries
    only the data to find it again, and `inlayHint/resolve` adds the
    explanation: a whole-file answer is then a quarter of the size.
    """
    if not settings.hints_enabled or request.start.line >= len(document.lines):
        return []
    start = document.codepoint(request.start.line, request.start.character, encoding)
    end = document.codepoint(request.end.line, request.end.character, encoding)
    result: list[types.InlayHint] = []
    for hint in document.analyzer.hints_between(start[0], end[0] + 1):
        if hint.kind not in settings.hint_kinds:
            continue
        if not start <= (hint.line, hint.column) <= end:
            continue
        resolved = document.resolution_of(hint)
        if not is_shown(hint, resolved, settings.hints_show):
            continue
        result.append(
            types.InlayHint(
                position=to_lsp(document.lines, hint.line, _shown_column(hint, document), encoding),
                label=label(hint, settings.label_style, resolved, settings.hints_max_length),
                padding_left=True,
                tooltip=None if lazy_tooltips else _tooltip(hint, resolved),
                data=(
                    {
                        "uri": document.uri,
                        "line": hint.line,
                        "column": hint.column,
                        "kind": hint.kind.value,
                    }
                    if lazy_tooltips
                    else None
                ),
            )
        )
    return result


# After an `async with` item or an `async for` iterable: a `)` that closes
# the items, then the block's colon.
_TO_COLON = re.compile(r"\s*\)?\s*:")


def _shown_column(hint: Hint, document: Document) -> int:
    """Where the label goes: an `async with` / `async for` hint moves past the
    colon of its line (`async with lock:  <- ...`) so that it does not split
    the statement; an item followed by a comma keeps its place."""
    if hint.kind not in (HintKind.ASYNC_WITH, HintKind.ASYNC_FOR) or hint.line >= len(
        document.lines
    ):
        return hint.column
    found = _TO_COLON.match(document.lines[hint.line], hint.column)
    return found.end() if found is not None else hint.column


def _tooltip(hint: Hint, resolved: Resolution | None = None) -> types.MarkupContent:
    return types.MarkupContent(kind=types.MarkupKind.Markdown, value=explanation(hint, resolved))


def resolve(documents: dict[str, Document], item: types.InlayHint) -> types.InlayHint:
    """Add the explanation to a hint sent without it (`inlayHint/resolve`)."""
    data = item.data
    if not isinstance(data, dict):
        return item
    document = documents.get(str(data.get("uri")))
    line, column, kind = data.get("line"), data.get("column"), data.get("kind")
    if document is None or not isinstance(line, int):
        return item
    for hint in document.analyzer.hints_between(line, line + 1):
        if hint.column == column and hint.kind.value == kind:
            item.tooltip = _tooltip(hint, document.resolution_of(hint))
            break
    return item


def hover(
    document: Document,
    position: types.Position,
    encoding: str,
    settings: Settings | None = None,
) -> types.Hover | None:
    """Explain the checkpoint whose keyword (or the look-alike call) is under the cursor.

    With compact labels the hover ends with their legend: a client without
    tooltips (Neovim) has no other place to learn what the symbols mean."""
    line, column = document.codepoint(position.line, position.character, encoding)
    matches: list[tuple[Hint, tuple[int, int]]] = []
    # A keyword's hint is anchored at the construct's end, at or below its line.
    for hint in document.analyzer.hints_between(line, line + LONGEST_CONSTRUCT):
        if hint.keyword_line != line:
            continue
        span = _hover_span(hint, document.lines)
        if span[0] <= column <= span[1]:
            matches.append((hint, span))
    if not matches:
        return None
    first, (start, end) = matches[0]
    parts = [_explained(document, hint) for hint, _ in matches]
    if settings is not None and settings.label_style == COMPACT:
        parts.append(COMPACT_LEGEND)
    return types.Hover(
        contents=types.MarkupContent(
            kind=types.MarkupKind.Markdown, value="\n\n---\n\n".join(parts)
        ),
        range=types.Range(
            start=to_lsp(document.lines, first.keyword_line, start, encoding),
            end=to_lsp(document.lines, first.keyword_line, end, encoding),
        ),
    )


def _explained(document: Document, hint: Hint) -> str:
    """The hint's explanation; for a checkpoint whose callee is not resolved, what
    resolution is doing about it (*resolving...* or *not followed*)."""
    resolution = document.resolution_of(hint)
    text = explanation(hint, resolution)
    if resolution is None and hint.kind.is_checkpoint:
        text += f"\n\nCallee: *{document.resolution_status(hint)}*."
    return text


def _hover_span(hint: Hint, lines: list[str]) -> tuple[int, int]:
    """Code-point columns on the keyword's line where hover explains ``hint``: the
    keyword, or for a look-alike the whole call (`ev.set()`: receiver, name and
    parentheses), not only its method name."""
    span = (hint.keyword_column, hint.keyword_end_column)
    if hint.kind.is_checkpoint or hint.kind is HintKind.ACM_YIELD:
        return span
    if hint.line != hint.keyword_line or not hint.code or hint.line >= len(lines):
        return span
    start = hint.column - len(hint.code)
    if start >= 0 and lines[hint.line][start : hint.column] == hint.code:
        return (start, hint.column)
    return span
