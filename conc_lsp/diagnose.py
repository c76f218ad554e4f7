"""Findings for a whole module: parse, facts, rules, then `noqa` and settings.

Pure Python, shared by `conc-lsp check` and the server's diagnostics.
A module that does not parse is analysed piecewise: every top-level
statement that parses on its own still gets its findings.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from conc_lsp.analysis.collector import tree_hints
from conc_lsp.analysis.events import ModuleFacts
from conc_lsp.analysis.flow import module_facts
from conc_lsp.analysis.fragments import PARSE_ERRORS, parse_fragment
from conc_lsp.analysis.model import (
    Anchor,
    Finding,
    Fix,
    HintKey,
    HintKind,
    Resolution,
    Severity,
    SyntaxProblem,
    anchor_keys,
)
from conc_lsp.analysis.parse import Analyzer
from conc_lsp.analysis.text import apply_edits
from conc_lsp.config import Settings
from conc_lsp.fixes.context import FixContext
from conc_lsp.rules import enabled_rules, rule_for
from conc_lsp.rules.base import Detection

MAX_FIX_ROUNDS = 10
NOQA = re.compile(r"#\s*noqa(?::\s*(?P<codes>[A-Z]+[0-9]+(?:[\s,]+[A-Z]+[0-9]+)*))?", re.IGNORECASE)


FindingKey = tuple[str, int, int, str]


def finding_key(finding: Finding) -> FindingKey:
    """A finding's identity within one check (its severity and fix may change)."""
    return (finding.code, finding.location.line, finding.location.column, finding.message)


@dataclass(slots=True)
class CheckResult:
    findings: list[Finding]
    problems: list[SyntaxProblem]
    rule_errors: list[str]
    facts: ModuleFacts | None = None  # for fixes computed later on the same text
    # Each finding's detection (its evidence), for the fixes and the report; kept
    # in the process that computed it.
    detections: dict[FindingKey, Detection] = field(default_factory=dict)

    def detection(self, finding: Finding) -> Detection | None:
        return self.detections.get(finding_key(finding))


@dataclass(slots=True)
class ParsedModule:
    """A module's tree and its checkpoints' keys, made once for a file that is
    both resolved and checked (each used to parse it again); the keys come
    from the same tree."""

    lines: list[str]
    tree: ast.Module
    problems: list[SyntaxProblem]
    _keys: dict[Anchor, HintKey] | None = None

    @property
    def keys(self) -> dict[Anchor, HintKey]:
        """Each checkpoint's resolution key, by its anchor in the tree."""
        if self._keys is None:
            self._keys = anchor_keys(tree_hints(self.tree, self.lines))
        return self._keys


def parse_module(lines: list[str]) -> ParsedModule:
    tree, problems = module_tree(lines)
    return ParsedModule(lines, tree, problems)


def module_tree(lines: list[str]) -> tuple[ast.Module, list[SyntaxProblem]]:
    """The module's tree; for broken text, the top-level statements that parse."""
    try:
        return parse_fragment(lines), []
    except PARSE_ERRORS:
        pass
    analyzer = Analyzer(lines)
    analysis = analyzer.analysis()
    body: list[ast.stmt] = []
    for chunk in analyzer.chunks:
        if chunk.problem is not None or chunk.indent:
            continue
        try:
            tree = parse_fragment(lines[chunk.start : chunk.end])
        except PARSE_ERRORS:
            continue
        ast.increment_lineno(tree, chunk.start)
        body.extend(tree.body)
    return ast.Module(body=body, type_ignores=[]), analysis.problems


def suppressed(finding: Finding, lines: list[str]) -> bool:
    """`# noqa` or `# noqa: CONC101[, ...]` on the finding's first line."""
    line = lines[finding.location.line] if finding.location.line < len(lines) else ""
    if "#" not in line:
        return False
    match = NOQA.search(line)
    if match is None:
        return False
    codes = match.group("codes")
    if not codes:
        return True
    return any(finding.code.startswith(code.upper()) for code in re.split(r"[\s,]+", codes) if code)


