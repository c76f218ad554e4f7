"""Rendering: the report in the seed's section 6 layout (markdown), or as data."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from conc_lsp.report.model import REF, Report, StateRow
from conc_lsp.rules.story import ref


def _capital(text: str) -> str:
    return text if text.isupper() else text[:1].upper() + text[1:]


def link_from(folder: Path, source: str) -> str:
    """The address line references link to, for a report read in ``folder``:
    the source file relative to it (VS Code's preview opens ``file.py#L12`` at
    the line, and shows ``file:`` links as plain text: markdown-it does not
    follow them), URL-quoted; a ``file:`` URI only across drives (Windows)."""
    try:
        relative = os.path.relpath(source, folder)
    except ValueError:
        return Path(source).resolve().as_uri()
    return quote(Path(relative).as_posix())


def _links(text: str, link: str | None) -> str:
    if link is None:
        return REF.sub(lambda m: f"L{m.group(1)}", text)
    return REF.sub(lambda m: f"[L{m.group(1)}]({link}#L{m.group(1)})", text)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _state_cells(row: StateRow) -> tuple[str, str, str, str]:
    return (
        f"`{row.state}`",
        ", ".join(row.writers) or "-",
        ", ".join(row.readers) or "-",
        row.guard_text,
    )


def render_markdown(report: Report, *, tables: bool = True) -> str:
    """The report in the seed's section 6 layout.

    ``tables=False`` writes the shared state as a list instead of a table, for
    narrow previews (a table does not wrap: VS Code's preview runs it off the
    right edge)."""
    out: list[str] = [f"## Concurrency analysis: `{report.target}`", "", report.summary, ""]
    for note in report.notes:
        out += [f"> {note}", ""]
    out += ["### Shared state", ""]
    if report.state and tables:
        out += ["| State | Writers | Readers | Guard |", "|---|---|---|---|"]
        for row in report.state:
            out.append("| " + " | ".join(_cell(cell) for cell in _state_cells(row)) + " |")
    elif report.state:
        for row in report.state:
            state, writers, readers, guard = (_cell(cell) for cell in _state_cells(row))
            out.append(f"- {state}: written by {writers}; read by {readers}; guard: {guard}")
    else:
        out.append("No state that more than one task can touch.")
    out += ["", "### Checkpoints", ""]
    if report.checkpoints:
        for marks in report.checkpoints:
            out += [f"`{marks.function}` ({ref(marks.line)}):", ""]
            for mark in marks.marks:
                out.append(f"- {ref(mark.line)}: `{mark.code}` <- {mark.mark}")
            out.append("")
    else:
        out += ["No checkpoint in the target.", ""]
    out += ["### Race trace", ""]
    if not report.findings:
        out += ["No finding: nothing to trace.", ""]
    for index, item in enumerate(report.findings, 1):
        out += [f"#### {index}. {item.code} {item.name} at {ref(item.line)}", ""]
        out += [" ".join(item.trace.tasks), ""]
        for step in item.trace.steps:
            where = f" {ref(step.line)}" if step.line is not None else ""
            code = f" `{step.code}`" if step.code else ""
            sep = " —" if code else ""
            out.append(f"- [{step.task}] {step.number}.{where}{code}{sep} {step.text}")
        out.append("")
        if item.trace.window is not None:
            out += [f"**Race window: {item.trace.window_words}**: {item.trace.window_text}.", ""]
    out += ["### Classification", ""]
    if not report.findings:
        out += ["No finding."]
    for index, item in enumerate(report.findings, 1):
        out.append(
            f"{index}. **{_capital(item.classification)}** "
            f"({item.code} {item.name}, {ref(item.line)} in `{item.function}`): "
            f"{item.explanation} Here: {item.message}"
        )
    out += ["", "### Fixes", ""]
    if not report.findings:
        out += ["Nothing to fix.", ""]
    for index, item in enumerate(report.findings, 1):
        for fix in item.fixes:
            kind = {
                "diff": "quick fix",
                "sketch-diff": "sketch",
                "sketch": "sketch, from the rule's documentation",
                "pseudocode": "sketch (pseudocode)",
            }[fix.kind]
            out += [
                f"#### {index}. {item.code} at {ref(item.line)}: {fix.title} [{fix.effort}]",
                "",
                f"*{kind}*" + ("" if fix.safe is not False else " (unsafe)"),
                "",
            ]
            if fix.diff:
                out += ["```diff", fix.diff, "```", ""]
            elif fix.sketch:
                out += ["```python", fix.sketch, "```", ""]
            out += [
                f"- **How it closes the window**: {fix.closes}",
                f"- **Trade-offs**: {fix.tradeoffs}",
                f"- **Risk**: {fix.risk}",
                f"- **Effort**: {fix.effort}",
                "",
            ]
    text = "\n".join(out).rstrip() + "\n"
    return _links(text, report.link)


def to_json(report: Report) -> dict[str, Any]:
    """The same content as data (line numbers 1-based, texts without links)."""

    def plain(text: str) -> str:
        return _links(text, None)

    return {
        "target": report.target,
        "path": report.path,
        "summary": plain(report.summary),
        "notes": [plain(note) for note in report.notes],
        "shared_state": [
            {
                "state": row.state,
                "scope": row.scope,
                "writers": [plain(w).replace("`", "") for w in row.writers],
                "readers": [plain(r).replace("`", "") for r in row.readers],
                "guard": plain(row.guard).replace("`", "") if row.guard else None,
                "guard_text": plain(row.guard_text).replace("`", ""),
                "unguarded_accesses": [plain(e).replace("`", "") for e in row.exceptions],
                "lines": [line + 1 for line in row.lines],
            }
            for row in report.state
        ],
        "checkpoints": [
            {
                "function": item.function,
                "line": item.line + 1,
                "marks": [
                    {
                        "line": mark.line + 1,
                        "code": mark.code,
                        "mark": mark.mark,
                        "kind": mark.kind,
                        "checkpoint": mark.is_checkpoint,
                    }
                    for mark in item.marks
                ],
            }
            for item in report.checkpoints
        ],
        "findings": [
            {
                "code": item.code,
                "name": item.name,
                "severity": item.severity,
                "function": item.function,
                "line": item.line + 1,
                "message": item.message,
                "related": [{"line": line + 1, "message": text} for line, text in item.related],
                "classification": item.classification,
                "explanation": item.explanation,
                "trace": {
                    "tasks": [plain(task) for task in item.trace.tasks],
                    "steps": [
                        {
                            "step": step.number,
                            "task": step.task,
                            "line": step.line + 1 if step.line is not None else None,
                            "code": step.code,
                            "text": plain(step.text),
                        }
                        for step in item.trace.steps
                    ],
                    "window": list(item.trace.window) if item.trace.window else None,
                    "window_text": plain(item.trace.window_text),
                },
                "fixes": [
                    {
                        "title": plain(fix.title),
                        "kind": fix.kind,
                        "diff": fix.diff or None,
                        "sketch": fix.sketch or None,
                        "closes": plain(fix.closes),
                        "tradeoffs": plain(fix.tradeoffs),
                        "risk": plain(fix.risk),
                        "effort": fix.effort,
                        "safe": fix.safe,
                    }
                    for fix in item.fixes
                ],
            }
            for item in report.findings
        ],
    }
