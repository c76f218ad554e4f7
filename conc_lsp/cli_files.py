"""Which files a command reads: folders walked with the default, configured and
.gitignore excludes; files named on the command line taken as they are, unless
``force_exclude`` (as in ruff: pre-commit names every file it passes)."""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_EXCLUDES = (
    ".git",
    ".hg",
    ".venv",
    "venv",
    ".tox",
    ".nox",
    "__pycache__",
    "build",
    "dist",
    "node_modules",
    "*.egg-info",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".conc_lsp_cache",
)


@dataclass(slots=True)
class Selection:
    """The files to read, the folders given that held none, and what the choice
    read: the folders listed and the .gitignore files (the run memo's reads)."""

    files: list[Path] = field(default_factory=list)
    empty_folders: list[str] = field(default_factory=list)
    consulted: list[Path] = field(default_factory=list)


def _gitignore_patterns(directory: Path) -> list[str]:
    try:
        text = (directory / ".gitignore").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    patterns = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "!")):
            patterns.append(line.rstrip("/").lstrip("/"))
    return patterns


class Patterns:
    """Exclude globs, compiled once: one with a slash matches the path or a folder of it,
    one without matches any part of it."""

    def __init__(self, patterns: Sequence[str]) -> None:
        paths = [pattern for pattern in patterns if "/" in pattern]
        names = [pattern for pattern in patterns if "/" not in pattern]
        self.paths = re.compile("|".join(fnmatch.translate(p) for p in paths) or "(?!)")
        self.folders = re.compile("|".join(fnmatch.translate(f"{p}/*") for p in paths) or "(?!)")
        self.names = re.compile("|".join(fnmatch.translate(n) for n in names) or "(?!)")

    def name(self, name: str) -> bool:
        return self.names.match(name) is not None

    def path(self, relative: Path) -> bool:
        text = relative.as_posix()
        if self.paths.match(text) or self.folders.match(text):
            return True
        return any(self.names.match(part) for part in relative.parts)


def _walk(folder: Path, patterns: Patterns, listed: list[Path]) -> list[Path]:
    """The .py files under ``folder``, never descending into an excluded folder;
    each folder listed goes to ``listed``."""
    found = []
    for directory, folders, names in os.walk(folder):
        here = Path(directory)
        listed.append(here)
        base = here.relative_to(folder)
        folders[:] = [
            name for name in folders if not patterns.name(name) and not patterns.path(base / name)
        ]
        for name in names:
            wanted = name.endswith(".py") and not patterns.name(name)
            if wanted and not patterns.path(base / name):
                found.append(here / name)
    return sorted(found)


def select_files(
    paths: Sequence[str],
    exclude: Sequence[str] = (),
    *,
    force_exclude: bool = False,
    root: Path | None = None,
) -> Selection:
    """The Python files under ``paths``, in a stable order. With ``force_exclude``
    a file named directly is skipped when it matches the excludes, read
    relative to ``root`` (the project's folder)."""
    selection = Selection()
    for name in paths:
        path = Path(name)
        if path.is_dir():
            selection.consulted.extend(_existing_gitignore(path))
            patterns = Patterns([*DEFAULT_EXCLUDES, *exclude, *_gitignore_patterns(path)])
            found = _walk(path, patterns, selection.consulted)
            if not found:
                selection.empty_folders.append(name)
            selection.files.extend(found)
        elif force_exclude:
            project = root or Path.cwd()
            selection.consulted += [project, *_existing_gitignore(project)]
            if not _named_file_excluded(path, exclude, project):
                selection.files.append(path)
        else:
            selection.files.append(path)
    return selection


def _existing_gitignore(folder: Path) -> list[Path]:
    ignore = folder / ".gitignore"
    return [ignore] if ignore.exists() else []


def _named_file_excluded(path: Path, exclude: Sequence[str], root: Path) -> bool:
    patterns = [*DEFAULT_EXCLUDES, *exclude, *_gitignore_patterns(root)]
    absolute = path.resolve()
    try:
        relative = absolute.relative_to(root.resolve())
    except ValueError:
        relative = path  # outside the project: its own parts, as written
    return Patterns(patterns).path(relative)
