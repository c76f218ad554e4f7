"""CONC110 timeout-without-checkpoint

## What it does
Flags a timeout scope (`move_on_after`, `move_on_at`, `fail_after`,
`fail_at`, `asyncio.timeout`, a `CancelScope` with a deadline) whose body
contains no checkpoint.

## Why is this bad?
A cancel scope can only interrupt its body at a checkpoint. A body with
none runs to completion however long it takes, so the timeout never fires:
the code reads as bounded but is not.

## Example
```python
with trio.move_on_after(1):
    data = blocking_read(sock)
```

## Use instead
```python
with trio.move_on_after(1):
    data = await trio.to_thread.run_sync(blocking_read, sock)
```

## Fix
Remove the pointless scope and keep its body (unsafe: it changes what the
code says, if not what it does), or make the body async.
"""

from __future__ import annotations

from collections.abc import Iterator

from conc_lsp.analysis.flow import ModuleFacts
from conc_lsp.analysis.model import Finding, Severity
from conc_lsp.rules.base import finding

CODE = "CONC110"
NAME = "timeout-without-checkpoint"
SEVERITY = Severity.WARNING


def check(module: ModuleFacts) -> Iterator[Finding]:
    for function in module.functions:
        for scope in function.scopes:
            if scope.checkpoints:
                continue
            name = scope.name.split("(", 1)[0]
            yield finding(
                CODE,
                NAME,
                SEVERITY,
                function,
                scope.location,
                f"`{name}(...)` has no checkpoint in its body, so its timeout can never fire",
            )
