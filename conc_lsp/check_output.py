"""Output formats of `conc-lsp check`: text (like ruff), json, sarif, github,
and the summary under the text."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from conc_lsp import __version__
from conc_lsp.analysis.kinds import SEVERITIES

if TYPE_CHECKING:
    from conc_lsp.analysis.model import Finding, Location, SyntaxProblem
    from conc_lsp.rules.base import Rule

SARIF_LEVELS = {"error": "error", "warning": "warning", "information": "note", "hint": "note"}
GITHUB_LEVELS = {"error": "error", "warning": "warning", "information": "notice", "hint": "notice"}
# The word each severity shows as in text output.
SEVERITY_WORDS = {"error": "error", "warning": "warning", "information": "info", "hint": "hint"}
SYNTAX_ERROR = "syntax-error"  # its rule id in SARIF

# ANSI colours, as ruff uses them: bold paths, cyan punctuation, bold red codes.
BOLD, RESET, CYAN, RED = "\x1b[1m", "\x1b[0m", "\x1b[36m", "\x1b[31m"
SEVERITY_COLOURS = {
    "error": "\x1b[1;31m",
    "warning": "\x1b[33m",
    "information": "\x1b[34m",
    "hint": "\x1b[2m",
}


@dataclass(slots=True)
class FileResult:
    path: str
    findings: list[Finding]
    problems: list[SyntaxProblem]


def use_colour(stream: TextIO) -> bool:
    """Colour on a terminal; never with NO_COLOR set, always with FORCE_COLOR set."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    try:
        return stream.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):
        return False


def _rules() -> dict[str, Rule]:
    # the rules load only for the formats that describe them (start-up cost)
    from conc_lsp.rules import all_rules

    return all_rules()


def syntax_error_text(path: str, problem: SyntaxProblem) -> str:
    return (
        f"{path}:{problem.line + 1}:{problem.column + 1}: syntax error: "
        f"{problem.message} (lines {problem.start_line + 1}-{problem.end_line} not checked)"
    )


def syntax_errors(results: list[FileResult]) -> str:
    """The syntax errors, one line each (stderr in text mode)."""
    return "\n".join(
        syntax_error_text(result.path, problem) for result in results for problem in result.problems
    )


def text(results: list[FileResult], colour: bool = False) -> str:
    """`path:line:col: CODE [severity] message`, one line per finding."""
    out = []
    for result in results:
        for finding in result.findings:
            where = finding.location
            level = finding.severity.value
            word = f"[{SEVERITY_WORDS[level]}]"
            if colour:
                colon = f"{CYAN}:{RESET}"
                position = (
                    f"{BOLD}{result.path}{RESET}{colon}{where.line + 1}{colon}"
                    f"{where.column + 1}{colon}"
                )
                code = f"{BOLD}{RED}{finding.code}{RESET}"
                word = f"{SEVERITY_COLOURS[level]}{word}{RESET}"
                out.append(f"{position} {code} {word} {finding.message}")
            else:
                position = f"{result.path}:{where.line + 1}:{where.column + 1}:"
                out.append(f"{position} {finding.code} {word} {finding.message}")
    return "\n".join(out)


def as_json(results: list[FileResult]) -> str:
    """A list of records; a syntax error is one with ``"code": null`` (as ruff has it)."""
    import json  # only for this format (start-up cost of a text run)

    records: list[dict[str, object]] = []
    for result in results:
        for problem in result.problems:
            records.append(
                {
                    "path": result.path,
                    "line": problem.line + 1,
                    "column": problem.column,
                    "end_line": problem.line + 1,
                    "end_column": problem.column,
                    "code": None,
                    "severity": "error",
                    "message": f"syntax error: {problem.message} (lines "
                    f"{problem.start_line + 1}-{problem.end_line} not checked)",
                    "fix_available": False,
                }
            )
        records.extend(
            {
                "path": result.path,
                "line": finding.location.line + 1,
                "column": finding.location.column,
                "end_line": finding.location.end_line + 1,
                "end_column": finding.location.end_column,
                "code": finding.code,
                "severity": finding.severity.value,
                "message": finding.message,
                "fix_available": finding.fix is not None,
            }
            for finding in result.findings
        )
    return json.dumps(records, indent=2, ensure_ascii=False)


def _sarif_syntax_errors(results: list[FileResult]) -> list[dict[str, object]]:
    return [
        {
            "ruleId": SYNTAX_ERROR,
            "level": "error",
            "message": {
                "text": f"{problem.message} (lines {problem.start_line + 1}-{problem.end_line} "
                "not checked)"
            },
            "locations": [_sarif_location(result.path, _point(problem.line, problem.column))],
        }
        for result in results
        for problem in result.problems
    ]


SYNTAX_ERROR_RULE = {
    "id": SYNTAX_ERROR,
    "name": SYNTAX_ERROR,
    "shortDescription": {"text": "a region of the file does not parse and was not checked"},
    "defaultConfiguration": {"level": "error"},
}


