"""Two builds of conc-lsp give the same hints and the same findings (issue 15:
a faster analysis must not change a single finding).

For every PATH (default: the installed trio and anyio, then each folder of
/work/corpus), it runs both builds' ``hints --show all --format json`` and
``check --select ALL --format json --no-cache --no-resolve`` and compares
their standard output byte for byte. The baseline's output never changes
while it is the same build, so ``--baseline-dir`` keeps it between runs.

Exits 1 when any output differs (the first differing lines are printed).

    .venv/bin/python benchmarks/same_output.py [--baseline EXE] [--candidate EXE]
        [--baseline-dir DIR] [PATH ...]
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import importlib.util
import subprocess
import sys
from pathlib import Path

COMMANDS = {
    "hints": ["hints", "--show", "all", "--format", "json"],
    "check": ["check", "--select", "ALL", "--format", "json", "--no-cache", "--no-resolve"],
}


def default_paths() -> list[str]:
    paths: list[str] = []
    for name in ("trio", "anyio"):
        spec = importlib.util.find_spec(name)  # finds, does not import, the package
        if spec is not None and spec.submodule_search_locations:
            paths.extend(spec.submodule_search_locations)
    corpus = Path("/work/corpus")
    if corpus.is_dir():
        paths.extend(
            str(folder)
            for folder in sorted(corpus.iterdir())
            if folder.is_dir() and not folder.name.startswith(".")
        )
    return paths


def output(executable: str, command: list[str], path: str) -> str:
    done = subprocess.run([executable, *command, path], capture_output=True, text=True, check=False)
    if done.returncode not in (0, 1) or "Traceback" in done.stderr:
        sys.exit(f"{executable} {' '.join(command)} {path} failed:\n{done.stderr[-2000:]}")
    return done.stdout


def baseline_output(arguments: argparse.Namespace, name: str, command: list[str], path: str) -> str:
    if arguments.baseline_dir is None:
        return output(arguments.baseline, command, path)
    key = hashlib.sha256(f"{arguments.baseline}\0{name}\0{path}".encode()).hexdigest()[:16]
    saved = arguments.baseline_dir / f"{name}-{key}.out"
    if saved.exists():
        return saved.read_text()
    found = output(arguments.baseline, command, path)
    arguments.baseline_dir.mkdir(parents=True, exist_ok=True)
    saved.write_text(found)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("paths", nargs="*", metavar="PATH")
    parser.add_argument("--baseline", default="/work/main/.venv/bin/conc-lsp")
    parser.add_argument("--candidate", default=str(Path(sys.executable).with_name("conc-lsp")))
    parser.add_argument("--baseline-dir", type=Path, help="keep the baseline's outputs here")
    arguments = parser.parse_args()
    differing = 0
    for path in arguments.paths or default_paths():
        for name, command in COMMANDS.items():
            expected = baseline_output(arguments, name, command, path)
            found = output(arguments.candidate, command, path)
            if found == expected:
                print(f"same      {name:<6} {path} ({expected.count(chr(10))} lines)")
                continue
            differing += 1
            print(f"DIFFERENT {name:<6} {path}")
            diff = difflib.unified_diff(
                expected.splitlines(), found.splitlines(), "baseline", "candidate", lineterm=""
            )
            for line in list(diff)[:20]:
                print(f"    {line[:200]}")
    print(f"{differing} differing output(s)")
    return 1 if differing else 0


if __name__ == "__main__":
    raise SystemExit(main())
