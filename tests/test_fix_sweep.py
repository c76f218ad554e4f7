"""Every offered fix, one at a time, keeps its properties (tests/fix_properties.py):
on every fixture file and on the installed trio and anyio sources, with every
rule selected (opt-in rules included).

A fix offered as safe must keep them all: the result parses, uses no undefined
name, names no other library than its function's, removes its finding and
brings no new one. An unsafe fix may change behaviour (and so findings), but
its result must still parse, use only defined names and the right library.
`benchmarks/fix_sweep.py` prints the same sweep as figures.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from conc_lsp.analysis.model import Fix, TextEdit
from conc_lsp.analysis.text import split_lines
from conc_lsp.diagnose import check_lines
from tests.fix_properties import (
    EVERY_RULE,
    Tally,
    broken_properties,
    detection_gap,
    must_hold,
    sweep,
)

FIXTURES = Path(__file__).parent / "fixtures"


def broken(tally: Tally) -> list[str]:
    return [
        f"{f.path}:{f.line} {f.code} {f.broken}: {f.detail} ({f.title})"
        for f in tally.failures
        if must_hold(f) and not detection_gap(f)
    ]


def test_every_fix_offered_on_the_fixtures_keeps_its_properties() -> None:
    paths = sorted(path for path in FIXTURES.rglob("*.py") if ".expected." not in path.name)
    tally = sweep(paths, FIXTURES)
    assert broken(tally) == []
    # The sweep did reach every fixable rule, safe and unsafe fixes alike.
    assert {code for code, _ in tally.applied} >= {
        "CONC101", "CONC102", "CONC103", "CONC104", "CONC105", "CONC110", "CONC111",
        "CONC201", "CONC202", "CONC203", "CONC302", "CONC401",
    }  # fmt: skip
    assert {safe for _, safe in tally.applied} == {True, False}


@pytest.mark.parametrize("package", ["trio", "anyio"])
def test_every_fix_offered_on_an_installed_library_keeps_its_properties(package: str) -> None:
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations
    root = Path(spec.submodule_search_locations[0])
    tally = sweep(sorted(root.rglob("*.py")), root.parent)
    assert broken(tally) == []
    assert sum(tally.applied.values()) > 0


# -- the checker catches what it looks for -----------------------------------

CHECKED = (
    "import asyncio\nimport trio\n\n\nasync def close(done: trio.Event):\n    try:\n"
    "        await trio.sleep(1)\n    finally:\n        await done.wait()\n"
)
WAIT_LINE = 8


def properties_broken_by(new_line: str) -> list[str]:
    """Replace the finding's line by ``new_line`` and name the properties broken."""
    lines = split_lines(CHECKED)
    before = check_lines(lines, EVERY_RULE, "m.py", fixes=True).findings
    target = next(f for f in before if f.code == "CONC101")
    edit = TextEdit((WAIT_LINE, 0), (WAIT_LINE, len(lines[WAIT_LINE])), new_line)
    fix = Fix("hand-made", True, (edit,))
    return sorted(
        {name for name, _ in broken_properties(lines, before, target, fix, EVERY_RULE, "trio")}
    )


def test_the_checker_finds_each_broken_property() -> None:
    assert properties_broken_by("        await done.wait(") == ["parses"]
    bounded = "        with {}(5, shield=True):\n            {}await done.wait()"
    assert properties_broken_by(bounded.format("trio.move_on_after", "")) == []
    assert properties_broken_by(bounded.format("move_on_after", "")) == ["names"]
    assert properties_broken_by(bounded.format("trio.move_on_after", "x = ")) == []
    assert properties_broken_by("        await done.wait()\n        return") == ["gone", "jumps"]
    unset = bounded.format("trio.move_on_after", "x = ") + "\n        print(x)"
    assert properties_broken_by(unset) == ["unset"]
    assert "library" in properties_broken_by("        await asyncio.wait_for(done.wait(), 5)")
    assert properties_broken_by("        await done.wait()  # same") == ["gone"]
    another = (
        "\n\n\nasync def other(ev):\n    try:\n        pass\n    finally:\n        await ev.wait()"
    )
    assert properties_broken_by(bounded.format("trio.move_on_after", "") + another) == ["no new"]
