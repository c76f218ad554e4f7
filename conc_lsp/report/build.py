"""Building the report: the target's findings, each with its race trace,
classification and fixes from its rule, the state table and checkpoint map,
and the summary on top.

The per-rule parts (trace, classification, sketches, fix wording) live in
the rules and read each finding's evidence; this module only assembles.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TextIO

from conc_lsp.analysis.model import Finding, ModuleAnalysis
from conc_lsp.analysis.program import Program, program_of
from conc_lsp.config import Settings
from conc_lsp.diagnose import CheckResult, check_lines, fix_for
from conc_lsp.fixes.context import FixContext
from conc_lsp.report.model import FindingReport, ProposedFix, Report, StateRow, Target, Trace
from conc_lsp.report.sections import Scope, checkpoint_marks, scope_of, state_rows
from conc_lsp.rules import all_rules
from conc_lsp.rules.base import Detection, Rule, Words
from conc_lsp.rules.story import TraceBuilder, first_sentence, ref, unified_diff

# A report details (trace, fixes) at most this many findings, the most serious
# first; the others are counted by rule with their lines: one report stays
# readable, and its cost stays that of the check plus this many stories.
MAX_DETAILED = 100
# The state table and the checkpoint map keep this many rows (functions).
MAX_ROWS = 200
# The summary names this many locks and their states; the table lists them all.
MAX_GUARDS = 5
# Progress goes out for runs longer than this (seconds), at most once a second.
QUIET_SECONDS = 2.0

Progress = Callable[[int, int], None]  # (findings detailed so far, findings to detail)


def progress_printer(stream: TextIO = sys.stderr) -> Progress:
    """Prints `report: 40/100 findings` on ``stream`` during a long report."""
    started = time.monotonic()
    shown = started

    def show(done: int, total: int) -> None:
        nonlocal shown
        now = time.monotonic()
        if now - started >= QUIET_SECONDS and (now - shown >= 1.0 or done == total):
            shown = now
            print(f"conc-lsp: report: {done}/{total} findings", file=stream, flush=True)

    return show


def _detailed(
    rules: dict[str, Rule], result: CheckResult, findings: list[Finding]
) -> tuple[list[Finding], list[Finding]]:
    """The findings the report details (at most ``MAX_DETAILED``, the most
    serious first, then in line order) and the others."""
    if len(findings) <= MAX_DETAILED:
        return findings, []

    def seriousness(finding: Finding) -> float:
        rule = rules.get(finding.code)
        detection = result.detection(finding)
        if rule is None:
            return float("inf")
        return rule.seriousness(detection.evidence) if detection is not None else rule.rank

    ranked = sorted(
        range(len(findings)), key=lambda i: (seriousness(findings[i]), findings[i].location.line)
    )
    chosen = set(ranked[:MAX_DETAILED])
    return (
        [f for i, f in enumerate(findings) if i in chosen],
        [f for i, f in enumerate(findings) if i not in chosen],
    )


def _omitted_note(omitted: list[Finding]) -> str:
    """The findings left out of the details, counted per rule with their first lines."""
    lines: dict[str, list[int]] = {}
    for finding in omitted:
        lines.setdefault(finding.code, []).append(finding.location.line + 1)
    parts = []
    for code in sorted(lines):
        found = lines[code]
        shown = ", ".join(str(line) for line in found[:5])
        more = f" and {len(found) - 5} more" if len(found) > 5 else ""
        parts.append(f"{code}: {len(found)} (lines {shown}{more})")
    return (
        f"{len(omitted)} more findings are not detailed here (a report details the "
        f"{MAX_DETAILED} most serious): {'; '.join(parts)}; `conc-lsp check` lists them all"
    )


def _trace(
    program: Program, rule: Rule | None, detection: Detection | None, finding: Finding
) -> Trace:
    function = program.by_qualname.get(finding.function)
    if rule is not None and detection is not None and function is not None:
        try:
            trace = rule.trace(program, TraceBuilder(program), function, detection)
        except Exception:  # noqa: BLE001 - a trace that cannot be built falls back to the lines
            trace = None
        if trace is not None:
            return trace
    return _generic_trace(program, TraceBuilder(program), finding)


def _generic_trace(module: Program, b: TraceBuilder, finding: Finding) -> Trace:
    """The finding's line and its related lines, in line order."""
    items = [(finding.location.line, finding.message, finding.function)]
    for related in finding.related:
        holder = module.function_at(related.location)
        items.append(
            (
                related.location.line,
                related.message,
                holder.qualname if holder else finding.function,
            )
        )
    items.sort(key=lambda item: item[0])
    labels: dict[str, str] = {finding.function: "Task A"}
    for line, text, owner in items:
        label = labels.setdefault(
            owner, "Task B" if len(labels) == 1 else f"Task {chr(65 + len(labels))}"
        )
        b.add(label, line, first_sentence(text))
    tasks = [f"{label} runs `{qualname}`." for qualname, label in labels.items()]
    window = (1, len(b.steps)) if b.steps else None
    return b.build(tasks, window, "the lines the finding names")


