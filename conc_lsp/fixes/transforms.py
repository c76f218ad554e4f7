"""The fixes, each a small libcst transformation of one function."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import libcst as cst
from libcst.metadata import CodeRange, MetadataWrapper, PositionProvider

from conc_lsp.analysis.flow import EventKind, FunctionFacts, ModuleFacts
from conc_lsp.analysis.model import Finding, Fix, Location, Shield, TextEdit
from conc_lsp.analysis.text import changed_span
from conc_lsp.fixes.context import FixContext

HEADER = "if 1:\n"  # lets libcst parse an indented function with its indentation kept


@dataclass(slots=True)
class Source:
    """One function's source, parsed by libcst with its original indentation."""

    first: int  # first line (0-based, decorators included)
    end: int  # exclusive
    wrapped: bool  # parsed under HEADER
    module: cst.Module
    positions: dict[cst.CSTNode, CodeRange]
    unit: str  # the indentation step of the function's body

    def line_of(self, node: cst.CSTNode) -> int:
        """0-based file line of a node's start."""
        return self.positions[node].start.line - 1 - (1 if self.wrapped else 0) + self.first

    def end_line_of(self, node: cst.CSTNode) -> int:
        return self.positions[node].end.line - 1 - (1 if self.wrapped else 0) + self.first

    def edit(self, new_module: cst.Module, lines: list[str]) -> TextEdit | None:
        """The smallest whole-line edit that turns the function into ``new_module``'s."""
        code = new_module.code
        if self.wrapped:
            code = code[len(HEADER) :]
        new = code.split("\n")
        if new and new[-1] == "":
            new.pop()
        old = lines[self.first : self.end]
        prefix, old_end, new_end = changed_span(old, new)
        old_changed = old[prefix:old_end]
        new_changed = new[prefix:new_end]
        if not old_changed and not new_changed:
            return None
        start_line = self.first + prefix
        if old_changed:
            last = start_line + len(old_changed) - 1
            return TextEdit((start_line, 0), (last, len(lines[last])), "\n".join(new_changed))
        # pure insertion of whole lines before start_line
        return TextEdit((start_line, 0), (start_line, 0), "\n".join(new_changed) + "\n")


def parse_function(function: FunctionFacts, lines: list[str]) -> Source | None:
    node = function.node
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)]) - 1
    end = node.end_lineno or node.lineno
    text_lines = lines[first:end]
    indent = text_lines[0][: len(text_lines[0]) - len(text_lines[0].lstrip())]
    wrapped = bool(indent)
    text = (HEADER if wrapped else "") + "\n".join(text_lines) + "\n"
    try:
        module = cst.parse_module(text)
    except cst.ParserSyntaxError:
        return None
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    positions = dict(wrapper.resolve(PositionProvider))
    definition = _first_function(module)
    if definition is None:
        return None
    unit = definition.body.indent if isinstance(definition.body, cst.IndentedBlock) else None
    return Source(first, end, wrapped, module, positions, unit or module.default_indent)


def function_source(
    finding: Finding, facts: ModuleFacts, context: FixContext
) -> tuple[FunctionFacts, Source] | None:
    """The function that holds a finding, and its libcst source."""
    function = facts.function(finding.function)
    if function is None:
        return None
    source = parse_function(function, context.lines)
    return (function, source) if source is not None else None


def _first_function(module: cst.Module) -> cst.FunctionDef | None:
    for node in _walk(module):
        if isinstance(node, cst.FunctionDef):
            return node
    return None


def _walk(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.children))


@dataclass(slots=True)
class Place:
    """A statement and the block that holds it."""

    block: cst.IndentedBlock | cst.Module
    index: int
    statement: cst.BaseStatement
    ancestors: list[tuple[cst.CSTNode, cst.IndentedBlock | cst.Module, int]]


def _statements(
    block: cst.IndentedBlock | cst.Module,
    ancestors: list[tuple[cst.CSTNode, cst.IndentedBlock | cst.Module, int]],
) -> Iterator[Place]:
    body = block.body
    for index, statement in enumerate(body):
        if not isinstance(statement, cst.BaseStatement):
            continue
        yield Place(block, index, statement, ancestors)
        for child_block in _blocks_of(statement):
            yield from _statements(child_block, [*ancestors, (statement, block, index)])


