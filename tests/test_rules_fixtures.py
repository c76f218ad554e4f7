"""Each rule has one fixture file with positive and negative cases inline.

A line ending in `# expect: CONC201` must get a finding of the file's rule on
that line; every other line must get none of that rule (other rules may
fire: each file tests its own rule).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conc_lsp.analysis.text import split_lines
from conc_lsp.config import Settings
from conc_lsp.diagnose import check_lines
from conc_lsp.rules import all_rules

FIXTURES = Path(__file__).parent / "fixtures" / "rules"
EXPECT = re.compile(r"#\s*expect:\s*(?P<codes>CONC\d+(?:\s*,\s*CONC\d+)*)")
CASE = re.compile(r"^# case: (?P<sign>[+-])", re.MULTILINE)
MINIMUM_CASES = 8


def fixture_for(code: str) -> Path:
    return FIXTURES / f"{code.lower()}.py"


def expectations(lines: list[str], code: str) -> set[int]:
    expected = set()
    for number, line in enumerate(lines):
        match = EXPECT.search(line)
        if match and code in re.split(r"\s*,\s*", match.group("codes")):
            expected.add(number)
    return expected


@pytest.mark.parametrize("code", sorted(all_rules()))
def test_rule_fixture(code: str) -> None:
    path = fixture_for(code)
    assert path.exists(), f"no fixture file for {code}"
    source = path.read_text(encoding="utf-8")
    lines = split_lines(source)
    result = check_lines(lines, Settings(select=(code,)), str(path))
    assert result.problems == [] and result.rule_errors == []
    actual = {finding.location.line for finding in result.findings if finding.code == code}
    expected = expectations(lines, code)
    missing = sorted(line + 1 for line in expected - actual)
    unexpected = sorted(line + 1 for line in actual - expected)
    assert (missing, unexpected) == ([], []), "lines missing / unexpected"


@pytest.mark.parametrize("code", sorted(all_rules()))
def test_rule_fixture_has_enough_cases(code: str) -> None:
    source = fixture_for(code).read_text(encoding="utf-8")
    signs = [match.group("sign") for match in CASE.finditer(source)]
    assert signs.count("+") >= MINIMUM_CASES, "positive cases"
    assert signs.count("-") >= MINIMUM_CASES, "negative cases"
    libraries = {name for name in ("trio", "anyio", "asyncio") if f"import {name}" in source}
    assert libraries == {"trio", "anyio", "asyncio"}
