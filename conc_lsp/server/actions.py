"""Code actions: each finding's quick fix, and `source.fixAll.conc`."""

from __future__ import annotations

from collections.abc import Sequence

from lsprotocol import types

from conc_lsp.analysis.model import Finding, Fix
from conc_lsp.analysis.text import changed_span
from conc_lsp.server.documents import Document
from conc_lsp.server.positions import to_lsp

FIX_ALL = "source.fixAll.conc"


def wanted(only: Sequence[str] | None) -> tuple[bool, bool]:
    """(quick fixes, fix all): what a request's ``context.only`` asks for."""
    if only is None:
        return True, False
    quick_fixes = any(kind in (types.CodeActionKind.QuickFix, "quickfix") for kind in only)
    fix_all = any(FIX_ALL.startswith(kind) and kind.startswith("source") for kind in only)
    return quick_fixes, fix_all


def _lsp_edits(document: Document, fix: Fix, encoding: str) -> list[types.TextEdit]:
    return [
        types.TextEdit(
            range=types.Range(
                start=to_lsp(document.lines, edit.start[0], edit.start[1], encoding),
                end=to_lsp(document.lines, edit.end[0], edit.end[1], encoding),
            ),
            new_text=edit.text.replace("\n", document.newline),
        )
        for edit in fix.edits
    ]


def workspace_edit(document: Document, edits: list[types.TextEdit]) -> types.WorkspaceEdit:
    return types.WorkspaceEdit(
        document_changes=[
            types.TextDocumentEdit(
                text_document=types.OptionalVersionedTextDocumentIdentifier(
                    uri=document.uri, version=document.version
                ),
                edits=list(edits),
            )
        ]
    )


def _overlaps(finding: Finding, request: types.Range, document: Document, encoding: str) -> bool:
    where = finding.location
    start = to_lsp(document.lines, where.line, where.column, encoding)
    end = to_lsp(document.lines, where.end_line, where.end_column, encoding)
    before = (end.line, end.character) < (request.start.line, request.start.character)
    after = (start.line, start.character) > (request.end.line, request.end.character)
    return not before and not after


def quick_fixes(
    document: Document,
    findings: list[Finding],
    params: types.CodeActionParams,
    encoding: str,
) -> list[types.CodeAction]:
    """One quick fix per fixable finding under the cursor / selection."""
    sent = {
        (diagnostic.code, diagnostic.range.start.line): diagnostic
        for diagnostic in params.context.diagnostics
    }
    actions: list[types.CodeAction] = []
    for finding in findings:
        fix = finding.fix
        if fix is None or not _overlaps(finding, params.range, document, encoding):
            continue
        diagnostic = sent.get((finding.code, finding.location.line))
        title = f"{fix.title} ({finding.code})" + ("" if fix.safe else " [unsafe]")
        actions.append(
            types.CodeAction(
                title=title,
                kind=types.CodeActionKind.QuickFix,
                diagnostics=[diagnostic] if diagnostic else None,
                is_preferred=fix.safe,
                edit=workspace_edit(document, _lsp_edits(document, fix, encoding)),
            )
        )
    return actions


def fix_all(document: Document, fixed_lines: list[str], encoding: str) -> types.CodeAction | None:
    """One edit from the current text to the text with every safe fix applied."""
    old = document.lines
    if fixed_lines == old:
        return None
    prefix, old_end, new_end = changed_span(old, fixed_lines)
    new_middle = fixed_lines[prefix:new_end]
    if old_end > prefix:
        start = types.Position(line=prefix, character=0)
        end = to_lsp(old, old_end - 1, len(old[old_end - 1]), encoding)
        text = document.newline.join(new_middle)
    else:
        start = end = types.Position(line=prefix, character=0)
        text = document.newline.join(new_middle) + document.newline
    edit = types.TextEdit(range=types.Range(start=start, end=end), new_text=text)
    return types.CodeAction(
        title="Fix all safe conc-lsp findings",
        kind=FIX_ALL,
        edit=workspace_edit(document, [edit]),
    )
