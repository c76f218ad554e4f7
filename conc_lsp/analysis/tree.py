"""Small helpers over ``ast`` trees shared by the analysis, the rules and the report."""

from __future__ import annotations

import ast
from collections.abc import Iterator


def own_nodes(root: ast.AST) -> Iterator[ast.AST]:
    """The nodes of a function body, without the nested definitions."""
    stack = list(ast.iter_child_nodes(root))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            stack.extend(ast.iter_child_nodes(node))


def unparse(node: ast.AST) -> str:
    try:
        return ast.unparse(node)
    except Exception:  # noqa: BLE001 - odd trees must not break the report
        return "?"
