"""Diagnostics: findings of the rules as LSP diagnostics, pulled or pushed."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from lsprotocol import types

from conc_lsp.analysis.model import Finding, Severity
from conc_lsp.config import Settings
from conc_lsp.jobs import Resolved, compute, compute_fix_all, compute_fixes, forget
from conc_lsp.server.positions import to_lsp
from conc_lsp.server.workers import WorkerProcess

JOB_SECONDS = 120.0  # one job of the rules: past it, the process is killed (no findings)

SEVERITIES = {
    Severity.ERROR: types.DiagnosticSeverity.Error,
    Severity.WARNING: types.DiagnosticSeverity.Warning,
    Severity.INFORMATION: types.DiagnosticSeverity.Information,
    Severity.HINT: types.DiagnosticSeverity.Hint,
}


@cache
def rules_document() -> str | None:
    """A link target for rule docs: the generated docs/rules.md, when present."""
    path = Path(__file__).resolve().parents[2] / "docs" / "rules.md"
    return path.as_uri() if path.is_file() else None


class Worker(WorkerProcess):
    """The worker process of the rules, so that a long check of a huge file
    never holds the server's GIL while the user types (hints stay fast), and
    a crash in it cannot take the server down. Each job has a time limit.
    ``reports`` is a process of its own for the reports (``conc.analyse``):
    a slow report never delays the diagnostics."""

    def __init__(self, niceness: int = 0) -> None:
        super().__init__("rules worker", niceness=niceness)
        self.reports = WorkerProcess("report worker", niceness=niceness)

    async def compute(
        self,
        key: str,
        lines: list[str],
        settings: Settings,
        path: str | None,
        resolutions: Resolved | None = None,
    ) -> list[Finding]:
        if not settings.diagnostics_enabled:
            return []
        return await self.call(
            compute, key, lines, settings, path, resolutions, default=[], timeout=JOB_SECONDS
        )

    async def fixes(
        self,
        key: str,
        lines: list[str],
        settings: Settings,
        path: str | None,
        first: int,
        last: int,
        resolutions: Resolved | None = None,
    ) -> list[Finding]:
        return await self.call(
            compute_fixes,
            key,
            lines,
            settings,
            path,
            first,
            last,
            resolutions,
            default=[],
            timeout=JOB_SECONDS,
        )

    async def forget(self, key: str) -> None:
        if self.running:
            await self.call(forget, key, default=None, timeout=JOB_SECONDS)

    async def fix_all(self, lines: list[str], settings: Settings, path: str | None) -> list[str]:
        return await self.call(
            compute_fix_all, lines, settings, path, default=lines, timeout=JOB_SECONDS
        )

    def shutdown(self) -> None:
        super().shutdown()
        self.reports.shutdown()


def to_diagnostics(
    findings: list[Finding], lines: list[str], uri: str, encoding: str
) -> list[types.Diagnostic]:
    docs = rules_document()
    result = []
    for finding in findings:
        where = finding.location
        result.append(
            types.Diagnostic(
                range=types.Range(
                    start=to_lsp(lines, where.line, where.column, encoding),
                    end=to_lsp(lines, where.end_line, where.end_column, encoding),
                ),
                message=finding.message,
                severity=SEVERITIES[finding.severity],
                code=finding.code,
                code_description=(
                    types.CodeDescription(href=f"{docs}#{finding.code.lower()}-{finding.name}")
                    if docs
                    else None
                ),
                source="conc-lsp",
                related_information=[
                    types.DiagnosticRelatedInformation(
                        location=types.Location(
                            uri=uri,
                            range=types.Range(
                                start=to_lsp(
                                    lines, related.location.line, related.location.column, encoding
                                ),
                                end=to_lsp(
                                    lines,
                                    related.location.end_line,
                                    related.location.end_column,
                                    encoding,
                                ),
                            ),
                        ),
                        message=related.message,
                    )
                    for related in finding.related
                ]
                or None,
            )
        )
    return result
