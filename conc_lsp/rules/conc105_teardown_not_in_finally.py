"""CONC105 teardown-not-in-finally

## What it does
Flags the teardown of an `@asynccontextmanager` (or `@acm`) that runs after
its `yield` without a `finally`: the first step after the `yield` that
releases something (a `close()` / `aclose()`, a `.set()` other tasks wait
for, a `release()`, `cancel()`, `stop_*()`, `disconnect()`, ...) or removes
an entry from shared state.

Not flagged: teardown in a `finally:` around the `yield`; a `yield` inside a
`try` whose handler catches every error (`except BaseException:` /
`except Exception:`) and cleans up there; a nursery's or task group's own
`cancel()` after a `yield` inside its `async with` (its exit cancels the
children anyway); log lines; what is no teardown: a record or a flag for a
test, a sleep, a wait for the outcome of the block, a `raise` (a context
manager that reports its outcome on a clean exit means to skip it on errors).

## Why is this bad?
An exception raised in the caller's `async with` block is thrown into the
context manager at its `yield`. Without a `finally`, everything after the
`yield` is skipped: the connection stays open, the lock stays held, the
tasks waiting for the `.set()` wait forever. The common case is the error
path, which tests rarely take.

## Example
```python
@asynccontextmanager
async def open_session(pool):
    conn = await pool.acquire()
    yield conn
    await pool.release(conn)
```

## Use instead
```python
@asynccontextmanager
async def open_session(pool):
    conn = await pool.acquire()
    try:
        yield conn
    finally:
        await pool.release(conn)
```

## Fix
Wrap the `yield` in `try:` and move what follows it into the `finally:`.
Safe: the teardown now also runs on errors, which is what a context manager
promises.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass

from conc_lsp.analysis.cancellation import significant
from conc_lsp.analysis.checkpoints import NURSERIES
from conc_lsp.analysis.cleanup import BROAD, caught_names
from conc_lsp.analysis.events import Event, EventKind, FunctionFacts, ModuleFacts
from conc_lsp.analysis.libraries import last_name
from conc_lsp.analysis.model import Fix, Location
from conc_lsp.analysis.program import Program
from conc_lsp.analysis.tree import own_nodes
from conc_lsp.fixes.context import FixContext
from conc_lsp.rules.base import Detection, Evidence, Rule, Words
from conc_lsp.rules.story import Trace, TraceBuilder, strip_comment

# Catching these around the `yield` handles the caller's errors.
HANDLES_ERRORS = BROAD | {"Exception"}
# What releases something: the first word of the method's name (`close`,
# `release_conn`, `stop_server`). A record, a flag, a sleep, a wait for an
# outcome or a `raise` after the `yield` is no teardown.
TEARDOWN_WORDS = frozenset(
    {
        "aclose", "cancel", "cleanup", "close", "delete", "detach", "disconnect", "discard",
        "dispose", "exit", "finish", "free", "join", "kill", "put", "release", "remove", "shutdown",
        "stop", "teardown", "terminate", "unlink", "unregister", "unsubscribe",
    }
)  # fmt: skip
SETTLERS = frozenset({"set", "set_result", "set_exception", "put", "put_nowait", "send_nowait"})


def _releases(event: Event) -> bool:
    """A teardown step: a call that closes, releases, stops or wakes others, or a
    removal from shared state."""
    if event.kind is EventKind.WRITE:
        return event.removal
    if event.kind is not EventKind.CALL or not event.method:
        return False
    method = event.method.lstrip("_")
    return method in SETTLERS or method.split("_", 1)[0] in TEARDOWN_WORDS


@dataclass(frozen=True, slots=True)
class UnprotectedTeardown(Evidence):
    """The first teardown step after an acm's `yield`, with no `finally`."""

    yield_line: int  # 0-based
    teardown: Event


def _yield_statements(node: ast.AST) -> list[ast.stmt]:
    found = []
    for child in own_nodes(node):
        if isinstance(child, (ast.Expr, ast.Assign, ast.AnnAssign)) and isinstance(
            child.value, (ast.Yield, ast.YieldFrom)
        ):
            found.append(child)
    return sorted(found, key=lambda statement: statement.lineno)


def _handled(node: ast.AST, statement: ast.stmt) -> bool:
    """A `try` around the `yield` with a handler that takes every error (what
    runs in a `finally` is never reported; what follows it still is)."""
    for child in own_nodes(node):
        if not isinstance(child, (ast.Try, ast.TryStar)):
            continue
        if not any(inner is statement for part in child.body for inner in ast.walk(part)):
            continue
        for handler in child.handlers:
            if handler.type is None or caught_names(handler) & HANDLES_ERRORS:
                return True
    return False


def _nursery_blocks(function: FunctionFacts, module: ModuleFacts) -> list[tuple[int, int]]:
    """Line ranges (0-based) of nursery / task group `async with` bodies."""
    ranges = []
    for child in own_nodes(function.node):
        if isinstance(child, ast.AsyncWith) and any(
            isinstance(item.context_expr, ast.Call)
            and last_name(module.table.resolve(item.context_expr.func)) in NURSERIES
            for item in child.items
        ):
            ranges.append((child.lineno - 1, (child.end_lineno or child.lineno) - 1))
    return ranges


