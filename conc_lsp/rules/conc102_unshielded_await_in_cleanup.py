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

from conc_lsp.analysis.cancellation import can_be_cancelled, significant
from conc_lsp.analysis.cleanup import (
    FunctionTree,
    is_explicit_checkpoint,
    where_in_cleanup,
)
from conc_lsp.analysis.events import Event, FunctionFacts, ModuleFacts
from conc_lsp.analysis.model import Fix, Severity, Shield, Verdict
from conc_lsp.analysis.program import Program
from conc_lsp.analysis.reach import awaited_call
from conc_lsp.fixes.context import FixContext
from conc_lsp.rules.base import Detection, Evidence, Rule, Words, checkpoint_verdict, describe
from conc_lsp.rules.story import Trace, TraceBuilder

CLOSERS = frozenset({"aclose", "__aexit__"})


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
            if call is not None and is_explicit_checkpoint(call) and not context.in_finally:
                continue  # how an `aclose` / `__aexit__` checkpoints on purpose
            if not can_be_cancelled(module, function, checkpoint):
                continue  # the callee never suspends, or only under a shield
            if checkpoint_verdict(module, function, checkpoint) is Verdict.NEVER:
                continue  # resolved: the callee never yields, so no Cancelled arrives here
            if tree is None:
                tree = FunctionTree(function.node)
            if tree.cancellation_handled(checkpoint.node):
                continue  # `try: await x` / `except BaseException: ...`: handled there
            following = tree.following(checkpoint.node)
            body = _async_with_body(function, tree, checkpoint)
            skipped = [
                event
                for event in function.events[checkpoint.order + 1 :]
                if significant(event)
                and (
                    event.order in body
                    or (
                        event.cleanup_block == checkpoint.cleanup_block
                        and tree.runs_in(event.node, following)
                    )
                )
            ]
            if not skipped:
                # Nothing left to skip: the checkpoint ends the cleanup (an `aclose()`
                # closes even when cancelled; flags and log lines may go).
                continue
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


def _async_with_body(function: FunctionFacts, tree: FunctionTree, checkpoint: Event) -> set[int]:
    """The events inside an `async with` whose entry is ``checkpoint`` (a
    cancellation there skips its whole body)."""
    if checkpoint.exit:
        return set()
    for ancestor, _ in tree.ancestors(checkpoint.node):
        if isinstance(ancestor, ast.AsyncWith):
            if not any(item.context_expr is checkpoint.node for item in ancestor.items):
                return set()
            first = ancestor.body[0].lineno - 1
            last = (ancestor.end_lineno or ancestor.lineno) - 1
            return {
                event.order
                for event in function.events[checkpoint.order + 1 :]
                if first <= event.location.line <= last
            }
    return set()


def _entered_outside(function: FunctionFacts, exit_checkpoint: Event) -> bool:
    """The `async with` of this exit was entered before its cleanup block began."""
    return exit_checkpoint.entry_block != exit_checkpoint.cleanup_block


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
    opt_in = True
    opt_in_reason = (
        "precision on unseen real code 0.50 (round 3: 5 true, 1 deliberate, 5 wrong) and "
        "0.07 (round 4: 1 / 0 / 14)"
    )
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
                "shield and bound the rest of the cleanup block with `move_on_after(T, "
                "shield=True)` (a bare shield would defeat an enclosing bound)"
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
