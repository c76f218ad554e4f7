"""Which files a command reads: folders walked with the default, configured and
.gitignore excludes; files named on the command line taken as they are, unless
``force_exclude`` (as in ruff: pre-commit names every file it passes)."""

from __future__ import annotations

import fnmatch
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
    """The files to read, and the folders given that held none."""

    files: list[Path] = field(default_factory=list)
    empty_folders: list[str] = field(default_factory=list)


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


def excluded(relative: Path, patterns: Sequence[str]) -> bool:
    """Whether a path (relative to where the patterns apply) matches one of them:
    a pattern with a slash matches the path or a folder of it, one without
    matches any of its parts."""
    parts = relative.parts
    text = relative.as_posix()
    for pattern in patterns:
        if "/" in pattern:
            if fnmatch.fnmatch(text, pattern) or fnmatch.fnmatch(text, f"{pattern}/*"):
                return True
        elif any(fnmatch.fnmatch(part, pattern) for part in parts):
            return True
    return False


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
            patterns = [*DEFAULT_EXCLUDES, *exclude, *_gitignore_patterns(path)]
            found = sorted(
                candidate
                for candidate in path.rglob("*.py")
                if not excluded(candidate.relative_to(path), patterns)
            )
            if not found:
                selection.empty_folders.append(name)
            selection.files.extend(found)
        elif force_exclude and _named_file_excluded(path, exclude, root or Path.cwd()):
            continue
        else:
            selection.files.append(path)
    return selection


def _named_file_excluded(path: Path, exclude: Sequence[str], root: Path) -> bool:
    patterns = [*DEFAULT_EXCLUDES, *exclude, *_gitignore_patterns(root)]
    absolute = path.resolve()
    try:
        relative = absolute.relative_to(root.resolve())
    except ValueError:
        relative = path  # outside the project: its own parts, as written
    return excluded(relative, patterns)


def python_files(paths: Sequence[str], exclude: Sequence[str] = ()) -> list[Path]:
    """The Python files under ``paths`` (a file named on the command line is always taken)."""
    return select_files(paths, exclude).files
