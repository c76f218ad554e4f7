"""Objects a function hands to other functions of its module, by argument.

`nursery.start_soon(worker, done)`, `asyncio.create_task(worker(done))` and
`worker(done)` bind the caller's `done` to a parameter of `worker`: the two
names are one object. Rules follow a local event, lock or channel through
these calls instead of pairing objects by name.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from conc_lsp.analysis.events import FunctionFacts, ModuleFacts
from conc_lsp.analysis.task_blocks import started


@dataclass(frozen=True, slots=True)
class Handoff:
    """The waiter's local event handed to ``function`` as its ``parameter``."""

    function: FunctionFacts
    parameter: str
    line: int  # 0-based line of the call that hands it over
    supervised: bool  # started into a nursery / task group the waiter holds open


def handoffs(
    module: ModuleFacts, owner: FunctionFacts, name: str, spawners: frozenset[str]
) -> list[Handoff]:
    """Functions of this module that ``owner`` hands its local ``name`` to, by
    position or keyword: `start_soon(f, name)`, `create_task(f(name))`, `f(name)`."""
    memo = owner.memo.get("handoffs")
    if not isinstance(memo, dict):
        memo = _all_handoffs(module, owner, spawners)  # once per function: linear
        owner.memo["handoffs"] = memo
    found: list[Handoff] = memo.get(name, [])
    return found


def _all_handoffs(
    module: ModuleFacts, owner: FunctionFacts, spawners: frozenset[str]
) -> dict[str, list[Handoff]]:
    found: dict[str, list[Handoff]] = {}
    held = _held_names(owner)
    for node in ast.walk(owner.node):
        if not isinstance(node, ast.Call):
            continue
        spawner = isinstance(node.func, ast.Attribute) and node.func.attr in spawners
        target: ast.expr = node.func
        arguments, keywords = node.args, node.keywords
        launched = started(node) if spawner else None
        if launched is not None:
            target, arguments, keywords = launched
        if not any(isinstance(a, ast.Name) for a in arguments) and not any(
            isinstance(k.value, ast.Name) for k in keywords
        ):
            continue
        callee = local_function(module, owner, target)
        if callee is None:
            continue
        parameters = [argument.arg for argument in callee.node.args.posonlyargs]
        parameters += [argument.arg for argument in callee.node.args.args]
        if callee.class_name and parameters and parameters[0] in ("self", "cls"):
            parameters = parameters[1:]
        bound = [
            (argument.id, parameters[index])
            for index, argument in enumerate(arguments)
            if isinstance(argument, ast.Name) and index < len(parameters)
        ] + [
            (keyword.value.id, keyword.arg)
            for keyword in keywords
            if keyword.arg and isinstance(keyword.value, ast.Name)
        ]
        supervised = spawner and _into(held, node)
        for argument, parameter in bound:
            found.setdefault(argument, []).append(
                Handoff(callee, parameter, node.lineno - 1, supervised)
            )
    return found


def local_function(
    module: ModuleFacts, owner: FunctionFacts, target: ast.expr
) -> FunctionFacts | None:
    """`worker` or `self.worker` as a function of this module (one of that name)."""
    if isinstance(target, ast.Name):
        matches = [f for f in module.functions_named(target.id) if f.class_name is None]
    elif (
        isinstance(target, ast.Attribute)
        and isinstance(target.value, ast.Name)
        and target.value.id in ("self", "cls")
    ):
        matches = [
            f for f in module.functions_named(target.attr) if f.class_name == owner.class_name
        ]
    else:
        return None
    return matches[0] if len(matches) == 1 else None


def _held_names(owner: FunctionFacts) -> frozenset[str]:
    """Names bound by the function's `async with ... as n` (its nurseries)."""
    return frozenset(
        item.optional_vars.id
        for node in ast.walk(owner.node)
        if isinstance(node, ast.AsyncWith)
        for item in node.items
        if isinstance(item.optional_vars, ast.Name)
    )


def _into(held: frozenset[str], spawn: ast.Call) -> bool:
    """`n.start_soon(...)` where ``n`` is a nursery / task group the waiter's own
    function holds open (`async with ... as n`): the child's error cancels it."""
    func = spawn.func
    return (
        isinstance(func, ast.Attribute)
        and isinstance(func.value, ast.Name)
        and func.value.id in held
    )
