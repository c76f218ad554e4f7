"""Inlay hints and hover: map analysis hints to LSP objects."""

from __future__ import annotations

from lsprotocol import types

from conc_lsp.analysis.model import Hint, Resolution
from conc_lsp.config import Settings
from conc_lsp.labels import explanation, label
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
    """The hints whose label position lies inside the requested range.

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
        result.append(
            types.InlayHint(
                position=to_lsp(document.lines, hint.line, hint.column, encoding),
                label=label(hint, settings.label_style, resolved),
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


def hover(document: Document, position: types.Position, encoding: str) -> types.Hover | None:
    """Explain the checkpoint whose keyword is under the cursor."""
    line, column = document.codepoint(position.line, position.character, encoding)
    matches: list[Hint] = []
    # A keyword's hint is anchored at the construct's end, at or below its line.
    for hint in document.analyzer.hints_between(line, line + LONGEST_CONSTRUCT):
        if hint.keyword_line == line and hint.keyword_column <= column <= hint.keyword_end_column:
            matches.append(hint)
    if not matches:
        return None
    first = matches[0]
    return types.Hover(
        contents=types.MarkupContent(
            kind=types.MarkupKind.Markdown,
            value="\n\n---\n\n".join(
                explanation(hint, document.resolution_of(hint)) for hint in matches
            ),
        ),
        range=types.Range(
            start=to_lsp(document.lines, first.keyword_line, first.keyword_column, encoding),
            end=to_lsp(document.lines, first.keyword_line, first.keyword_end_column, encoding),
        ),
    )
