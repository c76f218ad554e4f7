"""CONC103 await-in-except

## What it does
Flags a checkpoint inside an `except` handler. When the handler goes on,
after that checkpoint, to release a lock, set an event or pop state outside a
`finally`, the finding is a warning and names the line a cancellation would
skip; otherwise it is informational.

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

from collections.abc import Iterator

from conc_lsp.analysis.flow import EventKind, ModuleFacts
from conc_lsp.analysis.model import Finding, Severity, Shield
from conc_lsp.rules.base import awaited_call, describe, finding

CODE = "CONC103"
NAME = "await-in-except"
SEVERITY = Severity.WARNING
RELEASING = frozenset({"release", "set", "pop", "popitem", "discard", "remove", "close", "cancel"})


def check(module: ModuleFacts) -> Iterator[Finding]:
    for function in module.functions:
        seen: set[int] = set()
        for checkpoint in function.checkpoints:
            context = checkpoint.context
            if context.in_except is None or checkpoint.handler in seen:
                continue
            if context.shielded is Shield.YES:
                continue
            seen.add(checkpoint.handler)
            call = awaited_call(function, checkpoint)
            what = "await " + describe(call, "...") if call else module.source(checkpoint.location)
            skipped = [
                event
                for event in function.events[checkpoint.order + 1 :]
                if event.handler == checkpoint.handler
                and not event.context.in_finally
                and (
                    (event.kind is EventKind.CALL and event.method in RELEASING)
                    or (event.kind is EventKind.WRITE and event.removal)
                )
            ]
            caught = f" {context.in_except}" if context.in_except else ""
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
            else:
                yield finding(
                    CODE,
                    NAME,
                    Severity.INFORMATION,
                    function,
                    checkpoint.location,
                    f"`{what}` in `except{caught}` can be cancelled, abandoning the rest "
                    "of the handler",
                )
