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
from dataclasses import dataclass

from conc_lsp.analysis.flow import (
    Event,
    EventKind,
    FunctionFacts,
    ModuleFacts,
    event_name,
    exclusive,
)
from conc_lsp.analysis.model import TextEdit
from conc_lsp.analysis.program import (
    ACCESS_KINDS,
    INITIALISERS,
    Program,
    is_lock_map,
    own_nodes,
    unparse,
)
from conc_lsp.analysis.reach import function_parents, is_lock_state
from conc_lsp.rules.base import Detection, Evidence, Rule, Words, is_wait_call
from conc_lsp.rules.story import (
    ProposedFix,
    Trace,
    TraceBuilder,
    checkpoint_step,
    delete_statements,
    entry_words,
    first_event,
    indentation,
    ref,
    renumber,
    state_text,
    statement_of,
    unified_diff,
)

SPAWNERS = frozenset({"start", "start_soon", "create_task", "ensure_future"})


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
            and not is_lock_state(event.state)
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


@dataclass(frozen=True, slots=True)
class LockOutlived(Evidence):
    """A lock popped from its map (``pop``) while a started task (``task``,
    started by ``spawner`` at ``start``) still removes the state it guards
    (``late``), after a checkpoint (``checkpoint``)."""

    pop: Event
    task: FunctionFacts
    late: Event
    checkpoint: Event
    spawner: FunctionFacts
    start: Event


def _check(rule: Rule, module: ModuleFacts) -> Iterator[Detection]:
    tasks = _task_functions(module)
    if not tasks:
        return
    for function in module.functions:
        for event in function.events:
            if not (
                event.kind is EventKind.WRITE
                and event.removal
                and event.key is not None
                and is_lock_state(event.state)
            ):
                continue
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


EFFORT = "complex"


