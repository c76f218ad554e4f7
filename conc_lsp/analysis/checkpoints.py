"""What cancel scopes do to the checkpoints in them: the effect of a `with`
item (a timeout, a shield, a nursery), of `cs.shield = ...` and
`cs.deadline = ...` on a scope bound by name, and the names the walk
(``walk.py``) recognises for them."""

from __future__ import annotations

import ast
from dataclasses import dataclass, replace

from conc_lsp.analysis.libraries import ImportTable, last_name
from conc_lsp.analysis.locks import name_words
from conc_lsp.analysis.model import Context, Shield

TIMEOUT_SCOPES = frozenset({"move_on_after", "move_on_at", "fail_after", "fail_at"})
ASYNCIO_TIMEOUTS = frozenset(
    {
        "asyncio.timeout",
        "asyncio.timeout_at",
        "asyncio.timeouts.timeout",
        "asyncio.timeouts.timeout_at",
        "async_timeout.timeout",
        "async_timeout.timeout_at",
    }
)
BOUNDED_CALLS = frozenset({"wait_for"})  # asyncio.wait_for(aw, timeout)
NURSERIES = frozenset({"open_nursery", "create_task_group", "TaskGroup", "open_service_nursery"})
ACM_DECORATORS = frozenset({"asynccontextmanager", "acm"})
AEXIT_NAMES = frozenset({"__aexit__", "aclose"})
SPAWN_METHODS = frozenset({"start_soon", "create_task"})
SPAWN_FUNCTIONS = frozenset({"asyncio.ensure_future", "asyncio.create_task"})


SHIELD_WORDS = frozenset({"shield", "shielded"})


@dataclass(frozen=True, slots=True)
class ScopeEffect:
    bounded: bool = False
    shield: Shield = Shield.NO
    waits_for_children: bool = False
    is_cancel_scope: bool = False


NO_EFFECT = ScopeEffect()


def callee(decorator: ast.expr) -> ast.expr:
    return decorator.func if isinstance(decorator, ast.Call) else decorator


def is_unbounded_constant(node: ast.expr) -> bool:
    """`None`, `math.inf` or `float("inf")`: a timeout that never fires."""
    if isinstance(node, ast.Constant):
        return node.value is None or node.value == float("inf")
    if isinstance(node, ast.Attribute) and node.attr == "inf":
        return True
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "float"
        and bool(node.args)
        and isinstance(node.args[0], ast.Constant)
        and str(node.args[0].value).lower() in ("inf", "+inf", "infinity")
    )


def after_scope_assignment(
    statement: ast.stmt, scopes: dict[str, ScopeEffect], context: Context
) -> Context:
    """The context after `cs.shield = ...` or `cs.deadline = ...` on a cancel
    scope ``cs`` bound by an enclosing `with`."""
    if not scopes or not isinstance(statement, ast.Assign):
        return context
    for target in statement.targets:
        if not isinstance(target, ast.Attribute):
            continue
        owner = target.value
        # `n.cancel_scope.shield = True` on a nursery / task group bound by the `with`.
        if isinstance(owner, ast.Attribute) and owner.attr == "cancel_scope":
            owner = owner.value
        if not (isinstance(owner, ast.Name) and owner.id in scopes):
            continue
        value = statement.value
        if target.attr == "shield":
            if isinstance(value, ast.Constant):
                if value.value:
                    # A shield blocks every outer cancellation, outer deadlines too.
                    own = scopes[owner.id].bounded
                    return replace(context, shielded=Shield.YES, bounded=own)
                # `cs.shield = False`: what follows can be cancelled again.
                return replace(context, shielded=Shield.NO)
            if context.shielded is Shield.NO:
                return replace(context, shielded=Shield.MAYBE)
        elif target.attr in ("deadline", "relative_deadline") and not is_unbounded_constant(value):
            return replace(context, bounded=True)
    return context


def inside_scope(context: Context, effect: ScopeEffect) -> Context:
    """The context inside a `with` item with ``effect``."""
    if effect.shield is Shield.YES:
        # Only the shielded scope's own deadline can still interrupt its body.
        return replace(context, shielded=Shield.YES, bounded=effect.bounded)
    if effect.bounded and not context.bounded:
        context = replace(context, bounded=True)
    if effect.shield is Shield.MAYBE and context.shielded is Shield.NO:
        context = replace(context, shielded=Shield.MAYBE)
    return context


def scope_effect(expression: ast.expr, table: ImportTable) -> ScopeEffect:
    """What a `with` item does to the checkpoints in its body."""
    if not isinstance(expression, ast.Call):
        return NO_EFFECT
    name = table.resolve(expression.func)
    final = last_name(name)
    if final in NURSERIES:
        return ScopeEffect(waits_for_children=True)
    if SHIELD_WORDS & set(name_words(final)) and name != "asyncio.shield":
        # A project's own shield wrapper (httpcore's `AsyncShieldCancellation()`,
        # a `shielded()` helper): its `__enter__` opens a shielded cancel scope.
        return ScopeEffect(shield=Shield.YES, is_cancel_scope=True)
    is_timeout = final in TIMEOUT_SCOPES or name in ASYNCIO_TIMEOUTS
    if not is_timeout and final != "CancelScope":
        return NO_EFFECT
    bounded = False
    shield = Shield.NO
    if is_timeout and expression.args:
        bounded = not is_unbounded_constant(expression.args[0])
    for keyword in expression.keywords:
        value = keyword.value
        if keyword.arg in ("deadline", "relative_deadline"):
            bounded = not is_unbounded_constant(value)
        elif keyword.arg == "shield":
            if isinstance(value, ast.Constant):
                shield = Shield.YES if value.value else Shield.NO
            else:
                shield = Shield.MAYBE
        elif keyword.arg in ("delay", "seconds", "when") and is_timeout:
            bounded = not is_unbounded_constant(value)
    return ScopeEffect(bounded=bounded, shield=shield, is_cancel_scope=True)