def _exited_cleanly(module: ModuleFacts) -> set[str]:
    """Context managers a framework always exits without an error: aiohttp's
    `app.cleanup_ctx.append(ctx)` (it calls `__aexit__(None, None, None)`)."""
    names: set[str] = set()
    for function in module.functions:
        for event in function.events:
            if event.method == "append" and (event.receiver or "").endswith("cleanup_ctx"):
                names.add((event.argument or "").rsplit(".", 1)[-1])
    for line in module.lines:  # module-level statements are in no function
        stripped = line.strip()
        if ".cleanup_ctx.append(" in stripped:
            names.add(stripped.split(".cleanup_ctx.append(", 1)[1].split(")", 1)[0].strip())
    return names


def _check(rule: Rule, module: ModuleFacts) -> Iterator[Detection]:
    cleanly = _exited_cleanly(module)
    for function in module.functions:
        if not function.is_acm or function.name in cleanly:
            continue
        yields = _yield_statements(function.node)
        if len(yields) != 1:
            continue  # several yields: each branch has its own protocol
        statement = yields[0]
        if _handled(function.node, statement):
            continue
        yield_line = (statement.end_lineno or statement.lineno) - 1
        nurseries = _nursery_blocks(function, module)
        for event in function.events:
            context = event.context
            if not context.acm_teardown or context.in_finally or context.in_except is not None:
                continue
            if event.location.line <= yield_line or not significant(event):
                continue
            if not _releases(event):
                continue
            if event.method == "cancel" and any(
                first <= event.location.line <= last for first, last in nurseries
            ):
                continue  # the nursery's exit cancels its children on an error too
            code = strip_comment(module.source(event.location))
            yield rule.detect(
                function,
                event.location,
                f"`{code}` runs after the `yield` of an async context manager without a "
                "`finally`: if the caller's block raises, it never runs; wrap the `yield` "
                "in `try:` and move the teardown into `finally:`",
                UnprotectedTeardown(yield_line, event),
                [
                    (
                        Location(yield_line, 0, yield_line, len(module.lines[yield_line])),
                        "the caller's errors are raised here",
                    )
                ],
            )
            break


class TeardownNotInFinally(Rule):
    code = "CONC105"
    name = "teardown-not-in-finally"
    category = "lifetime mismatch"
    explanation = (
        "the resource outlives the block that owns it: an error in the caller's body skips "
        "the teardown after the `yield`."
    )
    effort = "simple"
    sketch_title = "Move the teardown into a `finally` around the `yield`"
    brief = "the teardown after an async context manager's `yield` is not in a `finally`"
    fixes_offered = (("`try: yield ... finally:` around the teardown", "safe"),)
    rank = 5.5
    opt_in = True
    opt_in_reason = (
        "precision on unseen real code 0.14 (round 3: 1 true, 1 deliberate, 6 wrong) and "
        "0.00 (round 4: 0 / 0 / 3)"
    )

    def check(self, module: ModuleFacts) -> Iterator[Detection]:
        return _check(self, module)

    def fix(self, detection: Detection, module: ModuleFacts, context: FixContext) -> Fix | None:
        from conc_lsp.fixes import cleanup  # libcst loads only when fixing (start-up cost)

        evidence = detection.evidence
        if not isinstance(evidence, UnprotectedTeardown):
            return None
        return cleanup.teardown_in_finally(detection.finding, module, context, evidence.yield_line)

    def trace(
        self, program: Program, b: TraceBuilder, function: FunctionFacts, detection: Detection
    ) -> Trace | None:
        evidence = detection.evidence
        if not isinstance(evidence, UnprotectedTeardown):
            return None
        b.add(
            "Task A", evidence.yield_line, "yields to the caller → SUSPEND (caller runs)", "yield"
        )
        b.add(
            "Task A",
            None,
            "the caller's block raises: the error is thrown in at the `yield`",
            "raise",
        )
        b.add("Task A", evidence.teardown.location.line, "is skipped", "skipped")
        b.add("Task B", None, "still waits for the resource (or its `.set()`)", "stuck")
        return b.build(
            [f"Task A runs `{function.qualname}` for its caller; Task B shares the resource."],
            (b.roles["raise"], b.roles["stuck"]),
            "the teardown never runs on the error path",
        )

    def words(self, evidence: Evidence, trace: Trace) -> Words:
        s = trace.steps_text
        return Words(
            f"The teardown is in a `finally`: the error of {s('raise')} no longer skips it "
            f"({s('skipped')}).",
            "The teardown now runs on errors too: it must cope with a half-used resource.",
            "A teardown that awaits runs while an exception is in flight: keep it short, and "
            "shield it where cancellation must not cut it short.",
        )


RULE = TeardownNotInFinally()