def _trace(
    module: Program, b: TraceBuilder, function: FunctionFacts, evidence: LockOutlived
) -> Trace | None:
    removal, task, late = evidence.pop, evidence.task, evidence.late
    spawner, start = evidence.spawner, evidence.start
    t = f"{module.display(task.qualname)}"
    starter = "Task A starts" if spawner is function else f"`{spawner.qualname}` starts"
    tasks = [
        f"Task A and Task B run `{function.qualname}`; `{t}` is the task {starter} "
        f"at {ref(start.location.line)}."
    ]
    a = "Task A"
    if spawner is function:
        acquire = first_event(
            e
            for e in function.events[: start.order]
            if e.kind is EventKind.CALL
            and e.method == "acquire"
            and e.awaited
            and e.receiver
            and not exclusive(e, start)
        )
        lock_text = acquire.receiver if acquire is not None and acquire.receiver else None
        if acquire is not None and lock_text:
            b.add(
                a,
                acquire.location.line,
                f"acquires {module.lock_name(function, lock_text)}",
                "acquire",
            )
        begin = acquire.order if acquire is not None else 0
        for event in function.events[begin : start.order]:
            if (
                event.kind is EventKind.WRITE
                and event.owner == removal.owner
                and not exclusive(event, start)
                and not is_lock_map(event.state)
            ):
                b.add(a, event.location.line, f"creates {state_text(event)}", "create")
        created = [
            state_text(e)
            for e in task.events
            if e.kind is EventKind.WRITE
            and not e.removal
            and e.owner == removal.owner
            and not is_lock_map(e.state)
        ]
        which = f", which creates {', '.join(dict.fromkeys(created))}" if created else ""
        b.add(a, start.location.line, f"starts `{t}`{which}", "start")
        release = first_event(
            e
            for e in function.events[start.order : removal.order]
            if e.kind is EventKind.CALL
            and e.method == "release"
            and not exclusive(e, start)
            and (lock_text is None or e.receiver == lock_text)
        )
        if release is not None:
            b.add(
                a,
                release.location.line,
                f"releases `{release.receiver}` (not a checkpoint)",
                "release",
            )
        yielded = _yield_between(module, function, start.location.line, removal.location.line)
        if yielded is not None:
            b.add(a, yielded, "yields to the caller → SUSPEND (caller runs)", "yield")
            b.add(a, None, "the caller's block ends → the teardown runs", "teardown")
    setter = first_event(
        e
        for e in reversed(function.events[: removal.order])
        if e.kind is EventKind.CALL
        and e.method == "set"
        and e.receiver
        and not exclusive(e, removal)
    )
    wait: Event | None = None
    if setter is not None and setter.receiver:
        name = setter.receiver.rsplit(".", 1)[-1]
        wait = first_event(
            e
            for e in task.events
            if e.kind is EventKind.CALL
            and e.method == "wait"
            and e.awaited
            and e.receiver
            and e.receiver.rsplit(".", 1)[-1] == name
        )
        woken = f"wakes `{t}`" if wait is not None else "wakes the waiters"
        b.add(a, setter.location.line, f"sets `{setter.receiver}`: {woken}, no switch yet", "set")
    b.add(a, removal.location.line, f"pops the lock from `{removal.state}`", "pop")
    if wait is not None:
        b.add(t, wait.location.line, f"wakes from `{wait.receiver}.wait()`", "wake")
    removals = [
        e
        for e in task.events[late.order :]
        if e.kind is EventKind.WRITE
        and e.removal
        and e.owner == removal.owner
        and not is_lock_map(e.state)
    ]
    b.add(t, late.location.line, f"removes {state_text(late)}", "late")
    after = first_event(
        e
        for e in task.events[late.order + 1 :]
        if e.kind is EventKind.CHECKPOINT and not exclusive(e, late)
    )
    later = first_event(e for e in removals[1:] if after is not None and e.order > after.order)
    if after is not None:
        b.add(
            t,
            after.location.line,
            f"{checkpoint_step(module, after)}: `{t}` is switched out",
            "checkpoint",
        )
    creator = _lock_creator(module, removal)
    first_b: int | None = None
    if creator is not None and creator[0] is not function:
        tasks[0] = (
            f"Task A runs `{function.qualname}`, Task B `{creator[0].qualname}`; `{t}` is the "
            f"task {starter} at {ref(start.location.line)}."
        )
    if creator is not None:
        owner, event = creator
        first_b = b.add(
            "Task B",
            event.location.line,
            f"creates a NEW lock in `{removal.state}` (the old one was popped)",
            "new_lock",
        )
        acquire_b = first_event(
            e
            for e in owner.events[event.order :]
            if e.kind is EventKind.CALL and e.method == "acquire" and e.awaited
        )
        if acquire_b is not None:
            b.add("Task B", acquire_b.location.line, "acquires it at once", "acquire_b")
        begin = acquire_b.order if acquire_b is not None else event.order
        seen = first_event(
            e
            for e in owner.events[begin:]
            if e.kind in ACCESS_KINDS and e.state == late.state and e.key == late.key
        )
        if seen is not None:
            if after is not None:
                b.add(
                    "Task B", seen.location.line, entry_words(module, seen, gone=True), "sees_gone"
                )
            else:
                verb = "writes" if seen.kind is EventKind.WRITE else "reads"
                b.add(
                    "Task B",
                    seen.location.line,
                    f"{verb} {state_text(seen)}, which STILL EXISTS and is about to be removed",
                    "sees_gone",
                )
        if later is not None:
            still = first_event(
                e
                for e in owner.events[begin:]
                if e.kind in ACCESS_KINDS and e.state == later.state and e.key == later.key
            )
            if still is not None:
                b.add(
                    "Task B",
                    still.location.line,
                    entry_words(module, still, gone=False),
                    "sees_still",
                )
    if first_b is None:
        first_b = b.add(
            "Task B",
            None,
            f"creates a NEW lock for the same key in `{removal.state}` and takes it at once",
            "new_lock",
        )
    last_b = len(b.steps)
    if after is None:
        # The task removes the state only when it next runs: Task B got in first.
        moved = [b.steps[b.roles[role] - 1] for role in ("wake", "late") if role in b.roles]
        b.steps = [step for step in b.steps if all(step is not other for other in moved)]
        renumber(b)
        for step in moved:
            role = "wake" if step.text.startswith("wakes") else "late"
            text = (
                f"removes {state_text(late)} under Task B's feet" if role == "late" else step.text
            )
            b.add(t, step.line, text, role)
        window = (b.roles["pop"], len(b.steps))
        text = (
            f"Task B holds a new lock and uses {state_text(late)} while `{t}` is about to remove it"
        )
        return b.build(tasks, window, text)
    if later is not None:
        stolen = (
            " (the entry Task B just wrote)"
            if b.roles.get("sees_still")
            and b.steps[b.roles["sees_still"] - 1].text.startswith("writes")
            else ""
        )
        b.add(t, later.location.line, f"removes {state_text(later)}{stolen}", "later")
    window = (b.roles["late"], last_b)
    text = f"{state_text(late)} is gone"
    if later is not None:
        text += f" while {state_text(later)} still exists"
    text += ", and Task B holds a new lock"
    return b.build(tasks, window, text)


def _lock_creator(module: Program, removal: Event) -> tuple[FunctionFacts, Event] | None:
    """Where a lock entry of the same map is created (`locks.setdefault(k, Lock())`)."""
    for function in module.functions:
        if function.name in INITIALISERS:
            continue
        for event in function.events:
            if (
                event.kind is EventKind.WRITE
                and event.state == removal.state
                and not event.removal
                and event.key is not None
            ):
                return function, event
    return None


def _yield_between(module: Program, function: FunctionFacts, after: int, before: int) -> int | None:
    for node in own_nodes(function.node):
        if isinstance(node, (ast.Yield, ast.YieldFrom)) and after < node.lineno - 1 < before:
            candidates = [
                n.lineno - 1
                for n in own_nodes(function.node)
                if isinstance(n, (ast.Yield, ast.YieldFrom)) and after < n.lineno - 1 < before
            ]
            return min(candidates)
    return None