def _blocks_of(statement: cst.CSTNode) -> list[cst.IndentedBlock]:
    """The blocks a compound statement owns directly (elif chains included)."""
    blocks: list[cst.IndentedBlock] = []
    body = getattr(statement, "body", None)
    if isinstance(body, cst.IndentedBlock):
        blocks.append(body)
    orelse = getattr(statement, "orelse", None)
    if isinstance(orelse, cst.If):
        blocks.extend(_blocks_of(orelse))
    elif orelse is not None and isinstance(getattr(orelse, "body", None), cst.IndentedBlock):
        blocks.append(orelse.body)
    for handler in getattr(statement, "handlers", ()):
        if isinstance(handler.body, cst.IndentedBlock):
            blocks.append(handler.body)
    finalbody = getattr(statement, "finalbody", None)
    if finalbody is not None and isinstance(finalbody.body, cst.IndentedBlock):
        blocks.append(finalbody.body)
    for case in getattr(statement, "cases", ()):
        if isinstance(case.body, cst.IndentedBlock):
            blocks.append(case.body)
    return blocks


def innermost(source: Source, line: int) -> Place | None:
    """The innermost statement whose lines contain file line ``line``."""
    best: Place | None = None
    for place in _statements(source.module, []):
        contains = source.line_of(place.statement) <= line <= source.end_line_of(place.statement)
        if contains and (best is None or len(place.ancestors) >= len(best.ancestors)):
            best = place
    return best


def _replace_block(
    module: cst.Module, block: cst.IndentedBlock | cst.Module, body: Sequence[cst.BaseStatement]
) -> cst.Module:
    if isinstance(block, cst.Module):
        return block.with_changes(body=list(body))
    new_block = block.with_changes(body=list(body))
    result = module.deep_replace(block, new_block)
    assert isinstance(result, cst.Module)
    return result


def _leading(statement: cst.CSTNode) -> Sequence[cst.EmptyLine]:
    """The comment and blank lines above a statement (kept above any wrapper)."""
    lines: Sequence[cst.EmptyLine] = getattr(statement, "leading_lines", ())
    return lines


def _fix(title: str, safe: bool, edit: TextEdit | None) -> Fix | None:
    return Fix(title, safe, (edit,)) if edit is not None else None


# -- library spelling -------------------------------------------------------


def library(facts: ModuleFacts) -> tuple[str, str] | None:
    """(library, how the file names it): ('trio', 't') for `import trio as t`."""
    names = facts.table.names
    for wanted in ("trio", "anyio", "asyncio"):
        for alias, target in names.items():
            if target == wanted:
                return wanted, alias
    return None


def _checkpoint_at(function: FunctionFacts, where: Location) -> object | None:
    for event in function.events:
        if event.kind is EventKind.CHECKPOINT and event.location == where:
            return event
    return None


_LOGGER_USE = re.compile(r"\b(log|logger|_log|_logger|LOG|LOGGER)\.(?:warning|info|error)\(")
_LOGGER_MADE = re.compile(r"^\s*(log|logger|_log|_logger)\s*=.*getLogger", re.MULTILINE)


def _logger_name(context: FixContext) -> str | None:
    """The module's logger (`log`, `logger`, ...), found once per module."""
    if context.logger is None:
        text = "\n".join(context.lines)
        match = _LOGGER_USE.search(text) or _LOGGER_MADE.search(text)
        context.logger = match.group(1) if match else ""
    return context.logger or None


def _unused_name(base: str, text: str) -> str:
    name, number = base, 1
    while re.search(rf"\b{name}\b", text):
        number += 1
        name = f"{base}{number}"
    return name


