"""Rebuild a corpus of real async code from published source distributions.

The corpus lives OUTSIDE the repository (default /work/corpus): one folder per
project, unpacked from the sdist that ``pip download --no-deps --no-binary
:all: NAME==VERSION`` fetches. Versions are pinned so that precision figures
(benchmarks/precision.py) and the flake8-async comparison
(benchmarks/flake8_async_oracle.py) are measured on the same code every time.

    .venv/bin/python benchmarks/real_corpus.py [--dest /work/corpus] [--force] [--round4]

Prints the lines of Python per project. (benchmarks/corpus.py is the older
speed benchmark on the installed trio/anyio; this one builds the real corpus.)
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

DEFAULT_DEST = Path("/work/corpus")

# name -> pinned version: the newest sdist on PyPI when the corpus was first built.
# (tractor publishes no current sdist on the reachable index, so it is not here.)
PROJECTS: dict[str, str] = {
    "hypercorn": "0.18.0",
    "httpcore": "1.0.9",
    "trio-websocket": "0.12.2",
    "aiohttp": "3.14.5",
    "asyncpg": "0.32.0",
    "anyio": "4.16.0",
    "trio": "0.35.0",
    "pytest-trio": "0.8.0",
    "trio-util": "0.8.0",
    "asyncssh": "2.24.1",
    "aiofiles": "25.1.0",
    # Added for judging round 3 (never used to tune a rule): unseen code.
    "websockets": "17.4",
    "uvicorn": "0.55.0",
    "starlette": "1.10.0",
    "aiokafka": "0.14.0",
    "aiosqlite": "0.22.1",
    "trio-asyncio": "0.16.0",
    "httpx": "0.29.0",
    "asgiref": "3.13.0",
    "aiomultiprocess": "0.9.1",
    "qtrio": "0.8.0",
    "purerpc": "0.8.0",
    "aioredis": "2.0.1",
    "redis": "8.1.0",
    "motor": "3.7.1",
    "quart": "0.22.0",
    "pytest-asyncio": "1.5.0",
}


# Round 4 (a corpus of its own, default /work/corpus4): code never seen while the
# rules were tuned on rounds 0-3; it measures the rules changed after round 3.
ROUND4: dict[str, str] = {
    "mcp": "2.3.0",
    "sanic": "25.12.1",
    "grpclib": "0.4.9",
    "python-socketio": "5.18.1",
    "aiosmtplib": "5.1.3",
    "aiomysql": "0.3.2",
    "aiocache": "0.12.3",
    "aiostream": "0.8.1",
    "asyncstdlib": "3.14.0",
    "sse-starlette": "3.7.1",
    "trio-parallel": "1.3.0",
    "tricycle": "0.4.1",
    "channels": "4.3.2",
    "daphne": "4.2.3",
    "tornado": "6.6.1",
    "asyncer": "0.0.18",
    "httpx-ws": "0.9.0",
    "aiojobs": "1.4.0",
    "fastmcp": "4.2.3",
    "pika": "1.4.4",
    "async-lru": "2.4.0",
    "janus": "2.0.0",
}


def project_dir(dest: Path, name: str, projects: dict[str, str] = PROJECTS) -> Path:
    return dest / f"{name}-{projects[name]}"


def download(name: str, version: str, into: Path) -> Path:
    """The sdist archive of name==version, downloaded into `into`."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            ":all:",
            f"{name}=={version}",
            "-d",
            str(into),
        ],
        check=True,
    )
    archives = [p for p in into.iterdir() if p.is_file()]
    if len(archives) != 1:
        sys.exit(f"real_corpus: expected one archive for {name}, got {archives}")
    return archives[0]


def unpack(archive: Path, target: Path) -> None:
    """Unpack the archive's single top folder as `target`."""
    with tempfile.TemporaryDirectory() as tmp:
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(tmp)
        else:
            with tarfile.open(archive) as tf:
                tf.extractall(tmp, filter="data")
        tops = list(Path(tmp).iterdir())
        source = tops[0] if len(tops) == 1 and tops[0].is_dir() else Path(tmp)
        shutil.move(str(source), target)


def python_lines(folder: Path) -> tuple[int, int]:
    """(files, lines) of the .py files under folder."""
    files = lines = 0
    for path in folder.rglob("*.py"):
        files += 1
        lines += len(path.read_bytes().splitlines())
    return files, lines


def build(dest: Path, force: bool, projects: dict[str, str] = PROJECTS) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    folders: list[Path] = []
    for name, version in projects.items():
        target = project_dir(dest, name, projects)
        if target.exists() and force:
            shutil.rmtree(target)
        if not target.exists():
            with tempfile.TemporaryDirectory() as tmp:
                unpack(download(name, version, Path(tmp)), target)
        folders.append(target)
    return folders


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dest", type=Path, default=None)
    parser.add_argument("--force", action="store_true", help="download again even if present")
    parser.add_argument(
        "--round4", action="store_true", help="the round-4 corpus (default dest /work/corpus4)"
    )
    args = parser.parse_args()
    projects = ROUND4 if args.round4 else PROJECTS
    dest = args.dest or (DEFAULT_DEST.with_name("corpus4") if args.round4 else DEFAULT_DEST)
    total_files = total_lines = 0
    for folder in build(dest, args.force, projects):
        files, lines = python_lines(folder)
        total_files += files
        total_lines += lines
        print(f"{folder.name:28} {files:5} files {lines:8} lines of Python")
    print(f"{'total':28} {total_files:5} files {total_lines:8} lines of Python")


if __name__ == "__main__":
    main()
