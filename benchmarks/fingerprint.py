"""Which conc_lsp code a benchmark measured: the sources change while people work."""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
from pathlib import Path


def describe() -> str:
    """A short hash of conc_lsp's .py sources, with the git commit and whether it is dirty."""
    spec = importlib.util.find_spec("conc_lsp")
    if spec is None or not spec.submodule_search_locations:
        return "conc_lsp: not found"
    package = Path(next(iter(spec.submodule_search_locations)))
    digest = hashlib.sha1()
    files = sorted(package.rglob("*.py"))
    for path in files:
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    try:
        commit = subprocess.run(
            ["git", "-C", str(package.parent), "log", "-1", "--format=%h"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(package.parent), "status", "--porcelain", "--", package.name],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        where = f"commit {commit}{' + uncommitted changes' if dirty else ''}"
    except (OSError, subprocess.CalledProcessError):
        where = "no git"
    return f"conc_lsp sources {digest.hexdigest()[:12]} ({len(files)} files, {where})"
