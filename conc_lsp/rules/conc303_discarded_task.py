"""CONC303 discarded-task

## What it does
Flags `asyncio.create_task(...)`, `asyncio.ensure_future(...)` and
`loop.create_task(...)` whose result is thrown away: the call is a statement
of its own, so nothing keeps the task.

Not flagged: a task kept in a variable, a container or an attribute, or
returned; `TaskGroup.create_task` / `tg.create_task` (the group keeps its
tasks) and trio's / anyio's `start_soon` (the nursery does).

## Why is this bad?
The event loop keeps only a weak reference to a task. A task that nobody
else references can be garbage-collected before it finishes: its work stops
half-way, silently, and an exception it raises is never seen. The
documentation of `asyncio.create_task` says: "Save a reference to the
result of this function, to avoid a task disappearing mid-execution."
(flake8-async ASYNC300, ruff RUF006.)

## Example
```python
async def handle(request):
    asyncio.create_task(audit_log(request))
    return await respond(request)
```

## Use instead
```python
background_tasks = set()

async def handle(request):
    task = asyncio.create_task(audit_log(request))
    background_tasks.add(task)
    task.add_done_callback(background_tasks.discard)
    return await respond(request)
```

## Fix
No automatic fix: where the reference should live (a set on the object, a
task group) is a design decision.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass

from conc_lsp.analysis.events import Event, EventKind, FunctionFacts, ModuleFacts
from conc_lsp.analysis.libraries import last_name
from conc_lsp.analysis.program import Program
from conc_lsp.analysis.reach import function_parents
from conc_lsp.rules.base import Detection, Evidence, Rule, Words
from conc_lsp.rules.story import Trace, TraceBuilder

TASK_FACTORIES = frozenset({"asyncio.create_task", "asyncio.ensure_future"})
# Receivers that name an event loop: `loop.create_task(...)`, `self._loop.create_task(...)`.
LOOP_WORDS = ("loop",)


@dataclass(frozen=True, slots=True)
class DiscardedTask(Evidence):
    """A task created and not kept."""

    call: Event


def _creates_unowned_task(call: Event) -> bool:
    if call.callee in TASK_FACTORIES:
        return True
    if call.method not in ("create_task", "ensure_future"):
        return False
    receiver = (call.receiver or "").rsplit(".", 1)[-1].lower()
    return receiver.endswith(LOOP_WORDS) or last_name(call.callee) in (
        "get_event_loop",
        "get_running_loop",
    )


def _check(rule: Rule, module: ModuleFacts) -> Iterator[Detection]:
    for function in module.functions:
        calls = [
            event
            for event in function.events
            if event.kind is EventKind.CALL and _creates_unowned_task(event)
        ]
        if not calls:
            continue
        parents = function_parents(function)
        for call in calls:
            parent = parents.get(call.node)
            if parent is None or not isinstance(parent[0], ast.Expr):
                continue
            what = f"{call.receiver}.{call.method}" if call.receiver else call.method
            yield rule.detect(
                function,
                call.location,
                f"the task of `{what}(...)` is not kept: the event loop holds only a weak "
                "reference, so it can be garbage-collected before it finishes; keep a "
                "reference (a set of background tasks, or a task group)",
                DiscardedTask(call),
            )


class DiscardedTaskRule(Rule):
    code = "CONC303"
    name = "discarded-task"
    opt_in = True
    opt_in_reason = (
        "precision on unseen real code 0.24 (round 3: 4 true, 3 deliberate, 13 wrong) "
        "and 0.00 (round 4: 0 / 0 / 11)"
    )
    category = "lifetime mismatch"
    explanation = (
        "the task lives only as long as something references it, and nothing does: it can "
        "be collected before its work is done."
    )
    effort = "simple"
    sketch_title = "Keep a reference to the task"
    brief = "`asyncio.create_task(...)` whose task is not kept: it can be collected mid-run"
    rank = 12

    def check(self, module: ModuleFacts) -> Iterator[Detection]:
        return _check(self, module)

    def trace(
        self, program: Program, b: TraceBuilder, function: FunctionFacts, detection: Detection
    ) -> Trace | None:
        evidence = detection.evidence
        if not isinstance(evidence, DiscardedTask):
            return None
        line = evidence.call.location.line
        b.add("Task A", line, "creates the task and drops the only strong reference", "create")
        b.add("Task B", None, "runs until its first checkpoint, then waits", "start")
        b.add("gc", None, "collects the unreferenced task while it waits", "collect")
        b.add("Task B", None, "never resumes: its work and its errors are lost", "lost")
        return b.build(
            [f"Task A runs `{function.qualname}`; Task B is the task it creates."],
            (b.roles["create"], b.roles["lost"]),
            "nothing keeps Task B alive between its checkpoints",
        )

    def words(self, evidence: Evidence, trace: Trace) -> Words:
        s = trace.steps_text
        return Words(
            f"A strong reference to the task removes {s('collect')}: it runs to its end.",
            "The set of background tasks must drop each task when it is done (a done callback).",
            "Tasks kept forever leak; a task group instead also waits for them and sees errors.",
        )


RULE = DiscardedTaskRule()
