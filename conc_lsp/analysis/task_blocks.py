"""The `async with` blocks that tie tasks together: nurseries and task groups
(with the functions started in them) and other context managers entered around
code. An error inside such a block cancels or skips what else runs in it."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import TypeGuard

from conc_lsp.analysis.checkpoints import NURSERIES
from conc_lsp.analysis.events import Event, FunctionFacts, ModuleFacts
from conc_lsp.analysis.libraries import last_name
from conc_lsp.analysis.tree import own_nodes


@dataclass(frozen=True, slots=True)
class TaskBlock:
    """An `async with open_nursery()/create_task_group()/TaskGroup()` block, or an
    `async with cm():` block (``entered``)."""

    function: str  # qualname of the function holding the block
    first_line: int  # 0-based lines of the block's body
    last_line: int
    spawned: frozenset[str]  # last names of the functions started in it
    entered: frozenset[str] = frozenset()  # a plain `async with cm():`: the cm's name

    def runs(self, function: FunctionFacts, event: Event) -> bool:
        """True when ``event`` of ``function`` runs inside this block."""
        if function.name in self.spawned:
            return True
        return (
            function.qualname == self.function
            and self.first_line <= event.location.line <= self.last_line
        )

    def cancels_wait(
        self, waiter: FunctionFacts, wait: Event, setter: FunctionFacts, step: Event
    ) -> bool:
        """An error before ``step`` of ``setter`` cancels (or skips) ``wait``."""
        if self.entered:
            return waiter.name in self.entered and self.runs(setter, step)
        return self.runs(waiter, wait) and self.runs(setter, step)


def started(call: ast.Call) -> tuple[ast.expr, list[ast.expr], list[ast.keyword]] | None:
    """What a spawn call (`start_soon`, `start`, `create_task`) starts, and the
    arguments it gets: `start_soon(f, a)`, `start_soon(partial(f, a, k=b))`,
    `create_task(f(a))`."""
    if not call.args:
        return None
    first = call.args[0]
    if is_partial(first):
        return first.args[0], first.args[1:], first.keywords
    if isinstance(first, ast.Call):
        return first.func, first.args, first.keywords
    return first, call.args[1:], []


def is_partial(node: ast.expr) -> TypeGuard[ast.Call]:
    """`partial(f, ...)` / `functools.partial(f, ...)`."""
    return (
        isinstance(node, ast.Call) and bool(node.args) and last_name(dotted(node.func)) == "partial"
    )


def spawned_name(call: ast.Call) -> str | None:
    found = started(call)
    return (last_name(dotted(found[0])) or None) if found is not None else None


def dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    return ""


def task_blocks(module: ModuleFacts, spawners: frozenset[str]) -> list[TaskBlock]:
    """Every nursery / task group block (with the functions started in it) and
    every other `async with cm():` block of the module."""
    found = []
    for function in module.functions:
        for node in own_nodes(function.node):
            if not isinstance(node, ast.AsyncWith) or not node.body:
                continue
            entered = {
                last_name(module.table.resolve(item.context_expr.func))
                for item in node.items
                if isinstance(item.context_expr, ast.Call)
            }
            if not entered & NURSERIES:
                # `async with agen() as x:` around the setter: an error in the body
                # exits the context manager, which cancels or skips its own wait.
                found.append(
                    TaskBlock(
                        function.qualname,
                        node.body[0].lineno - 1,
                        (node.end_lineno or node.lineno) - 1,
                        frozenset(),
                        frozenset(entered),
                    )
                )
                continue
            spawned = set()
            for statement in node.body:
                for inner in [statement, *own_nodes(statement)]:
                    if (
                        isinstance(inner, ast.Call)
                        and isinstance(inner.func, ast.Attribute)
                        and inner.func.attr in spawners
                    ):
                        name = spawned_name(inner)
                        if name:
                            spawned.add(name)
            found.append(
                TaskBlock(
                    function.qualname,
                    node.body[0].lineno - 1,
                    (node.end_lineno or node.lineno) - 1,
                    frozenset(spawned),
                )
            )
    return found


def by_waiter(nurseries: list[TaskBlock]) -> dict[tuple[str, str], list[TaskBlock]]:
    """The blocks by what ``TaskBlock.cancels_wait`` needs of a waiter: its name among
    the cms entered or the functions started, or its qualname holding the block."""
    found: dict[tuple[str, str], list[TaskBlock]] = {}
    for nursery in nurseries:
        keys = [("name", name) for name in nursery.entered | nursery.spawned]
        if not nursery.entered:
            keys.append(("function", nursery.function))
        for key in keys:
            found.setdefault(key, []).append(nursery)
    return found


def around(
    nurseries: dict[tuple[str, str], list[TaskBlock]], waiter: FunctionFacts
) -> list[TaskBlock]:
    """The blocks whose ``cancels_wait`` can be true for a wait of ``waiter``."""
    return [
        *nurseries.get(("name", waiter.name), []),
        *nurseries.get(("function", waiter.qualname), []),
    ]
