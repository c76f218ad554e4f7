"""CONC302 set-not-guaranteed

## What it does
Flags `await event.wait()` when none of the module's `event.set()` calls for
that event is on a path that also runs on error: not in a `finally` (a set
after an acm `yield` without `finally`, or at the end of a task's happy path,
is skipped by any exception). It is a warning on a cleanup path, where the
wait blocks teardown, and informational elsewhere. Bounded waits are not
flagged.

## Why is this bad?
One exception (or cancellation) in the setter's task between its start and
its `.set()` and the waiter hangs forever. Waiting in cleanup on such an
event turns any error in another task into a deadlock of the whole teardown.

## Example
```python
async def worker(self):
    await self.run_jobs()
    self.done.set()

async def aclose(self):
    await self.done.wait()
```

## Use instead
```python
async def worker(self):
    try:
        await self.run_jobs()
    finally:
        self.done.set()
```

## Fix
Move `.set()` into a `finally` of the setter (mechanical when the setter's
body can be wrapped). Safe.
"""

from __future__ import annotations

from collections.abc import Iterator

from conc_lsp.analysis.flow import ModuleFacts, event_name
from conc_lsp.analysis.model import Finding, Location, Severity
from conc_lsp.rules.base import awaited_call, finding

CODE = "CONC302"
NAME = "set-not-guaranteed"
SEVERITY = Severity.WARNING


def check(module: ModuleFacts) -> Iterator[Finding]:
    setters: dict[str, list[tuple[Location, str, bool]]] = {}
    for function, event in module.calls("set"):
        if event.arguments or event.awaited or not event.receiver:
            continue
        setters.setdefault(event_name(event.receiver), []).append(
            (event.location, function.qualname, event.context.in_finally)
        )
    for function in module.functions:
        for checkpoint in function.checkpoints:
            call = awaited_call(function, checkpoint)
            if call is None or call.method != "wait" or not call.receiver:
                continue
            if checkpoint.context.bounded:
                continue
            found = setters.get(event_name(call.receiver))
            if not found or any(in_finally for _, _, in_finally in found):
                continue
            cleanup = checkpoint.context.on_cleanup_path
            first, setter_function, _ = found[0]
            yield finding(
                CODE,
                NAME,
                SEVERITY if cleanup else Severity.INFORMATION,
                function,
                checkpoint.location,
                f"`{call.receiver}.wait()` relies on `.set()` in `{setter_function}` (line "
                f"{first.line + 1}), which is not in a `finally`: an error before it leaves "
                "this wait hanging" + (" and blocks teardown" if cleanup else ""),
                [(location, f"setter in {name}, skipped on error") for location, name, _ in found],
            )
