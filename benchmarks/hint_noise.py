"""How many hints the default shows, and how long its labels run (issue #14).

On five real trio / anyio modules of the installed packages: the number of
hints of the whole map (``hints.show = "all"``, what every editor showed
before the ``context`` default), the number the default shows, how many of
the map are bare ``<- checkpoint`` labels, and the longest label with the
default cap and without one. Requirements: the default shows at most a
third of the map, and no label is longer than the cap.

With ``--resolve`` the callees are followed first (jedi, slow: minutes on a
busy machine), as a server does in the background: resolved surprises (`no
checkpoint`, `may not yield`) then join what the default shows.

    .venv/bin/python benchmarks/hint_noise.py [--resolve] [--budget 120]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import anyio
import trio

from conc_lsp.analysis.model import Hint, HintKey, Resolution, anchor_keys
from conc_lsp.analysis.parse import analyse_lines
from conc_lsp.analysis.text import split_lines
from conc_lsp.labels import ARROW, COMPACT, DEFAULT_MAX_LENGTH, SHOW_CONTEXT, is_shown, label

TRIO = Path(trio.__file__).parent
ANYIO = Path(anyio.__file__).parent
MODULES = (
    TRIO / "_core" / "_run.py",
    TRIO / "_highlevel_open_tcp_stream.py",
    TRIO / "_subprocess.py",
    ANYIO / "_backends" / "_asyncio.py",
    ANYIO / "_core" / "_sockets.py",
)
BARE = "<- checkpoint"


@dataclass
class Figures:
    name: str
    lines: int
    every: int = 0
    bare: int = 0
    shown: int = 0
    longest_capped: str = ""
    longest_full: str = ""


def measure(path: Path, resolutions: dict[HintKey, Resolution], cap: int) -> Figures:
    lines = split_lines(path.read_text(encoding="utf-8"))
    hints = analyse_lines(lines).hints
    keys = anchor_keys(hints)
    figures = Figures(f"{path.parent.name}/{path.name}", len(lines))
    for hint in hints:
        found = _resolution(hint, keys, resolutions)
        figures.every += 1
        full = label(hint, ARROW, found)
        figures.bare += full == BARE
        figures.longest_full = max(figures.longest_full, full, key=len)
        if is_shown(hint, found, SHOW_CONTEXT):
            figures.shown += 1
            for style in (ARROW, COMPACT):
                capped = label(hint, style, found, cap)
                figures.longest_capped = max(figures.longest_capped, capped, key=len)
    return figures


def _resolution(
    hint: Hint, keys: dict[tuple[int, int, object], HintKey], found: dict[HintKey, Resolution]
) -> Resolution | None:
    key = keys.get((hint.line, hint.column, hint.kind))
    return found.get(key) if key is not None else None


def resolve(path: Path, budget: float) -> dict[HintKey, Resolution]:
    # jedi loads only when asked for (start-up cost)
    from conc_lsp.analysis.resolve import Resolver

    root = path.parents[2] if path.parent.name != "trio" else path.parents[1]
    lines = split_lines(path.read_text(encoding="utf-8"))
    result = Resolver(str(root)).resolve_lines(lines, str(path), budget)
    if not result.complete:
        print(f"  ({path.name}: budget spent, resolved in part)", file=sys.stderr)
    return result.resolutions


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--resolve", action="store_true", help="follow callees first (jedi)")
    parser.add_argument("--budget", type=float, default=120.0, help="seconds of jedi per file")
    parser.add_argument("--cap", type=int, default=DEFAULT_MAX_LENGTH, help="hints.max-length")
    arguments = parser.parse_args()
    rows = [
        measure(path, resolve(path, arguments.budget) if arguments.resolve else {}, arguments.cap)
        for path in MODULES
    ]
    print(f"{'module':38} {'lines':>6} {'all':>5} {'bare':>5} {'default':>8} {'share':>6}")
    for row in rows:
        share = row.shown / row.every if row.every else 0.0
        print(f"{row.name:38} {row.lines:6} {row.every:5} {row.bare:5} {row.shown:8} {share:6.0%}")
    every = sum(row.every for row in rows)
    shown = sum(row.shown for row in rows)
    bare = sum(row.bare for row in rows)
    print(f"{'total':38} {'':6} {every:5} {bare:5} {shown:8} {shown / every:6.0%}")
    capped = max((row.longest_capped for row in rows), key=len)
    full = max((row.longest_full for row in rows), key=len)
    share_ok = shown * 3 <= every
    length_ok = len(capped) <= arguments.cap
    print(
        f"default / whole map: {shown / every:.0%} (requirement <= 33%): "
        + ("ok" if share_ok else "OVER")
    )
    print(
        f"longest label shown: {len(capped)} chars {capped!r} (requirement <= {arguments.cap}): "
        + ("ok" if length_ok else "OVER")
    )
    print(f"longest label without a cap (CLI, hover): {len(full)} chars {full!r}")
    ok = share_ok and length_ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
