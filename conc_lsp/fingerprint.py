"""What a cached result depends on in the program itself: its version, the
Python running it, and every file of the package (an editable install changes
without a new version number). Shared by the results cache and the resolver's."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from conc_lsp import __version__

PACKAGE = Path(__file__).resolve().parent  # conc_lsp/


def program_fingerprint() -> str:
    """The version, the Python, and the size and time of every file of the package."""
    parts = [__version__, sys.version]
    for relative, status in sorted(_package_files(str(PACKAGE), "")):
        parts.append(f"{relative}:{status.st_size}:{status.st_mtime_ns}")
    return "\n".join(parts)


def _package_files(folder: str, relative: str) -> Iterator[tuple[str, os.stat_result]]:
    """(path relative to the package, status) of its .py and .toml files; os.scandir
    rather than pathlib: every run that reads the cache pays for this walk."""
    with contextlib.suppress(OSError), os.scandir(folder) as found:
        for entry in found:
            name = f"{relative}{entry.name}"
            with contextlib.suppress(OSError):
                if entry.is_dir(follow_symlinks=False):
                    yield from _package_files(entry.path, f"{name}/")
                elif entry.name.endswith((".py", ".toml")):
                    yield name, entry.stat()
