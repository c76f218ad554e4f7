"""CONC110 timeout-without-checkpoint

## What it does
Flags a timeout scope (`move_on_after`, `move_on_at`, `fail_after`,
`fail_at`, `asyncio.timeout`, `asyncio.timeout_at`, a `CancelScope` with a
deadline) whose body contains no checkpoint (`await`, `async with`,
`async for`).

A `yield` in the body counts as a checkpoint: in a context manager the
caller's code, checkpoints included, runs inside the scope there. A scope
with no deadline at all (`asyncio.timeout(None)`, `move_on_after(math.inf)`)
is no timeout, and a body that reads the deadline back
(`current_effective_deadline()`, `current_statistics()`) uses the scope for
its deadline; neither is flagged.

When conc-lsp has followed the callees (see CONC111), a body whose every
checkpoint resolves to one that never yields (`await log_only(...)` where
`log_only` has no checkpoint) counts as having none.

## Why is this bad?
A cancel scope can only interrupt its body at a checkpoint. A body with
none runs to completion however long it takes, so the timeout never fires:
the code reads as bounded but is not.

## Example
```python
with trio.move_on_after(1):
    data = blocking_read(sock)
```

## Use instead
```python
with trio.move_on_after(1):
    data = await trio.to_thread.run_sync(blocking_read, sock)
```

## Fix
Remove the pointless scope and keep its body (unsafe: it changes what the
code says, if not what it does), or make the body async.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass

from conc_lsp.analysis.checkpoints import is_unbounded_constant
from conc_lsp.analysis.events import FunctionFacts, ModuleFacts, Scope
from conc_lsp.analysis.libraries import last_name
from conc_lsp.analysis.model import Fix, HintKind, Resolution, Verdict
from conc_lsp.analysis.program import Program
from conc_lsp.fixes.context import FixContext
from conc_lsp.rules.base import Detection, Evidence, Rule, Words
from conc_lsp.rules.story import Trace, TraceBuilder

DEADLINE_KEYWORDS = frozenset({"delay", "seconds", "when", "deadline", "relative_deadline"})
DEADLINE_READERS = frozenset({"current_effective_deadline", "current_statistics"})


@dataclass(frozen=True, slots=True)
class PointlessTimeout(Evidence):
    """A timeout scope whose body has no (real) checkpoint."""

    scope: Scope


def _check(rule: Rule, module: ModuleFacts) -> Iterator[Detection]:
    for function in module.functions:
        for scope in function.scopes:
            if _without_deadline(scope, module):
                continue
            # Checkpoints that all resolve to "never yields" count as none.
            never = _resolved_never(scope, module) if scope.checkpoints else None
            if scope.checkpoints and never is None:
                continue
            if scope.node is not None and _yields_or_reads_deadline(scope.node, module):
                continue
            name = scope.name.split("(", 1)[0]
            body = (
                f"no real checkpoint in its body ({never})"
                if never
                else "no checkpoint in its body"
            )
            yield rule.detect(
                function,
                scope.location,
                f"`{name}(...)` has {body}, so its timeout can never fire",
                PointlessTimeout(scope),
            )


def _resolved_never(scope: Scope, module: ModuleFacts) -> str | None:
    """When resolution shows that every checkpoint of the body never yields:
    the first one's reason (`log_only never yields`); else None."""
    if scope.node is None or not module.resolved:
        return None
    reasons: list[str] = []
    stack: list[ast.AST] = list(scope.node.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        found: Resolution | None = None
        if isinstance(node, ast.Await):
            found = module.resolution_of(node, HintKind.AWAIT)
        elif isinstance(node, ast.AsyncWith):
            for item in node.items:
                anchor = item.optional_vars or item.context_expr
                found = module.resolution_of(anchor, HintKind.ASYNC_WITH)
                if found is None or found.verdict is not Verdict.NEVER:
                    return None
        elif isinstance(node, ast.AsyncFor) or (
            isinstance(node, ast.comprehension) and node.is_async
        ):
            found = module.resolution_of(node.iter, HintKind.ASYNC_FOR)
        else:
            stack.extend(ast.iter_child_nodes(node))
            continue
        if found is None or found.verdict is not Verdict.NEVER:
            return None
        reasons.append(found.reason or f"{found.callee} never yields")
        stack.extend(ast.iter_child_nodes(node))
    return reasons[-1] if reasons else None


def _without_deadline(scope: Scope, module: ModuleFacts) -> bool:
    """`asyncio.timeout(None)`, `move_on_after(math.inf)`: there is no timeout to fire."""
    if scope.node is None:
        return False
    for item in scope.node.items:
        call = item.context_expr
        if not isinstance(call, ast.Call) or ast.unparse(call) != scope.name:
            continue
        is_scope = last_name(module.table.resolve(call.func)) == "CancelScope"
        given = [call.args[0]] if call.args and not is_scope else []
        given += [keyword.value for keyword in call.keywords if keyword.arg in DEADLINE_KEYWORDS]
        return bool(given) and all(is_unbounded_constant(value) for value in given)
    return False


def _yields_or_reads_deadline(node: ast.With | ast.AsyncWith, module: ModuleFacts) -> bool:
    """A `yield` in the body hands control to the caller, whose checkpoints then run
    inside the scope (a context manager); `current_effective_deadline()` in the body
    means the scope is there for its deadline, not as a timeout."""
    stack: list[ast.AST] = list(node.body)
    while stack:
        current = stack.pop()
        if isinstance(current, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        if isinstance(current, (ast.Yield, ast.YieldFrom)):
            return True
        if (
            isinstance(current, ast.Call)
            and last_name(module.table.resolve(current.func)) in DEADLINE_READERS
        ):
            return True
        stack.extend(ast.iter_child_nodes(current))
    return False


def _trace(
    module: Program, b: TraceBuilder, function: FunctionFacts, evidence: PointlessTimeout
) -> Trace | None:
    b.add("Task A", evidence.scope.location.line, "enters the timeout scope", "enter")
    b.add(
        "Task A", None, "runs the body: no checkpoint, so no cancellation can be delivered", "body"
    )
    b.add("Task A", None, "leaves the scope: the deadline was never checked", "leave")
    return b.build(
        [f"Task A runs `{function.qualname}` (one task: the timeout cannot fire)."],
        (b.roles["body"], b.roles["leave"]),
        "the body runs to its end whatever the deadline",
    )


class TimeoutWithoutCheckpoint(Rule):
    code = "CONC110"
    name = "timeout-without-checkpoint"
    category = "ineffective timeout"
    explanation = "a timeout scope whose body never checkpoints cannot fire."
    effort = "simple"
    sketch_title = "Remove the scope, or give its body a checkpoint"
    brief = (
        "a `move_on_after` / `fail_after` / `asyncio.timeout` body with no checkpoint: the timeout"
        " cannot fire"
    )
    fixes_offered = (("remove the pointless scope, keep its body", "unsafe"),)
    rank = 10

    def check(self, module: ModuleFacts) -> Iterator[Detection]:
        return _check(self, module)

    def fix(self, detection: Detection, module: ModuleFacts, context: FixContext) -> Fix | None:
        from conc_lsp.fixes import cleanup  # libcst loads only when fixing (start-up cost)

        return cleanup.remove_pointless_scope(detection.finding, module, context)

    def trace(
        self, program: Program, b: TraceBuilder, function: FunctionFacts, detection: Detection
    ) -> Trace | None:
        if isinstance(detection.evidence, PointlessTimeout):
            return _trace(program, b, function, detection.evidence)
        return None

    def words(self, evidence: Evidence, trace: Trace) -> Words:
        s = trace.steps_text
        return Words(
            f"No scope pretends to bound {s('body')}.",
            "None: the scope did nothing.",
            "If the body was meant to be bounded, it needs a checkpoint instead.",
        )


RULE = TimeoutWithoutCheckpoint()
