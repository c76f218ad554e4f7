"""Analysis speed on a real corpus: the installed sources of trio and anyio.

Finds the packages with importlib.util.find_spec (nothing is imported), reads
every .py file once, then alternates, --repeat times, in this process:

  (a) bare ``ast.parse`` of every file;
  (b) the whole conc-lsp hint analysis of every file
      (``analyse_lines(split_lines(text))``, which does its own parsing);
  (c) the whole rule check of every file (``check_lines``: parse, flow facts,
      every rule, noqa), as `conc-lsp check` runs it.

Prints the median of each and the ratios (b)/(a) and (c)/(a) (requirement:
<= 3x each), the findings per rule, the
checkpoint count Python's ast sees against the one conc-lsp reports (exit 1 on
any difference), the counts per hint kind, and the wall time of
``conc-lsp hints`` over the two package folders as a subprocess (once).

    .venv/bin/python benchmarks/corpus.py [--repeat N] [--profile]
"""

from __future__ import annotations

import argparse
import ast
import collections
import cProfile
import importlib.util
import io
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

from conc_lsp.analysis.model import HintKind
from conc_lsp.analysis.parse import analyse_lines
from conc_lsp.analysis.text import split_lines
from conc_lsp.config import Settings
from conc_lsp.diagnose import check_lines
from conc_lsp.sources import read_source

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fingerprint

PACKAGES = ("trio", "anyio")
CHECKPOINT_KINDS = (HintKind.AWAIT, HintKind.ASYNC_WITH, HintKind.ASYNC_FOR)
RATIO_LIMIT = 3.0


def package_folders() -> list[Path]:
    folders: list[Path] = []
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)  # finds, does not import, a top-level package
        if spec is None or not spec.submodule_search_locations:
            sys.exit(f"corpus: package {name!r} is not installed in {sys.prefix}")
        folders.extend(Path(location) for location in spec.submodule_search_locations)
    return folders


def python_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*.py") if "__pycache__" not in path.parts)


def ast_checkpoints(tree: ast.AST) -> int:
    """await nodes + async with items + async for statements + async generators."""
    count = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.Await):
            count += 1
        elif isinstance(node, ast.AsyncWith):
            count += len(node.items)
        elif isinstance(node, ast.AsyncFor) or (
            isinstance(node, ast.comprehension) and node.is_async
        ):
            count += 1
    return count


def parse_all(texts: list[str]) -> None:
    for text in texts:
        ast.parse(text)


def analyse_all(texts: list[str]) -> None:
    for text in texts:
        analyse_lines(split_lines(text))


