"""Callees found by the module's own tree, before asking jedi.

`await helper()` where `helper` is an `async def` of the same module, bound
nowhere else, and `await self._helper()` in a method of a class that defines
`_helper` once (and never assigns it) are what jedi would answer too, at the
price of parsing the module again with parso and inferring: most awaits of
an application are of this shape. Anything less plain (a decorated
function, a name bound twice, a method its class does not define itself, a
module of a library the knowledge table describes, whose own names the
table knows) goes to jedi as before.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass, field
from pathlib import PurePath

Function = ast.AsyncFunctionDef | ast.FunctionDef


@dataclass(slots=True)
class LocalNames:
    """The module's unambiguous `async def`s: by name, and each class's by method name."""

    functions: dict[str, ast.AsyncFunctionDef] = field(default_factory=dict)
    methods: dict[int, dict[str, ast.AsyncFunctionDef]] = field(default_factory=dict)
    # id(node) -> (the class, its method's `self` name) for nodes inside a method
    owners: dict[int, tuple[ast.ClassDef, str]] = field(default_factory=dict)


@functools.cache
def _table_libraries() -> frozenset[str]:
    # the table loads only when resolving (start-up cost)
    from conc_lsp.knowledge import load_table

    return frozenset(name.split(".", 1)[0] for name in load_table())


def describes_library(path: str) -> bool:
    """A file of a library the knowledge table knows (its names are looked up there)."""
    parts = PurePath(path).parts
    libraries = _table_libraries()
    return any(part in libraries for part in parts[:-1]) or PurePath(path).stem in libraries


def local_names(tree: ast.Module) -> LocalNames:
    found = LocalNames()
    bound: dict[str, int] = {}  # every binding of each name, in any scope
    assigned_attributes: set[str] = set()
    for node in ast.walk(tree):
        for name in _bound_names(node):
            bound[name] = bound.get(name, 0) + 1
        if isinstance(node, ast.Attribute) and not isinstance(node.ctx, ast.Load):
            assigned_attributes.add(node.attr)
    starred = any(
        isinstance(node, ast.ImportFrom) and any(alias.name == "*" for alias in node.names)
        for node in tree.body
    )
    for statement in [] if starred else tree.body:
        if (
            isinstance(statement, ast.AsyncFunctionDef)
            and not statement.decorator_list
            and bound.get(statement.name) == 1
        ):
            found.functions[statement.name] = statement
    for klass in (node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)):
        defined: dict[str, list[ast.stmt]] = {}
        for statement in klass.body:
            for name in _class_level_names(statement):
                defined.setdefault(name, []).append(statement)
        methods = {
            name: only
            for name, statements in defined.items()
            if len(statements) == 1
            and isinstance(only := statements[0], ast.AsyncFunctionDef)
            and not only.decorator_list
            and name not in assigned_attributes
        }
        found.methods[id(klass)] = methods
        for statement in klass.body:
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
                me = _self_name(statement)
                if me is None:
                    continue
                for inner in ast.walk(statement):
                    found.owners[id(inner)] = (klass, me)
    return found


def local_callee(names: LocalNames, expression: ast.expr) -> ast.AsyncFunctionDef | None:
    """The module's own `async def` that ``expression`` (`helper(...)`,
    `self.method(...)`) calls, when the tree alone says which it is."""
    if not isinstance(expression, ast.Call):
        return None
    func = expression.func
    if isinstance(func, ast.Name):
        return names.functions.get(func.id)
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        owner = names.owners.get(id(func))
        if owner is None or func.value.id != owner[1]:
            return None
        return names.methods.get(id(owner[0]), {}).get(func.attr)
    return None


def _self_name(method: Function) -> str | None:
    """The first parameter of a plain method (not static, not a class method)."""
    if method.decorator_list:
        return None
    arguments = method.args.posonlyargs + method.args.args
    return arguments[0].arg if arguments else None


def _class_level_names(statement: ast.stmt) -> list[str]:
    """The names a statement of a class body binds in the class."""
    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [statement.name]
    names: list[str] = []
    stack: list[ast.AST] = [statement]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        names.extend(_bound_names(node))
        stack.extend(ast.iter_child_nodes(node))
    return names


def _bound_names(node: ast.AST) -> list[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
        return [node.id]
    if isinstance(node, ast.alias):
        return [(node.asname or node.name).split(".", 1)[0]]
    if isinstance(node, ast.arg):
        return [node.arg]
    if isinstance(node, (ast.Global, ast.Nonlocal)):
        return list(node.names)
    if isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
        return [node.name]
    if isinstance(node, ast.ExceptHandler) and node.name:
        return [node.name]
    return []
