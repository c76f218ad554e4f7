"""CONC204 lock-outlived-by-state

## What it does
Flags a lock (or event) kept in a shared mapping and removed from it by one
task (`locks.pop(key)`) while related state for that key is torn down by
another task: a function started with `start` / `start_soon` that removes
state of the same owner after a checkpoint.

## Why is this bad?
The lock's lifetime is shorter than the state it protects. Once the lock is
popped, the next task creates a *new* lock and acquires it at once, while
the task started earlier is still tearing down the old state. In tractor,
`maybe_open_context` popped `_Cache.locks[ctx_key]` in its `finally` while
`run_ctx`, running in `service_tn`, still had `resources.pop()` ahead of it:
a re-entering task found `values` gone and `resources` still present.

## Example
```python
async def run_ctx(cls, ctx_key):
    ...
    await no_more_users.wait()
    cls.resources.pop(ctx_key)

async def maybe_open_context(ctx_key):
    await service_n.start(_Cache.run_ctx, ctx_key)
    ...
    _Cache.locks.pop(ctx_key)
```

## Use instead
```python
async def run_ctx(cls, ctx_key):
    try:
        await no_more_users.wait()
    finally:
        cls.resources.pop(ctx_key)
        cls.locks.pop(ctx_key)  # the lock dies with the state it guards
```

## Fix
No mechanical edit: tie the lock's removal to the end of the teardown (pop it
in the task that removes the state, or wait for that task's completion
event before popping). The report shows the sketch.
"""

from __future__ import annotations

from collections.abc import Iterator

from conc_lsp.analysis.flow import Event, EventKind, FunctionFacts, ModuleFacts, is_lock_expression
from conc_lsp.analysis.model import Finding, Severity
from conc_lsp.rules.base import finding

CODE = "CONC204"
NAME = "lock-outlived-by-state"
SEVERITY = Severity.WARNING
SPAWNERS = frozenset({"start", "start_soon", "create_task"})


def _task_functions(module: ModuleFacts) -> dict[str, tuple[FunctionFacts, Event]]:
    """Functions started as tasks, by qualname, with the call that starts them."""
    started: dict[str, tuple[FunctionFacts, Event]] = {}
    for function in module.functions:
        for event in function.events:
            if event.kind is not EventKind.CALL or event.method not in SPAWNERS:
                continue
            target = (event.argument or "").split("(", 1)[0]
            if not target:
                continue
            name = target.rsplit(".", 1)[-1]
            for candidate in module.functions:
                if candidate.name == name and (
                    "." not in target
                    or candidate.qualname.endswith(target.split(".", 1)[-1])
                    or target.startswith(("self.", "cls."))
                ):
                    started.setdefault(candidate.qualname, (function, event))
    return started


def _late_removal(task: FunctionFacts, owner: str | None) -> tuple[Event, Event] | None:
    """A removal of non-lock state of ``owner`` that comes after a checkpoint."""
    first_checkpoint: Event | None = None
    for event in task.events:
        if event.kind is EventKind.CHECKPOINT and first_checkpoint is None:
            first_checkpoint = event
        if (
            first_checkpoint is not None
            and event.kind is EventKind.WRITE
            and event.removal
            and event.owner == owner
            and not is_lock_expression(event.state or "")
        ):
            return first_checkpoint, event
    return None


def check(module: ModuleFacts) -> Iterator[Finding]:
    tasks = _task_functions(module)
    if not tasks:
        return
    for function in module.functions:
        for event in function.events:
            if not (
                event.kind is EventKind.WRITE
                and event.removal
                and event.key is not None
                and is_lock_expression(event.state or "")
            ):
                continue
            for qualname, (_, start) in tasks.items():
                task = module.function(qualname)
                if task is None or task is function:
                    continue
                late = _late_removal(task, event.owner)
                if late is None:
                    continue
                checkpoint, removal = late
                yield finding(
                    CODE,
                    NAME,
                    SEVERITY,
                    function,
                    event.location,
                    f"`{event.state}` entry is removed here while `{task.qualname}` (started "
                    f"at line {start.location.line + 1}) may still be tearing down "
                    f"`{removal.state}` (line {removal.location.line + 1}, after a checkpoint): "
                    "the next task gets a new lock and sees half-torn-down state",
                    [
                        (removal.location, f"state removed later by {task.qualname}"),
                        (checkpoint.location, f"checkpoint in {task.qualname} before it"),
                        (start.location, "the task is started here"),
                    ],
                )
                break
