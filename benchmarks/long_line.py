"""Column conversion on one very long line.

A line of 10,000 awaits costs about as much with one emoji on it as in pure
ASCII: every column conversion (analysis columns, LSP positions both ways)
must look up a per-line offset table, never slice and re-encode the line.

Prints, for ASCII and for the same line with one emoji near its start: the
time to open (analyse) the document, to answer inlay hints for the whole
document in UTF-16 and UTF-8, and to convert every hint position back from
LSP units. The requirement is a ratio (emoji / ASCII) of at most 2x for the
total (the steps are printed for reference: converting 10,000 positions back
takes milliseconds either way). Before the per-line offset tables the total
was 0.73 s against 246 s (337x); see the README. Exits 1 only when the two
documents give a different number of hints.

    .venv/bin/python benchmarks/long_line.py [--awaits N]
"""

from __future__ import annotations

import argparse
import sys
import time

from lsprotocol import types

from conc_lsp.config import Settings
from conc_lsp.server import features
from conc_lsp.server.documents import Document

LIMIT = 2.0  # emoji / ASCII


def document_text(awaits: int, emoji: bool) -> str:
    marker = '"🐍"' if emoji else '"ab"'
    calls = "; ".join("await g()" for _ in range(awaits))
    return f"async def f(g):\n    x = {marker}; {calls}\n"


def measure(text: str) -> tuple[dict[str, float], int]:
    figures: dict[str, float] = {}
    started = time.perf_counter()
    document = Document.open("file:///long.py", 1, text)
    figures["open + analyse"] = time.perf_counter() - started
    whole = types.Range(
        start=types.Position(line=0, character=0),
        end=types.Position(line=len(document.lines), character=0),
    )
    count = 0
    for encoding in ("utf-16", "utf-8"):
        started = time.perf_counter()
        found = features.inlay_hints(document, whole, Settings(), encoding, lazy_tooltips=True)
        figures[f"inlay hints ({encoding})"] = time.perf_counter() - started
        started = time.perf_counter()
        for hint in found:
            document.codepoint(hint.position.line, hint.position.character, encoding)
        figures[f"positions back ({encoding})"] = time.perf_counter() - started
        count = len(found)
    return figures, count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--awaits", type=int, default=10_000)
    args = parser.parse_args()
    ascii_figures, ascii_count = measure(document_text(args.awaits, emoji=False))
    emoji_figures, emoji_count = measure(document_text(args.awaits, emoji=True))
    print(f"one line of {args.awaits:,} awaits: {ascii_count} hints (ASCII), {emoji_count} (emoji)")
    print(f"{'step':28} {'ASCII':>9} {'emoji':>9} {'ratio':>7}  requirement")
    for step, ascii_time in ascii_figures.items():
        emoji_time = emoji_figures[step]
        ratio = emoji_time / max(ascii_time, 1e-6)
        print(f"{step:28} {ascii_time:8.3f}s {emoji_time:8.3f}s {ratio:6.1f}x")
    total_ascii, total_emoji = sum(ascii_figures.values()), sum(emoji_figures.values())
    ratio = total_emoji / total_ascii
    verdict = "ok" if ratio <= LIMIT else "OVER"
    print(
        f"{'total':28} {total_ascii:8.3f}s {total_emoji:8.3f}s {ratio:6.1f}x"
        f"  <= {LIMIT:.0f}x {verdict}"
    )
    if ascii_count != emoji_count:
        print("FAILED: the emoji changed the number of hints")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
