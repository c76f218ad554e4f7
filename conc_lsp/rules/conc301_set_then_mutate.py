"""CONC301 set-then-mutate

## What it does
Flags a mutation of shared state that follows `event.set()` with no
checkpoint between, when a task waiting on that event reads the same state
after it wakes.

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

from collections.abc import Iterator

from conc_lsp.analysis.flow import Event, EventKind, ModuleFacts, event_name, exclusive
from conc_lsp.analysis.model import Finding, Severity
from conc_lsp.rules.base import awaited_call, finding

CODE = "CONC301"
NAME = "set-then-mutate"
SEVERITY = Severity.WARNING


def _readers_after_wait(module: ModuleFacts) -> dict[str, list[tuple[str, Event]]]:
    """Event name -> (waiting function, read of shared state after the wait)."""
    readers: dict[str, list[tuple[str, Event]]] = {}
    for function in module.functions:
        for checkpoint in function.checkpoints:
            call = awaited_call(function, checkpoint)
            if call is None or call.method != "wait" or not call.receiver:
                continue
            name = event_name(call.receiver)
            for event in function.events[checkpoint.order + 1 :]:
                if event.kind in (EventKind.READ, EventKind.TEST) and event.state:
                    readers.setdefault(name, []).append((function.qualname, event))
    return readers


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
            if not waiting:
                continue
            for event in events[setter.order + 1 :]:
                if event.kind is EventKind.CHECKPOINT and not exclusive(event, setter):
                    break
                if event.kind is not EventKind.WRITE or exclusive(event, setter):
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
