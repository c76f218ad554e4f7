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

from conc_lsp.analysis.flow import Event, EventKind, FunctionFacts, ModuleFacts
from conc_lsp.analysis.libraries import last_name
from conc_lsp.analysis.model import Finding, Severity, Shield, Verdict
from conc_lsp.rules.base import awaited_call, checkpoint_verdict, describe, finding
from conc_lsp.rules.conc101_unbounded_wait_in_cleanup import where_in_cleanup

CODE = "CONC102"
NAME = "unshielded-await-in-cleanup"
SEVERITY = Severity.WARNING
EXPLICIT_CHECKPOINTS = frozenset(
    {
        "checkpoint",
        "checkpoint_if_cancelled",
        "cancel_shielded_checkpoint",
        "aclose_forcefully",
    }
)
CLOSERS = frozenset({"aclose", "__aexit__"})
LEVEL_TRIGGERED = frozenset({"trio", "anyio", "tractor"})


def check(module: ModuleFacts) -> Iterator[Finding]:
    if module.libraries == frozenset({"asyncio"}):
        return
    for function in module.functions:
        if _asyncio_only(function):
            continue
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
                is_explicit_checkpoint(call) or _never_checkpoints(module, function, call)
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
                yield finding(
                    CODE,
                    NAME,
                    Severity.INFORMATION,
                    function,
                    checkpoint.location,
                    f"`{what}` in {where_in_cleanup(context)} is shielded only if the "
                    "runtime shield value is true; otherwise a cancellation stops the "
                    "cleanup here",
                    related,
                )
                continue
            yield finding(
                CODE,
                NAME,
                SEVERITY,
                function,
                checkpoint.location,
                f"unshielded `{what}` in {where_in_cleanup(context)}: if the scope is "
                "being cancelled, the cleanup stops here and the rest of it never runs",
                related,
            )


def is_explicit_checkpoint(call: Event) -> bool:
    """`trio.lowlevel.checkpoint()`, `aclose_forcefully(...)`, `sleep(0)` in any library."""
    if last_name(call.callee) in EXPLICIT_CHECKPOINTS:
        return True
    return call.method == "sleep" and call.argument == "0"


def _asyncio_only(function: FunctionFacts) -> bool:
    """A function that names asyncio and no trio/anyio: cancellation is delivered once."""
    roots = {
        event.callee.split(".", 1)[0]
        for event in function.events
        if event.kind is EventKind.CALL and event.callee
    }
    return "asyncio" in roots and not roots & LEVEL_TRIGGERED


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


BROAD = frozenset({"BaseException", "Cancelled", "get_cancelled_exc_class"})
TERMINATORS = (ast.Return, ast.Raise, ast.Continue, ast.Break)


def caught_names(handler: ast.ExceptHandler) -> set[str]:
    """Last names of what a handler catches: `trio.Cancelled` -> `Cancelled`,
    `get_cancelled_exc_class()` -> `get_cancelled_exc_class`; empty for a bare except."""
    if handler.type is None:
        return set()
    types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    names = set()
    for node in types:
        if isinstance(node, ast.Call):
            node = node.func
        if isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.Name):
            names.add(node.id)
    return names


class FunctionTree:
    """Parent links of one function's body (nested functions and classes left out),
    for the questions the flow facts do not answer: what runs after a statement,
    which `try` protects what."""

    def __init__(self, root: ast.AST) -> None:
        self.parents: dict[int, ast.AST] = {}
        stack: list[ast.AST] = [root]
        while stack:
            node = stack.pop()
            for child in ast.iter_child_nodes(node):
                if isinstance(
                    child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
                ):
                    continue
                self.parents[id(child)] = node
                stack.append(child)

    def ancestors(self, node: ast.AST) -> Iterator[tuple[ast.AST, ast.AST]]:
        """(ancestor, the child of it on the way to ``node``), innermost first."""
        while id(node) in self.parents:
            parent = self.parents[id(node)]
            yield parent, node
            node = parent

    def handler_of(self, node: ast.AST) -> ast.ExceptHandler | None:
        for ancestor, _ in self.ancestors(node):
            if isinstance(ancestor, ast.ExceptHandler):
                return ancestor
        return None

    def following(self, node: ast.AST) -> set[int]:
        """Ids of the statements that run after the statement holding ``node`` when it
        completes normally, up to the first `return`/`raise`/`break`/`continue`."""
        found: set[int] = set()
        for parent, child in self.ancestors(node):
            if not isinstance(child, ast.stmt):
                continue
            for siblings in _statement_lists(parent):
                if child not in siblings:
                    continue
                for statement in siblings[siblings.index(child) + 1 :]:
                    found.add(id(statement))
                    if isinstance(statement, TERMINATORS):
                        return found
        return found

    def runs_in(self, node: ast.AST, statements: set[int]) -> bool:
        """``node`` is inside one of ``statements``, and not the exception a `raise` builds."""
        for ancestor, child in self.ancestors(node):
            if isinstance(ancestor, ast.Raise) or isinstance(child, ast.Raise):
                return False
            if id(child) in statements:
                return True
        return False

    def cancellation_handled(self, node: ast.AST) -> bool:
        """``node`` sits in the body of a `try` (inside its own cleanup block) with an
        `except BaseException` / bare `except` / `except Cancelled` handler."""
        for ancestor, child in self.ancestors(node):
            if not isinstance(ancestor, (ast.Try, ast.TryStar)):
                continue
            if child in ancestor.finalbody:
                return False  # reached the finally this cleanup runs in
            if child in ancestor.body and any(
                handler.type is None or caught_names(handler) & BROAD
                for handler in ancestor.handlers
            ):
                return True
        return False

    def exclusive(self, first: ast.AST, second: ast.AST) -> bool:
        """The two nodes sit on different branches of one `if` or `match`."""
        sides = {
            id(ancestor): child
            for ancestor, child in self.ancestors(second)
            if isinstance(ancestor, (ast.If, ast.Match))
        }
        for ancestor, child in self.ancestors(first):
            if id(ancestor) not in sides:
                continue
            if isinstance(ancestor, ast.If):
                return (child in ancestor.body) != (sides[id(ancestor)] in ancestor.body)
            return child is not sides[id(ancestor)]
        return False


def _statement_lists(node: ast.AST) -> list[list[ast.stmt]]:
    lists = [
        value
        for name in ("body", "orelse", "finalbody")
        if isinstance(value := getattr(node, name, None), list)
    ]
    return lists
