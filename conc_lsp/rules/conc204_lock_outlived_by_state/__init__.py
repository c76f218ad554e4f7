"""CONC204 lock-outlived-by-state

## What it does
Flags a lock (or semaphore, limiter: a map whose own name says so, such as
`locks`, `_host_sems`, `key_locks`) kept in a shared mapping and removed
from it by one task (`locks.pop(key)`, `del locks[key]`) while related state
is torn down by another task: a function started with `start` /
`start_soon` / `create_task` / `ensure_future` that removes state of the
same owner after a checkpoint. `self._run` is the spawner's own class's
`_run`.

Not flagged: a lock removed by the task that removes the state; a removal
that first waits for the task's end (an event the task sets after its
teardown, `await task` on the handle `create_task` returned, or the exit of
the nursery / task group the task was started in); a task that removes its
state before its first checkpoint.

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

import ast
from collections.abc import Iterator

from conc_lsp.analysis.events import (
    Event,
    EventKind,
    FunctionFacts,
    ModuleFacts,
    event_name,
    exclusive,
)
from conc_lsp.analysis.locks import LOCK_WORDS, holds_locks, is_lock_text
from conc_lsp.analysis.program import Program
from conc_lsp.analysis.reach import function_parents
from conc_lsp.analysis.waits import is_wait_call
from conc_lsp.rules.base import Detection, Evidence, Rule, Words
from conc_lsp.rules.conc204_lock_outlived_by_state.story import (
    EFFORT,
    LockOutlived,
    lock_task,
    sketch_unpublish,
    trace,
)
from conc_lsp.rules.story import ProposedFix, Trace, TraceBuilder

SPAWNERS = frozenset({"start", "start_soon", "create_task", "ensure_future"})
# The names a removal is written with: `del d[k]`, `d.pop(k)`, ... (the walker's).
REMOVALS = frozenset({"del", "pop", "popitem", "popleft", "remove", "discard", "clear"})


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
            through_self = target.startswith(("self.", "cls."))
            for candidate in module.functions:
                if candidate.name != name:
                    continue
                if through_self:
                    # `self._run` is a method of the spawner's own class.
                    matches = candidate.class_name == function.class_name
                else:
                    matches = "." not in target or candidate.qualname.endswith(
                        target.split(".", 1)[-1]
                    )
                if matches:
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
            and not holds_locks(event.state)
        ):
            return first_checkpoint, event
    return None


def _signals_end(task: FunctionFacts, removal: Event) -> set[str]:
    """Events the task sets after its late removal: `self._closed[key].set()`."""
    return {
        event_name(event.receiver)
        for event in task.events[removal.order + 1 :]
        if event.kind is EventKind.CALL and event.method == "set" and event.receiver
    }


def _waits_for_task(
    function: FunctionFacts,
    lock_removal: Event,
    task: FunctionFacts,
    removal: Event,
    spawner: FunctionFacts,
    start: Event,
) -> bool:
    """The lock is removed only once the task has finished its teardown.

    Before the removal, the remover waits for an event the task sets after
    removing its state, awaits the task object (`task = create_task(...)`;
    `await task`), or leaves the nursery / task group the task runs in.
    """
    earlier = [
        event
        for event in function.events[: lock_removal.order]
        if not exclusive(event, lock_removal)
    ]
    ends = _signals_end(task, removal) - {""}
    if any(
        event.kind is EventKind.CALL
        and event.awaited
        and is_wait_call(event)
        and event_name(event.receiver) in ends
        for event in earlier
    ):
        return True
    if spawner is not function:
        return False
    parents = function_parents(function)
    handle = _task_handle(parents, start.node)
    if handle is not None and any(
        event.kind is EventKind.CHECKPOINT
        and isinstance(event.node, ast.Await)
        and ast.unparse(event.node.value) == handle
        for event in earlier
    ):
        return True
    nursery = _enclosing_nursery(parents, start)
    return nursery is not None and not _inside(parents, nursery, lock_removal.node)


def _task_handle(parents: dict[ast.AST, tuple[ast.AST, str]], call: ast.AST) -> str | None:
    """`task` of `task = asyncio.create_task(...)`."""
    parent = parents.get(call)
    if parent is None:
        return None
    statement = parent[0]
    if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
        return ast.unparse(statement.targets[0])
    if isinstance(statement, ast.AnnAssign):
        return ast.unparse(statement.target)
    return None


def _enclosing_nursery(
    parents: dict[ast.AST, tuple[ast.AST, str]], start: Event
) -> ast.AsyncWith | None:
    """The `async with open_nursery() as n:` whose `n` starts the task."""
    node: ast.AST = start.node
    while node in parents:
        node = parents[node][0]
        if isinstance(node, ast.AsyncWith) and any(
            item.optional_vars is not None and ast.unparse(item.optional_vars) == start.receiver
            for item in node.items
        ):
            return node
    return None


def _inside(parents: dict[ast.AST, tuple[ast.AST, str]], ancestor: ast.AST, node: ast.AST) -> bool:
    while node in parents:
        node = parents[node][0]
        if node is ancestor:
            return True
    return False


def _check(rule: Rule, module: ModuleFacts) -> Iterator[Detection]:
    # The lock removals first: most modules have none (and then need no tasks),
    # and only functions naming both a lock and a removal can hold one.
    removing = module.functions_naming(REMOVALS, REMOVALS.__contains__)
    removals = [
        (function, event)
        for function in module.functions_naming(LOCK_WORDS, is_lock_text, removing)
        for event in function.events
        if event.kind is EventKind.WRITE
        and event.removal
        and event.key is not None
        and holds_locks(event.state)
    ]
    tasks = _task_functions(module) if removals else {}
    if not tasks:
        return
    for function, event in removals:
        for qualname, (spawner, start) in tasks.items():
            task = module.function(qualname)
            if task is None or task is function:
                continue
            late = _late_removal(task, event.owner)
            if late is None:
                continue
            checkpoint, removal = late
            if _waits_for_task(function, event, task, removal, spawner, start):
                continue
            yield rule.detect(
                function,
                event.location,
                f"`{event.state}` entry is removed here while `{task.qualname}` (started "
                f"at line {start.location.line + 1}) may still be tearing down "
                f"`{removal.state}` (line {removal.location.line + 1}, after a checkpoint): "
                "the next task gets a new lock and sees half-torn-down state",
                LockOutlived(event, task, removal, checkpoint, spawner, start),
                [
                    (removal.location, f"state removed later by {task.qualname}"),
                    (checkpoint.location, f"checkpoint in {task.qualname} before it"),
                    (start.location, "the task is started here"),
                ],
            )
            break


class LockOutlivedByState(Rule):
    code = "CONC204"
    name = "lock-outlived-by-state"
    category = "lifetime mismatch"
    explanation = (
        "the lock has a shorter lifetime than the state it protects: it is popped while "
        "another task still tears that state down."
    )
    effort = EFFORT
    sketch_title = "Tie the lock's lifetime to the teardown"
    brief = "a lock popped from its map while a started task still tears down the state it guards"
    rank = 0

    def check(self, module: ModuleFacts) -> Iterator[Detection]:
        return _check(self, module)

    def trace(
        self, program: Program, b: TraceBuilder, function: FunctionFacts, detection: Detection
    ) -> Trace | None:
        if isinstance(detection.evidence, LockOutlived):
            return trace(program, b, function, detection.evidence)
        return None

    def words(self, evidence: Evidence, trace: Trace) -> Words:
        s = trace.steps_text
        return Words(
            f"The entries are removed by the last user in one step with no checkpoint, before "
            f"the lock is popped ({s('pop')}): `{lock_task(trace)}` no longer removes anything "
            f"after waking, so the window ({trace.window_words}) is gone: Task B finds neither "
            "entry and starts afresh.",
            "The started task no longer owns the cleanup of the entries; the old context's exit "
            "may overlap a new context for the same key.",
            "If two contexts for one key must never overlap, Task B must instead wait (under the "
            "lock) for an event the started task sets at its very end. Popping a lock that other "
            "tasks wait on still lets a newcomer create a second lock: keep the lock, or pop it "
            "only when no task waits for it.",
        )

    def sketches(
        self,
        program: Program,
        detection: Detection,
        trace: Trace,
        name: str,
        lines: list[str],
        has_quick_fix: bool,
    ) -> list[ProposedFix]:
        evidence = detection.evidence
        function = program.by_qualname.get(detection.finding.function)
        if not isinstance(evidence, LockOutlived) or function is None:
            return []
        sketch = sketch_unpublish(function, evidence, name, lines)
        return [sketch] if sketch is not None else []


RULE = LockOutlivedByState()
