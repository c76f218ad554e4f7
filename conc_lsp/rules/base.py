"""What every rule shares: its metadata and helpers to build findings."""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from conc_lsp.analysis.flow import Event, EventKind, FunctionFacts, ModuleFacts
from conc_lsp.analysis.model import Finding, HintKind, Location, Related, Severity, Verdict

Check = Callable[[ModuleFacts], Iterator[Finding]]

WAIT_METHODS = frozenset({"wait", "join", "receive", "acquire", "wait_closed"})


@dataclass(frozen=True, slots=True)
class Rule:
    code: str
    name: str
    severity: Severity
    check: Check
    doc: str
    summary: str
    uses_resolution: bool = False  # reads what jedi found (worth resolving for)


def finding(
    rule_code: str,
    rule_name: str,
    severity: Severity,
    function: FunctionFacts,
    location: Location,
    message: str,
    related: list[tuple[Location, str]] | None = None,
) -> Finding:
    return Finding(
        code=rule_code,
        name=rule_name,
        message=message,
        location=location,
        severity=severity,
        function=function.qualname,
        related=tuple(Related(where, text) for where, text in related or []),
    )


def awaited_call(function: FunctionFacts, checkpoint: Event) -> Event | None:
    """The call a checkpoint awaits (`await x.wait()` -> the CALL event of `x.wait()`)."""
    if checkpoint.order == 0:
        return None
    previous = function.events[checkpoint.order - 1]
    if previous.kind is EventKind.CALL and previous.awaited:
        return previous
    return None


def is_wait_call(call: Event) -> bool:
    """`Event.wait`, `Condition.wait`, `Process.wait`, `receive`, `acquire`, `join`,
    and any `wait*` / `*_wait` / `wait_for_*` name, whatever it is reached through."""
    name = call.method or ""
    if call.callee and call.callee.startswith(("asyncio.wait_for", "trio.sleep", "anyio.sleep")):
        return False
    if name in WAIT_METHODS and call.receiver is not None:
        return True
    return name.startswith("wait") or name.endswith("_wait") or name == "sleep_forever"


def describe(call: Event | None, fallback: str) -> str:
    if call is None:
        return fallback
    receiver = f"{call.receiver}." if call.receiver else ""
    return f"{receiver}{call.method}()"


def checkpoint_words(checkpoint: Event) -> str:
    """`the checkpoint at line 12`, or `the exit of the async with at line 12`."""
    line = checkpoint.location.line + 1
    if checkpoint.exit:
        return f"the exit of the `async with` at line {line}"
    return f"the checkpoint at line {line}"


def checkpoint_verdict(module: ModuleFacts, function: FunctionFacts, event: Event) -> Verdict:
    """What resolving the callee of a checkpoint event found (unknown when unresolved)."""
    if not module.resolved:
        return Verdict.UNKNOWN
    node = event.node
    if isinstance(node, ast.Await):
        return module.verdict_of(node, HintKind.AWAIT)
    memo = function.memo.get("with-anchors")
    anchors: dict[int, tuple[ast.withitem, ast.expr]]
    if isinstance(memo, dict):
        anchors = memo
    else:
        anchors = {}
        for child in ast.walk(function.node):
            if isinstance(child, ast.AsyncWith):
                for item in child.items:
                    anchor = item.optional_vars or item.context_expr
                    anchors[id(item.context_expr)] = (item, anchor)
        function.memo["with-anchors"] = anchors
    if id(node) in anchors:
        item, anchor = anchors[id(node)]
        found = module.resolution_of(anchor, HintKind.ASYNC_WITH)
        if found is None:
            return Verdict.UNKNOWN
        side = found.exit if event.exit else found.enter
        return side or found.verdict
    return module.verdict_of(node, HintKind.ASYNC_FOR)
