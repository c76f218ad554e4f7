"""Where `conc-lsp check` spends its time: a cProfile of one in-process run.

    python benchmarks/profile_check.py                  # this checkout
    python benchmarks/profile_check.py --tree ../old    # another checkout of conc-lsp

The run is `check -j1 --no-cache --no-resolve` (default rules, or --select)
over the installed trio + anyio sources (the corpus of side_by_side.py), inside
this process, so the profile sees every call. It prints the time per phase
(the tottime of each conc_lsp module, plus parsing: `compile`, which ast.parse
calls, and the ast module), then the top entries by own time and by cumulative
time. Profiling slows every call, the small ones most: read the shares, not
the seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import pstats
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import side_by_side

PstatKey = tuple[str, int, str]


def phase_of(key: PstatKey) -> str:
    filename, _line, function = key
    if function in ("<built-in method builtins.compile>",) or filename.endswith("/ast.py"):
        return "parse (compile, ast)"
    marker = "/conc_lsp/"
    if marker in filename:
        module = filename.split(marker, 1)[1].removesuffix(".py").replace("/", ".")
        return f"conc_lsp.{module}"
    if filename == "~":
        return "builtins"
    return "other"


def by_phase(stats: pstats.Stats) -> list[tuple[str, float]]:
    totals: dict[str, float] = defaultdict(float)
    for key, (_calls, _primitive, tottime, _cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        totals[phase_of(key)] += tottime
    return sorted(totals.items(), key=lambda item: -item[1])


def top(stats: pstats.Stats, sort: str, count: int) -> str:
    out = io.StringIO()
    stats.stream = out  # type: ignore[attr-defined]
    stats.sort_stats(sort).print_stats(count)
    lines = out.getvalue().splitlines()
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
    return "\n".join(lines[start:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, help="a checkout of conc-lsp to profile instead")
    parser.add_argument("--top", type=int, default=20, help="entries per table")
    parser.add_argument("--corpus", type=Path, help="a folder instead of trio + anyio")
    parser.add_argument("--select", help="check's --select (ALL: every rule)")
    arguments = parser.parse_args()
    files = side_by_side.corpus_files(arguments.corpus)  # found before conc_lsp is imported
    if arguments.tree is not None:
        sys.path.insert(0, str(arguments.tree.resolve()))
    from conc_lsp import cli  # late: from --tree when given

    print(f"conc_lsp from {Path(cli.__file__).parent}; {len(files)} files")
    argv = ["check", "-j1", "--no-cache", "--no-resolve", *map(str, files)]
    if arguments.select:
        argv[1:1] = ["--select", arguments.select]
    profile = cProfile.Profile()
    with contextlib.redirect_stdout(io.StringIO()):
        profile.enable()
        with contextlib.suppress(SystemExit):
            cli.main(argv)
        profile.disable()
    stats = pstats.Stats(profile)
    total = sum(seconds for _phase, seconds in by_phase(stats))
    print(f"\nprofiled total {total:.2f} s; own time per phase:")
    for phase, seconds in by_phase(stats)[:15]:
        print(f"  {seconds / total:6.1%}  {seconds:6.2f} s  {phase}")
    print(f"\ntop {arguments.top} by own time:")
    print(top(stats, "tottime", arguments.top))
    print(f"top {arguments.top} by cumulative time:")
    print(top(stats, "cumulative", arguments.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
