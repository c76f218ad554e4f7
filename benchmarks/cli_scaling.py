"""`conc-lsp check` over the trio + anyio sources, whole processes: --jobs 1
against --jobs 2, and a cold run against a cached one (the second run: the
run memo answers) and against one with the run memo removed (the status
index answers).

Rounds alternate the variants, so that a busy machine slows them alike; the
script prints the median of each (wall time, and CPU time with the workers'
included: on a loaded machine the wall times of --jobs 1 and 2 say little)
and the ratios. It exits 1 only when the
outputs differ (every variant must print the same bytes).

The processes run with bytecode caching on (PYTHONDONTWRITEBYTECODE removed),
as an installed tool runs; a first run warms the .pyc files and the OS cache.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PACKAGES = ("trio", "anyio")
INDEX_ONLY = "cached, no run memo"  # the run memo removed: the status index answers


def package_folders() -> list[str]:
    folders = []
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)  # found, not imported
        if spec is None or not spec.submodule_search_locations:
            sys.exit(f"{name} is not installed: pip install -e '.[test]'")
        folders.append(next(iter(spec.submodule_search_locations)))
    return folders


CPU = {"seconds": 0.0}  # CPU time (user + system) of the last run, its workers included


def run(arguments: list[str], environment: dict[str, str]) -> tuple[float, bytes]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "conc_lsp", *arguments],
        capture_output=True,
        env=environment,
        check=False,
    )
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU["seconds"] = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if result.returncode not in (0, 1):
        sys.exit(f"conc-lsp {' '.join(arguments)} failed:\n{result.stderr.decode()}")
    return elapsed, result.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    folders = package_folders()
    files = sum(1 for folder in folders for _ in Path(folder).rglob("*.py"))
    cache = Path(tempfile.mkdtemp(prefix="conc-lsp-bench-cache-"))
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    environment["CONC_LSP_CACHE_DIR"] = str(cache)
    environment["CONC_LSP_PROGRESS"] = "0"
    check = ["check", *folders]
    times: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    outputs: dict[str, bytes] = {}
    try:
        run([*check, "--no-cache", "--jobs", "1"], environment)  # warm-up
        for _ in range(options.rounds):
            variants = {
                "--jobs 1 (no cache)": [*check, "--no-cache", "--jobs", "1"],
                "--jobs 2 (no cache)": [*check, "--no-cache", "--jobs", "2"],
                "cold, --jobs 1": [*check, "--jobs", "1"],
                "cached": check,
                INDEX_ONLY: check,
                "cold, --jobs 2": [*check, "--jobs", "2"],
                "cached again": check,
            }
            for name, arguments in variants.items():
                if name.startswith("cold"):
                    shutil.rmtree(cache, ignore_errors=True)
                if name == INDEX_ONLY:  # the status index answers, not the run memo
                    (cache / "v1" / "runs.json").unlink(missing_ok=True)
                elapsed, output = run(arguments, environment)
                times.setdefault(name, []).append(elapsed)
                cpu.setdefault(name, []).append(CPU["seconds"])
                outputs.setdefault(name, output)
                if output != outputs[name]:
                    print(f"{name}: the output changed between rounds")
                    return 1
        pass_times = [run_python_pass(environment) for _ in range(options.rounds)]
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    reference = outputs["--jobs 1 (no cache)"]
    different = [name for name, output in outputs.items() if output != reference]
    median = {name: statistics.median(values) for name, values in times.items()}
    print(f"corpus: {', '.join(folders)} ({files} files); {options.rounds} rounds, medians")
    print(f"  {'':<22} {'wall':>9} {'CPU':>9}")
    for name, value in median.items():
        print(f"  {name:<22} {value:7.3f} s {statistics.median(cpu[name]):7.3f} s")
    print(f"  {'python -c pass':<22} {statistics.median(pass_times):7.3f} s")
    speedup = median["--jobs 1 (no cache)"] / median["--jobs 2 (no cache)"]
    cached = statistics.median(times["cached"] + times["cached again"])
    print(f"--jobs 2 vs --jobs 1: {speedup:.2f}x faster (requirement >= 1.6x on 2 quiet cores)")
    for cold in ("cold, --jobs 1", "cold, --jobs 2"):
        ratio = median[cold] / cached
        verdict = "ok" if ratio >= 10 else "OVER"
        print(f"cached vs {cold}: {ratio:.1f}x faster (requirement >= 10x) {verdict}")
        index_ratio = median[cold] / median[INDEX_ONLY]
        print(f"  {INDEX_ONLY} vs {cold}: {index_ratio:.1f}x faster")
    if different:
        print(f"outputs differ from --jobs 1 (no cache): {', '.join(different)}")
        return 1
    print("outputs: identical in every variant")
    return 0


def run_python_pass(environment: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], env=environment, check=True)
    return time.perf_counter() - started


if __name__ == "__main__":
    sys.exit(main())
