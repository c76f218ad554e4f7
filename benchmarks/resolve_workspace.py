"""Resolving one 1,000-line document in a 300-file workspace (issue 15: < 1 s).

The workspace is --files generated trio modules of --lines lines each
(synth.py, each with its own names) in a fresh folder; the document is one
more such module that also imports async functions from ten of the others
and awaits them, so that jedi has the workspace's modules to follow. The
resolver (as the server and `check --resolve` make it) resolves every
checkpoint of the document with an empty cache of verdicts, in alternating
rounds against the same document in a 6-file workspace (what jedi costs
without the workspace's size); medians. The first round also pays for
loading jedi and reading trio's sources in this process (a server's resolver
does that once, when it starts).

    .venv/bin/python benchmarks/resolve_workspace.py [--files 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import ast
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import synth

from conc_lsp.analysis.text import split_lines

LIMIT = 1.0


def top_level_async(text: str) -> list[str]:
    return [node.name for node in ast.parse(text).body if isinstance(node, ast.AsyncFunctionDef)]


def workspace(folder: Path, files: int, lines: int) -> Path:
    """Write the workspace; return the document's path."""
    names: dict[int, list[str]] = {}
    for index in range(files):
        text = synth.trio_module(lines, prefix=f"m{index}_", seed=index).text
        (folder / f"mod{index}.py").write_text(text, encoding="utf-8")
        names[index] = top_level_async(text)
    document = synth.trio_module(lines, prefix="doc_", seed=files + 1).text
    imported = [(index, names[index][0]) for index in range(0, files, max(files // 10, 1))][:10]
    tail = [f"from mod{index} import {name}\n" for index, name in imported]
    tail.append("\n\nasync def doc_calls_the_workspace():\n")
    tail.extend(f"    await {name}()\n" for _index, name in imported)
    path = folder / "document.py"
    path.write_text(document + "\n\n" + "".join(tail), encoding="utf-8")
    return path


def resolve_once(root: Path, path: Path) -> tuple[float, int, int]:
    # jedi loads only when asked for (start-up cost)
    from conc_lsp.analysis.resolve import Resolver

    lines = split_lines(path.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="conc-lsp-resolve-cache-") as cache:
        os.environ["CONC_LSP_CACHE_DIR"] = cache  # empty: nothing read from disk
        started = time.perf_counter()
        found = Resolver(str(root)).resolve_lines(lines, str(path), budget=600)
        seconds = time.perf_counter() - started
    return seconds, found.resolved, found.total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--lines", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="conc-lsp-big-") as big,
        tempfile.TemporaryDirectory(prefix="conc-lsp-small-") as small,
    ):
        big_document = workspace(Path(big), arguments.files, arguments.lines)
        small_document = workspace(Path(small), 6, arguments.lines)
        times: dict[str, list[float]] = {"big": [], "small": []}
        for _round in range(arguments.rounds):
            for name, root, document in (
                ("big", Path(big), big_document),
                ("small", Path(small), small_document),
            ):
                seconds, resolved, total = resolve_once(root, document)
                times[name].append(seconds)
                print(
                    f"  {name}: {seconds:.2f} s ({resolved} of {total} checkpoints resolved)",
                    flush=True,
                )
    big_median = statistics.median(times["big"])
    small_median = statistics.median(times["small"])
    verdict = "ok" if big_median < LIMIT else "OVER"
    print(
        f"{arguments.lines:,}-line document, {arguments.files}-file workspace: {big_median:.2f} s "
        f"(6-file workspace: {small_median:.2f} s); requirement < {LIMIT:.0f} s: {verdict}"
    )
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