def _format_seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _bounded(
    statements: list[cst.BaseStatement],
    facts: ModuleFacts,
    context: FixContext,
    source: Source,
    *,
    shield: bool,
    what: str,
) -> tuple[list[cst.BaseStatement], str] | None:
    """``statements`` inside the library's bounded (and maybe shielded) scope."""
    found = library(facts)
    if found is None:
        return None
    name, alias = found
    seconds = _format_seconds(context.timeout)
    unit = source.unit
    first = statements[0]
    leading = _leading(first)
    statements = [first.with_changes(leading_lines=()), *statements[1:]]
    text = source.module.code
    logger = _logger_name(context)
    message = f"gave up on {what} after {seconds} s"
    if name == "asyncio":
        handler_body: cst.BaseStatement = cst.parse_statement(
            f'{logger}.warning("{message}")\n' if logger else f"pass  # conc-lsp: {message}\n"
        )
        scope = cst.parse_statement(
            f"async with {alias}.timeout({seconds}):\n{unit}pass\n",
            config=source.module.config_for_parsing,
        )
        assert isinstance(scope, cst.With)
        scope = scope.with_changes(body=cst.IndentedBlock(body=statements, indent=unit))
        wrapper = cst.Try(
            body=cst.IndentedBlock(body=[scope], indent=unit),
            handlers=[
                cst.ExceptHandler(
                    body=cst.IndentedBlock(body=[handler_body], indent=unit),
                    type=cst.Name("TimeoutError"),
                )
            ],
            leading_lines=leading,
        )
        return [wrapper], "asyncio.timeout"
    variable = _unused_name("cs", text)
    arguments = f"{seconds}, shield=True" if shield else seconds
    scope = cst.parse_statement(
        f"with {alias}.move_on_after({arguments}) as {variable}:\n{unit}pass\n",
        config=source.module.config_for_parsing,
    )
    assert isinstance(scope, cst.With)
    scope = scope.with_changes(
        body=cst.IndentedBlock(body=statements, indent=unit), leading_lines=leading
    )
    follow = cst.parse_statement(
        f"if {variable}.cancelled_caught:\n{unit}"
        + (f'{logger}.warning("{message}")\n' if logger else f"pass  # conc-lsp: {message}\n"),
        config=source.module.config_for_parsing,
    )
    return [scope, follow], f"{alias}.move_on_after"


# -- CONC101 ----------------------------------------------------------------


def bound_wait(finding: Finding, facts: ModuleFacts, context: FixContext) -> Fix | None:
    found_source = function_source(finding, facts, context)
    if found_source is None:
        return None
    function, source = found_source
    place = innermost(source, finding.location.line)
    if place is None or source.line_of(place.statement) != finding.location.line:
        return None
    event = _checkpoint_at(function, finding.location)
    event_context = getattr(event, "context", None)
    cancellable = (
        event_context is not None
        and (event_context.in_finally or event_context.acm_teardown or event_context.in_aexit)
        and getattr(event_context, "shielded", Shield.NO) is not Shield.YES
    )
    body = list(place.block.body)
    wrapped = _bounded(
        [place.statement], facts, context, source, shield=cancellable, what="the wait"
    )
    if wrapped is None:
        return None
    new_statements, scope = wrapped
    body[place.index : place.index + 1] = new_statements
    module = _replace_block(source.module, place.block, body)
    shielded = ", shield=True" if cancellable and scope.endswith("move_on_after") else ""
    return _fix(
        f"Bound the wait with `{scope}({_format_seconds(context.timeout)}{shielded})`",
        True,
        source.edit(module, context.lines),
    )


# -- CONC102 ----------------------------------------------------------------


def shield_cleanup(finding: Finding, facts: ModuleFacts, context: FixContext) -> Fix | None:
    function = facts.function(finding.function)
    if function is None:
        return None
    found = library(facts)
    if found is None or found[0] == "asyncio":
        return None
    source = parse_function(function, context.lines)
    if source is None:
        return None
    place = innermost(source, finding.location.line)
    if place is None:
        return None
    # Climb to the statement directly in the cleanup block (the `finally:`
    # body, or the function body for teardown / __aexit__): everything from
    # there to the end of that block is the rest of the cleanup.
    block, index = place.block, place.index
    for owner, owner_block, owner_index in reversed(place.ancestors):
        if isinstance(owner, cst.Try) and isinstance(block, cst.IndentedBlock):
            finalbody = owner.finalbody
            if finalbody is not None and finalbody.body is block:
                break
        if isinstance(owner, cst.FunctionDef):
            break
        block, index = owner_block, owner_index
    statements = list(block.body[index:])
    event = _checkpoint_at(function, finding.location)
    bounded = bool(getattr(getattr(event, "context", None), "bounded", False))
    alias = found[1]
    unit = source.unit
    first = statements[0]
    leading = _leading(first)
    statements = [first.with_changes(leading_lines=()), *statements[1:]]
    if bounded:
        header = f"with {alias}.CancelScope(shield=True):\n{unit}pass\n"
        title = f"Shield the rest of the cleanup with `{alias}.CancelScope(shield=True)`"
        extra: list[cst.BaseStatement] = []
        scope = cst.parse_statement(header, config=source.module.config_for_parsing)
        assert isinstance(scope, cst.With)
        new = [
            scope.with_changes(
                body=cst.IndentedBlock(body=statements, indent=unit), leading_lines=leading
            ),
            *extra,
        ]
    else:
        wrapped = _bounded(
            list(block.body[index:]), facts, context, source, shield=True, what="the cleanup"
        )
        if wrapped is None:
            return None
        new = wrapped[0]
        title = (
            f"Shield and bound the rest of the cleanup with `{alias}.move_on_after("
            f"{_format_seconds(context.timeout)}, shield=True)`"
        )
    body = list(block.body[:index]) + new
    module = _replace_block(source.module, block, body)
    return _fix(title, True, source.edit(module, context.lines))


