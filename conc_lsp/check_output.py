"""Output formats of `conc-lsp check`: text (like ruff), json, sarif, github."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

from conc_lsp import __version__
from conc_lsp.analysis.model import Finding, Location, SyntaxProblem
from conc_lsp.rules import all_rules

SARIF_LEVELS = {"error": "error", "warning": "warning", "information": "note", "hint": "note"}
GITHUB_LEVELS = {"error": "error", "warning": "warning", "information": "notice", "hint": "notice"}


@dataclass(slots=True)
class FileResult:
    path: str
    findings: list[Finding]
    problems: list[SyntaxProblem]


def text(results: list[FileResult]) -> str:
    out = []
    for result in results:
        for problem in result.problems:
            out.append(
                f"{result.path}:{problem.line + 1}:{problem.column + 1}: syntax error: "
                f"{problem.message} (lines {problem.start_line + 1}-{problem.end_line} not checked)"
            )
        for finding in result.findings:
            where = finding.location
            position = f"{result.path}:{where.line + 1}:{where.column + 1}"
            out.append(f"{position}: {finding.code} {finding.message}")
    return "\n".join(out)


def as_json(results: list[FileResult]) -> str:
    records = [
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
        for result in results
        for finding in result.findings
    ]
    return json.dumps(records, indent=2, ensure_ascii=False)


def sarif(results: list[FileResult]) -> str:
    rules = all_rules()
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
                        ],
                    }
                },
                "results": [
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
    rules = all_rules()
    lines = [
        f"{count:>5}  {code}  {rules[code].name if code in rules else ''}"
        for code, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    ]
    problems = sum(len(result.problems) for result in results)
    if problems:
        lines.append(f"{problems:>5}  syntax errors")
    return "\n".join(lines)
