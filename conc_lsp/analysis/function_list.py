"""One walk of a module's statements (not its expressions): its functions in
the order the flow walker lists them, by their `def`s, each before the ones
inside it, with its qualified name and the `with` statements of its own body;
and the names of its classes and of its `global` declarations."""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from conc_lsp.analysis.checkpoints import TIMEOUT_SCOPES, scope_effect
from conc_lsp.analysis.libraries import ImportTable, last_name
from conc_lsp.analysis.shapes import is_timeout_call

Block = list[ast.stmt]
# The last names of the calls that open a timeout's cancel scope.
TIMEOUT_SCOPE_NAMES = TIMEOUT_SCOPES | {"CancelScope", "timeout", "timeout_at"}


@dataclass(slots=True)
class Definition:
    node: ast.FunctionDef | ast.AsyncFunctionDef
    qualname: str
    class_name: str | None  # the class it is a method of
    withs: list[ast.With | ast.AsyncWith] = field(default_factory=list)


@dataclass(slots=True)
class Outline:
    functions: list[Definition] = field(default_factory=list)
    classes: set[str] = field(default_factory=set)  # nested ones too
    declared_global: set[str] = field(default_factory=set)


def _try_blocks(statement: ast.Try | ast.TryStar) -> list[Block]:
    handlers = [handler.body for handler in statement.handlers]
    return [statement.body, *handlers, statement.orelse, statement.finalbody]


# Every statement that holds statements, but a `def` and a `class`: its blocks in order.
BLOCKS: dict[type[ast.stmt], Callable[[Any], list[Block]]] = {
    ast.If: lambda statement: [statement.body, statement.orelse],
    ast.While: lambda statement: [statement.body, statement.orelse],
    ast.For: lambda statement: [statement.body, statement.orelse],
    ast.AsyncFor: lambda statement: [statement.body, statement.orelse],
    ast.Try: _try_blocks,
    ast.TryStar: _try_blocks,
    ast.With: lambda statement: [statement.body],
    ast.AsyncWith: lambda statement: [statement.body],
    ast.Match: lambda statement: [case.body for case in statement.cases],
}
# Outside functions, the walker looks for definitions in these blocks only.
SEARCHED = frozenset({ast.If, ast.Try, ast.TryStar, ast.With})
WITHS = (ast.With, ast.AsyncWith)
# What a statement is to the outline (one look-up: most statements are none of these).
BLOCK, FUNCTION, CLASS, GLOBAL = range(4)
KINDS: dict[type[ast.stmt], int] = {
    **dict.fromkeys(BLOCKS, BLOCK),
    ast.FunctionDef: FUNCTION,
    ast.AsyncFunctionDef: FUNCTION,
    ast.ClassDef: CLASS,
    ast.Global: GLOBAL,
}


def outline(module: ast.Module) -> Outline:
    """Depth first, without recursion. A `def` the walker does not reach (in a
    module-level `for`, say) is no function of the list, its classes still count."""
    found = Outline()
    # (statements left, qualname prefix, class name, the function they belong to,
    # whether the walker lists the definitions met)
    stack: list[tuple[Iterator[ast.stmt], str, str | None, Definition | None, bool]] = [
        (iter(module.body), "", None, None, True)
    ]
    while stack:
        statements, prefix, class_name, function, listed = stack[-1]
        for statement in statements:
            kind = type(statement)
            what = KINDS.get(kind)
            if what is None:
                continue
            if what == BLOCK:
                if function is not None and kind in WITHS:
                    function.withs.append(statement)  # type: ignore[arg-type]
                inner = chain.from_iterable(BLOCKS[kind](statement))
                if function is None and kind not in SEARCHED:
                    stack.append((inner, "", None, None, False))
                else:
                    stack.append((inner, prefix, class_name, function, listed))
                break
            if what == FUNCTION:
                node: ast.FunctionDef | ast.AsyncFunctionDef = statement  # type: ignore[assignment]
                if not listed:
                    stack.append((iter(node.body), "", None, None, False))
                    break
                definition = Definition(node, f"{prefix}{node.name}", class_name)
                found.functions.append(definition)
                inner_prefix = f"{definition.qualname}.<locals>."
                stack.append((iter(node.body), inner_prefix, None, definition, True))
                break
            if what == CLASS:
                name = statement.name  # type: ignore[attr-defined]
                found.classes.add(name)
                body = iter(statement.body)  # type: ignore[attr-defined]
                stack.append((body, f"{prefix}{name}.", name, None, listed))
                break
            found.declared_global.update(statement.names)  # type: ignore[attr-defined]
        else:
            stack.pop()
    return found


def opens_timeout_scope(node: ast.With | ast.AsyncWith, table: ImportTable) -> bool:
    """Whether the flow walker makes a ``Scope`` (a bounded cancel scope) of an
    item of this `with`: a function without one has no scopes, unwalked."""
    for item in node.items:
        call = item.context_expr
        # Only these make a bounded cancel scope (``scope_effect``), and cheaply told.
        if not isinstance(call, ast.Call) or (
            last_name(table.resolve(call.func)) not in TIMEOUT_SCOPE_NAMES
        ):
            continue
        effect = scope_effect(call, table)
        if effect.is_cancel_scope and (effect.bounded or is_timeout_call(call, table)):
            return True
    return False
