"""CONC401 undrained-pipe

## What it does
Flags a subprocess started with `stdout=PIPE` or `stderr=PIPE`
(`subprocess.Popen`, `asyncio.create_subprocess_exec/_shell`,
`trio.open_process`, `anyio.open_process`) that is waited on without that
pipe ever being read, or whose piped output is never read at all.

## Why is this bad?
A pipe holds 64 KiB. A child that writes more blocks in `write()` until
someone reads; it cannot exit, so `wait()` never returns: a deadlock that
shows only with enough output (the seed's capture-pipe-fill hang, where
verbose logging in a child locked up the test suite).

## Example
```python
proc = await asyncio.create_subprocess_exec("build", stdout=PIPE, stderr=PIPE)
await proc.wait()
```

## Use instead
```python
proc = await asyncio.create_subprocess_exec("build", stdout=PIPE, stderr=PIPE)
out, err = await proc.communicate()
```

## Fix
Drain the pipes (`communicate()`, `run_process(..., capture_stdout=True)`)
or send the output to `DEVNULL` when it is never read. Safe for
`communicate()`; `DEVNULL` drops output on purpose.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from conc_lsp.analysis.flow import FunctionFacts, ModuleFacts
from conc_lsp.analysis.libraries import last_name
from conc_lsp.analysis.model import Finding, Location, Severity
from conc_lsp.rules.base import finding

CODE = "CONC401"
NAME = "undrained-pipe"
SEVERITY = Severity.WARNING
SPAWNERS = frozenset({"Popen", "create_subprocess_exec", "create_subprocess_shell", "open_process"})
DRAINERS = frozenset({"communicate"})
WAITERS = frozenset({"wait"})


def _piped_streams(call: ast.Call, module: ModuleFacts) -> list[str]:
    if last_name(module.table.resolve(call.func)) not in SPAWNERS:
        return []
    piped = []
    for keyword in call.keywords:
        if keyword.arg in ("stdout", "stderr"):
            value = keyword.value
            name = (
                last_name(module.table.resolve(value))
                if isinstance(value, (ast.Name, ast.Attribute))
                else ""
            )
            if name == "PIPE":
                piped.append(keyword.arg)
    return piped


def _unwrap(node: ast.expr | None) -> ast.Call | None:
    while isinstance(node, ast.Await):
        node = node.value
    return node if isinstance(node, ast.Call) else None


def _spawns(
    function: FunctionFacts, module: ModuleFacts
) -> Iterator[tuple[str, ast.Call, list[str]]]:
    """(variable, call, piped streams) for each process the function starts."""
    for node in ast.walk(function.node):
        bindings: list[tuple[ast.expr, ast.expr | None]] = []
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            bindings.append((node.targets[0], node.value))
        elif isinstance(node, ast.AnnAssign):
            bindings.append((node.target, node.value))
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            bindings.extend(
                (item.optional_vars, item.context_expr) for item in node.items if item.optional_vars
            )
        for target, value in bindings:
            call = _unwrap(value)
            if call is None or not isinstance(target, ast.Name):
                continue
            piped = _piped_streams(call, module)
            if piped:
                yield target.id, call, piped


def _location(node: ast.AST, module: ModuleFacts) -> Location:
    from conc_lsp.analysis.text import utf8_to_codepoint

    line: int = node.lineno  # type: ignore[attr-defined]
    end_line: int = node.end_lineno or line  # type: ignore[attr-defined]
    return Location(
        line - 1,
        utf8_to_codepoint(module.lines[line - 1], node.col_offset),  # type: ignore[attr-defined]
        end_line - 1,
        utf8_to_codepoint(module.lines[end_line - 1], node.end_col_offset or 0),  # type: ignore[attr-defined]
    )


def check(module: ModuleFacts) -> Iterator[Finding]:
    for function in module.functions:
        if function.node is None:
            continue
        for variable, call, piped in _spawns(function, module):
            read: set[str] = set()
            drained = False
            wait: ast.Call | None = None
            for node in ast.walk(function.node):
                if (
                    isinstance(node, ast.Attribute)
                    and isinstance(node.value, ast.Name)
                    and node.value.id == variable
                ):
                    if node.attr in ("stdout", "stderr"):
                        read.add(node.attr)
                    elif node.attr in DRAINERS:
                        drained = True
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == variable
                    and node.func.attr in WAITERS
                    and wait is None
                ):
                    wait = node
            unread = [stream for stream in piped if stream not in read]
            if drained or not unread:
                continue
            streams = " and ".join(f"{stream}=PIPE" for stream in unread)
            if wait is not None:
                yield finding(
                    CODE,
                    NAME,
                    SEVERITY,
                    function,
                    _location(wait, module),
                    f"`{variable}.wait()` with {streams} never read: once the child writes "
                    "64 KiB it blocks and this wait deadlocks; use `communicate()` or DEVNULL",
                    [(_location(call, module), "the process is started with the pipe here")],
                )
            else:
                yield finding(
                    CODE,
                    NAME,
                    SEVERITY,
                    function,
                    _location(call, module),
                    f"`{variable}` is started with {streams} that is never read: the child "
                    "blocks once the pipe buffer fills; read it, or use DEVNULL",
                )