# -- CONC103 ----------------------------------------------------------------


def release_in_finally(
    finding: Finding, facts: ModuleFacts, context: FixContext, skipped_line: int
) -> Fix | None:
    """CONC103: move the release the await would skip into a `finally`."""
    found_source = function_source(finding, facts, context)
    if found_source is None:
        return None
    source = found_source[1]
    await_place = innermost(source, finding.location.line)
    release_place = innermost(source, skipped_line)
    if await_place is None or release_place is None:
        return None
    handler_block = release_place.block
    # Both must sit directly in the same `except` body.
    owner = release_place.ancestors[-1][0] if release_place.ancestors else None
    if not isinstance(owner, cst.ExceptHandler) and not (
        isinstance(owner, cst.Try) and any(h.body is handler_block for h in owner.handlers)
    ):
        return None
    start = None
    for index, statement in enumerate(handler_block.body):
        if source.line_of(statement) <= finding.location.line <= source.end_line_of(statement):
            start = index
    release_index = release_place.index
    if start is None or start >= release_index:
        return None
    body = list(handler_block.body)
    unit = source.unit
    guarded = body[start:release_index]
    leading = _leading(guarded[0])
    guarded[0] = guarded[0].with_changes(leading_lines=())
    release = body[release_index].with_changes(leading_lines=())
    new_try = cst.Try(
        body=cst.IndentedBlock(body=guarded, indent=unit),
        finalbody=cst.Finally(body=cst.IndentedBlock(body=[release], indent=unit)),
        leading_lines=leading,
    )
    body[start : release_index + 1] = [new_try]
    module = _replace_block(source.module, handler_block, body)
    code = context.lines[skipped_line].strip()
    return _fix(f"Move `{code}` into a `finally:`", True, source.edit(module, context.lines))


# -- CONC110 ----------------------------------------------------------------


def remove_pointless_scope(finding: Finding, facts: ModuleFacts, context: FixContext) -> Fix | None:
    found_source = function_source(finding, facts, context)
    if found_source is None:
        return None
    source = found_source[1]
    place = innermost(source, finding.location.line)
    if place is None:
        return None
    statement = place.statement
    # The scope's `with` is the statement itself or the innermost one holding the item.
    candidates = [statement, *(owner for owner, _, _ in reversed(place.ancestors))]
    target = next((node for node in candidates if isinstance(node, cst.With)), None)
    if target is None or len(target.items) != 1:
        return None
    item = target.items[0]
    if item.asname is not None:
        name = item.asname.name
        if not isinstance(name, cst.Name):
            return None
        body_code = source.module.code_for_node(target.body)
        if name.value in body_code or _used_after(source, target, name.value):
            return None
    if not isinstance(target.body, cst.IndentedBlock):
        return None
    # Find where the `with` sits.
    for place in _statements(source.module, []):
        if place.statement is target:
            break
    else:
        return None
    body = list(place.block.body)
    inner = list(target.body.body)
    inner[0] = inner[0].with_changes(leading_lines=(*_leading(target), *_leading(inner[0])))
    body[place.index : place.index + 1] = inner
    module = _replace_block(source.module, place.block, body)
    scope = source.module.code_for_node(item.item)
    return _fix(
        f"Remove `with {scope}:` (no checkpoint inside; unsafe: the timeout goes away)",
        False,
        source.edit(module, context.lines),
    )


