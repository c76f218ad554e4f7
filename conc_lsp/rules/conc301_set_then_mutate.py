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
from dataclasses import dataclass

from conc_lsp.analysis.events import (
    Event,
    EventKind,
    FunctionFacts,
    ModuleFacts,
    event_name,
    exclusive,
)
from conc_lsp.analysis.model import Severity
from conc_lsp.analysis.program import Program
from conc_lsp.analysis.reach import awaited_call
from conc_lsp.rules.base import Detection, Evidence, Rule, Words
from conc_lsp.rules.story import (
    ProposedFix,
    Trace,
    TraceBuilder,
    checkpoint_step,
    delete_statements,
    first_event,
    sketch_diff,
    state_text,
    statement_of,
)

CONSUMING_METHODS = frozenset({"pop", "popitem", "popleft"})


def _discarded_calls(function: FunctionFacts) -> set[int]:
    """Calls whose value is thrown away (`d.pop(k, None)` as a statement)."""
    return {
        id(node.value)
        for node in ast.walk(function.node)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
    }


def _readers_after_wait(module: ModuleFacts) -> dict[str, dict[str, tuple[str, Event]]]:
    """Event name -> state -> the first (waiting function, read of that state after
    a wait for the event), functions in order.

    A `pop()` whose value is used (`return self.replies.pop(key)`) reads too."""
    readers: dict[str, dict[str, tuple[str, Event]]] = {}
    for function in module.functions:
        # Each name's first wait: what follows a later wait follows the first one too.
        first_wait: dict[str, int] = {}
        for checkpoint in function.checkpoints:
            call = awaited_call(function, checkpoint)
            if call is None or call.method != "wait" or not call.receiver:
                continue
            first_wait.setdefault(event_name(call.receiver), checkpoint.order)
        if not first_wait:
            continue
        reads = _reads(function)
        # Backwards over the reads: `after` holds the first read of each state
        # after the current position, snapshotted at each name's first wait.
        waits = sorted(first_wait.items(), key=lambda item: item[1], reverse=True)
        after: dict[str, Event] = {}
        position = len(reads)
        for name, order in waits:
            while position > 0 and reads[position - 1].order > order:
                position -= 1
                after[reads[position].state or ""] = reads[position]
            if after:
                found = readers.setdefault(name, {})
                for state, read in after.items():
                    found.setdefault(state, (function.qualname, read))
    return readers


def _reads(function: FunctionFacts) -> list[Event]:
    """The events that read shared state, in order."""
    discarded: set[int] | None = None
    found = []
    for event in function.events:
        if not event.state:
            continue
        if event.kind is EventKind.WRITE and event.method in CONSUMING_METHODS:
            if discarded is None:
                discarded = _discarded_calls(function)
            if id(event.node) in discarded:
                continue
        elif event.kind not in (EventKind.READ, EventKind.TEST):
            continue
        found.append(event)
    return found


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
    for value in _bindings(function).by_name.get(receiver, ()):
        for part in ast.walk(value):
            if isinstance(part, (ast.Name, ast.Attribute)):
                sources.add(_text(part))
    return sources


@dataclass(frozen=True, slots=True)
class _Bindings:
    """What one walk of a function finds about its assignments."""

    by_name: dict[str, list[ast.expr]]  # local name -> values bound (`for`, `=`, `:=`)
    by_target: dict[int, ast.expr]  # id of an `=` target node -> its value
    first_writes: dict[str, int]  # state -> order of its first write


def _bindings(function: FunctionFacts) -> _Bindings:
    """Once per function: the rule stays linear in its length."""
    memo = function.memo.get("conc301-bindings")
    if isinstance(memo, _Bindings):
        return memo
    found = _Bindings({}, {}, {})
    for node in ast.walk(function.node):
        value: ast.expr | None = None
        targets: list[ast.expr] = []
        if isinstance(node, (ast.For, ast.AsyncFor)):
            targets, value = [node.target], node.iter
        elif isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
            found.by_target.update((id(target), node.value) for target in node.targets)
        elif isinstance(node, ast.NamedExpr):
            targets, value = [node.target], node.value
        if value is None:
            continue
        names = {
            name.id for target in targets for name in ast.walk(target) if isinstance(name, ast.Name)
        }
        for name in names:
            found.by_name.setdefault(name, []).append(value)
    for event in function.events:
        if event.kind is EventKind.WRITE and event.state is not None:
            found.first_writes.setdefault(event.state, event.order)
    function.memo["conc301-bindings"] = found
    return found


def _publishes(function: FunctionFacts, setter: Event, write: Event) -> bool:
    """`ev.set(); self.failed = True`: the first write of a value in this step,
    not a reset (None, False, 0, empty) nor an overwrite of what was written
    before the set. The waiter runs after it and reads what the setter meant."""
    if write.removal or write.augmented or write.method:
        return False
    bindings = _bindings(function)
    value = bindings.by_target.get(id(write.node))
    if value is None or _is_reset(value):
        return False
    return bindings.first_writes.get(write.state or "", write.order) >= setter.order


def _is_reset(value: ast.expr) -> bool:
    if isinstance(value, ast.Constant):
        return not value.value
    if isinstance(value, (ast.List, ast.Tuple, ast.Set)):
        return not value.elts
    if isinstance(value, ast.Dict):
        return not value.keys
    return isinstance(value, ast.Call) and not value.args and not value.keywords


