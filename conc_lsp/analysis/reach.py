"""Reachability inside one function: parent links, and whether control can
get from one event to another (and past which checkpoints).

Shared by the rules (an atomicity gap, a check-then-act window, a lock's
lifetime) and by the report's sketches.
"""

from __future__ import annotations

import ast
from typing import Any

from conc_lsp.analysis.events import Event, EventKind, FunctionFacts

# Awaits that let another task run only when they raise: after they return,
# no other task has run (`trio.lowlevel.checkpoint_if_cancelled`, anyio's).
NON_SWITCHING = frozenset({"checkpoint_if_cancelled"})


Parents = dict[ast.AST, tuple[ast.AST, str]]


def parent_map(root: ast.AST) -> Parents:
    """Each node of ``root`` to its parent and the parent's field holding it."""
    parents: Parents = {}
    for parent in ast.walk(root):
        for name, value in ast.iter_fields(parent):
            if isinstance(value, ast.AST):
                parents[value] = (parent, name)
            elif isinstance(value, list):
                for item in value:
                    if isinstance(item, ast.AST):
                        parents[item] = (parent, name)
    return parents


class LazyParents(dict[ast.AST, tuple[ast.AST, str]]):
    """A parent map built on first use: most functions never need one."""

    def __init__(self, root: ast.AST) -> None:
        super().__init__()
        self._root: ast.AST | None = root

    def _build(self) -> None:
        if self._root is not None:
            root, self._root = self._root, None
            self.update(parent_map(root))

    def __contains__(self, key: object) -> bool:
        self._build()
        return super().__contains__(key)

    def __getitem__(self, key: ast.AST) -> tuple[ast.AST, str]:
        self._build()
        return super().__getitem__(key)

    def get(self, key: ast.AST, default: Any = None) -> Any:
        self._build()
        return super().get(key, default)


def function_parents(function: FunctionFacts) -> Parents:
    """``parent_map`` of a function, built once, on first use, and shared by the rules."""
    parents = function.memo.get("parents")
    if parents is None:
        parents = function.memo["parents"] = LazyParents(function.node)
    return parents  # type: ignore[return-value]


def _ends_block(rest: list[ast.stmt]) -> bool:
    """True when control cannot fall out of the end of a block from ``rest[0]`` on.

    Only a `return` or `raise` among the statements themselves counts, and not
    when a `break`/`continue` anywhere in them could leave a loop first.
    """
    if any(isinstance(node, (ast.Break, ast.Continue)) for stmt in rest for node in ast.walk(stmt)):
        return False
    return any(isinstance(stmt, (ast.Return, ast.Raise)) for stmt in rest)


def reaches(parents: Parents, first: ast.AST, second: ast.AST) -> bool:
    """False when every path from ``first`` ends in a `return`/`raise` before ``second``.

    The flow facts make the branches of one `if` exclusive, but not the code
    after an `if` whose branch returns; this closes that gap for the rules.
    An exception raised inside a `try` with handlers may be caught, so it
    does not count; a `finally` or handler of that `try` is always reached.
    """
    route: dict[ast.AST, str] = {}
    node = second
    while node in parents:
        parent, name = parents[node]
        route[parent] = name
        node = parent
    returns = raises = False  # every path from `first` returns / raises before here
    node = first
    while node in parents:
        parent, name = parents[node]
        if parent in route:
            other = route[parent]
            if isinstance(parent, (ast.Try, ast.TryStar)) and (
                other == "finalbody" or (other == "handlers" and name == "body")
            ):
                return True
            if other == name and isinstance(node, ast.stmt):
                block: list[ast.stmt] = getattr(parent, name)
                target = next((stmt for stmt in block if _contains(parents, stmt, second)), None)
                if (
                    target is not None
                    and block.index(node) < block.index(target)
                    and _ends_block(block[block.index(node) : block.index(target)])
                ):
                    return False
            return not (returns or raises)
        if isinstance(node, ast.stmt) and isinstance(getattr(parent, name, None), list):
            rest = getattr(parent, name)[getattr(parent, name).index(node) :]
            if _ends_block(rest):
                if any(isinstance(stmt, ast.Return) for stmt in rest):
                    returns = True
                else:
                    raises = True
        if isinstance(parent, (ast.Try, ast.TryStar)) and name == "body" and parent.handlers:
            raises = False  # a handler may catch it and carry on
        node = parent
    return not (returns or raises)


def _contains(parents: Parents, ancestor: ast.AST, node: ast.AST) -> bool:
    while node is not ancestor:
        if node not in parents:
            return False
        node = parents[node][0]
    return True


def switches(function: FunctionFacts, checkpoint: Event) -> bool:
    """Whether other tasks may have run when execution continues past ``checkpoint``."""
    call = awaited_call(function, checkpoint)
    return call is None or call.method not in NON_SWITCHING


def gap(function: FunctionFacts, parents: Parents, first: Event, second: Event) -> list[Event]:
    """Checkpoints that may let another task run between ``first`` and ``second``."""
    if not reaches(parents, first.node, second.node):
        return []
    return [
        checkpoint
        for checkpoint in function.checkpoints_between(first, second)
        if switches(function, checkpoint)
        and reaches(parents, first.node, checkpoint.node)
        and reaches(parents, checkpoint.node, second.node)
    ]


def awaited_call(function: FunctionFacts, checkpoint: Event) -> Event | None:
    """The call a checkpoint awaits (`await x.wait()` -> the CALL event of `x.wait()`)."""
    if checkpoint.order == 0:
        return None
    previous = function.events[checkpoint.order - 1]
    if previous.kind is EventKind.CALL and previous.awaited:
        return previous
    return None
