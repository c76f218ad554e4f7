"""Cost of `check` per 1,000 lines in short and in long functions (issue 15, item 0).

The same 10,000 lines of realistic trio code (shared state written by key, an
`Event` set and waited for, a lock, a counter, `try`/`finally`, a deadline,
a loop over shared state) are cut into methods of ``--short`` lines (500) and
into one method of ``--long`` lines (10,000). A rule whose cost grows with
the square of a function's length shows as a long/short ratio well above 1.

Printed: parse + facts and each rule's time, per 1,000 lines, for both
shapes, medians of ``--repeat`` runs, the long/short ratio of the whole
check, and the findings per rule (which must be equal for both shapes up to
the per-function ones). Exits 1 only if a rule fails.

    .venv/bin/python benchmarks/long_function.py [--repeat N] [--long N] [--short N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from conc_lsp.analysis.flow import module_facts
from conc_lsp.analysis.text import split_lines
from conc_lsp.diagnose import module_tree
from conc_lsp.rules import all_rules

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fingerprint

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.long_code import long_methods

REQUIREMENT = 1.5  # long / short, per line


def measure(text: str, repeat: int) -> tuple[int, dict[str, float], dict[str, int]]:
    lines = split_lines(text)
    rules = all_rules()
    times: dict[str, list[float]] = {"parse": [], "facts": []}
    counts: dict[str, int] = {}
    for _ in range(repeat):
        start = time.perf_counter()
        tree, _ = module_tree(lines)
        parsed = time.perf_counter()
        facts = module_facts(tree, lines)
        for function in facts.functions:  # walked on first use in `check`: here, so it counts
            function.walked()
        done = time.perf_counter()
        times["parse"].append(parsed - start)
        times["facts"].append(done - parsed)
        for code, rule in rules.items():
            start = time.perf_counter()
            counts[code] = len(list(rule.check(facts)))
            times.setdefault(code, []).append(time.perf_counter() - start)
    return len(lines), {name: statistics.median(values) for name, values in times.items()}, counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--long", type=int, default=10_000)
    parser.add_argument("--short", type=int, default=500)
    arguments = parser.parse_args()
    print(fingerprint.describe())
    shapes = {}
    for size in (arguments.short, arguments.long):
        shapes[size] = measure(long_methods(arguments.long, size), arguments.repeat)
    (short_lines, short, short_counts), (long_lines, long, long_counts) = (
        shapes[arguments.short],
        shapes[arguments.long],
    )
    print(f"{'ms per 1k lines':<16}{arguments.short:>10}-line{arguments.long:>10}-line   ratio")
    for name in short:
        a = short[name] * 1000 / (short_lines / 1000)
        b = long[name] * 1000 / (long_lines / 1000)
        ratio = b / a if a > 0.05 else float("nan")
        print(f"{name:<16}{a:>15.1f}{b:>15.1f}{ratio:>8.2f}")
    total_short = sum(short.values()) * 1000 / (short_lines / 1000)
    total_long = sum(long.values()) * 1000 / (long_lines / 1000)
    ratio = total_long / total_short
    print(f"{'check (total)':<16}{total_short:>15.1f}{total_long:>15.1f}{ratio:>8.2f}")
    print(f"findings {arguments.short}-line: {short_counts}")
    print(f"findings {arguments.long}-line: {long_counts}")
    verdict = "ok" if ratio <= REQUIREMENT else "OVER"
    print(f"long / short per line: {ratio:.2f} (requirement <= {REQUIREMENT}) {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
