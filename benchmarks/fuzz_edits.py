"""The differential random-edit fuzzer, long run (issue 13).

Sends random ``didChange`` notifications to a document (one to three changes
each, CR / LF joins, decorator and class splits, undo and paste as a user
does them; see tests/edit_fuzzer.py) in UTF-16 and in UTF-8 positions, and
after every notification compares the document's text with the client's;
whenever that text parses, its inlay hints and diagnostics with those of a
fresh analysis. Prints the number of edits, of parsing states compared and
of drifts (requirement: 0), and the first drifts found.

Exits 1 when a drift was found.

With --keep-trees N, chunks from N lines up keep their tree for statement
edits (issue 15; shipped: conc_lsp.analysis.statement_edit.MIN_LINES), so
that the fuzzer's short functions take that path too.  With --statements,
runs tests/statement_fuzzer.py instead: keystrokes inside long function
bodies, compared after every edit with the chunk path and, when the text
parses, with a fresh analysis.

    .venv/bin/python benchmarks/fuzz_edits.py [--edits N] [--run-length N] [--no-diagnostics]
                                              [--keep-trees N] [--statements]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conc_lsp.analysis import statement_edit
from tests import statement_fuzzer
from tests.edit_fuzzer import run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=20_000, help="notifications per encoding")
    parser.add_argument("--run-length", type=int, default=500, help="notifications per seed")
    parser.add_argument("--no-diagnostics", action="store_true", help="compare hints only")
    parser.add_argument(
        "--keep-trees", type=int, default=None, help="chunks from N lines up keep their tree"
    )
    parser.add_argument(
        "--statements", action="store_true", help="keystrokes inside long function bodies"
    )
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # SyntaxWarnings of random texts
    started = time.perf_counter()
    if args.keep_trees is not None:
        statement_edit.MIN_LINES = args.keep_trees
    if args.statements:
        return statement_edits(args.edits, args.run_length, started)
    drifts: list[str] = []
    for first_seed, encoding in ((0, "utf-16"), (100_000, "utf-8")):
        edits = compared = 0
        seed = first_seed  # other edit sequences for each encoding
        while edits < args.edits:
            length = min(args.run_length, args.edits - edits)
            outcome = run(seed, encoding, length, check_diagnostics=not args.no_diagnostics)
            edits += outcome.notifications
            compared += outcome.compared
            drifts += [f"seed {seed}: {drift}" for drift in outcome.drifts]
            seed += 1
        print(
            f"{encoding}: {edits:,} edits in {seed - first_seed} runs, "
            f"{compared:,} parsing states compared, "
            f"{sum(1 for drift in drifts if f'({encoding})' in drift)} drifts"
        )
    elapsed = time.perf_counter() - started
    verdict = "ok" if not drifts else "DRIFT"
    print(f"drifts: {len(drifts)} (requirement: 0) {verdict}; {elapsed:.0f} s")
    for drift in drifts[:5]:
        print(" ", drift[:400])
    return 1 if drifts else 0


def statement_edits(edits: int, run_length: int, started: float) -> int:
    """tests/statement_fuzzer.py over seeds; an assertion error is a drift."""
    done = seed = 0
    drifts: list[str] = []
    counts = statement_fuzzer.Counts()
    while done < edits:
        length = min(run_length, edits - done)
        try:
            statement_fuzzer.run(seed, length, counts=counts)
        except AssertionError as error:
            drifts.append(f"seed {seed}: {error}")
        done += length
        seed += 1
    elapsed = time.perf_counter() - started
    verdict = "ok" if not drifts else "DRIFT"
    print(
        f"statement edits: {done:,} edits in {seed} runs, drifts: {len(drifts)} {verdict}; "
        f"{elapsed:.0f} s"
    )
    print(
        f"  statement edits taken: {counts.fast:,}; edits changing the number of lines: "
        f"{counts.line_changes:,}, taken by the statement edit: {counts.fast_line_changes:,}"
    )
    for drift in drifts[:5]:
        print(" ", drift[:400])
    return 1 if drifts else 0


if __name__ == "__main__":
    sys.exit(main())
