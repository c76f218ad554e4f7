"""CONC102 unshielded-await-in-cleanup

## What it does
Flags the first checkpoint of a cleanup block (`finally`, the teardown of an
async context manager after its `yield`, `__aexit__`, `aclose`) that is not
inside a shielded cancel scope. One finding per cleanup block; the first line
a cancellation would skip (what runs after the checkpoint, up to a `return`
or `raise`) is given as related information.

## Why is this bad?
In trio and anyio, cancellation is level-triggered: once the enclosing scope
is cancelled, *every* checkpoint raises `Cancelled`, including the ones in
`finally`. The cleanup is then cut short at its first `await` and the rest
of it (releasing, closing, popping state) never runs. asyncio code is not
checked (a module that imports only asyncio, or a function that names asyncio
and neither trio nor anyio): asyncio delivers a cancellation once.

Not flagged:
- explicit checkpoints (`trio.lowlevel.checkpoint()`, `sleep(0)` in any
  library) and `aclose_forcefully()` (made to run under cancellation);
- `await x.aclose()` / `await x.__aexit__(...)` when nothing of its cleanup
  block runs after it: closing is cancel-safe by contract;
- the exit of an `async with` entered before the cleanup began (a nursery
  wrapping an acm's `yield`): that exit is the context manager's own cleanup;
- a checkpoint in the body of a `try` whose handler catches `BaseException`,
  `Cancelled` or everything: the cancellation is handled there;
- awaiting a method of the same class (or a function of the same module)
  that has no checkpoint at all and is not an abstract stub.

A shield whose value is only known at run time (`shield=flag`,
`cs.shield = flag`) gives an informational finding.

## Example
```python
try:
    await serve()
finally:
    await conn.send_goodbye()
    registry.pop(conn.id)
```

## Use instead
```python
try:
    await serve()
finally:
    with trio.move_on_after(2, shield=True):
        await conn.send_goodbye()
    registry.pop(conn.id)
```

## Fix
Shield and bound the cleanup: `with trio.move_on_after(T, shield=True):`
(anyio likewise). Safe: the cleanup keeps its order and gains a deadline.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass

from conc_lsp.analysis.cleanup import (
    FunctionTree,
    is_explicit_checkpoint,
    where_in_cleanup,
)
from conc_lsp.analysis.events import Event, EventKind, FunctionFacts, ModuleFacts
from conc_lsp.analysis.libraries import last_name
from conc_lsp.analysis.model import Fix, Severity, Shield, Verdict
from conc_lsp.analysis.program import Program
from conc_lsp.analysis.reach import awaited_call
from conc_lsp.fixes.context import FixContext
from conc_lsp.rules.base import Detection, Evidence, Rule, Words, checkpoint_verdict, describe
from conc_lsp.rules.story import Trace, TraceBuilder

CLOSERS = frozenset({"aclose", "__aexit__"})
# Closing by force is cancellation-safe by design. An explicit checkpoint
# (`trio.lowlevel.checkpoint()`, `sleep(0)`) in a `finally` is a cancellation
# point like any other; in `aclose` / `__aexit__` it is how they checkpoint.
CANCEL_SAFE = frozenset({"aclose_forcefully", "cancel_shielded_checkpoint"})


@dataclass(frozen=True, slots=True)
class UnshieldedCleanup(Evidence):
    """The first unshielded checkpoint of a cleanup block, and the first event
    after it that a cancellation there would skip."""

    checkpoint: Event
    skipped: Event | None


def _check(rule: Rule, module: ModuleFacts) -> Iterator[Detection]:
    for function in module.functions:
        if not module.level_triggered(function):
            continue  # asyncio delivers a cancellation once; an unknown library: no claim
        reported: set[int] = set()
        tree: FunctionTree | None = None
        for checkpoint in function.checkpoints:
            context = checkpoint.context
            if context.in_except is not None and not context.in_finally:
                continue  # CONC103's ground
            if not (context.in_finally or context.acm_teardown or context.in_aexit):
                continue
            if context.shielded is Shield.YES or checkpoint.cleanup_block in reported:
                continue
            if checkpoint.exit and _entered_outside(function, checkpoint):
                continue  # the `async with` wraps the cleanup: its exit is its own cleanup
            call = awaited_call(function, checkpoint)
            if call is not None and (
                last_name(call.callee) in CANCEL_SAFE
                or (is_explicit_checkpoint(call) and not context.in_finally)
                or _never_checkpoints(module, function, call)
            ):
                continue
            if checkpoint_verdict(module, function, checkpoint) is Verdict.NEVER:
                continue  # resolved: the callee never yields, so no Cancelled arrives here
            if tree is None:
                tree = FunctionTree(function.node)
            if tree.cancellation_handled(checkpoint.node):
                continue  # `try: await x` / `except BaseException: ...`: handled there
            following = tree.following(checkpoint.node)
            skipped = [
                event
                for event in function.events[checkpoint.order + 1 :]
                if event.cleanup_block == checkpoint.cleanup_block
                and event.kind in (EventKind.CALL, EventKind.WRITE)
                and tree.runs_in(event.node, following)
            ]
            if call is not None and call.method in CLOSERS and not skipped:
                continue  # closing last: aclose()/__aexit__() close even when cancelled
            reported.add(checkpoint.cleanup_block)
            related = []
            if skipped:
                first = skipped[0]
                related.append((first.location, "skipped when the checkpoint above is cancelled"))
            what = "await " + describe(call, "...") if call else module.source(checkpoint.location)
            if context.shielded is Shield.MAYBE:
                yield rule.detect(
                    function,
                    checkpoint.location,
                    f"`{what}` in {where_in_cleanup(context)} is shielded only if the "
                    "runtime shield value is true; otherwise a cancellation stops the "
                    "cleanup here",
                    UnshieldedCleanup(checkpoint, skipped[0] if skipped else None),
                    related,
                    severity=Severity.INFORMATION,
                )
                continue
            yield rule.detect(
                function,
                checkpoint.location,
                f"unshielded `{what}` in {where_in_cleanup(context)}: if the scope is "
                "being cancelled, the cleanup stops here and the rest of it never runs",
                UnshieldedCleanup(checkpoint, skipped[0] if skipped else None),
                related,
            )


def _entered_outside(function: FunctionFacts, exit_checkpoint: Event) -> bool:
    """The `async with` of this exit was entered before its cleanup block began."""
    for event in function.events[: exit_checkpoint.order]:
        if event.kind is EventKind.CHECKPOINT and event.node is exit_checkpoint.node:
            return event.cleanup_block != exit_checkpoint.cleanup_block
    return False


def _never_checkpoints(module: ModuleFacts, function: FunctionFacts, call: Event) -> bool:
    """`await self.stop()` where `stop` (a method of this class, or a function of this
    module) has no checkpoint at all: awaiting it cannot raise `Cancelled`."""
    if not call.method:
        return False
    if call.receiver in ("self", "cls") and function.class_name:
        owner = function.qualname.rsplit(".", 1)[0]
        target = module.function(f"{owner}.{call.method}")
    elif call.receiver is None:
        target = module.function(call.method)
    else:
        return False
    return (
        target is not None
        and target.is_async
        and not target.checkpoints
        and not _is_stub(target.node)
    )


def _is_stub(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """An abstract method or a body of only docstring / `...` / `pass` / `raise`:
    its overrides decide whether it checkpoints."""
    if any(
        last_name(_decorator_name(decorator)) == "abstractmethod"
        for decorator in node.decorator_list
    ):
        return True
    return all(
        isinstance(statement, (ast.Pass, ast.Raise))
        or (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant))
        for statement in node.body
    )


def _decorator_name(decorator: ast.expr) -> str:
    if isinstance(decorator, ast.Attribute):
        return decorator.attr
    return decorator.id if isinstance(decorator, ast.Name) else ""


def _trace(
    module: Program, b: TraceBuilder, function: FunctionFacts, evidence: UnshieldedCleanup
) -> Trace | None:
    b.add(
        "Task B",
        None,
        "cancels the scope Task A runs in (an error in a sibling, a timeout, shutdown)",
        "cancel",
    )
    b.add("Task A", None, "unwinds → the cleanup runs", "enter")
    b.add(
        "Task A",
        evidence.checkpoint.location.line,
        "CHECKPOINT, unshielded: `Cancelled` is raised here at once",
        "checkpoint",
    )
    if evidence.skipped is not None:
        line = evidence.skipped.location.line
        b.add("Task A", line, "never runs, nor the rest of the cleanup", "skipped")
    else:
        b.add("Task A", None, "the rest of the cleanup never runs", "skipped")
    return b.build(
        [f"Task A runs `{function.qualname}`; Task B is whatever cancels it."],
        (b.roles["checkpoint"], b.roles["skipped"]),
        "the cleanup stops half-way",
    )


class UnshieldedAwaitInCleanup(Rule):
    code = "CONC102"
    name = "unshielded-await-in-cleanup"
    category = "atomicity gap"
    explanation = (
        "the cleanup should run as a whole, but its first checkpoint is where a "
        "cancellation stops it."
    )
    effort = "simple"
    sketch_title = "Shield and bound the cleanup"
    brief = (
        "the first unshielded checkpoint of a cleanup block: a cancellation stops the cleanup there"
    )
    fixes_offered = (
        (
            (
                "shield and bound the rest of the cleanup block (`CancelScope(shield=True)` when "
                "it is already bounded)"
            ),
            "safe",
        ),
    )
    rank = 8

    def check(self, module: ModuleFacts) -> Iterator[Detection]:
        return _check(self, module)

    def fix(self, detection: Detection, module: ModuleFacts, context: FixContext) -> Fix | None:
        from conc_lsp.fixes import cleanup  # libcst loads only when fixing (start-up cost)

        return cleanup.shield_cleanup(detection.finding, module, context)

    def trace(
        self, program: Program, b: TraceBuilder, function: FunctionFacts, detection: Detection
    ) -> Trace | None:
        if isinstance(detection.evidence, UnshieldedCleanup):
            return _trace(program, b, function, detection.evidence)
        return None

    def words(self, evidence: Evidence, trace: Trace) -> Words:
        s = trace.steps_text
        return Words(
            f"The cleanup from {s('checkpoint')} on runs shielded and bounded: the cancellation "
            f"of {s('cancel')} cannot stop it half-way, so {s('skipped')} runs.",
            "The cleanup can delay the cancellation by up to the bound.",
            "A cleanup that hangs inside the shield is ended only by the bound: keep it short.",
        )


RULE = UnshieldedAwaitInCleanup()