def _fixes(
    program: Program,
    rule: Rule,
    detection: Detection | None,
    finding: Finding,
    trace: Trace,
    name: str,
    lines: list[str],
) -> list[ProposedFix]:
    fixes: list[ProposedFix] = []
    if finding.fix is not None and finding.fix.edits:
        diff = unified_diff(lines, finding.fix.edits, name)
        if diff:
            fixes.append(
                ProposedFix(
                    title=finding.fix.title,
                    kind="diff",
                    diff=diff,
                    sketch="",
                    closes="",
                    tradeoffs="",
                    risk="",
                    effort=rule.effort,
                    safe=finding.fix.safe,
                    edits=finding.fix.edits,
                )
            )
    if detection is not None:
        fixes.extend(rule.sketches(program, detection, trace, name, lines, bool(fixes)))
    if not fixes:
        fixes.append(
            ProposedFix(
                title=rule.sketch_title,
                kind="sketch",
                diff="",
                sketch=rule.use_instead,
                closes="",
                tradeoffs="",
                risk="",
                effort=rule.effort,
            )
        )
    if detection is not None:
        words = rule.words(detection.evidence, trace)
    else:
        window = trace.window_words
        words = Words(f"Removes {window}.", "Review by hand.", "Review by hand.")
    for fix in fixes:
        if not fix.closes:
            fix.closes, fix.tradeoffs, fix.risk = words.closes, words.tradeoffs, words.risk
            if fix.kind == "diff" and fix.safe is False:
                fix.risk += " The quick fix is marked unsafe: it changes behaviour on purpose."
    return fixes


def _target_findings(
    module: Program, scope: Scope, target: Target, findings: list[Finding]
) -> list[Finding]:
    if target.kind == "module":
        return list(findings)
    chosen = []
    for finding in findings:
        lines = [finding.location.line, *(r.location.line for r in finding.related)]
        if any(scope.has_line(line) for line in lines):
            chosen.append(finding)
    return chosen


def build_report(
    lines: list[str],
    target: Target | None = None,
    *,
    settings: Settings | None = None,
    path: str | None = None,
    name: str | None = None,
    link: str | None = None,
    result: CheckResult | None = None,
    analysis: ModuleAnalysis | None = None,
    progress: Progress | None = None,
) -> Report:
    """The report for ``target`` (the whole module by default).

    ``name`` is how the file is called in the report and its diffs (the path
    by default); ``link`` is the address line references link to (no links
    when None). ``result`` is a ``diagnose.CheckResult`` of these lines, when
    the caller already has one; ``analysis`` the hint analysis; ``progress``
    hears of each finding detailed.
    """
    settings = settings or Settings()
    target = target or Target()
    name = name or path or "<module>"
    if result is None:
        result = check_lines(lines, settings, path)
    if result.facts is None:  # pragma: no cover - check_lines always gives facts
        raise ValueError("no facts for this text")
    # The hints of the checked tree (no second parse): the functions no rule
    # read are walked once for their events and their hints.
    hints = analysis.hints if analysis is not None else result.facts.hints()
    module = program_of(result.facts, lines)
    scope = scope_of(module, target)
    rules = all_rules()
    chosen, omitted = _detailed(
        rules, result, _target_findings(module, scope, target, result.findings)
    )
    context = FixContext(lines, settings.cleanup_timeout)
    reports = []
    for done, finding in enumerate(chosen, 1):
        if progress is not None:
            progress(done - 1, len(chosen))
        finding = replace(finding, fix=fix_for(result, finding, context))
        rule = rules.get(finding.code)
        if rule is None:  # pragma: no cover - findings come from the registered rules
            continue
        detection = result.detection(finding)
        trace = _trace(module, rule, detection, finding)
        if detection is not None:
            classification, explanation = rule.classify(detection.evidence)
            rank = rule.seriousness(detection.evidence)
        else:
            classification, explanation, rank = rule.category, rule.explanation, rule.rank
        reports.append(
            FindingReport(
                code=finding.code,
                name=finding.name,
                severity=finding.severity.value,
                function=finding.function,
                line=finding.location.line,
                message=finding.message,
                classification=classification,
                explanation=explanation,
                trace=trace,
                fixes=_fixes(module, rule, detection, finding, trace, name, lines),
                related=[(r.location.line, r.message) for r in finding.related],
                rank=rank,
            )
        )
    state = state_rows(module, scope)
    marks = checkpoint_marks(module, scope, hints)
    notes = [
        f"line {p.line + 1}: syntax error ({p.message}); lines {p.start_line + 1}-{p.end_line} "
        "are not analysed"
        for p in result.problems
    ]
    if omitted:
        notes.append(_omitted_note(omitted))
    if progress is not None:
        progress(len(chosen), len(chosen))
    label = target.label(name)
    report = Report(
        target=label,
        path=name,
        link=link,
        summary="",
        state=state,
        checkpoints=marks,
        findings=reports,
        notes=notes,
    )
    report.summary = _summary(report, len(omitted))
    # The summary counted everything; the tables keep their first rows.
    if len(report.state) > MAX_ROWS:
        report.notes.append(
            f"the shared state table lists the first {MAX_ROWS} of "
            f"{len(report.state)} pieces of shared state"
        )
        del report.state[MAX_ROWS:]
    if len(report.checkpoints) > MAX_ROWS:
        report.notes.append(
            f"the checkpoint map shows the first {MAX_ROWS} of "
            f"{len(report.checkpoints)} functions with checkpoints"
        )
        del report.checkpoints[MAX_ROWS:]
    return report


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else (plural or word + 's')}"


