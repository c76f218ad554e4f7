"""CONC103 await-in-except

## What it does
Flags a checkpoint inside an `except` handler whose cancellation does harm:
it skips a release, set or pop later in the handler, it sits in a handler of
trio's or anyio's cancellation itself, or it comes before a re-raise of the
caught exception.

- a warning when the handler goes on, after that checkpoint, to release a
  lock, set an event, close or pop state, and no `finally` around the
  checkpoint protects that line; the finding names the skipped line;
- a warning when the handler caught trio's or anyio's cancellation itself
  (`except trio.Cancelled`, `except get_cancelled_exc_class()`): the scope is
  still cancelled, so the checkpoint raises again at once;
- an informational finding when the handler re-raises the exception it caught
  after the checkpoint (a bare `raise`, or a `raise` naming its `as`
  variable): a cancellation there replaces that exception.

Not flagged: shielded checkpoints; explicit checkpoints (`checkpoint()`,
`sleep(0)`) and `aclose_forcefully()`; a handler that just does ordinary async
work (the slow path after `WouldBlock` or `KeyError`, a retry back-off);
asyncio's `except CancelledError: ...; raise`, since asyncio delivers a
cancellation once.

## Why is this bad?
`await` inside `except` can raise `Cancelled` (trio, anyio) or
`CancelledError` (asyncio). The handler is then abandoned at that point and
everything after the `await` in it is skipped, so a lock is never released
or an event never set. `maybe_open_context` in tractor releases its lock in a
`finally` inside the `except KeyError` for exactly this reason.

## Example
```python
try:
    value = cache[key]
except KeyError:
    value = await fetch(key)
    lock.release()
```

## Use instead
```python
try:
    value = cache[key]
except KeyError:
    try:
        value = await fetch(key)
    finally:
        lock.release()
```

## Fix
Move the release / set / pop that a cancellation would skip into a
`finally:` (or shield the await when it cannot move). Safe.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass

from conc_lsp.analysis.cancellation import can_be_cancelled, is_logging
from conc_lsp.analysis.cleanup import (
    FunctionTree,
    caught_names,
    is_explicit_checkpoint,
)
from conc_lsp.analysis.events import Event, EventKind, FunctionFacts, ModuleFacts, exclusive
from conc_lsp.analysis.model import Fix, Severity, Shield
from conc_lsp.analysis.program import Program
from conc_lsp.analysis.reach import awaited_call
from conc_lsp.fixes.context import FixContext
from conc_lsp.rules.base import Detection, Evidence, Rule, Words, describe
from conc_lsp.rules.story import Trace, TraceBuilder, first_event

RELEASING = frozenset({"release", "set", "pop", "popitem", "discard", "remove", "close", "cancel"})
LEVEL_CANCELLED = frozenset({"Cancelled", "get_cancelled_exc_class"})  # trio, anyio
ONE_SHOT_CANCELLED = frozenset({"CancelledError"})  # asyncio


@dataclass(frozen=True, slots=True)
class AwaitInHandler(Evidence):
    """A checkpoint in an `except` handler, and the release / set / pop after it
    that a cancellation there would skip (None: the handler re-raises, or
    catches the cancellation itself)."""

    checkpoint: Event
    skipped: Event | None = None


def _check(rule: Rule, module: ModuleFacts) -> Iterator[Detection]:
    for function in module.functions:
        # asyncio: a cancellation during the handler is a new one and raising it is right;
        # only a release it skips matters there.
        level = module.level_triggered(function)
        seen: set[int] = set()
        tree: FunctionTree | None = None
        for checkpoint in function.checkpoints:
            context = checkpoint.context
            if context.in_except is None or checkpoint.handler in seen:
                continue
            if context.shielded is Shield.YES:
                continue
            call = awaited_call(function, checkpoint)
            if call is not None and is_explicit_checkpoint(call):
                continue  # checkpoint(), sleep(0), aclose_forcefully(): cancellable by design
            if not can_be_cancelled(module, function, checkpoint):
                continue  # the callee never suspends, or only under a shield
            if tree is None:
                tree = FunctionTree(function.node)
            handler = tree.handler_of(checkpoint.node)
            if handler is not None and tree.is_loop_control(handler):
                continue
            seen.add(checkpoint.handler)
            what = "await " + describe(call, "...") if call else module.source(checkpoint.location)
            caught = f" {context.in_except}" if context.in_except else ""
            skipped = [
                event
                for event in function.events[checkpoint.order + 1 :]
                if event.handler == checkpoint.handler
                and _releases(event)
                and not exclusive(event, checkpoint)
                and not _protected(tree, event.node, checkpoint.node, handler)
            ]
            if skipped:
                first = skipped[0]
                yield rule.detect(
                    function,
                    checkpoint.location,
                    f"`{what}` in `except{caught}`: a cancellation here skips "
                    f"`{module.source(first.location)}` (line {first.location.line + 1}); "
                    "move it into a `finally`",
                    AwaitInHandler(checkpoint, first),
                    [(first.location, "skipped if the await above is cancelled")],
                )
                continue
            if not level:
                continue
            names = caught_names(handler) if handler is not None else set()
            if names & LEVEL_CANCELLED:
                yield rule.detect(
                    function,
                    checkpoint.location,
                    f"`{what}` in `except{caught}`: the scope is still cancelled, so this "
                    "checkpoint raises `Cancelled` again at once; shield it "
                    "(`CancelScope(shield=True)` with a timeout) or do without it",
                    AwaitInHandler(checkpoint),
                )
                continue
            if names and names <= ONE_SHOT_CANCELLED:
                continue  # asyncio delivers a cancellation once; re-raising it masks nothing
            if handler is not None and _reraises_after(tree, handler, checkpoint.node):
                yield rule.detect(
                    function,
                    checkpoint.location,
                    f"`{what}` in `except{caught}` can be cancelled: the cancellation then "
                    "replaces the exception this handler re-raises",
                    AwaitInHandler(checkpoint),
                    severity=Severity.INFORMATION,
                )


def _releases(event: Event) -> bool:
    if event.kind is EventKind.CALL and is_logging(event):
        return False  # `log.cancel(...)` is no release
    return (event.kind is EventKind.CALL and event.method in RELEASING) or (
        event.kind is EventKind.WRITE and event.removal
    )


def _every_skipped(function: FunctionFacts, checkpoint: Event) -> list[int]:
    """The lines of every release a cancellation at ``checkpoint`` skips (the
    finding names the first): the fix must protect them all, or it trades one
    CONC103 for the next."""
    tree = FunctionTree(function.node)
    handler = tree.handler_of(checkpoint.node)
    return sorted(
        {
            event.location.line
            for event in function.events[checkpoint.order + 1 :]
            if event.handler == checkpoint.handler
            and _releases(event)
            and not exclusive(event, checkpoint)
            and not _protected(tree, event.node, checkpoint.node, handler)
        }
    )


def _protected(
    tree: FunctionTree, node: ast.AST, checkpoint: ast.AST, handler: ast.ExceptHandler | None
) -> bool:
    """``node`` sits in the `finally` of a `try` whose body (or handlers) hold the
    checkpoint: it runs even when the checkpoint raises."""
    around_checkpoint = {
        id(ancestor): child
        for ancestor, child in tree.ancestors(checkpoint)
        if isinstance(ancestor, (ast.Try, ast.TryStar))
    }
    for ancestor, child in tree.ancestors(node):
        if ancestor is handler:
            return False
        if (
            isinstance(ancestor, (ast.Try, ast.TryStar))
            and child in ancestor.finalbody
            and id(ancestor) in around_checkpoint
            and around_checkpoint[id(ancestor)] not in ancestor.finalbody
        ):
            return True
    return False


def _reraises_after(tree: FunctionTree, handler: ast.ExceptHandler, checkpoint: ast.AST) -> bool:
    """The handler, after the checkpoint, raises the exception it caught again: a bare
    `raise`, or a `raise` naming the handler's `as` variable (`raise X from error`).
    Raises in nested handlers or functions, or on another branch, do not count."""
    start = (checkpoint.lineno, checkpoint.col_offset)  # type: ignore[attr-defined]
    stack: list[ast.AST] = list(handler.body)
    while stack:
        node = stack.pop()
        if isinstance(
            node,
            (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef, ast.ExceptHandler),
        ):
            continue
        if (
            isinstance(node, ast.Raise)
            and (node.lineno, node.col_offset) > start
            and _reraises(node, handler)
            and not tree.exclusive(node, checkpoint)
        ):
            return True
        stack.extend(ast.iter_child_nodes(node))
    return False


def _reraises(node: ast.Raise, handler: ast.ExceptHandler) -> bool:
    if node.exc is None:
        return True
    return handler.name is not None and any(
        isinstance(part, ast.Name) and part.id == handler.name for part in ast.walk(node)
    )


def _trace(
    module: Program, b: TraceBuilder, function: FunctionFacts, evidence: AwaitInHandler
) -> Trace | None:
    checkpoint = evidence.checkpoint
    caught = checkpoint.context.in_except
    handler = f"`except {caught}`" if caught else "the `except` handler"
    b.add("Task A", None, f"enters {handler}", "enter")
    b.add("Task A", checkpoint.location.line, f"CHECKPOINT in {handler}", "checkpoint")
    b.add(
        "Task B",
        None,
        "cancels Task A's scope → `Cancelled` is raised at that checkpoint",
        "cancel",
    )
    tasks = [f"Task A runs `{function.qualname}`; Task B is whatever cancels it."]
    release = evidence.skipped
    if release is not None:
        b.add("Task A", release.location.line, "is skipped", "skipped")
        if release.kind is EventKind.CALL and release.method == "release" and release.receiver:
            acquire = first_event(
                e
                for e in function.events
                if e.kind is EventKind.CALL
                and e.method == "acquire"
                and e.receiver == release.receiver
            )
            if acquire is not None:
                b.add(
                    "Task C",
                    acquire.location.line,
                    f"the next task to take `{release.receiver}` waits forever",
                    "blocked",
                )
                tasks[0] = (
                    f"Task A and Task C run `{function.qualname}`; "
                    "Task B is whatever cancels Task A."
                )
    last = b.roles.get("blocked", b.roles.get("skipped", b.roles["checkpoint"]))
    return b.build(
        tasks,
        (b.roles["checkpoint"], last),
        "a cancellation at the await skips what the handler had still to release",
    )


class AwaitInExcept(Rule):
    code = "CONC103"
    name = "await-in-except"
    opt_in = True
    opt_in_reason = (
        "precision on unseen real code 0.43 (round 3: 3 true, 10 deliberate, 4 wrong) "
        "and 0.00 (round 4: 0 / 3 / 8)"
    )
    category = "atomicity gap"
    explanation = (
        "the await in the handler and the release after it should go together; a "
        "cancellation at the await skips the release."
    )
    effort = "simple"
    sketch_title = "Move the release into a `finally`"
    brief = (
        "a checkpoint in an `except` handler, above all before a release / set / pop it would skip"
    )
    fixes_offered = (
        (
            (
                "move the releases / sets / pops a cancellation would skip into a `finally:` "
                "(when they follow each other in the handler)"
            ),
            "safe",
        ),
    )
    rank = 7

    def check(self, module: ModuleFacts) -> Iterator[Detection]:
        return _check(self, module)

    def fix(self, detection: Detection, module: ModuleFacts, context: FixContext) -> Fix | None:
        from conc_lsp.fixes import cleanup  # libcst loads only when fixing (start-up cost)

        evidence = detection.evidence
        if not isinstance(evidence, AwaitInHandler) or evidence.skipped is None:
            return None
        function = module.function(detection.finding.function)
        if function is None:
            return None
        skipped = _every_skipped(function, evidence.checkpoint)
        return cleanup.release_in_finally(detection.finding, module, context, skipped)

    def trace(
        self, program: Program, b: TraceBuilder, function: FunctionFacts, detection: Detection
    ) -> Trace | None:
        if isinstance(detection.evidence, AwaitInHandler):
            return _trace(program, b, function, detection.evidence)
        return None

    def words(self, evidence: Evidence, trace: Trace) -> Words:
        s = trace.steps_text
        return Words(
            f"The release runs in a `finally`: a cancellation at {s('checkpoint')} no longer "
            f"skips it ({s('skipped')}).",
            "None beyond one more indentation level.",
            "The release now also runs when the await raises, so it must be valid in that state "
            "(it is for a lock taken before the `try`).",
        )


RULE = AwaitInExcept()
