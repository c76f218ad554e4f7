"""Every offered fix, one at a time, on the installed trio and anyio sources
and on the rule fixtures, with every rule selected (opt-in rules included).

For each finding that carries a quick fix, the fix alone is applied to its
module (in memory; nothing is written) and the result is checked
(tests/fix_properties.py): it parses, uses no undefined name, names no other
concurrency library than the edited function's, removes its finding, and
brings no new one. Prints fixes offered / applied / failing each property, per
rule and safety, then each failure; exits 1 when a *safe* fix fails one
(other than a known gap of the detection: see ``detection_gap``).

    .venv/bin/python benchmarks/fix_sweep.py [--package trio] [--fixtures-only] [--verbose]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the property checker lives beside its test

from tests.fix_properties import (  # noqa: E402
    PROPERTIES,
    Tally,
    detection_gap,
    sweep,
    table,
)

FIXTURES = ROOT / "tests" / "fixtures"
PACKAGES = ("trio", "anyio")


def fixture_files() -> list[Path]:
    return sorted(path for path in FIXTURES.rglob("*.py") if ".expected." not in path.name)


def package_files(name: str) -> list[Path]:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"fix_sweep: {name} is not installed")
    return sorted(Path(spec.submodule_search_locations[0]).rglob("*.py"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--package", action="append", choices=PACKAGES)
    parser.add_argument("--fixtures-only", action="store_true")
    parser.add_argument("--verbose", action="store_true", help="also list unsafe fixes' failures")
    arguments = parser.parse_args()
    groups = [("rule fixtures", fixture_files(), ROOT)]
    if not arguments.fixtures_only:
        for name in arguments.package or PACKAGES:
            files = package_files(name)
            groups.append((name, files, files[0].parent.parent if files else ROOT))
    total = Tally()
    for label, paths, base in groups:
        started = time.perf_counter()
        tally = sweep(paths, base)
        elapsed = time.perf_counter() - started
        print(f"== {label}: {len(paths)} files, {elapsed:.1f} s")
        for row in table(tally):
            print("  " + row)
        total.add(tally)
    safe_failures = [f for f in total.failures if f.safe and not detection_gap(f)]
    gaps = [f for f in total.failures if detection_gap(f)]
    shown = total.failures if arguments.verbose else [f for f in total.failures if f.safe]
    print(f"safe fixes failing a property ({', '.join(PROPERTIES)}): {len(safe_failures)}")
    print(f"  and {len(gaps)} new CONC111 that are the detection's (see detection_gap)")
    for failure in shown:
        known = " [detection gap]" if detection_gap(failure) else ""
        print(
            f"FAIL {failure.path}:{failure.line} {failure.code} "
            f"[{'safe' if failure.safe else 'unsafe'}] {failure.broken}: {failure.detail}"
            f" ({failure.title}){known}"
        )
    return 1 if safe_failures else 0


if __name__ == "__main__":
    sys.exit(main())