def _sketch_unpublish(
    function: FunctionFacts, evidence: LockOutlived, name: str, lines: list[str]
) -> ProposedFix | None:
    """The last user removes the entries itself, in one step, before it wakes
    the task and pops the lock; the task only exits its context."""
    removal, task, late = evidence.pop, evidence.task, evidence.late
    removals = [
        e
        for e in task.events[late.order :]
        if e.kind is EventKind.WRITE
        and e.removal
        and e.owner == removal.owner
        and not is_lock_map(e.state)
        and e.key is not None
    ]
    keys = {e.key for e in function.events if e.key}
    if not removals or any(e.key not in keys for e in removals):
        return None
    removed = {(e.state, e.key) for e in removals}
    woken = _woken_at(task, function, removal) or _last_checkpoint_before(task, late)
    if any(
        e.kind in ACCESS_KINDS
        and not e.removal
        and (e.state, e.key) in removed
        and (woken is None or e.order > woken.order)
        and e.order < removals[-1].order
        for e in task.events
    ):
        return None  # the task still uses the entries after waking: they must stay
    setter = first_event(
        e
        for e in reversed(function.events[: removal.order])
        if e.kind is EventKind.CALL and e.method == "set" and not exclusive(e, removal)
    )
    anchor_event = setter or removal
    anchor = statement_of(function, anchor_event.node)
    if anchor is None:
        return None
    # The entry that holds the event must be read before it is removed: insert
    # after a statement that reads it, if any, else before the anchor.
    insert_at = anchor.lineno - 1
    indent = indentation(lines[insert_at])
    new_lines = []
    statements: list[ast.stmt] = []
    owner_text = _owner_text(function, removal)
    for event in removals:
        statement = statement_of(task, event.node)
        if statement is None:
            return None
        call = event.node if isinstance(event.node, ast.Call) else None
        text = unparse(call) if call is not None else unparse(statement)
        if isinstance(event.node, ast.Subscript):
            text = f"del {unparse(event.node)}"
        text = _respell(text, task, owner_text)
        new_lines.append(f"{indent}{text}")
        if all(statement is not other for other in statements):
            statements.append(statement)
    edits = delete_statements(task, statements, lines)
    edits.append(TextEdit((insert_at, 0), (insert_at, 0), "\n".join(new_lines) + "\n"))
    diff = unified_diff(lines, edits, name)
    if not diff:
        return None
    return ProposedFix(
        title=(
            f"Remove the entries in `{function.qualname}`, in one step before the lock goes; "
            f"`{task.qualname}` only exits its context"
        ),
        kind="sketch-diff",
        diff=diff,
        sketch="",
        closes="",
        tradeoffs="",
        risk="",
        effort=EFFORT,
        edits=tuple(edits),
    )


def _woken_at(task: FunctionFacts, function: FunctionFacts, removal: Event) -> Event | None:
    """The checkpoint where ``task`` waits for an event ``function`` sets before ``removal``."""
    names = {
        (e.receiver or "").rsplit(".", 1)[-1]
        for e in function.events[: removal.order]
        if e.kind is EventKind.CALL and e.method == "set" and e.receiver
    }
    for event in task.events:
        if (
            event.kind is EventKind.CALL
            and event.method == "wait"
            and event.awaited
            and (event.receiver or "").rsplit(".", 1)[-1] in names
            and event.order + 1 < len(task.events)
        ):
            return task.events[event.order + 1]
    return None


def _last_checkpoint_before(function: FunctionFacts, event: Event) -> Event | None:
    found = None
    for other in function.events[: event.order]:
        if other.kind is EventKind.CHECKPOINT and not exclusive(other, event):
            found = other
    return found


def _owner_text(function: FunctionFacts, event: Event) -> str:
    """How ``function`` spells the owner of ``event``'s state (`_Cache`, `self`)."""
    text = unparse(event.node)
    return text.split(".", 1)[0] if "." in text else (event.owner or "")


def _respell(text: str, task: FunctionFacts, owner: str) -> str:
    for base in ("cls.", "self."):
        if text.startswith(base) and owner and owner != base[:-1]:
            return owner + "." + text[len(base) :]
    return text


def _lock_task(trace: Trace) -> str:
    for step in trace.steps:
        if step.task not in ("Task A", "Task B", "Task C", "child"):
            return step.task
    return "the started task"


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
    rank = 0

    def check(self, module: ModuleFacts) -> Iterator[Detection]:
        return _check(self, module)

    def trace(
        self, program: Program, b: TraceBuilder, function: FunctionFacts, detection: Detection
    ) -> Trace | None:
        if isinstance(detection.evidence, LockOutlived):
            return _trace(program, b, function, detection.evidence)
        return None

    def words(self, evidence: Evidence, trace: Trace) -> Words:
        s = trace.steps_text
        return Words(
            f"The entries are removed by the last user in one step with no checkpoint, before "
            f"the lock is popped ({s('pop')}): `{_lock_task(trace)}` no longer removes anything "
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
        sketch = _sketch_unpublish(function, evidence, name, lines)
        return [sketch] if sketch is not None else []


RULE = LockOutlivedByState()
