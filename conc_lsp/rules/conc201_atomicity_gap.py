"""CONC201 atomicity-gap

## What it does
Flags two mutations of related shared state (containers of the same class,
instance or module, indexed by the same key) with a checkpoint between them,
and a `for` loop over a shared container whose body checkpoints.
The message names the window: the first write, the checkpoint, the second
write.

## Why is this bad?
Between the two writes another task can run and observe the half-done
update: in tractor's `_Cache.run_ctx`, `values.pop(ctx_key)` runs, then the
context manager's `__aexit__` checkpoints, then `resources.pop(ctx_key)`; a
task entering in that window finds the resource but not its value. A loop
over a dict that checkpoints lets another task resize the dict under it
(`RuntimeError: dictionary changed size during iteration`) or change what
the loop still has to visit.

Not flagged: writes that share a lock held across the window; writes on
exclusive branches, or whose first write's branch ends in `return`/`raise`;
a pair where the first state is written again after the checkpoint (only the
latest write of each entry pairs with the second); a state written twice
(`self.state = "connecting"; await ...; self.state = "up"` is a state
machine, not two halves of one update); a lock kept beside the state;
`await checkpoint_if_cancelled()` (it lets others run only when it raises);
and loops over a container that no function of the module changes in place
(rebinding the attribute does not disturb a running loop).

## Example
```python
async with mngr() as value:
    try:
        await no_more_users.wait()
    finally:
        cls.values.pop(ctx_key)
cls.resources.pop(ctx_key)
```

## Use instead
```python
async with mngr() as value:
    try:
        await no_more_users.wait()
    finally:
        cls.values.pop(ctx_key)
        cls.resources.pop(ctx_key)
```

## Fix
Move the second write before the checkpoint, where the two can be brought
together; iterate over a copy (`list(d.items())`). Safe for the copy;
moving a write is safe only when nothing between depends on it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from typing import Any

from conc_lsp.analysis.flow import (
    Event,
    EventKind,
    FunctionFacts,
    ModuleFacts,
    exclusive,
    is_lock_expression,
)
from conc_lsp.analysis.model import Finding, Severity
from conc_lsp.rules.base import awaited_call, checkpoint_words, finding

CODE = "CONC201"
NAME = "atomicity-gap"
SEVERITY = Severity.WARNING

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


def is_lock_state(state: str | None) -> bool:
    """Whether shared state holds locks: `_Cache.locks`, `self._host_sems`, `key_lock`.

    Only the attribute's own name counts, word by word: the class `Clock`, the
    attribute `blocks` or `semantics` are not locks (`is_lock_expression`
    looks at words of the last dotted name, as here).
    """
    if not state:
        return False
    return is_lock_expression(state)


def _related(first: Event, second: Event) -> bool:
    # A lock kept beside the state is not part of the state's update.
    if is_lock_state(first.state) or is_lock_state(second.state):
        return False
    # Setup before an async context manager's `yield` and teardown after it
    # are two updates, with the caller's whole block between them by design.
    if second.context.acm_teardown and not first.context.acm_teardown:
        return False
    return (
        first.state != second.state
        and first.owner == second.owner
        and first.key is not None
        and first.key == second.key
    )


def _changed_in_place(module: ModuleFacts) -> set[str]:
    """Shared containers some function of the module mutates (not just rebinds)."""
    return {
        event.state
        for function in module.functions
        for event in function.events
        if event.kind is EventKind.WRITE
        and event.state is not None
        and (event.key is not None or event.method is not None or event.removal)
    }


def check(module: ModuleFacts) -> Iterator[Finding]:
    mutated = _changed_in_place(module)
    for function in module.functions:
        if not function.is_async:
            continue
        parents = function_parents(function)
        writes = [event for event in function.events if event.kind is EventKind.WRITE]
        for index, second in enumerate(writes):
            latest: set[tuple[str | None, str | None]] = set()
            for first in reversed(writes[:index]):
                if exclusive(first, second) or (first.state, first.key) in latest:
                    continue
                # Only the latest write of each entry before `second` is its partner.
                latest.add((first.state, first.key))
                if not _related(first, second):
                    continue
                if first.guards & second.guards:
                    continue
                between = gap(function, parents, first, second)
                if not between:
                    continue
                checkpoint = between[0]
                yield finding(
                    CODE,
                    NAME,
                    SEVERITY,
                    function,
                    second.location,
                    f"atomicity gap: `{second.state}[{second.key}]` is updated at line "
                    f"{second.location.line + 1}, after `{first.state}[{first.key}]` at line "
                    f"{first.location.line + 1}, with {checkpoint_words(checkpoint)} between; "
                    "other tasks can see one without the other",
                    [
                        (first.location, f"first write: {module.source(first.location)}"),
                        (checkpoint.location, f"checkpoint: {module.source(checkpoint.location)}"),
                    ],
                )
                break
        for loop in function.loops:
            if loop.state not in mutated:
                continue
            checkpoints = [
                checkpoint for checkpoint in loop.checkpoints if switches(function, checkpoint)
            ]
            if not checkpoints:
                continue
            checkpoint = checkpoints[0]
            yield finding(
                CODE,
                NAME,
                SEVERITY,
                function,
                loop.location,
                f"iterating shared `{loop.state}` while the loop body checkpoints "
                f"({checkpoint_words(checkpoint)}): another task may change it mid-loop; "
                "iterate over a copy",
                [(checkpoint.location, f"checkpoint: {module.source(checkpoint.location)}")],
            )
