"""A report on a big module with many findings (issue 13, part 6): it details
at most ``MAX_DETAILED`` findings and says how many it left out, tells its
progress, costs what the check costs plus its findings (counted calls, not
time), and its diffs of a big module are numbered as in the whole file."""

from __future__ import annotations

import re

import pytest

from conc_lsp.analysis.text import split_lines
from conc_lsp.config import Settings
from conc_lsp.diagnose import check_lines
from conc_lsp.report import build, build_report
from conc_lsp.rules import all_rules
from conc_lsp.rules.story import WHOLE_DIFF_LINES, unified_diff
from tests.long_code import cache_copies, counted_calls

SETTINGS = Settings(select=("ALL",))  # every rule: opt-in ones find most here


def test_a_report_details_the_most_serious_findings_and_counts_the_others() -> None:
    lines = split_lines(cache_copies(2000))
    result = check_lines(lines, SETTINGS)
    total = len(result.findings)
    assert total > build.MAX_DETAILED
    rules = all_rules()
    ranks = []
    for finding in result.findings:
        detection = result.detection(finding)
        assert detection is not None
        ranks.append(rules[finding.code].seriousness(detection.evidence))
    assert len(set(ranks)) > 1  # a choice to make
    seen: list[tuple[int, int]] = []
    report = build_report(lines, settings=SETTINGS, progress=lambda *a: seen.append(a))
    assert len(report.findings) == build.MAX_DETAILED
    omitted = total - build.MAX_DETAILED
    assert f"(and {omitted} more, not detailed)" in report.summary
    assert any(f"{omitted} more findings are not detailed" in note for note in report.notes)
    # The most serious are kept: no omitted finding ranks before a detailed one.
    assert sorted(item.rank for item in report.findings) == sorted(ranks)[: build.MAX_DETAILED]
    assert seen[0] == (0, build.MAX_DETAILED) and seen[-1] == (build.MAX_DETAILED,) * 2
    assert len(seen) == build.MAX_DETAILED + 1


def test_a_report_costs_its_module_plus_its_findings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build, "MAX_DETAILED", 8)

    def report_calls(size: int) -> int:
        lines = split_lines(cache_copies(size))
        return counted_calls(lambda: build_report(lines, settings=SETTINGS))

    short = report_calls(1200)
    assert report_calls(2400) <= 2.3 * short


def test_the_diffs_of_a_big_module_are_numbered_as_in_the_whole_file() -> None:
    lines = split_lines(cache_copies(2 * WHOLE_DIFF_LINES))
    fixed = [f for f in check_lines(lines, SETTINGS, fixes=True).findings if f.fix is not None]
    assert fixed
    for finding in fixed:
        assert finding.fix is not None
        diff = unified_diff(lines, finding.fix.edits, "big.py").splitlines()
        hunks = [index for index, line in enumerate(diff) if line.startswith("@@")]
        assert hunks
        for index in hunks:
            match = re.match(r"@@ -(\d+)", diff[index])
            assert match is not None
            line = int(match.group(1)) - 1
            for text in diff[index + 1 :]:
                if text.startswith(("@@", "+")):
                    if text.startswith("@@"):
                        break
                    continue
                assert text[1:] == lines[line], (finding.code, diff[index])
                line += 1