def sarif(results: list[FileResult]) -> str:
    import json  # only for this format (start-up cost of a text run)

    rules = _rules()
    broken = any(result.problems for result in results)
    document = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "conc-lsp",
                        "version": __version__,
                        "rules": [
                            {
                                "id": rule.code,
                                "name": rule.name,
                                "shortDescription": {"text": rule.summary},
                                "fullDescription": {"text": rule.doc},
                                "defaultConfiguration": {
                                    "level": SARIF_LEVELS[rule.severity.value]
                                },
                            }
                            for rule in rules.values()
                        ]
                        + ([SYNTAX_ERROR_RULE] if broken else []),
                    }
                },
                "results": _sarif_syntax_errors(results)
                + [
                    {
                        "ruleId": finding.code,
                        "level": SARIF_LEVELS[finding.severity.value],
                        "message": {"text": finding.message},
                        "locations": [_sarif_location(result.path, finding.location)],
                        "relatedLocations": [
                            {
                                **_sarif_location(result.path, related.location),
                                "message": {"text": related.message},
                            }
                            for related in finding.related
                        ],
                    }
                    for result in results
                    for finding in result.findings
                ],
            }
        ],
    }
    return json.dumps(document, indent=2, ensure_ascii=False)


def _sarif_location(path: str, where: Location) -> dict[str, object]:

    return {
        "physicalLocation": {
            "artifactLocation": {"uri": path},
            "region": {
                "startLine": where.line + 1,
                "startColumn": where.column + 1,
                "endLine": where.end_line + 1,
                "endColumn": where.end_column + 1,
            },
        }
    }


def github(results: list[FileResult]) -> str:
    out = []
    for result in results:
        for problem in result.problems:
            out.append(
                f"::error file={result.path},line={problem.line + 1},col={problem.column + 1},"
                f"title=syntax error::{_escape(problem.message)}"
            )
        for finding in result.findings:
            where = finding.location
            out.append(
                f"::{GITHUB_LEVELS[finding.severity.value]} file={result.path},"
                f"line={where.line + 1},col={where.column + 1},endLine={where.end_line + 1},"
                f"endColumn={where.end_column + 1},title={finding.code} {finding.name}::"
                f"{_escape(finding.message)}"
            )
    return "\n".join(out)


def _escape(message: str) -> str:
    return message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def statistics(results: list[FileResult]) -> str:
    counts = Counter(finding.code for result in results for finding in result.findings)
    rules = _rules()
    lines = [
        f"{count:>5}  {code}  {rules[code].name if code in rules else ''}"
        for code, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    ]
    problems = sum(len(result.problems) for result in results)
    if problems:
        lines.append(f"{problems:>5}  syntax errors")
    return "\n".join(lines)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


@dataclass(frozen=True, slots=True)
class Totals:
    """What the summary line counts, besides the results themselves."""

    checked: int  # files read and checked
    unreadable: int  # files that could not be read (or their fixes written)
    fail_on: str  # the least severity that fails the run


def summary(results: list[FileResult], totals: Totals) -> str:
    """`Found 3 findings in 2 files (190 checked): 2 warnings, 1 info.`, or `All checks
    passed (190 files checked).`; never the latter when a file could not be read."""
    findings = [finding for result in results for finding in result.findings]
    with_findings = sum(1 for result in results if result.findings)
    broken = sum(1 for result in results if result.problems)
    lines = []
    if not totals.checked and not totals.unreadable:
        return "No Python files found."
    if findings or broken:
        counts = Counter(finding.severity.value for finding in findings)
        kinds = ", ".join(
            _plural(counts[level], SEVERITY_WORDS[level])
            if level != "information"
            else f"{counts[level]} info"
            for level in SEVERITIES
            if counts[level]
        )
        checked = f"{totals.checked} checked"
        if broken:
            checked += f", {broken} with syntax errors"
        line = f"Found {_plural(len(findings), 'finding')} in {_plural(with_findings, 'file')}"
        line += f" ({checked})" + (f": {kinds}." if kinds else ".")
        lines.append(line)
        quiet = sum(count for level, count in counts.items() if not _fails(level, totals))
        if quiet:
            lines.append(
                f"{_plural(quiet, 'finding')} below {totals.fail_on} "
                f"{'does' if quiet == 1 else 'do'} not fail the run (--fail-on)."
            )
    elif not totals.unreadable:
        lines.append(f"All checks passed ({_plural(totals.checked, 'file')} checked).")
    else:
        lines.append(f"No findings in {_plural(totals.checked, 'file')} checked.")
    if totals.unreadable:
        lines.append(
            f"{_plural(totals.unreadable, 'file')} could not be read or written (see above)."
        )
    return "\n".join(lines)


def _fails(level: str, totals: Totals) -> bool:
    return SEVERITIES.index(level) <= SEVERITIES.index(totals.fail_on)


def _point(line: int, column: int) -> Location:
    # The model loads when output needs it (start-up cost of a run the cache answers)
    from conc_lsp.analysis.model import Location

    return Location(line, column, line, column)
