"""Is this state shared between tasks? Only with evidence.

Module globals and class attributes (reached through the class or `cls`)
are shared by every instance and task. An instance attribute (`self.x`) is
shared only when it is a registry by key (`self._conns[host]`: many users by
design) or its class shows concurrent use: one of its methods spawns a task
(a method of its own, or a handler into its nursery), or it waits for, sets
or holds synchronisation primitives of its own (`self._lock`, `await
self._closed.wait()`, `self._ready.set()`). A per-request or per-connection
object driven by one task is not shared.
"""

from __future__ import annotations

import ast

from conc_lsp.analysis.events import Event, EventKind, FunctionFacts, ModuleFacts
from conc_lsp.analysis.locks import is_lock_text
from conc_lsp.analysis.program import SPAWN_METHODS

SIGNALS = frozenset({"wait", "set", "acquire", "release", "notify", "notify_all"})
MEMBERSHIP = frozenset({"add", "discard"})
KEYED_METHODS = frozenset({None, "pop", "get", "setdefault"})


def concurrent_classes(module: ModuleFacts) -> frozenset[str]:
    """Classes of the module whose instances are used by several tasks, as far as
    the module shows."""
    memo = module.memo.get("concurrent-classes")
    if isinstance(memo, frozenset):
        return memo
    found: set[str] = set()
    for function in module.functions:
        if function.class_name is None or function.class_name in found:
            continue
        if _shows_concurrency(function):
            found.add(function.class_name)
    result = frozenset(found)
    module.memo["concurrent-classes"] = result
    return result


def _shows_concurrency(function: FunctionFacts) -> bool:
    for event in function.events:
        if event.guards:
            return True
        if event.kind is not EventKind.CALL:
            continue
        if event.method in SPAWN_METHODS:
            return True
        receiver = event.receiver or ""
        if receiver.startswith("self.") and (event.method in SIGNALS or is_lock_text(receiver)):
            return True
    return False


def through_instance(event: Event) -> bool:
    """The access reaches the state through `self` (an instance attribute)."""
    node = event.node
    while isinstance(node, (ast.Subscript, ast.Call, ast.Attribute)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            return node.value.id == "self"
        node = node.func if isinstance(node, ast.Call) else node.value
    return False


def keyed_by_variable(event: Event) -> bool:
    """`self._conns[host]`, `self._conns.pop(host)`: an entry chosen by a variable
    key (not `append(part)`, whose argument is a value)."""
    key = event.key
    if key is None or event.method not in KEYED_METHODS:
        return False
    return key[:1] not in ("'", '"') and not key.lstrip("-").isdigit()


def _evidence(module: ModuleFacts, event: Event) -> bool:
    if event.owner == "<module>" or not through_instance(event):
        return True
    if keyed_by_variable(event):
        return True  # a registry by key (`self._conns[host]`): many users by design
    if event.kind is EventKind.WRITE and event.method in MEMBERSHIP:
        return True  # a set of live members (`self._subscribers.add(channel)`)
    return (event.owner or "") in concurrent_classes(module)


def shared_states(module: ModuleFacts) -> frozenset[str]:
    """The states of the module with evidence of sharing at any of their accesses."""
    memo = module.memo.get("shared-states")
    if isinstance(memo, frozenset):
        return memo
    found = frozenset(
        event.state
        for function in module.functions
        for event in function.events
        if event.state is not None and _evidence(module, event)
    )
    module.memo["shared-states"] = found
    return found


def is_shared(module: ModuleFacts, event: Event) -> bool:
    """Whether the state ``event`` touches is shared between tasks."""
    return event.state is not None and event.state in shared_states(module)


def callers_hold_a_lock(module: ModuleFacts, function: FunctionFacts) -> bool:
    """A private method every caller of which (in this module) holds a lock: its
    body runs serialised (`async with self._read_lock: await self._settings()`)."""
    if not function.name.startswith("_") or function.class_name is None:
        return False
    calls = [
        event
        for other in module.functions
        if other.class_name == function.class_name and other is not function
        for event in other.events
        if event.kind is EventKind.CALL
        and event.method == function.name
        and event.receiver in ("self", "cls")
    ]
    return bool(calls) and all(event.guards for event in calls)