def _used_after(source: Source, target: cst.With, name: str) -> bool:
    end = source.end_line_of(target)
    first = source.first
    lines = source.module.code.split("\n")
    offset = 1 if source.wrapped else 0
    return any(name in line for line in lines[end - first + 1 + offset :])


# -- CONC201 (loops) --------------------------------------------------------


class _Move(cst.CSTTransformer):
    """Remove ``moved`` from its block and insert it right after ``anchor``."""

    def __init__(self, anchor: cst.BaseStatement, moved: cst.BaseStatement) -> None:
        super().__init__()
        self.anchor = anchor
        self.moved = moved

    def leave_IndentedBlock(
        self, original_node: cst.IndentedBlock, updated_node: cst.IndentedBlock
    ) -> cst.IndentedBlock:
        body: list[cst.BaseStatement] = []
        changed = False
        for original, updated in zip(original_node.body, updated_node.body, strict=True):
            if original is self.moved:
                changed = True
                continue
            body.append(updated)
            if original is self.anchor:
                # Comments above the moved statement go with it; blank lines stay.
                comments = [line for line in _leading(self.moved) if line.comment is not None]
                body.append(self.moved.with_changes(leading_lines=comments))
                changed = True
        if not changed:
            return updated_node
        if not body:
            body = [cst.SimpleStatementLine(body=[cst.Pass()])]
        return updated_node.with_changes(body=body)


def _assigned_names(statement: cst.CSTNode) -> set[str]:
    names: set[str] = set()
    for node in _walk(statement):
        targets: list[cst.CSTNode] = []
        if isinstance(node, (cst.AssignTarget, cst.AugAssign, cst.AnnAssign, cst.For, cst.CompFor)):
            targets.append(node.target)
        elif isinstance(node, cst.AsName):
            targets.append(node.name)
        elif isinstance(node, cst.NamedExpr):
            targets.append(node.target)
        for target in targets:
            names.update(n.value for n in _walk(target) if isinstance(n, cst.Name))
    return names


def move_second_write(
    finding: Finding, facts: ModuleFacts, context: FixContext, first_line: int
) -> Fix | None:
    """CONC201: bring the second write up to the first, before the checkpoint."""
    found_source = function_source(finding, facts, context)
    if found_source is None:
        return None
    source = found_source[1]
    second = innermost(source, finding.location.line)
    first = innermost(source, first_line)
    if second is None or first is None:
        return None
    moved, anchor = second.statement, first.statement
    if not (
        isinstance(moved, cst.SimpleStatementLine)
        and isinstance(anchor, cst.SimpleStatementLine)
        and len(moved.body) == 1
        and source.line_of(anchor) < source.line_of(moved)
    ):
        return None
    if any(isinstance(node, (cst.Await, cst.Yield, cst.Return)) for node in _walk(moved)):
        return None
    used = {node.value for node in _walk(moved) if isinstance(node, cst.Name)}
    start, end = source.end_line_of(anchor), source.line_of(moved)
    between = [
        place.statement
        for place in _statements(source.module, [])
        if start < source.line_of(place.statement) < end
    ]
    if any(used & _assigned_names(statement) for statement in between):
        return None  # the write uses a name set in the window: it cannot move above it
    new = source.module.visit(_Move(anchor, moved))
    code = context.lines[finding.location.line].strip()
    return _fix(
        f"Move `{code}` up to the first write, before the checkpoint (unsafe: it now "
        "runs before the code in between)",
        False,
        source.edit(new, context.lines),
    )


def iterate_over_copy(finding: Finding, facts: ModuleFacts, context: FixContext) -> Fix | None:
    """CONC201's loop form: iterate over a copy of the shared container."""
    found_source = function_source(finding, facts, context)
    if found_source is None:
        return None
    source = found_source[1]
    for node in _walk(source.module):
        if isinstance(node, cst.For) and not node.asynchronous:
            position = source.positions[node.iter]
            line = position.start.line - 1 - (1 if source.wrapped else 0) + source.first
            if line == finding.location.line and position.start.column == finding.location.column:
                copy = cst.Call(func=cst.Name("list"), args=[cst.Arg(node.iter)])
                module = source.module.deep_replace(node, node.with_changes(iter=copy))
                assert isinstance(module, cst.Module)
                iterable = source.module.code_for_node(node.iter)
                return _fix(
                    f"Iterate over a copy: `list({iterable})`",
                    True,
                    source.edit(module, context.lines),
                )
    return None