def check_lines(
    lines: list[str],
    settings: Settings,
    path: str | None = None,
    *,
    fixes: bool = False,
    resolutions: Mapping[HintKey, Resolution] | None = None,
    parsed: ParsedModule | None = None,
) -> CheckResult:
    """Every finding of the enabled rules, after `noqa` and severity settings;
    with ``fixes``, each finding carries its quick fix when it has one;
    ``resolutions`` (from ``analysis/resolve.py``) tell the rules what the
    callees of the checkpoints really do; ``parsed``: ``lines`` already parsed."""
    if parsed is None or parsed.lines is not lines:
        parsed = parse_module(lines)
    tree, problems = parsed.tree, parsed.problems
    resolved = anchored(parsed.keys, resolutions) if resolutions else None
    facts = module_facts(tree, lines, resolved=resolved, path=path)
    findings: list[Finding] = []
    errors: list[str] = []
    detections: dict[FindingKey, Detection] = {}
    for rule in enabled_rules(settings, path):
        try:
            produced = list(rule.check(facts))
        except Exception as error:  # noqa: BLE001 - one broken rule must not hide the others
            errors.append(f"{rule.code} failed: {type(error).__name__}: {error}")
            continue
        for detection in produced:
            found = detection.finding
            if suppressed(found, lines):
                continue
            level = settings.severity_of(found.code, found.severity.value)
            if level != found.severity.value:
                found = replace(found, severity=Severity(level))
            findings.append(found)
            detections.setdefault(finding_key(found), detection)
    findings.sort(key=lambda f: (f.location.line, f.location.column, f.code))
    result = CheckResult(findings, problems, errors, facts, detections)
    if fixes:
        context = FixContext(lines, settings.cleanup_timeout)
        result.findings = [
            replace(found, fix=fix_for(result, found, context)) for found in findings
        ]
    return result


def fix_for(result: CheckResult, finding: Finding, context: FixContext) -> Fix | None:
    """The quick fix of a finding, or None when no sound mechanical fix exists."""
    detection = result.detection(finding)
    rule = rule_for(finding.code)
    if detection is None or rule is None or result.facts is None:
        return None
    try:
        return rule.fix(detection, result.facts, context)
    except Exception:  # noqa: BLE001 - a fix that cannot be computed is simply not offered
        return None


def anchored(
    keys: dict[Anchor, HintKey], resolutions: Mapping[HintKey, Resolution]
) -> dict[tuple[int, int, HintKind], Resolution]:
    """Resolutions by the anchor of the checkpoint they belong to (``keys``:
    ``ParsedModule.keys``)."""
    found: dict[tuple[int, int, HintKind], Resolution] = {}
    for anchor, key in keys.items():
        resolution = resolutions.get(key)
        if resolution is not None:
            found[anchor] = resolution
    return found


def choose_fixes(findings: list[Finding], unsafe: bool) -> list[Finding]:
    """Findings whose fixes can be applied together: safe ones (all with
    ``unsafe``), and no two touching the same lines (the later one waits for
    the next round, when it is recomputed on the new text)."""
    chosen: list[Finding] = []
    taken: list[tuple[int, int]] = []
    for found in findings:
        fix = found.fix
        if fix is None or (not fix.safe and not unsafe):
            continue
        spans = [(edit.start[0], edit.end[0]) for edit in fix.edits]
        if any(a <= d and c <= b for a, b in spans for c, d in taken):
            continue
        taken.extend(spans)
        chosen.append(found)
    return chosen


def fix_lines(
    lines: list[str],
    settings: Settings,
    path: str | None = None,
    *,
    unsafe: bool = False,
    resolutions: Mapping[HintKey, Resolution] | None = None,
) -> tuple[list[str], int, CheckResult]:
    """Apply fixes round by round until none applies; the new lines, how many
    fixes were applied, and the final check."""
    applied = 0
    for _ in range(MAX_FIX_ROUNDS):
        result = check_lines(lines, settings, path, fixes=True, resolutions=resolutions)
        chosen = choose_fixes(result.findings, unsafe)
        if not chosen:
            return lines, applied, result
        edits = [edit for found in chosen if found.fix for edit in found.fix.edits]
        new_lines = apply_edits(lines, edits)
        try:
            parse_fragment(new_lines)
        except PARSE_ERRORS:
            if not result.problems:  # never turn parsing code into broken code
                return lines, applied, result
        lines = new_lines
        applied += len(chosen)
    return lines, applied, check_lines(lines, settings, path, fixes=True, resolutions=resolutions)


def with_fixes(
    result: CheckResult, lines: list[str], settings: Settings, first_line: int, last_line: int
) -> list[Finding]:
    """The findings on lines first_line..last_line, each with its fix computed."""
    context = FixContext(lines, settings.cleanup_timeout)
    return [
        replace(found, fix=fix_for(result, found, context))
        for found in result.findings
        if found.location.end_line >= first_line and found.location.line <= last_line
    ]
