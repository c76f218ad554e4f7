"""CONC102 unshielded-await-in-cleanup

## What it does
Flags the first checkpoint of a cleanup block (`finally`, the teardown of an
async context manager after its `yield`, `__aexit__`) that is not inside a
shielded cancel scope. One finding per cleanup block; the lines it would
skip are listed as related information.

## Why is this bad?
In trio and anyio, cancellation is level-triggered: once the enclosing scope
is cancelled, *every* checkpoint raises `Cancelled`, including the ones in
`finally`. The cleanup is then cut short at its first `await` and the rest
of it (releasing, closing, popping state) never runs. asyncio-only modules
are not checked: asyncio delivers a cancellation once.

Explicit checkpoints (`trio.lowlevel.checkpoint()`, `asyncio.sleep(0)`) and
`trio.aclose_forcefully()` (made to run under cancellation) are not flagged;
a shield whose value is only known at run time gives an informational
finding.

## Example
```python
try:
    await serve()
finally:
    await conn.send_goodbye()
    registry.pop(conn.id)
```

## Use instead
```python
try:
    await serve()
finally:
    with trio.move_on_after(2, shield=True):
        await conn.send_goodbye()
    registry.pop(conn.id)
```

## Fix
Shield and bound the cleanup: `with trio.move_on_after(T, shield=True):`
(anyio likewise). Safe: the cleanup keeps its order and gains a deadline.
"""

from __future__ import annotations

from collections.abc import Iterator

from conc_lsp.analysis.flow import EventKind, ModuleFacts
from conc_lsp.analysis.model import Finding, Severity, Shield
from conc_lsp.rules.base import awaited_call, describe, finding
from conc_lsp.rules.conc101_unbounded_wait_in_cleanup import where_in_cleanup

CODE = "CONC102"
NAME = "unshielded-await-in-cleanup"
SEVERITY = Severity.WARNING
EXPLICIT_CHECKPOINTS = frozenset(
    {
        "checkpoint",
        "checkpoint_if_cancelled",
        "cancel_shielded_checkpoint",
        "aclose_forcefully",
    }
)


def check(module: ModuleFacts) -> Iterator[Finding]:
    if module.libraries == frozenset({"asyncio"}):
        return
    for function in module.functions:
        if function.name == "aclose":
            continue  # an aclose() is a checkpoint by contract
        reported: set[int] = set()
        for checkpoint in function.checkpoints:
            context = checkpoint.context
            if context.in_except is not None and not context.in_finally:
                continue  # CONC103's ground
            if not (context.in_finally or context.acm_teardown or context.in_aexit):
                continue
            if context.shielded is Shield.YES or checkpoint.cleanup_block in reported:
                continue
            call = awaited_call(function, checkpoint)
            if call is not None and (
                (call.callee or "").rsplit(".", 1)[-1] in EXPLICIT_CHECKPOINTS
                or (call.callee == "asyncio.sleep" and call.argument == "0")
            ):
                continue
            reported.add(checkpoint.cleanup_block)
            skipped = [
                event
                for event in function.events[checkpoint.order + 1 :]
                if event.cleanup_block == checkpoint.cleanup_block
                and event.kind in (EventKind.CALL, EventKind.WRITE)
                and event.location.line > checkpoint.location.line
            ]
            related = []
            if skipped:
                first = skipped[0]
                related.append((first.location, "skipped when the checkpoint above is cancelled"))
            what = "await " + describe(call, "...") if call else module.source(checkpoint.location)
            if context.shielded is Shield.MAYBE:
                yield finding(
                    CODE,
                    NAME,
                    Severity.INFORMATION,
                    function,
                    checkpoint.location,
                    f"`{what}` in {where_in_cleanup(context)} is shielded only if the "
                    "runtime shield value is true; otherwise a cancellation stops the "
                    "cleanup here",
                    related,
                )
                continue
            yield finding(
                CODE,
                NAME,
                SEVERITY,
                function,
                checkpoint.location,
                f"unshielded `{what}` in {where_in_cleanup(context)}: if the scope is "
                "being cancelled, the cleanup stops here and the rest of it never runs",
                related,
            )
