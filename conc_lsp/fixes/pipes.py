"""CONC401's fix: drain the pipes nobody reads, or send them to DEVNULL.

Every pipe the finding names (stdout and stderr alike) is handled, on the
call that started this process only:

- nothing of the process's output is read and its one wait is awaited right
  there (asyncio, or a plain `Popen.wait()`): `communicate()` before the wait
  reads both pipes to their end, and the wait returns at once;
- otherwise each unread pipe goes to `DEVNULL` (a pipe given as `PIPE`, or
  piped by default as `anyio.open_process` does), spelled with what the module
  imports; the fix is not offered when the module names no `DEVNULL`, nor when
  the finding's pipe is read after the wait (`communicate()` would leave that
  read nothing, `DEVNULL` would break it).
"""

from __future__ import annotations

import ast

import libcst as cst

from conc_lsp.analysis.events import FunctionFacts, ModuleFacts
from conc_lsp.analysis.libraries import ImportTable, last_name
from conc_lsp.analysis.model import Finding, Fix, Location
from conc_lsp.fixes.context import FixContext
from conc_lsp.fixes.toolbox import (
    Source,
    function_source,
    innermost,
    leading_lines_of,
    make_fix,
    replace_block,
    walk,
)

STREAMS = ("stdout", "stderr")
# Processes whose object has `communicate()` (trio's and anyio's have none).
COMMUNICATING = frozenset({"Popen", "create_subprocess_exec", "create_subprocess_shell"})
DEVNULL_TARGETS = ("subprocess.DEVNULL", "asyncio.subprocess.DEVNULL")


def drain_pipes(
    finding: Finding,
    facts: ModuleFacts,
    context: FixContext,
    variable: str,
    start: Location,
    streams: tuple[str, ...],
) -> Fix | None:
    found_source = function_source(finding, facts, context)
    if found_source is None:
        return None
    function, source = found_source
    read = _streams_read(source, variable)
    if any(stream in read for stream in streams):
        return None  # read after the wait: draining or dropping it would starve that read
    spawned = _spawner(function, facts.table, start)
    if spawned is None:
        return None
    start_call = _call_at(source, start)
    if start_call is None:
        return None
    if not read and spawned in COMMUNICATING and finding.location.line != start.line:
        drained = _communicate_before_wait(finding, context, source, variable)
        if drained is not None:
            return drained
    return _to_devnull(context, source, facts.table, start_call, streams)


def _streams_read(source: Source, variable: str) -> set[str]:
    return {
        node.attr.value
        for node in walk(source.module)
        if isinstance(node, cst.Attribute)
        and isinstance(node.value, cst.Name)
        and node.value.value == variable
        and node.attr.value in STREAMS
    }


def _spawner(function: FunctionFacts, table: ImportTable, start: Location) -> str | None:
    """The last name of what started the process (`create_subprocess_exec`)."""
    for node in ast.walk(function.node):
        if (
            isinstance(node, ast.Call)
            and node.lineno - 1 == start.line
            and (node.end_lineno or node.lineno) - 1 == start.end_line
        ):
            return last_name(table.resolve(node.func))
    return None


def _call_at(source: Source, start: Location) -> cst.Call | None:
    for node in walk(source.module):
        if (
            isinstance(node, cst.Call)
            and source.line_of(node) == start.line
            and source.positions[node].start.column == start.column
        ):
            return node
    return None


def _communicate_before_wait(
    finding: Finding, context: FixContext, source: Source, variable: str
) -> Fix | None:
    """`communicate()` right before the wait, when the wait blocks right there
    (awaited, or a plain call): a wait inside `wait_for(...)` keeps its timeout."""
    line = finding.location.line
    waits = [
        node
        for node in walk(source.module)
        if isinstance(node, cst.Call)
        and isinstance(node.func, cst.Attribute)
        and isinstance(node.func.value, cst.Name)
        and node.func.value.value == variable
        and node.func.attr.value == "wait"
        and not node.args
        and source.line_of(node) == line
    ]
    place = innermost(source, line)
    if len(waits) != 1 or place is None:
        return None
    call = waits[0]
    awaited = any(
        isinstance(node, cst.Await) and node.expression is call for node in walk(place.statement)
    )
    if not awaited and any(isinstance(node, cst.Await) for node in walk(place.statement)):
        return None  # an asyncio wait handed to something awaited (`wait_for`)
    if not awaited and _inside_call(place.statement, call):
        return None
    drain = cst.parse_statement(
        f"{'await ' if awaited else ''}{variable}.communicate()\n",
        config=source.module.config_for_parsing,
    )
    body = list(place.block.body)
    statement = place.statement
    drain = drain.with_changes(leading_lines=leading_lines_of(statement))
    body[place.index : place.index + 1] = [drain, statement.with_changes(leading_lines=())]
    module = replace_block(source.module, place.block, body)
    return make_fix(
        f"Drain the pipes with `{variable}.communicate()` before waiting",
        True,
        source.edit(module, context.lines),
    )


def _inside_call(statement: cst.CSTNode, call: cst.Call) -> bool:
    """``call`` is an argument of another call (a timeout wrapper)."""
    return any(
        isinstance(node, cst.Call)
        and node is not call
        and any(arg.value is call for arg in node.args)
        for node in walk(statement)
    )


def _devnull_spelling(table: ImportTable, pipe: cst.BaseExpression | None) -> str | None:
    """`X.DEVNULL` beside an `X.PIPE`, else a name the module imports for it."""
    if isinstance(pipe, cst.Attribute) and pipe.attr.value == "PIPE":
        return cst.Module([]).code_for_node(pipe.value) + ".DEVNULL"
    for alias, target in table.names.items():
        if target in DEVNULL_TARGETS:
            return alias
    for alias, target in table.names.items():
        if target in ("subprocess", "asyncio.subprocess"):
            return f"{alias}.DEVNULL"
    for alias, target in table.names.items():
        if target == "asyncio":
            return f"{alias}.subprocess.DEVNULL"
    return None


def _to_devnull(
    context: FixContext,
    source: Source,
    table: ImportTable,
    call: cst.Call,
    streams: tuple[str, ...],
) -> Fix | None:
    given = {arg.keyword.value: arg for arg in call.args if arg.keyword is not None}
    new_args = list(call.args)
    for stream in streams:
        argument = given.get(stream)
        spelling = _devnull_spelling(table, argument.value if argument is not None else None)
        if spelling is None:
            return None  # the module names no DEVNULL: an import is beyond a quick fix
        value = cst.parse_expression(spelling)
        if argument is not None:
            new_args[new_args.index(argument)] = argument.with_changes(value=value)
        else:
            new_args.append(
                cst.Arg(
                    value=value,
                    keyword=cst.Name(stream),
                    equal=cst.AssignEqual(
                        whitespace_before=cst.SimpleWhitespace(""),
                        whitespace_after=cst.SimpleWhitespace(""),
                    ),
                )
            )
    new_args = _with_commas(new_args)
    module = source.module.deep_replace(call, call.with_changes(args=new_args))
    assert isinstance(module, cst.Module)
    named = " and ".join(streams)
    return make_fix(
        f"Send the unread {named} to `DEVNULL` instead of a pipe nobody drains",
        True,
        source.edit(module, context.lines),
    )


def _with_commas(args: list[cst.Arg]) -> list[cst.Arg]:
    """Every argument but the last followed by a comma (an appended keyword
    needs one before it); the last keeps what it had."""
    result = []
    for index, arg in enumerate(args):
        if index < len(args) - 1 and not isinstance(arg.comma, cst.Comma):
            arg = arg.with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
        result.append(arg)
    return result
