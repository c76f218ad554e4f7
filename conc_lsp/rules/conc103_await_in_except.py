"""CONC103 await-in-except

## What it does
Flags a checkpoint inside an `except` handler whose cancellation does harm:
it skips a release, set or pop later in the handler, it sits in a handler of
trio's or anyio's cancellation itself, or it comes before a re-raise of the
caught exception.

- a warning when the handler goes on, after that checkpoint, to release a
  lock, set an event, close or pop state, and no `finally` around the
  checkpoint protects that line; the finding names the skipped line;
- a warning when the handler caught trio's or anyio's cancellation itself
  (`except trio.Cancelled`, `except get_cancelled_exc_class()`): the scope is
  still cancelled, so the checkpoint raises again at once;
- an informational finding when the handler re-raises the exception it caught
  after the checkpoint (a bare `raise`, or a `raise` naming its `as`
  variable): a cancellation there replaces that exception.

Not flagged: shielded checkpoints; explicit checkpoints (`checkpoint()`,
`sleep(0)`) and `aclose_forcefully()`; a handler that just does ordinary async
work (the slow path after `WouldBlock` or `KeyError`, a retry back-off);
asyncio's `except CancelledError: ...; raise`, since asyncio delivers a
cancellation once.

## Why is this bad?
`await` inside `except` can raise `Cancelled` (trio, anyio) or
`CancelledError` (asyncio). The handler is then abandoned at that point and
everything after the `await` in it is skipped, so a lock is never released
or an event never set. `maybe_open_context` in tractor releases its lock in a
`finally` inside the `except KeyError` for exactly this reason.

## Example
```python
try:
    value = cache[key]
except KeyError:
    value = await fetch(key)
    lock.release()
```

## Use instead
```python
try:
    value = cache[key]
except KeyError:
    try:
        value = await fetch(key)
    finally:
        lock.release()
```

## Fix
Move the release / set / pop that a cancellation would skip into a
`finally:` (or shield the await when it cannot move). Safe.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from conc_lsp.analysis.flow import Event, EventKind, ModuleFacts, exclusive
from conc_lsp.analysis.model import Finding, Severity, Shield
from conc_lsp.rules.base import awaited_call, describe, finding
from conc_lsp.rules.conc102_unshielded_await_in_cleanup import (
    FunctionTree,
    caught_names,
    is_explicit_checkpoint,
)

CODE = "CONC103"
NAME = "await-in-except"
SEVERITY = Severity.WARNING
RELEASING = frozenset({"release", "set", "pop", "popitem", "discard", "remove", "close", "cancel"})
LEVEL_CANCELLED = frozenset({"Cancelled", "get_cancelled_exc_class"})  # trio, anyio
ONE_SHOT_CANCELLED = frozenset({"CancelledError"})  # asyncio


def check(module: ModuleFacts) -> Iterator[Finding]:
    for function in module.functions:
        seen: set[int] = set()
        tree: FunctionTree | None = None
        for checkpoint in function.checkpoints:
            context = checkpoint.context
            if context.in_except is None or checkpoint.handler in seen:
                continue
            if context.shielded is Shield.YES:
                continue
            call = awaited_call(function, checkpoint)
            if call is not None and is_explicit_checkpoint(call):
                continue  # checkpoint(), sleep(0), aclose_forcefully(): cancellable by design
            seen.add(checkpoint.handler)
            if tree is None:
                tree = FunctionTree(function.node)
            handler = tree.handler_of(checkpoint.node)
            what = "await " + describe(call, "...") if call else module.source(checkpoint.location)
            caught = f" {context.in_except}" if context.in_except else ""
            skipped = [
                event
                for event in function.events[checkpoint.order + 1 :]
                if event.handler == checkpoint.handler
                and _releases(event)
                and not exclusive(event, checkpoint)
                and not _protected(tree, event.node, checkpoint.node, handler)
            ]
            if skipped:
                first = skipped[0]
                yield finding(
                    CODE,
                    NAME,
                    SEVERITY,
                    function,
                    checkpoint.location,
                    f"`{what}` in `except{caught}`: a cancellation here skips "
                    f"`{module.source(first.location)}` (line {first.location.line + 1}); "
                    "move it into a `finally`",
                    [(first.location, "skipped if the await above is cancelled")],
                )
                continue
            names = caught_names(handler) if handler is not None else set()
            if names & LEVEL_CANCELLED:
                yield finding(
                    CODE,
                    NAME,
                    SEVERITY,
                    function,
                    checkpoint.location,
                    f"`{what}` in `except{caught}`: the scope is still cancelled, so this "
                    "checkpoint raises `Cancelled` again at once; shield it "
                    "(`CancelScope(shield=True)` with a timeout) or do without it",
                )
                continue
            if names and names <= ONE_SHOT_CANCELLED:
                continue  # asyncio delivers a cancellation once; re-raising it masks nothing
            if handler is not None and _reraises_after(tree, handler, checkpoint.node):
                yield finding(
                    CODE,
                    NAME,
                    Severity.INFORMATION,
                    function,
                    checkpoint.location,
                    f"`{what}` in `except{caught}` can be cancelled: the cancellation then "
                    "replaces the exception this handler re-raises",
                )


def _releases(event: Event) -> bool:
    return (event.kind is EventKind.CALL and event.method in RELEASING) or (
        event.kind is EventKind.WRITE and event.removal
    )


def _protected(
    tree: FunctionTree, node: ast.AST, checkpoint: ast.AST, handler: ast.ExceptHandler | None
) -> bool:
    """``node`` sits in the `finally` of a `try` whose body (or handlers) hold the
    checkpoint: it runs even when the checkpoint raises."""
    around_checkpoint = {
        id(ancestor): child
        for ancestor, child in tree.ancestors(checkpoint)
        if isinstance(ancestor, (ast.Try, ast.TryStar))
    }
    for ancestor, child in tree.ancestors(node):
        if ancestor is handler:
            return False
        if (
            isinstance(ancestor, (ast.Try, ast.TryStar))
            and child in ancestor.finalbody
            and id(ancestor) in around_checkpoint
            and around_checkpoint[id(ancestor)] not in ancestor.finalbody
        ):
            return True
    return False


def _reraises_after(tree: FunctionTree, handler: ast.ExceptHandler, checkpoint: ast.AST) -> bool:
    """The handler, after the checkpoint, raises the exception it caught again: a bare
    `raise`, or a `raise` naming the handler's `as` variable (`raise X from error`).
    Raises in nested handlers or functions, or on another branch, do not count."""
    start = (checkpoint.lineno, checkpoint.col_offset)  # type: ignore[attr-defined]
    stack: list[ast.AST] = list(handler.body)
    while stack:
        node = stack.pop()
        if isinstance(
            node,
            (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef, ast.ExceptHandler),
        ):
            continue
        if (
            isinstance(node, ast.Raise)
            and (node.lineno, node.col_offset) > start
            and _reraises(node, handler)
            and not tree.exclusive(node, checkpoint)
        ):
            return True
        stack.extend(ast.iter_child_nodes(node))
    return False


def _reraises(node: ast.Raise, handler: ast.ExceptHandler) -> bool:
    if node.exc is None:
        return True
    return handler.name is not None and any(
        isinstance(part, ast.Name) and part.id == handler.name for part in ast.walk(node)
    )