# -- CONC202 ----------------------------------------------------------------


def atomic_pop(
    finding: Finding, facts: ModuleFacts, context: FixContext, check_line: int
) -> Fix | None:
    """CONC202: the atomic form (`d.pop(k, None)`), else check again after the await."""
    found_source = function_source(finding, facts, context)
    if found_source is None:
        return None
    source = found_source[1]
    place = innermost(source, finding.location.line)
    if place is None or not isinstance(place.statement, cst.SimpleStatementLine):
        return None
    small = place.statement.body
    if len(small) != 1:
        return None
    only = small[0]
    replacement: cst.BaseSmallStatement | None = None
    if isinstance(only, cst.Del) and isinstance(only.target, cst.Subscript):
        target = only.target
        elements = target.slice
        if len(elements) != 1 or not isinstance(elements[0].slice, cst.Index):
            return None
        key = elements[0].slice.value
        call = cst.Call(
            func=cst.Attribute(value=target.value, attr=cst.Name("pop")),
            args=[
                cst.Arg(key, comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))),
                cst.Arg(cst.Name("None")),
            ],
        )
        replacement = cst.Expr(call)
    else:
        calls = [
            node
            for node in _walk(only)
            if isinstance(node, cst.Call)
            and isinstance(node.func, cst.Attribute)
            and node.func.attr.value == "pop"
            and len(node.args) == 1
        ]
        if len(calls) != 1:
            return check_again(finding, context, source, place, check_line)
        call = calls[0]
        new_call = call.with_changes(
            args=[
                call.args[0].with_changes(
                    comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
                ),
                cst.Arg(cst.Name("None")),
            ]
        )
        replaced = only.deep_replace(call, new_call)
        assert isinstance(replaced, cst.BaseSmallStatement)
        replacement = replaced
    statement = place.statement.with_changes(body=[replacement])
    body = list(place.block.body)
    body[place.index] = statement
    module = _replace_block(source.module, place.block, body)
    return _fix(
        "Use the atomic form `.pop(key, None)`: no KeyError when another task removed it first",
        True,
        source.edit(module, context.lines),
    )


# -- CONC302 ----------------------------------------------------------------


def set_in_finally(
    finding: Finding, facts: ModuleFacts, context: FixContext, setter_line: int
) -> Fix | None:
    """CONC302: move the setter's `.set()` into a `finally` around its body."""
    setter = next(
        (
            function
            for function in facts.functions
            if function.node.lineno - 1 <= setter_line < (function.node.end_lineno or 0)
            and not any(
                inner is not function
                and inner.node.lineno - 1 <= setter_line < (inner.node.end_lineno or 0)
                and inner.node.lineno > function.node.lineno
                for inner in facts.functions
            )
        ),
        None,
    )
    if setter is None:
        return None
    source = parse_function(setter, context.lines)
    if source is None:
        return None
    definition = _first_function(source.module)
    if definition is None or not isinstance(definition.body, cst.IndentedBlock):
        return None
    body = list(definition.body.body)
    last = body[-1]
    if source.line_of(last) != setter_line or len(body) < 2:
        return None
    start = 0
    first = body[0]
    if (
        isinstance(first, cst.SimpleStatementLine)
        and isinstance(first.body[0], cst.Expr)
        and isinstance(first.body[0].value, (cst.SimpleString, cst.ConcatenatedString))
    ):
        start = 1  # keep the docstring first
    guarded = body[start:-1]
    if not guarded:
        return None
    unit = source.unit
    leading = _leading(guarded[0])
    guarded[0] = guarded[0].with_changes(leading_lines=())
    new_try = cst.Try(
        body=cst.IndentedBlock(body=guarded, indent=unit),
        finalbody=cst.Finally(
            body=cst.IndentedBlock(body=[last.with_changes(leading_lines=())], indent=unit)
        ),
        leading_lines=leading,
    )
    new_body = [*body[:start], new_try]
    module = source.module.deep_replace(
        definition.body, definition.body.with_changes(body=new_body)
    )
    assert isinstance(module, cst.Module)
    code = context.lines[setter_line].strip()
    return _fix(
        f"Move `{code}` into a `finally:` of `{setter.name}`",
        True,
        source.edit(module, context.lines),
    )


# -- CONC401 ----------------------------------------------------------------


