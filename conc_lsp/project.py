"""Where a project's settings live: the nearest pyproject.toml at or above a
path (standard library only: the run memo finds it before anything loads)."""

from __future__ import annotations

from pathlib import Path


def pyproject_search(start: Path) -> tuple[Path | None, list[Path]]:
    """The nearest pyproject.toml at or above ``start``, and the folders looked in
    (a pyproject.toml added to one of them changes the answer)."""
    directory = start if start.is_dir() else start.parent
    looked: list[Path] = []
    for candidate in [directory, *directory.parents]:
        looked.append(candidate)
        path = candidate / "pyproject.toml"
        if path.is_file():
            return path, looked
    return None, looked


def find_pyproject(start: Path) -> Path | None:
    """The nearest pyproject.toml at or above ``start``."""
    return pyproject_search(start)[0]
