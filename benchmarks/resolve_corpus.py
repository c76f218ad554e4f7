"""How many checkpoints of the trio and anyio corpus resolve to what, and a sample.

Runs the resolver (jedi, the knowledge table, the path analysis of callees)
over every file of the installed trio and anyio, as `conc-lsp check
--resolve` would, and prints the verdicts per kind, the time taken, and a
fixed random sample of the checkpoints that do not surely checkpoint
(sometimes / never / may-not-yield) to read by hand.

    .venv/bin/python benchmarks/resolve_corpus.py [--sample 20] [--seed 7]
"""

from __future__ import annotations

import argparse
import collections
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import package_folders, python_files

from conc_lsp.analysis.model import Verdict
from conc_lsp.analysis.parse import analyse_lines
from conc_lsp.analysis.resolve import Resolver, keyed_hints
from conc_lsp.analysis.text import split_lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sample", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--budget", type=float, default=600.0, help="seconds per file")
    arguments = parser.parse_args()

    folders = package_folders()
    root = folders[0].parent  # site-packages: the project jedi searches from
    resolver = Resolver(str(root))
    verdicts: collections.Counter[tuple[str, str]] = collections.Counter()
    weak: list[tuple[str, int, str, str, str]] = []
    incomplete = 0
    files = 0
    started = time.perf_counter()
    for folder in folders:
        for path in python_files(folder):
            text = path.read_text(encoding="utf-8", errors="replace")
            lines = split_lines(text)
            result = resolver.resolve_lines(lines, str(path), budget=arguments.budget)
            files += 1
            incomplete += not result.complete
            for key, hint in keyed_hints(analyse_lines(lines).hints).items():
                found = result.resolutions.get(key)
                verdict = found.verdict if found is not None else Verdict.UNKNOWN
                verdicts[(hint.kind.value, verdict.value)] += 1
                if found is not None and not verdict.guaranteed:
                    relative = str(path.relative_to(root))
                    source = lines[hint.keyword_line].strip()
                    weak.append(
                        (relative, hint.keyword_line + 1, source, verdict.value, found.reason)
                    )
    seconds = time.perf_counter() - started

    print(f"files: {files} (budget ran out in {incomplete}); {seconds:.1f} s")
    kinds = sorted({kind for kind, _ in verdicts})
    names = [verdict.value for verdict in Verdict if verdict is not Verdict.ASSUMED]
    print(f"{'kind':<12}" + "".join(f"{name:>15}" for name in names) + f"{'total':>10}")
    for kind in kinds:
        row = [verdicts[(kind, name)] for name in names]
        print(f"{kind:<12}" + "".join(f"{count:>15}" for count in row) + f"{sum(row):>10}")
    totals = [sum(verdicts[(kind, name)] for kind in kinds) for name in names]
    print(f"{'all':<12}" + "".join(f"{count:>15}" for count in totals) + f"{sum(totals):>10}")

    random.Random(arguments.seed).shuffle(weak)
    print(f"\nsample of {min(arguments.sample, len(weak))} of {len(weak)} not-sure checkpoints:")
    for number, (path, line, source, verdict, reason) in enumerate(weak[: arguments.sample], 1):
        print(f"{number:>2}. {path}:{line}: {source}  -> {verdict} ({reason})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