def _summary(report: Report, omitted: int = 0) -> str:
    parts: list[str] = []
    rows = report.state
    unguarded = [row for row in rows if row.guard is None]
    if rows:
        text = f"{_plural(len(rows), 'piece')} of shared state that more than one task can touch"
        if unguarded:
            names = _some(f"`{row.state}`" for row in unguarded)
            text += f", {len(unguarded)} of them UNGUARDED ({names})"
        guards: dict[str, list[StateRow]] = {}
        for row in rows:
            if row.guard is not None:
                guards.setdefault(row.guard, []).append(row)
        for guard, guarded in list(guards.items())[:MAX_GUARDS]:
            names = _some((f"`{row.state}`" for row in guarded), " and ")
            text += f"; {names} guarded by {guard}"
            breaks = [e for row in guarded for e in row.exceptions]
            if breaks:
                text += " except at " + _some(breaks)
        if len(guards) > MAX_GUARDS:
            more = sum(len(guarded) for guarded in list(guards.values())[MAX_GUARDS:])
            text += (
                f"; {_plural(more, 'more piece')} guarded by {len(guards) - MAX_GUARDS} more locks"
            )
        parts.append(text)
    else:
        parts.append("no shared state that more than one task can touch")
    checkpoints = sum(1 for f in report.checkpoints for m in f.marks if m.is_checkpoint)
    suspends = sum(1 for f in report.checkpoints for m in f.marks if m.kind == "acm-yield")
    alike = sum(
        1
        for f in report.checkpoints
        for m in f.marks
        if not m.is_checkpoint and m.kind != "acm-yield"
    )
    counts = [_plural(checkpoints, "checkpoint")]
    if suspends:
        counts.append(_plural(suspends, "suspend (acm `yield`)", "suspends (acm `yield`)"))
    if alike:
        counts.append(_plural(alike, "look-alike"))
    text = ", ".join(counts[:-1]) + (" and " if len(counts) > 1 else "") + counts[-1]
    text += f" in {_plural(len(report.checkpoints), 'function')}"
    parts.append(text)
    findings = report.findings
    if findings:
        groups: dict[str, list[str]] = {}
        for item in findings:
            groups.setdefault(item.classification, []).append(f"{item.code} at {ref(item.line)}")
        described = "; ".join(
            f"{_plural(len(items), name, _plural_class(name))} ({_some(items)})"
            for name, items in groups.items()
        )
        others = f" (and {omitted} more, not detailed)" if omitted else ""
        parts.append(f"{_plural(len(findings), 'finding')}{others}: {described}")
    else:
        parts.append("no findings, so no race window to trace")
    sentence = f"`{report.target}`: " + "; ".join(parts) + "."
    if findings:
        lead = min(findings, key=lambda item: (item.rank, item.line))
        sentence += (
            f" The most serious is {lead.code} ({lead.classification}) at {ref(lead.line)}: "
            f"{lead.trace.window_text} ({lead.trace.window_words} of its trace)."
        )
    return sentence


def _some(items: Iterable[str], separator: str = ", ", most: int = 5) -> str:
    """At most ``most`` items, then how many more."""
    listed = list(items)
    if len(listed) <= most:
        return separator.join(listed)
    return ", ".join(listed[:most]) + f" and {len(listed) - most} more"


def _plural_class(name: str) -> str:
    if name == "TOCTOU":
        return "TOCTOUs"
    if name.endswith("y"):
        return name[:-1] + "ies"
    if name.endswith("ch"):
        return name + "es"
    return name + "s"
