"""conc-lsp beside its peers on one corpus, whole processes, in one run (issue 15).

The corpus is the installed trio + anyio sources (about 190 files, 65,000
lines), or ``--corpus DIR``. Each column is the wall time of one whole
process over every file of the corpus, run in alternating rounds (a slow
moment of a busy machine hits every column alike); printed: the median of
``--rounds`` (default 3) and its ratio to the bare `ast.parse` process.

- ``ast.parse``: ``python -c`` reading and parsing every file, nothing else;
- ``check -j1 --no-cache``: the default rules, no resolution, one process,
  no results cache: the issue's requirement (<= 2x ``ast.parse``), the one
  the ok/OVER verdict reads;
- ``check -j1 --no-cache, ALL``: the same with every rule, opt-in ones too;
- ``check --no-cache, all cores``: the default ``--jobs`` (one per core);
- ``check, cached``: the default ``--jobs`` with the results cache, run twice
  per round (the second run, the one timed, reads the cache);
- ``conc-lsp check --resolve``: with ``--resolved`` only (minutes, jedi);
- ``flake8-async``: its ASYNC rules (``flake8-async --enable=ASYNC``), when it
  is installed (``pip install flake8-async==26.8.1``; about 30x slower than
  conc-lsp: ``--no-flake8-async`` leaves it out);
- ``ruff --select ASYNC``: ruff's port of those rules, when ruff is installed.

Exits 1 only when a process fails (a traceback, an unexpected exit code).

    .venv/bin/python benchmarks/side_by_side.py [--rounds N] [--corpus DIR]
        [--resolved] [--no-flake8-async]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fingerprint

PACKAGES = ("trio", "anyio")
RATIO_LIMIT = 2.0
REQUIRED = "check -j1 --no-cache"  # the column issue 15's requirement is about
CACHED = "check, cached"
PARSE_ONLY = """\
import ast, sys
for path in sys.argv[1:]:
    with open(path, "rb") as source:
        ast.parse(source.read(), path)
"""


def corpus_files(corpus: Path | None) -> list[Path]:
    folders: list[Path] = []
    if corpus is not None:
        folders.append(corpus)
    else:
        for name in PACKAGES:
            spec = importlib.util.find_spec(name)  # finds, does not import, the package
            if spec is None or not spec.submodule_search_locations:
                sys.exit(f"side_by_side: package {name!r} is not installed in {sys.prefix}")
            folders.extend(Path(location) for location in spec.submodule_search_locations)
    return sorted(
        path
        for folder in folders
        for path in folder.rglob("*.py")
        if "__pycache__" not in path.parts
    )


def write_bytecode() -> None:
    """conc-lsp's bytecode, as a user's install has it (PYTHONDONTWRITEBYTECODE,
    set here, would leave every run compiling the package's modules again)."""
    spec = importlib.util.find_spec("conc_lsp")  # finds, does not import, the package
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"side_by_side: conc_lsp is not installed in {sys.prefix}")
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    folder = spec.submodule_search_locations[0]
    command = [sys.executable, "-m", "compileall", "-q", folder]
    subprocess.run(command, env=environment, capture_output=True, check=True)


def conc_lsp_command() -> list[str]:
    return [sys.executable, "-m", "conc_lsp"]


def columns(
    files: list[Path], folders: list[str], arguments: argparse.Namespace
) -> dict[str, tuple[list[str], tuple[int, ...]]]:
    """Name -> (command, exit codes that mean it worked)."""
    check = [*conc_lsp_command(), "check", "--statistics", "--no-resolve"]
    single = [*check, "--jobs", "1", "--no-cache"]
    found = {
        "ast.parse": ([sys.executable, "-c", PARSE_ONLY, *map(str, files)], (0,)),
        REQUIRED: ([*single, *folders], (0, 1)),
        f"{REQUIRED}, ALL": ([*single, "--select", all_codes(), *folders], (0, 1)),
        "check --no-cache, all cores": ([*check, "--no-cache", *folders], (0, 1)),
        CACHED: ([*check, *folders], (0, 1)),
    }
    if arguments.resolved:
        found["check --resolve"] = ([*check[:-1], "--resolve", *folders], (0, 1))
    flake8_async = Path(sys.executable).with_name("flake8-async")
    if arguments.flake8_async and flake8_async.exists():
        found["flake8-async ASYNC"] = (
            [str(flake8_async), "--enable=ASYNC", *map(str, files)],
            (0, 1),
        )
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if Path(ruff).exists():
        found["ruff --select ASYNC"] = (
            [ruff, "check", "--isolated", "--no-cache", "--select", "ASYNC", "--quiet", *folders],
            (0, 1),
        )
    return found


def all_codes() -> str:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from conc_lsp.rules import all_rules; print(','.join(all_rules()))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def run(name: str, command: list[str], accepted: tuple[int, ...], cwd: str) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=cwd)
    elapsed = time.perf_counter() - start
    if done.returncode not in accepted or "Traceback" in done.stderr:
        sys.exit(f"{name} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--corpus", type=Path, help="a folder instead of trio + anyio")
    parser.add_argument("--resolved", action="store_true", help="also `check --resolve` (slow)")
    parser.add_argument(
        "--no-flake8-async", dest="flake8_async", action="store_false", help="leave it out"
    )
    arguments = parser.parse_args()
    print(fingerprint.describe())
    write_bytecode()
    files = corpus_files(arguments.corpus)
    lines = sum(path.read_bytes().count(b"\n") for path in files)
    folders = sorted({str(path.parent) for path in files})
    # conc-lsp and ruff take folders; give them the top ones only.
    tops = [
        folder
        for folder in folders
        if not any(folder.startswith(other + "/") for other in folders if other != folder)
    ]
    print(f"corpus: {len(files)} files, {lines} lines")
    commands = columns(files, tops, arguments)
    times: dict[str, list[float]] = {name: [] for name in commands}
    # A cache folder of its own, so that "cold" starts empty and "cached" reads it.
    with tempfile.TemporaryDirectory(prefix="conc-lsp-side-by-side-") as workspace:
        for round_number in range(arguments.rounds):
            for name, (command, accepted) in commands.items():
                if name == CACHED:
                    run(name, command, accepted, workspace)  # fills the cache
                times[name].append(run(name, command, accepted, workspace))
            print(f"round {round_number + 1}: " + ", ".join(f"{t[-1]:.2f}" for t in times.values()))
    base = statistics.median(times["ast.parse"])
    print(f"{'':<34}{'median s':>10}{'x ast.parse':>13}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<34}{median:>10.2f}{median / base:>13.2f}")
    # The ratio of each round's own pair: a busy moment hits both alike.
    ratio = statistics.median(
        check / parse for check, parse in zip(times[REQUIRED], times["ast.parse"], strict=True)
    )
    verdict = "ok" if ratio <= RATIO_LIMIT else "OVER"
    print(f"{REQUIRED} / ast.parse: {ratio:.2f} (requirement <= {RATIO_LIMIT}) {verdict}")
    print(f"load average: {' '.join(f'{load:.2f}' for load in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
