"""CONC203 global-counter-for-keyed-state

## What it does
Flags a single scalar counter shared by all keys of keyed state
(`cls.users += 1` in a function that indexes `cls.values[ctx_key]`), when
the counter decides the fate of one key's entry: some `if`/`while` tests it
and its body touches keyed state of the same owner (`if cls.users == 0:
cls.resources.pop(ctx_key)`). Also flags a lock chosen by a different key
than the state it guards (`locks[fid]` guarding `values[ctx_key]`); only
mutexes count (`locks`, `mutexes`): a semaphore or capacity limiter per
tenant over per-request state is a limit, keyed differently by design.

Not flagged: per-key counters (`users[ctx_key] += 1`); counters never
tested, or tested only to decide something about the whole object (`if
self._active == 0: self._idle.set()`); locks with a constant key (one lock
by design) or keyed like the state. Lock maps are told by the attribute's
own name (`locks`, `_host_sems`, `key_lock`), not by words inside it
(`blocks`, `clock`) or the class name.

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

import ast
from collections.abc import Iterator

from conc_lsp.analysis.flow import Event, EventKind, FunctionFacts, ModuleFacts
from conc_lsp.analysis.model import Finding, Severity
from conc_lsp.rules.base import finding
from conc_lsp.rules.conc201_atomicity_gap import function_parents, is_lock_state

CODE = "CONC203"
NAME = "global-counter-for-keyed-state"
SEVERITY = Severity.WARNING
_ACCESSES = (EventKind.READ, EventKind.WRITE, EventKind.TEST)
# Only a mutual exclusion guards state; a semaphore or capacity limiter per
# tenant over per-request state is a limit, keyed differently by design.
MUTEX_WORDS = frozenset({"lock", "locks", "rlock", "rlocks", "mutex", "mutexes", "mtx", "lk"})


def _is_mutex_state(state: str | None) -> bool:
    name = (state or "").rsplit(".", 1)[-1].lower()
    return any(word in MUTEX_WORDS for word in name.split("_") if word)


def _is_variable_key(key: str | None) -> bool:
    return bool(key) and (key or "")[0] not in "'\"0123456789-"


def _keyed(event: Event) -> bool:
    return event.kind in _ACCESSES and _is_variable_key(event.key)


def _deciding_counters(function: FunctionFacts) -> set[str]:
    """Key-less state tested by an `if`/`while` whose body touches keyed state of its owner.

    `if cls.users == 0: cls.resources.pop(ctx_key)`: the counter decides the
    fate of one key's entry, so it must count that key's users. A count that
    only decides something about the whole object (`if self._active == 0:
    self._idle.set()`) is a count of the whole object.
    """
    tests = [
        event
        for event in function.events
        if event.kind is EventKind.TEST and event.key is None and event.state
    ]
    if not tests:
        return set()
    parents = function_parents(function)
    deciding: set[str] = set()
    for test in tests:
        node: ast.AST = test.node
        while node in parents and not isinstance(node, ast.stmt):
            node = parents[node][0]
        if not isinstance(node, (ast.If, ast.While)):
            continue
        body = [*node.body, *node.orelse]
        inside = {id(child) for stmt in body for child in ast.walk(stmt)}
        if any(
            _keyed(event) and event.owner == test.owner and id(event.node) in inside
            for event in function.events
        ):
            deciding.add(test.state or "")
    return deciding


def check(module: ModuleFacts) -> Iterator[Finding]:
    deciding = {state for function in module.functions for state in _deciding_counters(function)}
    for function in module.functions:
        keyed = [
            event for event in function.events if _keyed(event) and not is_lock_state(event.state)
        ]
        if not keyed:
            continue
        reported: set[str | None] = set()
        for event in function.events:
            if (
                event.kind is EventKind.WRITE
                and event.augmented
                and event.key is None
                and event.state in deciding
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
            if _keyed(event) and _is_mutex_state(event.state):
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
