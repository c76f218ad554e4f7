"""CONC201 atomicity-gap

## What it does
Flags two mutations of related shared state (containers of the same class,
instance or module, indexed by the same key) with a checkpoint between them,
and a `for` loop over a shared container whose body checkpoints.
The message names the window: the first write, the checkpoint, the second
write.

## Why is this bad?
Between the two writes another task can run and observe the half-done
update: in tractor's `_Cache.run_ctx`, `values.pop(ctx_key)` runs, then the
context manager's `__aexit__` checkpoints, then `resources.pop(ctx_key)`; a
task entering in that window finds the resource but not its value. A loop
over a dict that checkpoints lets another task resize the dict under it
(`RuntimeError: dictionary changed size during iteration`) or change what
the loop still has to visit.

Writes that share a lock held across the window are not flagged.

## Example
```python
async with mngr() as value:
    try:
        await no_more_users.wait()
    finally:
        cls.values.pop(ctx_key)
cls.resources.pop(ctx_key)
```

## Use instead
```python
async with mngr() as value:
    try:
        await no_more_users.wait()
    finally:
        cls.values.pop(ctx_key)
        cls.resources.pop(ctx_key)
```

## Fix
Move the second write before the checkpoint, where the two can be brought
together; iterate over a copy (`list(d.items())`). Safe for the copy;
moving a write is safe only when nothing between depends on it.
"""

from __future__ import annotations

from collections.abc import Iterator

from conc_lsp.analysis.flow import Event, EventKind, ModuleFacts, exclusive, is_lock_expression
from conc_lsp.analysis.model import Finding, Severity
from conc_lsp.rules.base import checkpoint_words, finding

CODE = "CONC201"
NAME = "atomicity-gap"
SEVERITY = Severity.WARNING


def _related(first: Event, second: Event) -> bool:
    # A lock kept beside the state is not part of the state's update.
    if is_lock_expression(first.state or "") or is_lock_expression(second.state or ""):
        return False
    return (
        first.state != second.state
        and first.owner == second.owner
        and first.key is not None
        and first.key == second.key
    )


def check(module: ModuleFacts) -> Iterator[Finding]:
    for function in module.functions:
        if not function.is_async:
            continue
        writes = [event for event in function.events if event.kind is EventKind.WRITE]
        for index, second in enumerate(writes):
            for first in reversed(writes[:index]):
                if not _related(first, second) or exclusive(first, second):
                    continue
                if first.guards & second.guards:
                    continue
                between = function.checkpoints_between(first, second)
                if not between:
                    continue
                checkpoint = between[0]
                yield finding(
                    CODE,
                    NAME,
                    SEVERITY,
                    function,
                    second.location,
                    f"atomicity gap: `{second.state}[{second.key}]` is updated at line "
                    f"{second.location.line + 1}, after `{first.state}[{first.key}]` at line "
                    f"{first.location.line + 1}, with {checkpoint_words(checkpoint)} between; "
                    "other tasks can see one without the other",
                    [
                        (first.location, f"first write: {module.source(first.location)}"),
                        (checkpoint.location, f"checkpoint: {module.source(checkpoint.location)}"),
                    ],
                )
                break
        for loop in function.loops:
            if not loop.checkpoints:
                continue
            checkpoint = loop.checkpoints[0]
            yield finding(
                CODE,
                NAME,
                SEVERITY,
                function,
                loop.location,
                f"iterating shared `{loop.state}` while the loop body checkpoints "
                f"({checkpoint_words(checkpoint)}): another task may change it mid-loop; "
                "iterate over a copy",
                [(checkpoint.location, f"checkpoint: {module.source(checkpoint.location)}")],
            )