def drain_pipes(finding: Finding, facts: ModuleFacts, context: FixContext) -> Fix | None:
    function = facts.function(finding.function)
    if function is None:
        return None
    found = library(facts)
    source = parse_function(function, context.lines)
    if source is None:
        return None
    line = finding.location.line
    waits = [
        node
        for node in _walk(source.module)
        if isinstance(node, cst.Call)
        and isinstance(node.func, cst.Attribute)
        and node.func.attr.value == "wait"
        and not node.args
        and source.line_of(node) == line
    ]
    uses_asyncio_or_subprocess = found is None or found[0] == "asyncio"
    place = innermost(source, line)
    if len(waits) == 1 and uses_asyncio_or_subprocess and place is not None:
        # Drain first, then the original wait returns at once with the exit code.
        call = waits[0]
        receiver = source.module.code_for_node(call.func.value)  # type: ignore[attr-defined]
        awaited = any(
            isinstance(node, cst.Await) and node.expression is call
            for node in _walk(place.statement)
        )
        drain = cst.parse_statement(
            f"{'await ' if awaited else ''}{receiver}.communicate()\n",
            config=source.module.config_for_parsing,
        )
        body = list(place.block.body)
        statement = place.statement
        drain = drain.with_changes(leading_lines=_leading(statement))
        body[place.index : place.index + 1] = [
            drain,
            statement.with_changes(leading_lines=()),
        ]
        module = _replace_block(source.module, place.block, body)
        return _fix(
            f"Drain the pipes with `{receiver}.communicate()` before waiting",
            True,
            source.edit(module, context.lines),
        )
    # trio / anyio processes have no communicate(): send unread output to DEVNULL.
    pipes = [
        node
        for node in _walk(source.module)
        if isinstance(node, cst.Arg)
        and node.keyword is not None
        and node.keyword.value in ("stdout", "stderr")
        and isinstance(node.value, cst.Attribute)
        and node.value.attr.value == "PIPE"
    ]
    if not pipes:
        return None
    module = source.module
    for argument in pipes:
        value = argument.value
        assert isinstance(value, cst.Attribute)
        module_node = module.deep_replace(value, value.with_changes(attr=cst.Name("DEVNULL")))
        assert isinstance(module_node, cst.Module)
        module = module_node
    return _fix(
        "Send the unread output to `DEVNULL` instead of a pipe nobody drains",
        True,
        source.edit(module, context.lines),
    )


def check_again(
    finding: Finding, context: FixContext, source: Source, place: Place, check_line: int
) -> Fix | None:
    """Wrap the action in the same `if` test again, evaluated after the checkpoint."""
    guard = next(
        (
            owner
            for owner, _, _ in reversed(place.ancestors)
            if isinstance(owner, cst.If) and source.line_of(owner) == check_line
        ),
        None,
    )
    if guard is None:
        return None
    test = source.module.code_for_node(guard.test)
    if "await" in test or "\n" in test:
        return None
    if any(isinstance(node, (cst.Await, cst.Yield)) for node in _walk(place.statement)):
        return None  # the race is inside the statement itself: a guard before it cannot help
    statement_body = getattr(place.statement, "body", ())
    if not all(
        isinstance(small, (cst.Assign, cst.AugAssign, cst.AnnAssign, cst.Expr))
        for small in statement_body
    ):
        return None  # skipping a return / raise / del would change the control flow
    unit = source.unit
    statement = place.statement
    wrapped = cst.If(
        test=guard.test,
        body=cst.IndentedBlock(body=[statement.with_changes(leading_lines=())], indent=unit),
        leading_lines=_leading(statement),
    )
    body = list(place.block.body)
    body[place.index] = wrapped
    module = _replace_block(source.module, place.block, body)
    return _fix(
        f"Check `{test}` again after the await (unsafe: the action is skipped when "
        "another task got there first)",
        False,
        source.edit(module, context.lines),
    )


# -- CONC203 ----------------------------------------------------------------


# -- CONC111 ----------------------------------------------------------------


