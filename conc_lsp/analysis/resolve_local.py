"""Callees found by the module's own tree, before asking jedi.

`await helper()` where `helper` is an `async def` of the same module, bound
nowhere else (or imported by `from .helpers import helper` from a module
file of the same package), and `await self._helper()` in a method of a class
that defines `_helper` once (and never assigns it) are what jedi would answer too, at the
price of parsing the module again with parso and inferring: most awaits of
an application are of this shape. Anything less plain (a decorated
function, a name bound twice, a method its class does not define itself, a
function of a library whose name the knowledge table may know) goes to
jedi as before.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conc_lsp.analysis.resolve_sources import Source

Function = ast.AsyncFunctionDef | ast.FunctionDef


@dataclass(slots=True)
class LocalNames:
    """The module's unambiguous `async def`s: by name, and each class's by method name."""

    functions: dict[str, ast.AsyncFunctionDef] = field(default_factory=dict)
    methods: dict[int, dict[str, ast.AsyncFunctionDef]] = field(default_factory=dict)
    # id(node) -> (the class, its method's `self` name) for nodes inside a method
    owners: dict[int, tuple[ast.ClassDef, str]] = field(default_factory=dict)
    # name -> (level, module, its name there): `from .helpers import fetch` at the top
    imported: dict[str, tuple[int, str, str]] = field(default_factory=dict)


@functools.cache
def module_name(path: str) -> str:
    """The dotted name of a module file, by the packages (`__init__.py`) around it."""
    file = Path(path)
    parts = [] if file.stem == "__init__" else [file.stem]
    folder = file.parent
    while (folder / "__init__.py").is_file() and folder.parent != folder:
        parts.insert(0, folder.name)
        folder = folder.parent
    return ".".join(parts)


def table_knows(path: str, qualname: str) -> bool:
    """Whether the knowledge table may describe this function of a module
    (a library's own source): then jedi's full name decides, as before."""
    # the table loads only when resolving (start-up cost)
    from conc_lsp.knowledge import lookup

    module = module_name(path)
    top = module.split(".", 1)[0]
    candidates = {f"{module}.{qualname}", f"{top}.{qualname}", qualname}
    return any(lookup(candidate) is not None for candidate in candidates if candidate)


def local_definition(
    path: str, source: Source, expression: ast.expr, file_of: Callable[[str], Source | None]
) -> tuple[str, Source, ast.AsyncFunctionDef] | None:
    """The `async def` that ``expression`` calls, with its file and text, when the
    trees alone tell (``file_of`` reads another module of the package); else None."""
    if path == "<buffer>" or source.tree is None:
        return None
    if source.local is None:
        source.local = local_names(source.tree)
    found = local_callee(source.local, expression)
    if found is None and (elsewhere := imported_callee(source.local, path, expression)):
        path, name = elsewhere  # a function of another module of the package
        other = file_of(path)
        if other is None or other.tree is None:
            return None
        source, other.local = other, other.local or local_names(other.tree)
        found = local_callee(other.local, call_of(name))
    if found is None or table_knows(path, found[1]):
        return None
    return path, source, found[0]


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
    for statement in tree.body:
        if isinstance(statement, ast.ImportFrom) and statement.level > 0:
            for alias in statement.names:
                name = alias.asname or alias.name
                if bound.get(name) == 1 and alias.name != "*":
                    found.imported[name] = (statement.level, statement.module or "", alias.name)
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


def local_callee(
    names: LocalNames, expression: ast.expr
) -> tuple[ast.AsyncFunctionDef, str] | None:
    """The module's own `async def` that ``expression`` (`helper(...)`,
    `self.method(...)`) calls, when the tree alone says which it is, and its
    qualified name in the module."""
    if not isinstance(expression, ast.Call):
        return None
    func = expression.func
    if isinstance(func, ast.Name):
        found = names.functions.get(func.id)
        return (found, found.name) if found is not None else None
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        owner = names.owners.get(id(func))
        if owner is None or func.value.id != owner[1]:
            return None
        klass = owner[0]
        method = names.methods.get(id(klass), {}).get(func.attr)
        return (method, f"{klass.name}.{method.name}") if method is not None else None
    return None


def imported_callee(names: LocalNames, path: str, expression: ast.expr) -> tuple[str, str] | None:
    """(the module file, the name there) of `helper(...)` when `helper` comes from
    `from .module import helper` and that module is a file of the package."""
    if not isinstance(expression, ast.Call) or not isinstance(expression.func, ast.Name):
        return None
    found = names.imported.get(expression.func.id)
    if found is None:
        return None
    level, module, name = found
    folder = Path(path).parent
    for _ in range(level - 1):
        folder = folder.parent
    base = folder.joinpath(*module.split(".")) if module else folder
    # as Python finds it: a package (a folder with __init__.py) before a module file
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if module and candidate.is_file():
            return str(candidate), name
    return None


def call_of(name: str) -> ast.Call:
    """`name()`: how another module calls a function of this one."""
    return ast.Call(func=ast.Name(id=name, ctx=ast.Load()), args=[], keywords=[])


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