def check_all(texts: list[str]) -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()
    settings = Settings()
    for text in texts:
        counts.update(finding.code for finding in check_lines(split_lines(text), settings).findings)
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds (default 3)")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the analysis of the largest file"
    )
    arguments = parser.parse_args()
    failures: list[str] = []

    folders = package_folders()
    files = [path for folder in folders for path in python_files(folder)]
    texts = [read_source(path) for path in files]
    # Lines as an editor numbers them (a final line break does not start a line).
    line_count = sum(
        len(split_lines(text)) - (1 if text.endswith(("\n", "\r")) else 0) for text in texts
    )
    before = fingerprint.describe()
    print(before)
    print(f"corpus: {', '.join(str(folder) for folder in folders)}")
    print(f"files: {len(files)}   lines: {line_count:,}   python: {sys.version.split()[0]}")

    # Functional check first (untimed): Python's checkpoints against conc-lsp's hints.
    ast_total = 0
    lsp_total = 0
    kinds: collections.Counter[str] = collections.Counter()
    problems = 0
    mismatched: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid escapes in the corpus: not our subject
        for path, text in zip(files, texts, strict=True):
            expected = ast_checkpoints(ast.parse(text))
            analysis = analyse_lines(split_lines(text))
            problems += len(analysis.problems)
            got = sum(1 for hint in analysis.hints if hint.kind in CHECKPOINT_KINDS)
            kinds.update(hint.kind.value for hint in analysis.hints)
            ast_total += expected
            lsp_total += got
            if expected != got:
                mismatched.append(f"{path}: ast {expected}, conc-lsp {got}")

        parse_times: list[float] = []
        analysis_times: list[float] = []
        check_times: list[float] = []
        findings: collections.Counter[str] = collections.Counter()
        for _ in range(arguments.repeat):
            start = time.perf_counter()
            parse_all(texts)
            parse_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            analyse_all(texts)
            analysis_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            findings = check_all(texts)
            check_times.append(time.perf_counter() - start)

    parse_median = statistics.median(parse_times)
    analysis_median = statistics.median(analysis_times)
    ratio = analysis_median / parse_median
    print()
    print(f"rounds: {arguments.repeat} (alternating, same process)")
    print(
        f"ast.parse, all files:            median {parse_median:.3f} s   "
        f"(runs: {', '.join(f'{t:.3f}' for t in parse_times)})"
    )
    print(
        f"conc-lsp analysis, all files:    median {analysis_median:.3f} s   "
        f"(runs: {', '.join(f'{t:.3f}' for t in analysis_times)})"
    )
    verdict = "ok" if ratio <= RATIO_LIMIT else "OVER"
    print(
        f"ratio analysis/parse:            {ratio:.2f}x   "
        f"(requirement <= {RATIO_LIMIT:.0f}x: {verdict})"
    )
    print(f"analysis throughput:             {line_count / analysis_median:,.0f} lines/s")
    check_median = statistics.median(check_times)
    check_ratio = check_median / parse_median
    print(
        f"conc-lsp check, all files:       median {check_median:.3f} s   "
        f"(runs: {', '.join(f'{t:.3f}' for t in check_times)})"
    )
    verdict = "ok" if check_ratio <= RATIO_LIMIT else "OVER"
    print(
        f"ratio check/parse:               {check_ratio:.2f}x   "
        f"(requirement <= {RATIO_LIMIT:.0f}x: {verdict})"
    )
    print("findings per rule:")
    for code, count in sorted(findings.items()):
        print(f"  {code:<13} {count:>6}")
    print(f"  {'total':<13} {sum(findings.values()):>6}")

    print()
    print(
        f"checkpoints (await + async-with items + async-for + async comprehensions): "
        f"ast {ast_total}, conc-lsp {lsp_total}"
        + ("   MATCH" if ast_total == lsp_total and not mismatched else "   MISMATCH")
    )
    for line in mismatched[:20]:
        print(f"  mismatch: {line}")
    if mismatched:
        failures.append(f"checkpoint counts differ in {len(mismatched)} file(s)")
    print(f"syntax problems reported: {problems}")
    if problems:
        failures.append(f"{problems} syntax problem(s) in files that ast.parse accepts")
    print("hints per kind:")
    for kind in HintKind:
        print(f"  {kind.value:<13} {kinds.get(kind.value, 0):>6}")
    print(f"  {'total':<13} {sum(kinds.values()):>6}")

    # The command line over the two folders, as a user would run it.
    script = Path(sys.executable).with_name("conc-lsp")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "conc_lsp"]
    command += ["hints", *map(str, folders)]
    start = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    output_lines = completed.stdout.count("\n")
    print()
    print(
        f"`{' '.join([Path(command[0]).name, *command[1:2]])} <trio> <anyio>` subprocess: "
        f"{wall:.2f} s wall, exit {completed.returncode}, {output_lines} output lines"
    )
    if completed.returncode != 0:
        failures.append(f"conc-lsp hints exited {completed.returncode}: {completed.stderr[-500:]}")
    if output_lines != sum(kinds.values()):
        failures.append(
            f"conc-lsp hints printed {output_lines} lines, the analysis found {sum(kinds.values())}"
        )

    if arguments.profile:
        profile_largest(files, texts)

    after = fingerprint.describe()
    if after != before:
        print(f"WARNING: conc_lsp changed during the run; now {after}")
    if failures:
        for failure in failures:
            print(f"FAIL: {failure}", file=sys.stderr)
        return 1
    return 0


def profile_largest(files: list[Path], texts: list[str]) -> None:
    index = max(range(len(texts)), key=lambda i: len(texts[i]))
    text = texts[index]
    lines = split_lines(text)
    print()
    print(f"profile: analysis of the largest file, {files[index]} ({len(lines)} lines), x5")
    profiler = cProfile.Profile()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        profiler.enable()
        for _ in range(5):
            analyse_lines(split_lines(text))
        profiler.disable()
    print_top(profiler, 10)


def print_top(profiler: cProfile.Profile, count: int) -> None:
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    stats.sort_stats("tottime").print_stats(count)
    width = shutil.get_terminal_size((120, 20)).columns
    for line in stream.getvalue().splitlines():
        if line.strip() and not line.startswith("   Ordered by"):
            print(line.replace(os.getcwd() + os.sep, "")[: max(width, 140)])


if __name__ == "__main__":
    sys.exit(main())
