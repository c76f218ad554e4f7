"""The syntactic shapes the flow walker recognises: container-mutating and
reading methods, container constructors, timeout calls, module globals that
hold state, and the child nodes worth walking."""

from __future__ import annotations

import ast
from typing import Protocol

from conc_lsp.analysis.libraries import ImportTable, last_name

MUTATING_METHODS = frozenset(
    {
        "pop",
        "popitem",
        "popleft",
        "append",
        "appendleft",
        "extend",
        "insert",
        "remove",
        "clear",
        "update",
        "setdefault",
        "add",
        "discard",
    }
)


READING_METHODS = frozenset({"get", "keys", "values", "items", "copy", "count", "index"})


CONTAINER_CALLS = frozenset(
    {
        "dict",
        "list",
        "set",
        "deque",
        "defaultdict",
        "OrderedDict",
        "Counter",
        "WeakValueDictionary",
        "WeakKeyDictionary",
        "WeakSet",
    }
)


def node_text(node: ast.AST) -> str:
    # Dotted names are most of what is asked for; ast.unparse is slow.
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        parts = [node.attr]
        value = node.value
        while isinstance(value, ast.Attribute):
            parts.append(value.attr)
            value = value.value
        if isinstance(value, ast.Name):
            parts.append(value.id)
            return ".".join(reversed(parts))
    try:
        return ast.unparse(node)
    except Exception:  # noqa: BLE001 - unparse of odd trees must not break the analysis
        return "?"


# Nodes that emit an event once their children are done.
POST_VISITED = (
    ast.Await,
    ast.Yield,
    ast.YieldFrom,
    ast.comprehension,
    ast.Call,
    ast.Compare,
    ast.Subscript,
    ast.Attribute,
    ast.Name,
)


SKIPPED = (ast.expr_context, ast.operator, ast.boolop, ast.unaryop, ast.cmpop, ast.Constant)


# Nodes that can never hold a checkpoint or a look-alike below them.
BARREN = (*SKIPPED, ast.Name)


def child_nodes(
    node: ast.AST, skipped: tuple[type[ast.AST], ...] = SKIPPED, skip_chains: bool = False
) -> list[ast.AST]:
    """Child nodes that can hold events (faster than ast.iter_child_nodes), but
    those of a ``skipped`` type, and with ``skip_chains`` the chains of names
    (`a.b.c`, which hold no call and no await)."""
    found: list[ast.AST] = []
    for name in node._fields:
        value = getattr(node, name, None)
        if isinstance(value, list):
            found.extend(
                item
                for item in value
                if isinstance(item, ast.AST) and not isinstance(item, skipped)
            )
        elif (
            isinstance(value, ast.AST)
            and not isinstance(value, skipped)
            and not (skip_chains and isinstance(value, ast.Attribute) and _name_chain(value))
        ):
            found.append(value)
    return found


def _name_chain(node: ast.Attribute) -> bool:
    value: ast.expr = node
    while isinstance(value, ast.Attribute):
        value = value.value
    return isinstance(value, ast.Name)


def is_timeout_call(node: ast.expr, table: ImportTable) -> bool:
    if not isinstance(node, ast.Call):
        return False
    return last_name(table.resolve(node.func)) in (
        "move_on_after",
        "move_on_at",
        "fail_after",
        "fail_at",
        "timeout",
        "timeout_at",
    )


def state_globals(module: ast.Module) -> set[str]:
    """Module-level names bound to mutable containers."""
    names: set[str] = set()
    for statement in module.body:
        targets: list[ast.expr] = []
        value: ast.expr | None = None
        if isinstance(statement, ast.Assign):
            targets, value = statement.targets, statement.value
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            targets, value = [statement.target], statement.value
        if value is not None and is_container(value):
            names.update(target.id for target in targets if isinstance(target, ast.Name))
    return names


def is_container(node: ast.expr) -> bool:
    if isinstance(node, (ast.Dict, ast.List, ast.Set, ast.DictComp, ast.ListComp, ast.SetComp)):
        return True
    if isinstance(node, ast.Call):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        return name in CONTAINER_CALLS
    return False


def falls_through(block: list[ast.stmt]) -> bool:
    """Control can leave ``block`` at its end (it does not end in `return`,
    `raise`, `continue` or `break`)."""
    return not (block and isinstance(block[-1], (ast.Return, ast.Raise, ast.Continue, ast.Break)))


class StateFinder(Protocol):
    def state_of(self, node: ast.expr) -> tuple[str, str] | None: ...


def membership_state(node: ast.Compare, walk: StateFinder) -> tuple[str, str] | None:
    if len(node.ops) == 1 and isinstance(node.ops[0], (ast.In, ast.NotIn)):
        return walk.state_of(node.comparators[0])
    return None


def iterated_state(node: ast.expr, walk: StateFinder) -> str | None:
    """`for x in self.d` / `.items()` / `.keys()` / `.values()`: not over a copy."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        if node.func.attr in ("items", "keys", "values") and not node.args:
            found = walk.state_of(node.func.value)
            return found[0] if found else None
        return None
    found = walk.state_of(node)
    return found[0] if found else None
