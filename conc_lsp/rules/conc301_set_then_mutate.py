"""CONC301 set-then-mutate

## What it does
Flags a mutation of shared state that follows `event.set()` with no
checkpoint between, when a task waiting on that event reads the same state
after it wakes (a load, a membership test, or a `pop()` whose value it uses).
Events are paired by their last name (`self._ready`, `ready`,
`waiters[key]` -> `waiters`). Changing the container the event itself came
from (`for ev in self._waiters: ev.set()` then `self._waiters.clear()`), or
replacing the event (`self._changed = Event()`), is the event's own
bookkeeping and is not flagged. A removal is a warning, any other write
informational.

## Why is this bad?
`Event.set()` makes the waiters *ready*; it does not switch to them. The
setting task keeps running until its next checkpoint, so the waiter runs
only after the mutation and finds the state already changed (or gone). Code
that sets an event "to hand over" a value and then clears it hands over
nothing.

## Example
```python
self.result = value
self.ready.set()
self.result = None  # the waiter reads None
```

## Use instead
```python
self.result = value
self.ready.set()   # and leave self.result alone until the waiter took it
```

## Fix
No mechanical edit: move the mutation after a point where the waiter has
consumed the state (a second event, or a memory channel instead of shared
state). The report shows the sketch.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from conc_lsp.analysis.flow import (
    Event,
    EventKind,
    FunctionFacts,
    ModuleFacts,
    event_name,
    exclusive,
)
from conc_lsp.analysis.model import Finding, Severity
from conc_lsp.rules.base import awaited_call, finding

CODE = "CONC301"
NAME = "set-then-mutate"
SEVERITY = Severity.WARNING


CONSUMING_METHODS = frozenset({"pop", "popitem", "popleft"})


def _discarded_calls(function: FunctionFacts) -> set[int]:
    """Calls whose value is thrown away (`d.pop(k, None)` as a statement)."""
    return {
        id(node.value)
        for node in ast.walk(function.node)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
    }


def _readers_after_wait(module: ModuleFacts) -> dict[str, list[tuple[str, Event]]]:
    """Event name -> (waiting function, read of shared state after the wait).

    A `pop()` whose value is used (`return self.replies.pop(key)`) reads too."""
    readers: dict[str, list[tuple[str, Event]]] = {}
    for function in module.functions:
        discarded: set[int] | None = None
        for checkpoint in function.checkpoints:
            call = awaited_call(function, checkpoint)
            if call is None or call.method != "wait" or not call.receiver:
                continue
            name = event_name(call.receiver)
            for event in function.events[checkpoint.order + 1 :]:
                if not event.state:
                    continue
                if event.kind is EventKind.WRITE and event.method in CONSUMING_METHODS:
                    if discarded is None:
                        discarded = _discarded_calls(function)
                    if id(event.node) in discarded:
                        continue
                elif event.kind not in (EventKind.READ, EventKind.TEST):
                    continue
                readers.setdefault(name, []).append((function.qualname, event))
    return readers


def _text(node: ast.AST) -> str:
    try:
        return ast.unparse(node)
    except Exception:  # noqa: BLE001 - odd trees must not break the rule
        return "?"


def _container(node: ast.AST) -> str:
    """The text of what a write changes: `self.d` for `self.d.pop(k)` / `del self.d[k]`."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return _text(node.func.value)
    if isinstance(node, ast.Subscript):
        return _text(node.value)
    return _text(node)


def _event_sources(function: FunctionFacts, receiver: str) -> set[str]:
    """Where the set event comes from: its own expression and, for a local name,
    the containers it was taken out of (`for ev in self._waiters`,
    `_, ev = self.resources.pop(key)`). Changing those after the set is the
    wait-queue bookkeeping of the event, not a hand-over."""
    sources = {receiver}
    base = receiver.split("[", 1)[0]
    sources.add(base)
    if not receiver.isidentifier():
        return sources
    for node in ast.walk(function.node):
        value: ast.expr | None = None
        targets: list[ast.expr] = []
        if isinstance(node, (ast.For, ast.AsyncFor)):
            targets, value = [node.target], node.iter
        elif isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.NamedExpr):
            targets, value = [node.target], node.value
        if value is None or not any(
            isinstance(name, ast.Name) and name.id == receiver
            for target in targets
            for name in ast.walk(target)
        ):
            continue
        for part in ast.walk(value):
            if isinstance(part, (ast.Name, ast.Attribute)):
                sources.add(_text(part))
    return sources


def check(module: ModuleFacts) -> Iterator[Finding]:
    readers = _readers_after_wait(module)
    if not readers:
        return
    for function in module.functions:
        events = function.events
        for setter in events:
            if not (
                setter.kind is EventKind.CALL
                and setter.method == "set"
                and setter.arguments == 0
                and not setter.awaited
            ):
                continue
            waiting = readers.get(event_name(setter.receiver))
            if not waiting or setter.receiver is None:
                continue
            sources: set[str] | None = None
            for event in events[setter.order + 1 :]:
                if event.kind is EventKind.CHECKPOINT and not exclusive(event, setter):
                    break
                if event.kind is not EventKind.WRITE or exclusive(event, setter):
                    continue
                if sources is None:
                    sources = _event_sources(function, setter.receiver)
                if _container(event.node) in sources:
                    continue
                reader = next(
                    ((name, read) for name, read in waiting if read.state == event.state), None
                )
                if reader is None:
                    continue
                waiter, read = reader
                yield finding(
                    CODE,
                    NAME,
                    SEVERITY if event.removal else Severity.INFORMATION,
                    function,
                    event.location,
                    f"`{event.state}` changes after `{setter.receiver}.set()` (line "
                    f"{setter.location.line + 1}) and before the next checkpoint: `{waiter}` "
                    f"wakes only then and reads the changed value (line {read.location.line + 1})",
                    [
                        (setter.location, "the event is set here; no task switch happens"),
                        (read.location, f"{waiter} reads it after waking"),
                    ],
                )
