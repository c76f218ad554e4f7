"""Time to build the concurrency report of a 500-line module (requirement: < 1 s).

Two generated modules of 500 lines each:

- ``synth``: benchmarks/synth.py's trio module (deadlines, retries, nurseries,
  ``async for``, shielded cleanup, a pool class with a lock and an event), as
  the other benchmarks use it;
- ``findings``: the seed's ``_Cache`` example (tests/fixtures/report/cache.py)
  repeated under new names until 500 lines: four findings per copy, each with
  its trace, its fix (libcst) or sketch.

The measured work is what ``conc-lsp report FILE`` does after reading the
file: check (parse, facts, rules), the hint analysis, the report with its
fixes, and the markdown. Printed: median / max of ``--repeat`` runs (default
7) after one warm-up, with a breakdown for the last run. Exits 1 only when the
report is wrong (a finding without a trace or a fix), never because it is slow.

    .venv/bin/python benchmarks/report.py [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from conc_lsp.analysis.parse import analyse_lines
from conc_lsp.analysis.text import split_lines
from conc_lsp.config import Settings
from conc_lsp.diagnose import check_lines
from conc_lsp.report import build_report, render_markdown

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # tests.long_code
import fingerprint
from synth import trio_module

from tests.long_code import cache_copies

LINES = 500
REQUIREMENT = 1.0  # seconds


def build(lines: list[str]) -> tuple[str, dict[str, float], int]:
    """The report's markdown, the time of each stage, and the number of findings."""
    settings = Settings()
    times: dict[str, float] = {}
    start = time.perf_counter()
    result = check_lines(lines, settings)
    times["check"] = time.perf_counter() - start
    mark = time.perf_counter()
    analysis = analyse_lines(lines)
    times["hints"] = time.perf_counter() - mark
    mark = time.perf_counter()
    report = build_report(
        lines, settings=settings, name="bench.py", result=result, analysis=analysis
    )
    times["report"] = time.perf_counter() - mark
    mark = time.perf_counter()
    markdown = render_markdown(report)
    times["markdown"] = time.perf_counter() - mark
    times["total"] = time.perf_counter() - start
    broken = sum(1 for finding in report.findings if not finding.trace.steps or not finding.fixes)
    if broken:
        raise SystemExit(f"{broken} finding(s) without a trace or a fix")
    return markdown, times, len(report.findings)


def measure(name: str, text: str, repeat: int) -> bool:
    lines = split_lines(text)
    build(lines)  # warm-up: imports, libcst, caches
    totals = []
    last: dict[str, float] = {}
    findings = 0
    for _ in range(repeat):
        _, last, findings = build(lines)
        totals.append(last["total"])
    median = statistics.median(totals)
    verdict = "ok" if median < REQUIREMENT else "OVER"
    print(
        f"{name:>9}: {len(lines) - 1} lines, {findings} findings: median {median * 1000:.0f} ms, "
        f"max {max(totals) * 1000:.0f} ms (requirement < {REQUIREMENT * 1000:.0f} ms) {verdict}"
    )
    print(
        "           last run: "
        + ", ".join(f"{stage} {seconds * 1000:.0f} ms" for stage, seconds in last.items())
    )
    return median < REQUIREMENT


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=7)
    arguments = parser.parse_args()
    before = fingerprint.describe()
    print(before)
    measure("synth", trio_module(LINES).text, arguments.repeat)
    measure("findings", cache_copies(LINES), arguments.repeat)
    if fingerprint.describe() != before:
        print("warning: the conc_lsp sources changed while this ran")
    return 0


if __name__ == "__main__":
    sys.exit(main())
