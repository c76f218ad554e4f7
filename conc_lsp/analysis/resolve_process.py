"""The resolver process of the language server: its jobs (free of LSP imports,
so that the process starts fast). One resolver per workspace and interpreter,
kept between jobs; the server ends the process once it has no more to resolve."""

from __future__ import annotations

import time
from typing import Any

from conc_lsp.analysis.model import HintKey, Resolution


def resolve_document(
    root: str | None,
    interpreter: str,
    path: str | None,
    lines: list[str],
    budget: float,
    first_lines: tuple[int, int] | None,
) -> tuple[dict[HintKey, Resolution], dict[str, Any]]:
    """Resolve one document's checkpoints (runs in the resolver process)."""
    # loads in the resolver process, not in the server that only names the job (start-up cost)
    from conc_lsp.analysis.resolve import _RESOLVERS, Resolver

    warning = ""
    resolver = _RESOLVERS.get((root, interpreter))
    if resolver is None:
        try:
            resolver = Resolver(root, interpreter or None)
        except Exception as error:  # noqa: BLE001 - jedi's errors for a bad interpreter vary
            warning = (
                f"python.interpreter {interpreter!r} cannot be used ({error}); "
                "resolving with the server's own Python instead"
            )
            resolver = _RESOLVERS.get((root, "")) or Resolver(root, None)
        _RESOLVERS[(root, interpreter)] = resolver
    # The lines on screen are handed over as soon as they are done.
    result = resolver.resolve_lines(lines, path, budget, first_lines, stop_after_shown=True)
    if result.complete and path is not None and resolver.cache is not None:
        resolver.release(path)  # bounded memory: what it found is on disk
    stats = {
        "total": result.total,
        "resolved": result.resolved,
        "complete": result.complete,
        "seconds": round(result.seconds, 3),
        "warning": warning,
        "attempted": result.attempted,  # the rest keep what an earlier text found
        "cached": result.cached,
    }
    return result.resolutions, stats


def warm_up(root: str | None, interpreter: str) -> float:
    """Start jedi before the first document needs it (runs in the resolver process):
    the first inference loads the builtins' stubs and asyncio, a second or more."""
    started = time.perf_counter()
    resolve_document(
        root,
        interpreter,
        None,
        ["import asyncio", "async def _warm():", "    await asyncio.sleep(0)"],
        30.0,
        None,
    )
    return time.perf_counter() - started


def forget_document(path: str) -> None:
    from conc_lsp.analysis.resolve import _RESOLVERS  # as above (start-up cost)

    for resolver in _RESOLVERS.values():
        resolver.forget(path)