@dataclass(frozen=True, slots=True)
class SetThenMutate(Evidence):
    """State changed after ``setter`` (an `Event.set()`) before the next
    checkpoint, and read by ``waiter`` (at ``read``) once it wakes."""

    setter: Event
    mutation: Event
    waiter: str  # the waiting function's qualname
    read: Event


def _check(rule: Rule, module: ModuleFacts) -> Iterator[Detection]:
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
                if _publishes(function, setter, event):
                    continue
                reader = waiting.get(event.state or "")
                if reader is None:
                    continue
                waiter, read = reader
                yield rule.detect(
                    function,
                    event.location,
                    f"`{event.state}` changes after `{setter.receiver}.set()` (line "
                    f"{setter.location.line + 1}) and before the next checkpoint: `{waiter}` "
                    f"wakes only then and reads the changed value (line {read.location.line + 1})",
                    SetThenMutate(setter, event, waiter, read),
                    [
                        (setter.location, "the event is set here; no task switch happens"),
                        (read.location, f"{waiter} reads it after waking"),
                    ],
                    severity=None if event.removal else Severity.INFORMATION,
                )


EFFORT = "moderate"


def _trace(
    module: Program, b: TraceBuilder, function: FunctionFacts, evidence: SetThenMutate
) -> Trace | None:
    mutation, setter = evidence.mutation, evidence.setter
    waiter = module.function_at(evidence.read.location)
    if waiter is None:
        return None
    woken = module.display(waiter.qualname)
    b.add(
        "Task A",
        setter.location.line,
        f"sets `{setter.receiver}`: wakes `{woken}`, no switch yet",
        "set",
    )
    b.add("Task A", mutation.location.line, f"changes {state_text(mutation)}", "mutate")
    after = first_event(
        e
        for e in function.events[mutation.order + 1 :]
        if e.kind is EventKind.CHECKPOINT and not exclusive(e, mutation)
    )
    if after is not None:
        b.add(
            "Task A",
            after.location.line,
            f"{checkpoint_step(module, after)}: Task A is switched out",
            "switch",
        )
    else:
        b.add(
            "Task A",
            None,
            "returns: Task A gives up the CPU at its caller's next checkpoint",
            "switch",
        )
    name = (setter.receiver or "").rsplit(".", 1)[-1]
    wait = first_event(
        e
        for e in waiter.events
        if e.kind is EventKind.CALL and e.method == "wait" and (e.receiver or "").endswith(name)
    )
    if wait is not None:
        b.add("Task B", wait.location.line, f"wakes from `{wait.receiver}.wait()`", "wake")
    if mutation.removal and mutation.key:
        seen = f"gone (KeyError): removed at step {b.roles['mutate']}"
    elif mutation.removal:
        seen = f"emptied at step {b.roles['mutate']}"
    else:
        seen = (
            f"the value of step {b.roles['mutate']}, not the one set before step {b.roles['set']}"
        )
    b.add("Task B", evidence.read.location.line, f"reads {state_text(mutation)} → {seen}", "read")
    return b.build(
        [f"Task A runs `{function.qualname}`; Task B waits in `{waiter.qualname}`."],
        (b.roles["mutate"], b.roles["read"]),
        f"{state_text(mutation)} changes after the hand-over, before the waiter reads it",
    )


def _sketch_leave_state(
    function: FunctionFacts, evidence: SetThenMutate, name: str, lines: list[str]
) -> ProposedFix | None:
    """Do not change the handed-over state between the set and the read."""
    mutation = evidence.mutation
    statement = statement_of(function, mutation.node)
    if statement is None or statement.lineno != (statement.end_lineno or statement.lineno):
        return None
    edits = delete_statements(function, [statement], lines)
    return sketch_diff(
        f"Do not change {state_text(mutation)} after the hand-over",
        lines,
        edits,
        name,
        EFFORT,
    )


class SetThenMutateRule(Rule):
    code = "CONC301"
    name = "set-then-mutate"
    category = "stale reference"
    explanation = (
        "the woken task reads state that the setter has already changed: it acts on a "
        "hand-over that is no longer there."
    )
    effort = EFFORT
    sketch_title = "Leave the state alone until the waiter has read it"
    brief = "shared state changed after `ev.set()` before the next checkpoint, read by the waiter"
    rank = 3
    opt_in = True
    opt_in_reason = (
        "precision on unseen real code 0.00 (round 3: both findings wrong; no finding in round 4)"
    )

    def check(self, module: ModuleFacts) -> Iterator[Detection]:
        return _check(self, module)

    def trace(
        self, program: Program, b: TraceBuilder, function: FunctionFacts, detection: Detection
    ) -> Trace | None:
        if isinstance(detection.evidence, SetThenMutate):
            return _trace(program, b, function, detection.evidence)
        return None

    def words(self, evidence: Evidence, trace: Trace) -> Words:
        s = trace.steps_text
        return Words(
            f"The change of {s('mutate')} no longer happens between the hand-over "
            f"({s('set')}) and the read ({s('read')}): the waiter reads what was set.",
            "The old value stays until the next update (or until the waiter clears it).",
            "Several waiters may read the value; if each value must be consumed once, use a "
            "memory channel instead of shared state and an event.",
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
        if not isinstance(evidence, SetThenMutate) or function is None:
            return []
        sketch = _sketch_leave_state(function, evidence, name, lines)
        return [sketch] if sketch is not None else []


RULE = SetThenMutateRule()
