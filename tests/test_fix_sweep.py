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

from conc_lsp.analysis.text import split_lines
from conc_lsp.sources import read_source
from tests.fix_properties import Failure, Tally, detection_gap, sweep_module

FIXTURES = Path(__file__).parent / "fixtures"
UNSAFE_MUST_KEEP = ("parses", "names", "library")


def broken(tally: Tally) -> list[str]:
    return [
        f"{f.path}:{f.line} {f.code} {f.broken}: {f.detail} ({f.title})"
        for f in tally.failures
        if must_hold(f) and not detection_gap(f)
    ]


def must_hold(failure: Failure) -> bool:
    return failure.safe or failure.broken in UNSAFE_MUST_KEEP


def sweep(paths: list[Path], base: Path) -> Tally:
    tally = Tally()
    for path in paths:
        lines = split_lines(read_source(path))
        tally.add(sweep_module(str(path.relative_to(base)), lines))
    return tally


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
