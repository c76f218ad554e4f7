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
    for path in sorted(_package_files()):
        with contextlib.suppress(OSError):
            status = path.stat()
            parts.append(f"{path.relative_to(PACKAGE)}:{status.st_size}:{status.st_mtime_ns}")
    return "\n".join(parts)


def _package_files() -> Iterator[Path]:
    for folder, _, names in os.walk(PACKAGE):
        for name in names:
            if name.endswith((".py", ".toml")):
                yield Path(folder) / name
