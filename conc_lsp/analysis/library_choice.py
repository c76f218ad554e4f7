"""Which async library a module (and each function) runs under.

The rules speak the library's semantics: trio's and anyio's cancellation is
level-triggered (every checkpoint in a cancelled scope raises again), while
asyncio's is edge-triggered (one `CancelledError`; later awaits in a
`finally` run unless cancelled again). So the choice matters, and a guess is
worse than no answer: a module that shows no sign of a library is *unknown*.

Decided, in order, from:
1. the module's own imports (`import trio`, `from anyio import ...`);
2. its package: the imports of the other modules of the same top-level
   package (asyncpg's modules reach asyncio through `from . import compat`);
3. usage: event-loop calls (`get_event_loop()`, `loop.create_future()`,
   `call_soon`, `run_until_complete`, `IsolatedAsyncioTestCase`) mean asyncio.
A module importing several libraries decides per function, by the names it
uses.
"""

from __future__ import annotations

import ast
import os
import re
from functools import lru_cache
from pathlib import Path

from conc_lsp.analysis.libraries import ImportTable

TRIO, ANYIO, ASYNCIO = "trio", "anyio", "asyncio"
LEVEL_TRIGGERED = frozenset({TRIO, ANYIO})
# tractor runs on trio.
FAMILY = {"trio": TRIO, "tractor": TRIO, "anyio": ANYIO, "asyncio": ASYNCIO}
ASYNCIO_USAGE = re.compile(
    r"\b(?:get_event_loop|get_running_loop|run_until_complete|create_future|call_soon"
    r"|call_soon_threadsafe|run_coroutine_threadsafe|IsolatedAsyncioTestCase|AbstractEventLoop)\b"
)
IMPORT_LINE = re.compile(r"^[ \t]*(?:import|from)[ \t]+(trio|anyio|asyncio|tractor)\b", re.M)
MAX_PACKAGE_FILES = 2000
MAX_FILE_BYTES = 400_000


def families(libraries: frozenset[str]) -> frozenset[str]:
    return frozenset(FAMILY[name] for name in libraries if name in FAMILY)


def single(found: frozenset[str]) -> str | None:
    """The one library of a set; anyio with asyncio is anyio's own code over
    asyncio, which speaks anyio's (level-triggered) cancel scopes."""
    if len(found) == 1:
        return next(iter(found))
    if found == {ANYIO, ASYNCIO}:
        return ANYIO
    return None


def module_library(table: ImportTable, lines: list[str], path: str | None) -> str | None:
    """The library of a module, or None when unknown (or mixed: see ``function_library``)."""
    imported = families(table.libraries)
    if imported:
        return single(imported)
    package = single(package_libraries(path)) if path else None
    if package is not None:
        return package
    text = "\n".join(lines)
    if ASYNCIO_USAGE.search(text):
        return ASYNCIO
    return None


def function_library(node: ast.AST, table: ImportTable) -> str | None:
    """In a module importing several libraries: the one whose names a function uses."""
    used: set[str] = set()
    for child in ast.walk(node):
        if isinstance(child, ast.Name) and child.id in table.names:
            root = table.names[child.id].split(".", 1)[0]
            if root in FAMILY:
                used.add(FAMILY[root])
    return single(frozenset(used))


def package_root(path: Path) -> Path | None:
    """The top-level package folder holding ``path`` (None outside packages)."""
    folder = path.parent
    if not (folder / "__init__.py").is_file():
        return None
    while (folder.parent / "__init__.py").is_file() and folder.parent != folder:
        folder = folder.parent
    return folder


def package_libraries(path: str) -> frozenset[str]:
    """The async libraries the modules of ``path``'s package import (by family)."""
    try:
        if os.path.islink(path):
            return _folder_libraries(str(Path(path).resolve().parent))
    except (OSError, ValueError):
        return frozenset()
    # A file's folder is the same for all of its neighbours (resolved once).
    return _folder_libraries(os.path.dirname(os.path.abspath(path)))


@lru_cache(maxsize=256)
def _folder_libraries(folder: str) -> frozenset[str]:
    try:
        root = package_root(Path(folder).resolve() / "module.py")
    except (OSError, ValueError):
        return frozenset()
    if root is None:
        return frozenset()
    if root.name in FAMILY:
        # The library's own code (anyio's streams, trio's internals) speaks its semantics,
        # whatever backends its other modules import.
        return frozenset({FAMILY[root.name]})
    return _scan(str(root))


@lru_cache(maxsize=64)
def _scan(root: str) -> frozenset[str]:
    """Import lines only, read as bytes: no file of the package is executed."""
    found: set[str] = set()
    seen = 0
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [name for name in subfolders if not name.startswith((".", "__"))]
        for name in files:
            if not name.endswith(".py"):
                continue
            seen += 1
            if seen > MAX_PACKAGE_FILES:
                return families(frozenset(found))
            try:
                with open(os.path.join(folder, name), "rb") as handle:
                    data = handle.read(MAX_FILE_BYTES)
            except OSError:
                continue
            found.update(IMPORT_LINE.findall(data.decode("utf-8", "replace")))
    return families(frozenset(found))
