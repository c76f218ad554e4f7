"""CONC101 unbounded-wait-in-cleanup

## What it does
Flags an awaited wait (`Event.wait()`, `Condition.wait()`, `Process.wait()`,
a channel's `receive()`, `Lock.acquire()`, `join()`, and any `wait*`,
`*_wait` or `wait_for_*` call) on a cleanup path (`finally`, `except`, the
teardown of an async context manager, `__aexit__`, `aclose`) that is not
inside a bounded scope (`move_on_after`, `fail_after`, `asyncio.timeout`,
a `CancelScope` with a deadline, `asyncio.wait_for(..., timeout)`).

## Why is this bad?
Teardown that waits for another task's progress is a latent deadlock: if the
setter never fires (the peer is stuck, the child never exits, the task that
would set the event is itself waiting for this teardown) the whole
cancellation cascade hangs. tractor's `async_main` hung this way on
`ipc_server.wait_for_no_more_peers()` in a `finally`.

The wait is not flagged when it is provably bounded (`proc.kill()` before
`await proc.wait()`); when the matching `.set()` sits in a `finally` of the
setter, the finding is only informational, because the setter is guaranteed
to run once it starts.

## Example
```python
try:
    await serve(ipc_server)
finally:
    await ipc_server.wait_for_no_more_peers()
```

## Use instead
```python
try:
    await serve(ipc_server)
finally:
    with trio.move_on_after(3, shield=True) as cs:
        await ipc_server.wait_for_no_more_peers()
    if cs.cancelled_caught:
        log.warning("peers still connected after 3s; tearing down anyway")
```

## Fix
Wrap the wait in a bounded (and, on a cancellable cleanup path, shielded)
scope. Safe: only the unbounded wait changes.
"""

from __future__ import annotations

from collections.abc import Iterator

from conc_lsp.analysis.flow import Event, EventKind, FunctionFacts, ModuleFacts, event_name
from conc_lsp.analysis.model import Context, Finding, Location, Severity
from conc_lsp.rules.base import awaited_call, describe, finding, is_wait_call

CODE = "CONC101"
NAME = "unbounded-wait-in-cleanup"
SEVERITY = Severity.WARNING
KILLERS = frozenset({"kill", "terminate", "send_signal", "cancel", "close", "aclose"})


def check(module: ModuleFacts) -> Iterator[Finding]:
    guaranteed_setters = _setters_in_finally(module)
    for function in module.functions:
        for checkpoint in function.checkpoints:
            context = checkpoint.context
            if not context.on_cleanup_path or context.bounded or checkpoint.exit:
                continue
            call = awaited_call(function, checkpoint)
            if call is None or not is_wait_call(call):
                continue
            if call.callee and call.callee.endswith("wait_for"):
                continue  # asyncio.wait_for with a timeout is bounded; None is CONC-free here
            if _killed_before(function, call):
                continue
            where = where_in_cleanup(context)
            waited = describe(call, "the wait")
            setter = (
                guaranteed_setters.get(event_name(call.receiver)) if call.method == "wait" else None
            )
            if setter is not None:
                yield finding(
                    CODE,
                    NAME,
                    Severity.INFORMATION,
                    function,
                    checkpoint.location,
                    f"`await {waited}` in {where} has no timeout; it ends because its "
                    f"`.set()` runs in a `finally` (line {setter[0].line + 1})",
                    [(setter[0], f"the matching `.set()` in a finally of `{setter[1]}`")],
                )
                continue
            yield finding(
                CODE,
                NAME,
                SEVERITY,
                function,
                checkpoint.location,
                f"unbounded `await {waited}` in {where}: if it never completes, "
                "teardown hangs; bound it with a timeout (e.g. `move_on_after`)",
            )


def where_in_cleanup(context: Context) -> str:
    """Words for the cleanup path a checkpoint sits on."""
    if context.in_finally:
        return "a `finally` block"
    if context.in_except is not None:
        return "an `except` handler"
    if context.acm_teardown:
        return "async context manager teardown"
    return "`__aexit__`/`aclose`"


def _killed_before(function: FunctionFacts, call: Event) -> bool:
    """`proc.kill()` (or terminate/cancel) earlier in the function bounds `proc.wait()`."""
    return any(
        event.kind is EventKind.CALL
        and event.method in KILLERS
        and event.receiver == call.receiver
        and event.order < call.order
        for event in function.events
    )


def _setters_in_finally(module: ModuleFacts) -> dict[str, tuple[Location, str]]:
    found: dict[str, tuple[Location, str]] = {}
    for function, event in module.calls("set"):
        if event.context.in_finally and event.receiver:
            found.setdefault(event_name(event.receiver), (event.location, function.qualname))
    return found