class _Expand(cst.CSTTransformer):
    """Replace statements of blocks by several, by the original block and index
    (index == len(body): append)."""

    def __init__(
        self,
        changes: dict[int, list[tuple[int, list[cst.BaseStatement]]]],
        blocks: dict[int, cst.IndentedBlock],
    ) -> None:
        self.changes = changes
        self.blocks = blocks

    def leave_IndentedBlock(
        self, original_node: cst.IndentedBlock, updated_node: cst.IndentedBlock
    ) -> cst.IndentedBlock:
        wanted = self.changes.get(id(original_node))
        if not wanted or self.blocks.get(id(original_node)) is not original_node:
            return updated_node
        body = list(updated_node.body)
        for index, statements in sorted(wanted, key=lambda pair: pair[0], reverse=True):
            if index < len(body):
                # Comments above the old statement stay above what now comes first.
                first = statements[0].with_changes(leading_lines=_leading(body[index]))
                body[index : index + 1] = [first, *statements[1:]]
            else:
                body.extend(statements)
        return updated_node.with_changes(body=body)


def _checkpoint_before(
    statement: cst.SimpleStatementLine, checkpoint: cst.BaseStatement, taken: str
) -> list[cst.BaseStatement]:
    """``checkpoint`` then ``statement``; a `return EXPR` first computes its value,
    so that the checkpoint does not split a check from the act it guards."""
    small = statement.body[0]
    if (
        isinstance(small, cst.Return)
        and small.value is not None
        and not isinstance(small.value, (cst.Name, cst.SimpleString, cst.Integer, cst.Float))
    ):
        name = _unused_name("result", taken)
        compute = cst.SimpleStatementLine(
            body=[cst.Assign(targets=[cst.AssignTarget(cst.Name(name))], value=small.value)]
        )
        ret = statement.with_changes(
            body=[small.with_changes(value=cst.Name(name))], leading_lines=()
        )
        return [compute, checkpoint, ret]
    return [checkpoint, statement.with_changes(leading_lines=())]


def insert_checkpoints(
    finding: Finding,
    facts: ModuleFacts,
    context: FixContext,
    node: ast.AsyncFunctionDef | ast.While,
    escapes: Sequence[int],
) -> Fix | None:
    """CONC111: a checkpoint before each way out that has none (``escapes``: their lines)."""
    spelled = library(facts)
    found_source = function_source(finding, facts, context)
    if spelled is None or found_source is None:
        return None
    function, source = found_source
    name, alias = spelled
    text = (
        f"await {alias}.sleep(0)" if name == "asyncio" else f"await {alias}.lowlevel.checkpoint()"
    )
    new_statement = cst.parse_statement(text + "\n")
    target_line = node.lineno - 1
    owner: cst.IndentedBlock | None = None  # the body whose end is an escape
    for place in _statements(source.module, []):
        statement = place.statement
        if source.line_of(statement) != target_line:
            continue
        if isinstance(node, ast.While) and isinstance(statement, cst.While):
            owner = statement.body if isinstance(statement.body, cst.IndentedBlock) else None
    definition = _first_function(source.module)
    if isinstance(node, ast.AsyncFunctionDef) and definition is not None:
        owner = definition.body if isinstance(definition.body, cst.IndentedBlock) else None
    if owner is None:
        return None
    inserts: dict[int, list[tuple[int, list[cst.BaseStatement]]]] = {}
    blocks: dict[int, cst.IndentedBlock] = {}
    taken = "\n".join(context.lines[source.first : source.end])
    end_line = (node.body[-1].end_lineno or node.lineno) - 1
    for line in escapes:
        spot = innermost(source, line)
        if (
            spot is not None
            and isinstance(spot.statement, cst.SimpleStatementLine)
            and source.line_of(spot.statement) == line
            and isinstance(spot.block, cst.IndentedBlock)
            and isinstance(spot.statement.body[0], (cst.Return, cst.Continue))
        ):
            replacement = _checkpoint_before(spot.statement, new_statement, taken)
            inserts.setdefault(id(spot.block), []).append((spot.index, replacement))
            blocks[id(spot.block)] = spot.block
        elif line >= end_line:
            inserts.setdefault(id(owner), []).append((len(owner.body), [new_statement]))
            blocks[id(owner)] = owner
        else:
            return None  # a one-line `if x: return`: no clean place to insert
    module = source.module.visit(_Expand(inserts, blocks))
    assert isinstance(module, cst.Module)
    where = "loop" if isinstance(node, ast.While) else f"`{function.name}`"
    return _fix(
        f"Insert `{text}` where {where} can go on without a checkpoint",
        False,
        source.edit(module, context.lines),
    )
