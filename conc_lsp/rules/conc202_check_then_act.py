"""CONC202 check-then-act

## What it does
Flags a test or read of shared state (`if key in self.d`,
`v = self.d.get(k)`, `if self.closed`) followed, across a checkpoint and
without a re-check after it, by an action that relies on it: `self.d[k]`,
`del self.d[k]`, `self.d.pop(k)`, or a write of the same state.

## Why is this bad?
This is the time-of-check-to-time-of-use (TOCTOU) race: at the checkpoint
another task can change the state, so by the time the action runs the check
no longer holds. Two tasks both see a cache miss and both create the entry;
a key checked present is gone by the time it is indexed.

A check and an action under the same lock are not flagged.

## Example
```python
if key not in self.cache:
    conn = await connect(key)
    self.cache[key] = conn
```

## Use instead
```python
if key not in self.cache:
    conn = await connect(key)
    if key in self.cache:  # another task won the race
        await conn.aclose()
    else:
        self.cache[key] = conn
```

## Fix
Re-check after the checkpoint, or use the atomic form
(`self.cache.setdefault(key, conn)`, `d.pop(k, None)`). Safe.
"""

from __future__ import annotations

from collections.abc import Iterator

from conc_lsp.analysis.flow import Event, EventKind, FunctionFacts, ModuleFacts, exclusive
from conc_lsp.analysis.model import Finding, Severity
from conc_lsp.rules.base import checkpoint_words, finding

CODE = "CONC202"
NAME = "check-then-act"
SEVERITY = Severity.WARNING


def _is_check(event: Event) -> bool:
    if event.kind is EventKind.TEST:
        return True
    return (
        event.kind is EventKind.READ
        and not event.augmented
        and (event.method == "get" or (event.key is not None and event.method is None))
    )


def _is_action(event: Event) -> bool:
    if event.kind is EventKind.WRITE:
        return not event.has_default and event.method != "setdefault"
    return event.kind is EventKind.READ and event.key is not None and event.method is None


def _same_target(check: Event, action: Event) -> bool:
    return check.state == action.state and check.key == action.key


def _rechecked(function: FunctionFacts, after: Event, action: Event) -> bool:
    return any(
        event.kind is EventKind.TEST and _same_target(event, action)
        for event in function.events[after.order + 1 : action.order]
    )


def check(module: ModuleFacts) -> Iterator[Finding]:
    for function in module.functions:
        if not function.is_async:
            continue
        events = function.events
        checks: list[Event] = []
        for event in events:
            if _is_action(event):
                for earlier in reversed(checks):
                    if not _same_target(earlier, event) or exclusive(earlier, event):
                        continue
                    if earlier.kind is not EventKind.TEST and (
                        event.kind is not EventKind.WRITE or event.removal
                    ):
                        # After a plain read only a write back is a lost update.
                        continue
                    if earlier.guards & event.guards:
                        continue
                    between = function.checkpoints_between(earlier, event)
                    if not between or _rechecked(function, between[-1], event):
                        continue
                    checkpoint = between[-1]
                    target = f"{event.state}[{event.key}]" if event.key else f"{event.state}"
                    yield finding(
                        CODE,
                        NAME,
                        SEVERITY,
                        function,
                        event.location,
                        f"check-then-act: `{target}` is used at line {event.location.line + 1} "
                        f"on the strength of the check at line {earlier.location.line + 1}, but "
                        f"{checkpoint_words(checkpoint)} lets another task change it in between; "
                        "re-check after the await",
                        [
                            (earlier.location, f"check: {module.source(earlier.location)}"),
                            (
                                checkpoint.location,
                                f"checkpoint: {module.source(checkpoint.location)}",
                            ),
                        ],
                    )
                    break
            if _is_check(event):
                checks.append(event)
