"""CONC203 global-counter-for-keyed-state

## What it does
Flags a single scalar counter shared by all keys of keyed state
(`cls.users += 1` in a function that indexes `cls.values[ctx_key]`, when the
counter also decides something, such as `if cls.users == 0:`), and a lock
chosen by a different key than the state it guards (`locks[fid]` guarding
`values[ctx_key]`).

## Why is this bad?
Users of different keys inflate each other's count: when one key's users
drop to zero the shared counter does not, so that key's resources are never
torn down (tractor's `_Cache.users` before the fix). A lock keyed by a
broader or different key than the state serialises the wrong tasks and lets
two tasks touch the same state entry under different locks.

## Example
```python
_Cache.users += 1
yield _Cache.values[ctx_key]
...
_Cache.users -= 1
if _Cache.users == 0:
    _Cache.resources.pop(ctx_key)
```

## Use instead
```python
_Cache.users[ctx_key] += 1   # users: defaultdict(int)
yield _Cache.values[ctx_key]
...
_Cache.users[ctx_key] -= 1
if _Cache.users[ctx_key] == 0:
    _Cache.resources.pop(ctx_key)
```

## Fix
Turn the counter into a per-key counter (`collections.defaultdict(int)`
keyed like the state) and update its uses. Unsafe: it changes the
counter's type for every reader.
"""

from __future__ import annotations

from collections.abc import Iterator

from conc_lsp.analysis.flow import EventKind, ModuleFacts, is_lock_expression
from conc_lsp.analysis.model import Finding, Severity
from conc_lsp.rules.base import finding

CODE = "CONC203"
NAME = "global-counter-for-keyed-state"
SEVERITY = Severity.WARNING


def _is_variable_key(key: str | None) -> bool:
    return bool(key) and (key or "")[0] not in "'\"0123456789-"


def check(module: ModuleFacts) -> Iterator[Finding]:
    tested = {
        event.state
        for function in module.functions
        for event in function.events
        if event.kind is EventKind.TEST and event.key is None
    }
    for function in module.functions:
        keyed = [
            event
            for event in function.events
            if event.kind in (EventKind.READ, EventKind.WRITE, EventKind.TEST)
            and _is_variable_key(event.key)
            and not is_lock_expression(event.state or "")
        ]
        if not keyed:
            continue
        reported: set[str | None] = set()
        for event in function.events:
            if (
                event.kind is EventKind.WRITE
                and event.augmented
                and event.key is None
                and event.state in tested
                and event.state not in reported
                and any(other.owner == event.owner for other in keyed)
            ):
                state = next(other for other in keyed if other.owner == event.owner)
                reported.add(event.state)
                yield finding(
                    CODE,
                    NAME,
                    SEVERITY,
                    function,
                    event.location,
                    f"`{event.state}` is one counter for all keys, but the state it counts is "
                    f"keyed (`{state.state}[{state.key}]`): users of other keys inflate it, "
                    f"so a key's count never reaches zero; keep a per-key count "
                    f"(`{event.state}[{state.key}]`)",
                    [(state.location, f"keyed state: {module.source(state.location)}")],
                )
        for event in function.events:
            if (
                event.kind in (EventKind.READ, EventKind.WRITE, EventKind.TEST)
                and is_lock_expression(event.state or "")
                and _is_variable_key(event.key)
            ):
                other = next(
                    (
                        access
                        for access in keyed
                        if access.owner == event.owner and access.key != event.key
                    ),
                    None,
                )
                if other is None or any(
                    access.owner == event.owner and access.key == event.key for access in keyed
                ):
                    continue
                yield finding(
                    CODE,
                    NAME,
                    SEVERITY,
                    function,
                    event.location,
                    f"the lock is chosen by `{event.key}` but guards state keyed by "
                    f"`{other.key}` (`{other.state}[{other.key}]`): tasks with the same "
                    f"`{other.key}` can hold different locks",
                    [(other.location, f"guarded state: {module.source(other.location)}")],
                )
                break
