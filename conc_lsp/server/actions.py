"""Code actions: for each finding under the cursor its quick fix (or, without
one, "Analyse concurrency" of its function) and "Disable CONCxxx for this
line"; and `source.fixAll.conc`."""

from __future__ import annotations

import re
from collections.abc import Sequence

from lsprotocol import types

from conc_lsp.analysis.model import Finding, Fix
from conc_lsp.analysis.text import changed_span
from conc_lsp.noqa import LineEdit, comment_lines, noqa_edit
from conc_lsp.server.documents import Document
from conc_lsp.server.positions import to_lsp
from conc_lsp.server.report_features import COMMAND as ANALYSE

FIX_ALL = "source.fixAll.conc"
UNSAFE = re.compile(r"\bunsafe\b", re.IGNORECASE)


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


def fix_title(finding: Finding, fix: Fix) -> str:
    """``<title> (CODE)``, with ``[unsafe]`` unless the title already says so."""
    title = f"{fix.title} ({finding.code})"
    return title if fix.safe or UNSAFE.search(fix.title) else f"{title} [unsafe]"


def _analyse_arguments(document: Document, finding: Finding) -> list[object]:
    """The finding's function by its qualified name, else the finding's lines."""
    if finding.function and "<" not in finding.function:
        return [document.uri, finding.function]
    where = finding.location
    return [document.uri, {"start": where.line, "end": where.end_line}]


def _noqa_action(
    document: Document,
    finding: Finding,
    edit: LineEdit,
    diagnostic: types.Diagnostic | None,
    encoding: str,
) -> types.CodeAction:
    lines = document.lines
    text_edit = types.TextEdit(
        range=types.Range(
            start=to_lsp(lines, edit.line, edit.start, encoding),
            end=to_lsp(lines, edit.line, edit.end, encoding),
        ),
        new_text=edit.text,
    )
    return types.CodeAction(
        title=f"Disable {finding.code} for this line",
        kind=types.CodeActionKind.QuickFix,
        diagnostics=[diagnostic] if diagnostic else None,
        edit=workspace_edit(document, [text_edit]),
    )


def quick_fixes(
    document: Document,
    findings: list[Finding],
    params: types.CodeActionParams,
    encoding: str,
) -> list[types.CodeAction]:
    """For each finding under the cursor / selection: its quick fix (or
    "Analyse concurrency" when it has none), then "Disable CODE for this line"."""
    sent = {
        (diagnostic.code, diagnostic.range.start.line): diagnostic
        for diagnostic in params.context.diagnostics
    }
    here = [f for f in findings if _overlaps(f, params.range, document, encoding)]
    actions: list[types.CodeAction] = []
    silenced: list[types.CodeAction] = []
    takes_comment = comment_lines(document.lines) if here else None
    seen_noqa: set[tuple[str, int]] = set()
    seen_analyse: set[str] = set()
    for finding in here:
        diagnostic = sent.get((finding.code, finding.location.line))
        fix = finding.fix
        if fix is not None:
            actions.append(
                types.CodeAction(
                    title=fix_title(finding, fix),
                    kind=types.CodeActionKind.QuickFix,
                    diagnostics=[diagnostic] if diagnostic else None,
                    is_preferred=fix.safe,
                    edit=workspace_edit(document, _lsp_edits(document, fix, encoding)),
                )
            )
        else:
            arguments = _analyse_arguments(document, finding)
            target = str(arguments[1])
            if target not in seen_analyse:
                seen_analyse.add(target)
                name = arguments[1] if isinstance(arguments[1], str) else "these lines"
                actions.append(
                    types.CodeAction(
                        title=f"Analyse concurrency of {name} ({finding.code}: no quick fix)",
                        kind=types.CodeActionKind.QuickFix,
                        diagnostics=[diagnostic] if diagnostic else None,
                        command=types.Command(
                            title="Analyse concurrency", command=ANALYSE, arguments=arguments
                        ),
                    )
                )
        key = (finding.code, finding.location.line)
        if key in seen_noqa:
            continue
        seen_noqa.add(key)
        edit = noqa_edit(document.lines, finding.location.line, finding.code, takes_comment)
        if edit is not None:
            silenced.append(_noqa_action(document, finding, edit, diagnostic, encoding))
    return actions + silenced


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
