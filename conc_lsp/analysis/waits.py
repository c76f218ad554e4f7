"""Waits: which awaited calls wait for another task (`Event.wait()`,
`Process.wait()`, `receive()`, `join()`...), which of them a bound, a kill or
a close ends, and which `.set()` surely ends a wait (it runs in a `finally`).

Shared by the rules about waits that may never end (CONC101, CONC104).
"""

from __future__ import annotations

import ast

from conc_lsp.analysis.cancellation import callee_in_module, is_stub
from conc_lsp.analysis.checkpoints import is_unbounded_constant
from conc_lsp.analysis.events import (
    Event,
    EventKind,
    FunctionFacts,
    ModuleFacts,
    event_name,
    exclusive,
)
from conc_lsp.analysis.libraries import last_name
from conc_lsp.analysis.reach import awaited_call

# Scheduling barriers, not waits for another task: they cannot hang on a peer.
NOT_WAITS = frozenset({"wait_all_tasks_blocked"})
WAIT_METHODS = frozenset({"wait", "join", "receive", "acquire", "wait_closed"})


def is_wait_call(call: Event) -> bool:
    """`Event.wait`, `Condition.wait`, `Process.wait`, `receive`, `acquire`, `join`,
    and any `wait*` / `*_wait` / `wait_for_*` name, whatever it is reached through."""
    name = call.method or ""
    if name in NOT_WAITS:
        return False
    if call.callee and call.callee.startswith(("asyncio.wait_for", "trio.sleep", "anyio.sleep")):
        return False
    if name in WAIT_METHODS and call.receiver is not None:
        return True
    return name.startswith("wait") or name.endswith("_wait") or name == "sleep_forever"


# Calls that make a wait end: kill or close the thing waited for (`conn.abort()`
# then `await conn.wait_closed()`, `sftp.exit()` then `await sftp.wait_closed()`).
KILLERS = frozenset(
    {
        "kill",
        "terminate",
        "send_signal",
        "cancel",
        "close",
        "aclose",
        "abort",
        "exit",
        "shutdown",
        "stop",
        "disconnect",
    }
)


WAIT_FOR = frozenset({"asyncio.wait_for", "asyncio.tasks.wait_for"})


SHIELD = frozenset({"asyncio.shield", "asyncio.tasks.shield"})


WAIT_TASKS = frozenset({"asyncio.wait", "asyncio.tasks.wait"})


Setter = tuple[FunctionFacts, Event]


def unbounded_wait(function: FunctionFacts, call: Event) -> Event | None:
    """The unbounded wait an awaited call stands for, or None.

    `asyncio.wait_for(w, timeout)` is bounded unless its timeout is None or
    infinite; `asyncio.shield(w)` bounds nothing; `asyncio.wait(tasks)` is a
    wait unless given a timeout.
    """
    node = call.node
    if not isinstance(node, ast.Call):
        return None
    if call.callee in WAIT_FOR:
        timeout = call_argument(node, 1, "timeout")
        if timeout is not None and not is_unbounded_constant(timeout):
            return None
        return inner_wait(function, node)
    if call.callee in SHIELD:
        return inner_wait(function, node)
    if call.callee in WAIT_TASKS:
        timeout = call_argument(node, None, "timeout")
        return call if timeout is None or is_unbounded_constant(timeout) else None
    if (call.method or "") == "sleep_forever" or last_name(call.callee) == "sleep_forever":
        return call
    return call if is_wait_call(call) else None


def call_argument(node: ast.Call, position: int | None, keyword: str) -> ast.expr | None:
    for item in node.keywords:
        if item.arg == keyword:
            return item.value
    if position is not None and len(node.args) > position:
        return node.args[position]
    return None


def inner_wait(function: FunctionFacts, node: ast.Call) -> Event | None:
    inner = node.args[0] if node.args else None
    if not isinstance(inner, ast.Call):
        return None
    for event in function.events:
        if event.kind is EventKind.CALL and event.node is inner:
            return unbounded_wait(function, event)
    return None


def killed_before(function: FunctionFacts, call: Event) -> bool:
    """`proc.kill()` (or terminate, close, abort...) earlier on the same path bounds
    `proc.wait()`; so does closing a part of it (`self._transport.close()` before
    `await self.wait()`)."""
    return any(
        event.kind is EventKind.CALL
        and event.method in KILLERS
        and same_object(event.receiver, call.receiver)
        and event.order < call.order
        and not exclusive(event, call)
        for event in function.events
    )


def same_object(killed: str | None, waited: str | None) -> bool:
    if killed is None or waited is None:
        return False
    return killed == waited or killed.startswith(waited + ".") or waited.startswith(killed + ".")


def bounded_callee(module: ModuleFacts, function: FunctionFacts, call: Event) -> bool:
    """`await lifespan.wait_for_shutdown()` where that method of this module waits
    only with a bound (`asyncio.wait_for(..., timeout=60)`, `move_on_after`)."""
    target = callee_in_module(module, function, call)
    if target is None or not target.is_async or is_stub(target.node) or target is function:
        return False
    for checkpoint in target.checkpoints:
        inner = awaited_call(target, checkpoint)
        if inner is None or checkpoint.context.bounded:
            continue
        if unbounded_wait(target, inner) is not None:
            return False
    return True


def released_before(function: FunctionFacts, call: Event) -> bool:
    """`lock.release()` ... `await lock.acquire()`: re-taking a lock the function gave up
    (`Condition.wait`) restores the caller's invariant; its holder releases it."""
    return call.method == "acquire" and any(
        event.kind is EventKind.CALL
        and event.method == "release"
        and event.receiver == call.receiver
        and event.order < call.order
        for event in function.events
    )


def setters_in_finally(module: ModuleFacts) -> dict[str, list[Setter]]:
    found: dict[str, list[Setter]] = {}
    for function, event in module.calls("set"):
        if event.context.in_finally and event.receiver and not event.arguments:
            found.setdefault(event_name(event.receiver), []).append((function, event))
    return found


def guaranteed_setter(
    setters: dict[str, list[Setter]], function: FunctionFacts, call: Event
) -> Setter | None:
    """A `.set()` of the awaited event in some `finally`, other than one this very
    function only reaches after the wait (that one can never end it)."""
    if call.method != "wait":
        return None
    for setter_function, event in setters.get(event_name(call.receiver), []):
        if setter_function is function and event.order > call.order:
            continue
        return setter_function, event
    return None


def waiting_call(module: ModuleFacts, function: FunctionFacts, checkpoint: Event) -> Event | None:
    """The unbounded wait ``checkpoint`` stands for (the awaited call, or the wait
    inside `asyncio.wait_for` / `shield`), unless a kill, a close, a release or
    a bounded callee ends it."""
    awaited = awaited_call(function, checkpoint)
    call = unbounded_wait(function, awaited) if awaited is not None else None
    if call is None or released_before(function, call) or killed_before(function, call):
        return None
    if call is awaited and bounded_callee(module, function, call):
        return None
    return call
