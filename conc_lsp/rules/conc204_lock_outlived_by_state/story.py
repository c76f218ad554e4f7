"""CONC204's part of the concurrency report: its evidence, the race trace of a
lock popped before the state it guards is torn down, and the sketch that
removes the entries in one step before the lock goes."""

from __future__ import annotations

import ast
from dataclasses import dataclass

from conc_lsp.analysis.events import Event, EventKind, FunctionFacts, exclusive
from conc_lsp.analysis.locks import holds_mutexes
from conc_lsp.analysis.model import TextEdit
from conc_lsp.analysis.program import ACCESS_KINDS, INITIALISERS, Program
from conc_lsp.analysis.tree import own_nodes, unparse
from conc_lsp.rules.base import Evidence
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


def trace(
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
                and not holds_mutexes(event.state)
            ):
                b.add(a, event.location.line, f"creates {state_text(event)}", "create")
        created = [
            state_text(e)
            for e in task.events
            if e.kind is EventKind.WRITE
            and not e.removal
            and e.owner == removal.owner
            and not holds_mutexes(e.state)
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
        and not holds_mutexes(e.state)
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


def sketch_unpublish(
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
        and not holds_mutexes(e.state)
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


def lock_task(trace: Trace) -> str:
    for step in trace.steps:
        if step.task not in ("Task A", "Task B", "Task C", "child"):
            return step.task
    return "the started task"


EFFORT = "complex"
