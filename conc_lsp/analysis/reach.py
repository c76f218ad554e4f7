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
    """A parent map built on first use: most functions never need one.

    It also keeps what ``reaches`` asks of the function's blocks, so that one
    question costs the depth of the tree, not the length of the function."""

    def __init__(self, root: ast.AST) -> None:
        super().__init__()
        self._root: ast.AST | None = root
        self._jumps: set[int] | None = None
        self._blocks: dict[tuple[int, str], _Block] = {}

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

    def block(self, parent: ast.AST, name: str) -> _Block:
        """The statement list ``parent.<name>`` with its prefix counts, built once."""
        key = (id(parent), name)
        found = self._blocks.get(key)
        if found is None:
            found = self._blocks[key] = _Block(getattr(parent, name), self._jump_holders())
        return found

    def _jump_holders(self) -> set[int]:
        """Ids of the nodes with a `break` or `continue` anywhere inside (or being one)."""
        if self._jumps is None:
            self._build()
            holders: set[int] = set()
            for node in list(self):
                if isinstance(node, (ast.Break, ast.Continue)):
                    while id(node) not in holders:
                        holders.add(id(node))
                        up = super().get(node)
                        if up is None:
                            break
                        node = up[0]
            self._jumps = holders
        return self._jumps


class _Block:
    """One statement list: where each statement sits, and prefix counts of the
    statements that hold a jump (`break`/`continue` anywhere inside), that are a
    `return` / `raise`, and that are a `return`."""

    __slots__ = ("jumps", "leaves", "position", "returns", "statements")

    def __init__(self, statements: list[ast.stmt], jump_holders: set[int]) -> None:
        self.statements = statements
        self.position = {id(statement): index for index, statement in enumerate(statements)}
        self.jumps = [0]
        self.leaves = [0]
        self.returns = [0]
        for statement in statements:
            self.jumps.append(self.jumps[-1] + (id(statement) in jump_holders))
            self.leaves.append(self.leaves[-1] + isinstance(statement, (ast.Return, ast.Raise)))
            self.returns.append(self.returns[-1] + isinstance(statement, ast.Return))

    def ends(self, start: int, stop: int) -> bool:
        """``_ends_block(statements[start:stop])``, in constant time."""
        if self.jumps[stop] - self.jumps[start]:
            return False
        return self.leaves[stop] - self.leaves[start] > 0

    def returns_in(self, start: int, stop: int) -> bool:
        return self.returns[stop] - self.returns[start] > 0


def function_parents(function: FunctionFacts) -> Parents:
    """``parent_map`` of a function, built once, on first use, and shared by the rules."""
    parents = function.memo.get("parents")
    if parents is None:
        parents = function.memo["parents"] = LazyParents(function.node)
    return parents  # type: ignore[return-value]


def _blocks_of(parents: Parents) -> LazyParents:
    """``parents`` with its block cache: a plain map gets a throw-away one."""
    if isinstance(parents, LazyParents):
        return parents
    rebuilt = LazyParents(ast.Module(body=[], type_ignores=[]))
    rebuilt._build()
    rebuilt.update(parents)
    return rebuilt


def reaches(parents: Parents, first: ast.AST, second: ast.AST) -> bool:
    """False when every path from ``first`` ends in a `return`/`raise` before ``second``.

    The flow facts make the branches of one `if` exclusive, but not the code
    after an `if` whose branch returns; this closes that gap for the rules.
    An exception raised inside a `try` with handlers may be caught, so it
    does not count; a `finally` or handler of that `try` is always reached.
    """
    tree = _blocks_of(parents)
    # Each ancestor of `second`: the field that leads down to it, and the child.
    route: dict[ast.AST, tuple[str, ast.AST]] = {}
    node = second
    while node in tree:
        parent, name = tree[node]
        route[parent] = (name, node)
        node = parent
    returns = raises = False  # every path from `first` returns / raises before here
    node = first
    while node in tree:
        parent, name = tree[node]
        if parent in route:
            other, child = route[parent]
            if isinstance(parent, (ast.Try, ast.TryStar)) and (
                other == "finalbody" or (other == "handlers" and name == "body")
            ):
                return True
            if other == name and isinstance(node, ast.stmt):
                block = tree.block(parent, name)
                start = block.position[id(node)]
                # The statement of this block that holds `second`.
                stop = block.position.get(id(child))
                if stop is not None and start < stop and block.ends(start, stop):
                    return False
            return not (returns or raises)
        if isinstance(node, ast.stmt) and isinstance(getattr(parent, name, None), list):
            block = tree.block(parent, name)
            start = block.position[id(node)]
            if block.ends(start, len(block.statements)):
                if block.returns_in(start, len(block.statements)):
                    returns = True
                else:
                    raises = True
        if isinstance(parent, (ast.Try, ast.TryStar)) and name == "body" and parent.handlers:
            raises = False  # a handler may catch it and carry on
        node = parent
    return not (returns or raises)


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
