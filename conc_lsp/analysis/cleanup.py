"""Cleanup paths: what a handler catches, what runs after a statement, which
`try` protects what, and the words for where a checkpoint sits.

Shared by the cleanup rules (CONC101, CONC102, CONC103).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from conc_lsp.analysis.events import Event
from conc_lsp.analysis.libraries import last_name
from conc_lsp.analysis.model import Context

EXPLICIT_CHECKPOINTS = frozenset(
    {
        "checkpoint",
        "checkpoint_if_cancelled",
        "cancel_shielded_checkpoint",
        "aclose_forcefully",
    }
)


BROAD = frozenset({"BaseException", "Cancelled", "get_cancelled_exc_class"})


TERMINATORS = (ast.Return, ast.Raise, ast.Continue, ast.Break)


def is_explicit_checkpoint(call: Event) -> bool:
    """`trio.lowlevel.checkpoint()`, `aclose_forcefully(...)`, `sleep(0)` in any library."""
    if last_name(call.callee) in EXPLICIT_CHECKPOINTS:
        return True
    return call.method == "sleep" and call.argument == "0"


def _suppresses_cancellation(expression: ast.expr) -> bool:
    """`contextlib.suppress(trio.Cancelled)` (or BaseException, CancelledError)."""
    if not isinstance(expression, ast.Call):
        return False
    func = expression.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    if name != "suppress":
        return False
    caught = set()
    for argument in expression.args:
        target = argument.func if isinstance(argument, ast.Call) else argument
        if isinstance(target, ast.Attribute):
            caught.add(target.attr)
        elif isinstance(target, ast.Name):
            caught.add(target.id)
    return bool(caught & (BROAD | {"CancelledError"}))


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

    def is_loop_control(self, handler: ast.ExceptHandler) -> bool:
        """A handler for specific exceptions that never raises, in a loop body:
        the slow path of a loop (`except WouldBlock: await wait_writable()`,
        `except DeadlockError: await has_data.wait()`), not unwinding."""
        if handler.type is None or caught_names(handler) & BROAD:
            return False
        if any(isinstance(node, ast.Raise) for node in ast.walk(handler)):
            return False
        for ancestor, _ in self.ancestors(handler):
            if isinstance(ancestor, (ast.While, ast.For, ast.AsyncFor)):
                return True
        return False

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
            if isinstance(ancestor, ast.With) and any(
                _suppresses_cancellation(item.context_expr) for item in ancestor.items
            ):
                return True  # `with contextlib.suppress(trio.Cancelled): await ...`
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


def where_in_cleanup(context: Context) -> str:
    """Words for the cleanup path a checkpoint sits on."""
    if context.in_finally:
        return "a `finally` block"
    if context.in_except is not None:
        return "an `except` handler"
    if context.acm_teardown:
        return "async context manager teardown"
    return "`__aexit__`/`aclose`"
