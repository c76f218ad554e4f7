"""Diagnostics: findings of the rules as LSP diagnostics, pulled or pushed."""

from __future__ import annotations

from collections import OrderedDict
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from lsprotocol import types

from conc_lsp.analysis.model import Finding, HintKey, Resolution, Severity
from conc_lsp.config import Settings
from conc_lsp.server.positions import to_lsp
from conc_lsp.server.workers import WorkerProcess

if TYPE_CHECKING:  # the rules load in the worker process only, not in the server
    from conc_lsp.diagnose import CheckResult

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


# In the worker process: the last check of each document, so that the quick
# fixes at the cursor reuse its facts instead of checking the text again.
# The facts hold syntax trees: only the most recently checked documents keep theirs.
_LAST_CHECK: OrderedDict[str, tuple[int, Settings, CheckResult]] = OrderedDict()
KEPT_CHECKS = 8
Resolved = dict[HintKey, Resolution]


def _checked(
    key: str,
    lines: list[str],
    settings: Settings,
    path: str | None,
    resolutions: Resolved | None = None,
) -> CheckResult:
    digest = hash((tuple(lines), frozenset((resolutions or {}).items())))
    last = _LAST_CHECK.get(key)
    if last is not None and last[0] == digest and last[1] == settings:
        _LAST_CHECK.move_to_end(key)
        return last[2]
    # the rules load only in the worker process (start-up cost)
    from conc_lsp.diagnose import check_lines

    result = check_lines(lines, settings, path, resolutions=resolutions)
    _LAST_CHECK[key] = (digest, settings, result)
    _LAST_CHECK.move_to_end(key)
    while len(_LAST_CHECK) > KEPT_CHECKS:
        _LAST_CHECK.popitem(last=False)
    return result


def compute(
    key: str,
    lines: list[str],
    settings: Settings,
    path: str | None,
    resolutions: Resolved | None = None,
) -> list[Finding]:
    """The findings for a snapshot of a document's lines (runs in the worker process)."""
    if not settings.diagnostics_enabled:
        return []
    return _checked(key, lines, settings, path, resolutions).findings


def compute_fixes(
    key: str,
    lines: list[str],
    settings: Settings,
    path: str | None,
    first: int,
    last: int,
    resolutions: Resolved | None = None,
) -> list[Finding]:
    """Findings on lines first..last with their fixes (runs in the worker process)."""
    if not settings.diagnostics_enabled:
        return []
    # the rules load only in the worker process (start-up cost)
    from conc_lsp.diagnose import with_fixes

    checked = _checked(key, lines, settings, path, resolutions)
    return with_fixes(checked, lines, settings, first, last)


def forget(key: str) -> None:
    _LAST_CHECK.pop(key, None)


def compute_fix_all(lines: list[str], settings: Settings, path: str | None) -> list[str]:
    """The lines with every safe fix applied (runs in the worker process)."""
    # the rules load only in the worker process (start-up cost)
    from conc_lsp.diagnose import fix_lines

    return fix_lines(lines, settings, path)[0]


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
