"""Real code that a rule once got wrong, kept as negative fixtures.

Each file of `tests/fixtures/negatives/` is a minimal shape of a wrong
finding met while judging the rules on published code bases (the docstring
says where); its `# silent: CODE, ...` line names the rules that must say
nothing about it. A wrong finding becomes such a file before its rule is
fixed. A file with a `# resolve: true` line is checked as `check --resolve`
checks it (jedi follows its callees first): the wrong findings that only
resolution adds.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conc_lsp.analysis.resolve import Resolver
from conc_lsp.analysis.text import split_lines
from conc_lsp.config import Settings
from conc_lsp.diagnose import check_lines

FIXTURES = Path(__file__).parent / "fixtures" / "negatives"
SILENT = re.compile(r"^# silent: (?P<codes>CONC\d+(?:, CONC\d+)*)$", re.MULTILINE)
RESOLVE = "\n# resolve: true\n"


def silenced(path: Path) -> list[str]:
    match = SILENT.search(path.read_text(encoding="utf-8"))
    assert match is not None, f"{path.name} has no `# silent: CODE` line"
    return match.group("codes").split(", ")


def cases() -> list[object]:
    found = []
    for path in sorted(FIXTURES.glob("*.py")):
        known = "\n# known: " in path.read_text(encoding="utf-8")
        marks = [pytest.mark.xfail(reason="a known false positive", strict=True)] if known else []
        found.append(pytest.param(path, id=path.stem, marks=marks))
    return found


@pytest.mark.parametrize("path", cases())
def test_no_finding_on_a_known_false_positive(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    codes = silenced(path)
    text = path.read_text(encoding="utf-8")
    lines = split_lines(text)
    resolutions = None
    if RESOLVE in text:
        monkeypatch.setenv("CONC_LSP_CACHE_DIR", str(tmp_path))  # no verdicts of other runs
        found = Resolver(str(path.parent)).resolve_lines(lines, str(path), budget=120)
        assert found.complete
        resolutions = found.resolutions
    result = check_lines(lines, Settings(select=("ALL",)), str(path), resolutions=resolutions)
    assert result.problems == [] and result.rule_errors == []
    wrong = [
        f"{finding.location.line + 1}: {finding.code} {finding.message}"
        for finding in result.findings
        if finding.code in codes
    ]
    assert wrong == []
