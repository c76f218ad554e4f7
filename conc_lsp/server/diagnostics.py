"""Diagnostics: findings of the rules as LSP diagnostics, pulled or pushed."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from lsprotocol import types

from conc_lsp.analysis.model import Finding, HintKey, Resolution, Severity
from conc_lsp.config import Settings
from conc_lsp.processes import lower_priority
from conc_lsp.server.positions import to_lsp

if TYPE_CHECKING:  # the rules load in the worker process only, not in the server
    from conc_lsp.diagnose import CheckResult

logger = logging.getLogger("conc_lsp")
T = TypeVar("T")

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
    from conc_lsp.diagnose import with_fixes

    checked = _checked(key, lines, settings, path, resolutions)
    return with_fixes(checked, lines, settings, first, last)


def forget(key: str) -> None:
    _LAST_CHECK.pop(key, None)


def compute_fix_all(lines: list[str], settings: Settings, path: str | None) -> list[str]:
    """The lines with every safe fix applied (runs in the worker process)."""
    from conc_lsp.diagnose import fix_lines

    return fix_lines(lines, settings, path)[0]


class Worker:
    """One worker process for the rules, so that a long check of a huge file
    never holds the server's GIL while the user types (hints stay fast), and
    a crash in it cannot take the server down."""

    def __init__(self, niceness: int = 0) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self.niceness = niceness  # > 0: a background process that yields the CPU to typing

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=partial(lower_priority, self.niceness) if self.niceness else None,
            )
        return self._pool

    async def call(
        self,
        function: Callable[..., T],
        *arguments: object,
        default: T,
        timeout: float | None = None,
    ) -> T:
        """Run ``function`` in the worker process (restarting it once if it died);
        after ``timeout`` seconds, kill the process and return ``default``."""
        if timeout is None:
            return await self._run(function, *arguments, default=default)
        try:
            return await asyncio.wait_for(self._run(function, *arguments, default=default), timeout)
        except TimeoutError:
            logger.warning("worker took over %.0f s: killed, a new one starts", timeout)
            self.kill()
            return default

    def kill(self) -> None:
        """Stop the worker process now, even in the middle of a call."""
        pool = self._pool
        self._pool = None
        if pool is None:
            return
        processes = getattr(pool, "_processes", None) or {}  # no public way to kill them
        for process in list(processes.values()):
            process.kill()
        pool.shutdown(wait=False, cancel_futures=True)

    async def _run(self, function: Callable[..., T], *arguments: object, default: T) -> T:
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            try:
                return await loop.run_in_executor(self._executor(), function, *arguments)
            except BrokenProcessPool:
                logger.warning("diagnostics worker died (attempt %d); restarting it", attempt)
                self._pool = None
        return default

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
        return await self._run(compute, key, lines, settings, path, resolutions, default=[])

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
        return await self._run(
            compute_fixes, key, lines, settings, path, first, last, resolutions, default=[]
        )

    async def forget(self, key: str) -> None:
        if self._pool is not None:
            await self._run(forget, key, default=None)

    async def fix_all(self, lines: list[str], settings: Settings, path: str | None) -> list[str]:
        return await self._run(compute_fix_all, lines, settings, path, default=lines)

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


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
