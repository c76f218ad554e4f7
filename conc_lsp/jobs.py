"""The jobs the server's worker processes run: the rules, fixes, code lens
targets and reports of one document (see conc_lsp/processes.py).

A worker unpickles each job's function by its module: this module imports no
LSP code (lsprotocol, pygls), so a worker starts without them. The analysis,
the rules and the report load on a worker's first job.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

from conc_lsp.analysis.model import Finding, HintKey, Resolution
from conc_lsp.config import Settings

if TYPE_CHECKING:  # loaded by the first job, not when a worker starts
    from conc_lsp.diagnose import CheckResult
    from conc_lsp.report import LensTarget, Target

# In the worker process: the last check of each document, so that the quick
# fixes at the cursor reuse its facts instead of checking the text again.
# The facts hold syntax trees: only the most recently checked documents keep theirs.
_LAST_CHECK: OrderedDict[str, tuple[int, Settings, CheckResult]] = OrderedDict()
KEPT_CHECKS = 8
Resolved = dict[HintKey, Resolution]


def checked(
    key: str,
    lines: list[str],
    settings: Settings,
    path: str | None,
    resolutions: Resolved | None = None,
) -> CheckResult:
    """The check of a document's lines, the last one reused when nothing changed."""
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
    return checked(key, lines, settings, path, resolutions).findings


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

    result = checked(key, lines, settings, path, resolutions)
    return with_fixes(result, lines, settings, first, last)


def forget(key: str) -> None:
    _LAST_CHECK.pop(key, None)


def compute_fix_all(lines: list[str], settings: Settings, path: str | None) -> list[str]:
    """The lines with every safe fix applied (runs in the worker process)."""
    # the rules load only in the worker process (start-up cost)
    from conc_lsp.diagnose import fix_lines

    return fix_lines(lines, settings, path)[0]


def compute_lenses(
    key: str,
    lines: list[str],
    settings: Settings,
    path: str | None,
    resolutions: Resolved | None = None,
) -> list[LensTarget]:
    """Code lens targets of a document (runs in the worker process)."""
    # the report loads only when asked for (start-up cost)
    from conc_lsp.report import lens_targets

    result = checked(key, lines, settings, path, resolutions)
    if result.facts is None:
        return []
    return lens_targets(result.facts, result.findings, lines)


def compute_report(
    key: str,
    lines: list[str],
    settings: Settings,
    path: str | None,
    target: Target,
    name: str,
    link: str | None,
    resolutions: Resolved | None = None,
) -> str:
    """The report as markdown (runs in the worker process, reusing its last check)."""
    # the report loads only when asked for (start-up cost)
    from conc_lsp.report import build_report, render_markdown

    result = checked(key, lines, settings, path, resolutions)
    report = build_report(
        lines, target, settings=settings, path=path, name=name, link=link, result=result
    )
    return render_markdown(report, tables=False)  # a preview beside the code is narrow
