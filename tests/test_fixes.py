"""Quick fixes: golden files, and the properties every fix must keep.

Each ``tests/fixtures/fixes/NAME.input.py`` is fixed (safe and unsafe fixes,
round by round, as `conc-lsp check --unsafe-fixes` does) and compared with
the reviewed ``NAME.expected.py``. Every single fix is also applied alone and
checked: the result parses, its finding is gone, no new finding appears,
fixing again changes nothing, the lines outside the edit are byte-for-byte
the same, and every comment survives.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conc_lsp.analysis.fragments import parse_fragment
from conc_lsp.analysis.model import Finding
from conc_lsp.analysis.text import apply_edits, split_lines
from conc_lsp.config import Settings
from conc_lsp.diagnose import check_lines, fix_lines
from conc_lsp.rules import fixable_codes
from tests.rule_settings import SEED_SETTINGS

FIXTURES = Path(__file__).parent / "fixtures" / "fixes"
INPUTS = sorted(FIXTURES.glob("*.input.py"))
COMMENT = re.compile(r"#.*$")


def comments(lines: list[str]) -> Counter[str]:
    found: Counter[str] = Counter()
    for line in lines:
        match = COMMENT.search(line)
        if match and not match.group(0).startswith("# conc-lsp:"):
            found[match.group(0)] += 1
    return found


def signature(finding: Finding) -> tuple[str, str]:
    return (finding.code, finding.function)


SELECT = re.compile(r"^# select: (?P<codes>.+)$", re.MULTILINE)


def settings_for(lines: list[str]) -> Settings:
    """The default settings, plus the opt-in rules a `# select: CODE` line names."""
    match = SELECT.search("\n".join(lines[:3]))
    if match is None:
        return SEED_SETTINGS
    return Settings(select=(*SEED_SETTINGS.select, *match.group("codes").split(",")))


def check_fix_properties(lines: list[str]) -> int:
    """Apply each offered fix alone and check its properties; how many were checked."""
    settings = settings_for(lines)
    before = check_lines(lines, settings, fixes=True).findings
    checked = 0
    for target in before:
        fix = target.fix
        if fix is None:
            continue
        fixed = apply_edits(lines, fix.edits)
        parse_fragment(fixed)  # the result parses
        first = min(edit.start[0] for edit in fix.edits)
        last = max(edit.end[0] for edit in fix.edits)
        assert fixed[:first] == lines[:first], "lines before the edit changed"
        tail = len(lines) - last - 1
        if tail:
            assert fixed[len(fixed) - tail :] == lines[last + 1 :], "lines after the edit changed"
        assert comments(lines) <= comments(fixed), "a comment was lost"
        after = check_lines(fixed, settings, fixes=True).findings
        remaining = Counter(signature(f) for f in after)
        expected = Counter(signature(f) for f in before)
        expected[signature(target)] -= 1
        assert not (remaining - expected), f"new findings after {fix.title}"
        assert remaining[signature(target)] <= expected[signature(target)]
        checked += 1
    return checked


@pytest.mark.parametrize("path", INPUTS, ids=lambda path: path.name.split(".")[0])
def test_golden(path: Path) -> None:
    lines = split_lines(path.read_text(encoding="utf-8"))
    fixed, applied, _ = fix_lines(lines, settings_for(lines), unsafe=True)
    assert applied >= 1
    expected_path = path.with_name(path.name.replace(".input.", ".expected."))
    text = "\n".join(fixed)
    if os.environ.get("CONC_LSP_UPDATE_GOLDEN"):
        expected_path.write_text(text, encoding="utf-8")
    assert text == expected_path.read_text(encoding="utf-8")
    # Idempotent: nothing more to do on the result.
    again, applied_again, _ = fix_lines(fixed, settings_for(lines), unsafe=True)
    assert (again, applied_again) == (fixed, 0)
    assert check_fix_properties(lines) >= 1


def test_every_fixable_rule_has_a_golden_file() -> None:
    covered = {path.name[:7].upper() for path in INPUTS}
    assert covered >= fixable_codes()


# -- generated surroundings ---------------------------------------------------

TEMPLATES = {
    "CONC101": (
        "async def {name}(done):\n"
        "{i}try:\n{i}{i}await trio.sleep(1)\n"
        "{i}finally:\n{i}{i}# keep this comment\n{i}{i}await done.wait()  # trailing\n"
    ),
    "CONC103": (
        "async def {name}(cache, lock, key, fetch):\n"
        "{i}await lock.acquire()\n{i}try:\n{i}{i}return cache[key]\n"
        "{i}except KeyError:\n{i}{i}value = await fetch(key)\n{i}{i}lock.release()\n"
        "{i}{i}return value\n"
    ),
    "CONC201": (
        "class {cls}:\n"
        "{i}def __init__(self):\n{i}{i}self.peers = {{}}\n"
        "{i}def add(self, key, peer):\n{i}{i}self.peers[key] = peer\n"
        "{i}async def {name}(self, data):\n"
        "{i}{i}for key, peer in self.peers.items():  # note\n"
        "{i}{i}{i}await peer.send(data)\n"
    ),
    "CONC202": (
        "class {cls}:\n"
        "{i}def __init__(self):\n{i}{i}self.conns = {{}}\n"
        "{i}async def {name}(self, key):\n"
        "{i}{i}if key in self.conns:\n{i}{i}{i}await trio.sleep(0)\n"
        "{i}{i}{i}del self.conns[key]  # gone\n"
    ),
}
FILLER = [
    "x = 1\n",
    "# a comment line\n",
    "\n",
    "def helper(a, b):\n{i}return a + b\n",
    "async def ticker():\n{i}while True:\n{i}{i}await trio.sleep(1)\n",
    "class Plain:\n{i}'''Docstring.'''\n{i}value = {{'k': [1, 2]}}\n",
    "text = '''multi\nline string with await inside\n'''\n",
    "if True:\n{i}y = 'é🐍'\n",
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    code=st.sampled_from(sorted(TEMPLATES)),
    indent=st.sampled_from(["    ", "  ", "\t"]),
    before=st.lists(st.sampled_from(FILLER), max_size=4),
    after=st.lists(st.sampled_from(FILLER), max_size=4),
    name=st.sampled_from(["teardown", "handler", "run_ctx", "drop"]),
)
def test_fixes_keep_their_properties_in_any_surroundings(
    code: str, indent: str, before: list[str], after: list[str], name: str
) -> None:
    parts = ["import trio\n", "\n"]
    parts += [piece.format(i=indent) + "\n" for piece in before]
    parts.append(TEMPLATES[code].format(i=indent, name=name, cls="Owner") + "\n")
    parts += [piece.format(i=indent) + "\n" for piece in after]
    lines = split_lines("".join(parts))
    parse_fragment(lines)
    findings = check_lines(lines, SEED_SETTINGS, fixes=True).findings
    assert any(f.code == code and f.fix is not None for f in findings)
    assert check_fix_properties(lines) >= 1
    fixed, _, result = fix_lines(lines, SEED_SETTINGS, unsafe=True)
    assert all(f.code != code for f in result.findings)
    assert fix_lines(fixed, SEED_SETTINGS, unsafe=True)[1] == 0
