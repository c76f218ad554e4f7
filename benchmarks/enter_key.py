"""Enter inside a bracket, then Backspace joining the line back, and Enter at
the end of the line, then Backspace taking the new line away, in the middle
of one 5,000-line method (tests/long_code.py), in one process: each edit
(conc_lsp.server.documents.Document.edit) followed by the inlay hints of the
~60 visible lines (conc_lsp.server.features.inlay_hints), as the server runs
them for a didChange and an inlayHint request; no transport (see
benchmarks/lsp_roundtrip.py for the round trip).  Every result is checked
against a fresh analysis of the text (the script exits 1 on a difference).

    .venv/bin/python benchmarks/enter_key.py [--iterations N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from lsprotocol import types

from conc_lsp.analysis.parse import Analyzer
from conc_lsp.analysis.text import split_lines
from conc_lsp.config import Settings
from conc_lsp.server import features
from conc_lsp.server.documents import Document

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.long_code
from tests.long_code import long_methods

LONG_FUNCTION = 5_000
WINDOW = 60
ENCODING = "utf-16"


def window(lines: list[str], middle: int) -> types.Range:
    first = max(middle - WINDOW // 2, 0)
    last = min(first + WINDOW, len(lines) - 1)
    return types.Range(
        start=types.Position(line=first, character=0),
        end=types.Position(line=last, character=len(lines[last])),
    )


def percentile(times: list[float], fraction: float) -> float:
    ordered = sorted(times)
    return ordered[min(int(fraction * len(ordered)), len(ordered) - 1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=40, help="Enter + Backspace pairs")
    arguments = parser.parse_args()
    text = long_methods(LONG_FUNCTION, LONG_FUNCTION)
    lines = split_lines(text)
    middle = len(lines) // 2
    # `value_k = await self.factory.fetch(key, k)`: Enter after "key," is
    # inside the call's brackets.
    line = min(
        (number for number, line in enumerate(lines) if "self.factory.fetch(key, " in line),
        key=lambda number: abs(number - middle),
    )
    column = lines[line].index("key,") + len("key,")
    indent = " " * (len(lines[line]) - len(lines[line].lstrip()) + 4)
    settings = Settings()
    document = Document.open("file:///enter_key.py", 1, text)
    request = window(document.lines, line)
    features.inlay_hints(document, request, settings, ENCODING)  # the first full parse
    end_of_line = len(lines[line])
    statement_indent = indent[:-4]
    edits = (
        ("Enter in ()", (line, column), (line, column), "\n" + indent),
        ("Backspace", (line, column), (line + 1, len(indent)), ""),
        ("Enter at end", (line, end_of_line), (line, end_of_line), "\n" + statement_indent),
        ("Backspace", (line, end_of_line), (line + 1, len(statement_indent)), ""),
    )
    times: dict[str, list[float]] = {"Enter in ()": [], "Enter at end": [], "Backspace": []}
    for _ in range(arguments.iterations):
        for name, start, end, typed in edits:
            began = time.perf_counter()
            document.edit(start, end, typed)
            hints = features.inlay_hints(document, request, settings, ENCODING)
            times[name].append(time.perf_counter() - began)
            fresh = Analyzer(list(document.lines)).analysis().hints
            if list(document.analyzer.analysis().hints) != fresh:
                print(f"FAIL: hints after {name} differ from a fresh analysis", file=sys.stderr)
                return 1
            if not hints:
                print(f"FAIL: no hints in the window after {name}", file=sys.stderr)
                return 1
    print(f"{len(lines):,} lines, one {LONG_FUNCTION:,}-line method; edit at line {line + 1}")
    print(f"{'edit':<13} {'n':>4} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7}")
    for name, measured in times.items():
        print(
            f"{name:<13} {len(measured):>4} {statistics.median(measured) * 1000:>7.1f} "
            f"{percentile(measured, 0.95) * 1000:>7.1f} {max(measured) * 1000:>7.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
