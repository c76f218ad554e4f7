"""Fixes of the cleanup rules: bound a wait (CONC101), shield and bound the
rest of a cleanup (CONC102), move a release into a `finally` (CONC103),
remove a pointless timeout (CONC110), add checkpoints (CONC111)."""

from __future__ import annotations

import ast
from collections.abc import Sequence

import libcst as cst
import libcst.matchers as matchers

from conc_lsp.analysis.events import FunctionFacts, ModuleFacts
from conc_lsp.analysis.model import Finding, Fix, Shield
from conc_lsp.fixes.context import FixContext
from conc_lsp.fixes.toolbox import (
    Source,
    binds_locally,
    checkpoint_at,
    first_function,
    format_seconds,
    function_source,
    innermost,
    leading_lines_of,
    library,
    logger_name,
    make_fix,
    parse_function,
    replace_block,
    statement_places,
    unused_name,
    walk,
)


def _bounded(
    statements: list[cst.BaseStatement],
    facts: ModuleFacts,
    context: FixContext,
    source: Source,
    *,
    shield: bool,
    what: str,
    function: FunctionFacts | None = None,
) -> tuple[list[cst.BaseStatement], str] | None:
    """``statements`` inside the library's bounded (and maybe shielded) scope."""
    found = library(facts, function)
    if found is None:
        return None
    name, alias = found
    seconds = format_seconds(context.timeout)
    unit = source.unit
    first = statements[0]
    leading = leading_lines_of(first)
    statements = [first.with_changes(leading_lines=()), *statements[1:]]
    text = source.module.code
    logger = logger_name(context)
    if logger is not None and function is not None and binds_locally(function, logger):
        logger = None
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
    variable = unused_name("cs", text)
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
    event = checkpoint_at(function, finding.location)
    event_context = getattr(event, "context", None)
    cancellable = (
        event_context is not None
        and (event_context.in_finally or event_context.acm_teardown or event_context.in_aexit)
        and getattr(event_context, "shielded", Shield.NO) is not Shield.YES
    )
    body = list(place.block.body)
    wrapped = _bounded(
        [place.statement],
        facts,
        context,
        source,
        shield=cancellable,
        what="the wait",
        function=function,
    )
    if wrapped is None:
        return None
    new_statements, scope = wrapped
    body[place.index : place.index + 1] = new_statements
    module = replace_block(source.module, place.block, body)
    shielded = ", shield=True" if cancellable and scope.endswith("move_on_after") else ""
    unset = _unset_on_timeout(function, source, [place.statement])
    return make_fix(
        f"Bound the wait with `{scope}({format_seconds(context.timeout)}{shielded})`" + unset,
        not unset,
        source.edit(module, context.lines),
    )


def _unset_on_timeout(
    function: FunctionFacts, source: Source, statements: Sequence[cst.BaseStatement]
) -> str:
    """The title's warning when the bounded ``statements`` assign a name that
    the function reads after them (without assigning it first): once the bound
    gives up, that name is unset and the read raises where the original waited;
    "" when there is none."""
    first, last = source.line_of(statements[0]) + 1, source.end_line_of(statements[-1]) + 1
    stored_inside: set[str] = set()
    stored_before: set[str] = set()
    read_after: set[str] = set()
    for node in ast.walk(function.node):
        if not isinstance(node, ast.Name):
            continue
        if isinstance(node.ctx, ast.Store):
            if first <= node.lineno <= last:
                stored_inside.add(node.id)
            elif node.lineno < first:
                stored_before.add(node.id)
        elif node.lineno > last:
            read_after.add(node.id)
    unset = sorted((stored_inside & read_after) - stored_before)
    if not unset:
        return ""
    names = ", ".join(f"`{name}`" for name in unset)
    return f" (unsafe: {names} stays unset when it gives up)"


# -- CONC102 ----------------------------------------------------------------


def shield_cleanup(finding: Finding, facts: ModuleFacts, context: FixContext) -> Fix | None:
    function = facts.function(finding.function)
    if function is None:
        return None
    found = library(facts, function)
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
    # Always a shielded scope with its own deadline: a bare `CancelScope(shield=True)`
    # inside an enclosing `move_on_after` would defeat that bound.
    wrapped = _bounded(
        list(block.body[index:]),
        facts,
        context,
        source,
        shield=True,
        what="the cleanup",
        function=function,
    )
    if wrapped is None:
        return None
    new = wrapped[0]
    title = (
        f"Shield and bound the rest of the cleanup with `{found[1]}.move_on_after("
        f"{format_seconds(context.timeout)}, shield=True)`"
    )
    body = list(block.body[:index]) + new
    module = replace_block(source.module, block, body)
    unset = _unset_on_timeout(function, source, block.body[index:])
    return make_fix(title + unset, not unset, source.edit(module, context.lines))


# -- CONC103 ----------------------------------------------------------------


def release_in_finally(
    finding: Finding, facts: ModuleFacts, context: FixContext, skipped_lines: Sequence[int]
) -> Fix | None:
    """CONC103: move the releases the await would skip into a `finally`.

    Offered only when every skipped release sits directly in the handler, one
    after the other, with no await among them: moving some (or reordering the
    code between them) leaves the rest skipped, one CONC103 traded for the next,
    and an await moved into the `finally` is a new cleanup checkpoint."""
    found_source = function_source(finding, facts, context)
    if found_source is None or not skipped_lines:
        return None
    source = found_source[1]
    release_place = innermost(source, skipped_lines[0])
    if release_place is None:
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
    moved_end = release_index
    remaining = set(skipped_lines)
    while moved_end < len(body) and remaining:
        statement = body[moved_end]
        first, last = source.line_of(statement), source.end_line_of(statement)
        held = {line for line in remaining if first <= line <= last}
        if not held:
            return None  # other code between two releases: moving it would reorder it
        remaining -= held
        moved_end += 1
    if remaining:
        return None  # a release elsewhere (after a later await, in a nested block)
    moved = body[release_index:moved_end]
    if any(
        isinstance(node, (cst.Await, cst.Yield, cst.Return, cst.Raise, cst.Break, cst.Continue))
        for statement in moved
        for node in walk(statement)
    ):
        return None  # a checkpoint or a jump does not belong in a `finally`
    unit = source.unit
    guarded = body[start:release_index]
    leading = leading_lines_of(guarded[0])
    guarded[0] = guarded[0].with_changes(leading_lines=())
    moved[0] = moved[0].with_changes(leading_lines=())
    new_try = cst.Try(
        body=cst.IndentedBlock(body=guarded, indent=unit),
        finalbody=cst.Finally(body=cst.IndentedBlock(body=moved, indent=unit)),
        leading_lines=leading,
    )
    body[start:moved_end] = [new_try]
    module = replace_block(source.module, handler_block, body)
    code = context.lines[skipped_lines[0]].strip()
    more = f" and {len(moved) - 1} more" if len(moved) > 1 else ""
    return make_fix(
        f"Move `{code}`{more} into a `finally:`", True, source.edit(module, context.lines)
    )


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
    for place in statement_places(source.module, []):
        if place.statement is target:
            break
    else:
        return None
    body = list(place.block.body)
    inner = list(target.body.body)
    inner[0] = inner[0].with_changes(
        leading_lines=(*leading_lines_of(target), *leading_lines_of(inner[0]))
    )
    body[place.index : place.index + 1] = inner
    module = replace_block(source.module, place.block, body)
    scope = source.module.code_for_node(item.item)
    return make_fix(
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
                first = statements[0].with_changes(leading_lines=leading_lines_of(body[index]))
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
        name = unused_name("result", taken)
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
    found_source = function_source(finding, facts, context)
    spelled = library(facts, found_source[0]) if found_source is not None else None
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
    for place in statement_places(source.module, []):
        statement = place.statement
        if source.line_of(statement) != target_line:
            continue
        if isinstance(node, ast.While) and isinstance(statement, cst.While):
            owner = statement.body if isinstance(statement.body, cst.IndentedBlock) else None
    definition = first_function(source.module)
    if isinstance(node, ast.AsyncFunctionDef) and definition is not None:
        owner = definition.body if isinstance(definition.body, cst.IndentedBlock) else None
    if owner is None:
        return None
    inserts: dict[int, list[tuple[int, list[cst.BaseStatement]]]] = {}
    blocks: dict[int, cst.IndentedBlock] = {}
    taken = "\n".join(context.lines[source.first : source.end])
    end_line = (node.body[-1].end_lineno or node.lineno) - 1
    # A loop's iteration goes on at a `continue` or at the end of its body; a
    # `return` on the body's last line leaves the loop: the escape is the end.
    jumps = (cst.Continue,) if isinstance(node, ast.While) else (cst.Return, cst.Continue)
    for line in escapes:
        spot = innermost(source, line)
        if (
            spot is not None
            and isinstance(spot.statement, cst.SimpleStatementLine)
            and source.line_of(spot.statement) == line
            and isinstance(spot.block, cst.IndentedBlock)
            and isinstance(spot.statement.body[0], jumps)
        ):
            replacement = _checkpoint_before(spot.statement, new_statement, taken)
            inserts.setdefault(id(spot.block), []).append((spot.index, replacement))
            blocks[id(spot.block)] = spot.block
            if line >= end_line and spot.block is not owner:
                # The body's last line: the way out may be the `if` around the
                # return not taken, falling off the end, as well.
                inserts.setdefault(id(owner), []).append((len(owner.body), [new_statement]))
                blocks[id(owner)] = owner
        elif line >= end_line:
            inserts.setdefault(id(owner), []).append((len(owner.body), [new_statement]))
            blocks[id(owner)] = owner
        else:
            return None  # a one-line `if x: return`: no clean place to insert
    module = source.module.visit(_Expand(inserts, blocks))
    assert isinstance(module, cst.Module)
    where = "loop" if isinstance(node, ast.While) else f"`{function.name}`"
    return make_fix(
        f"Insert `{text}` where {where} can go on without a checkpoint",
        False,
        source.edit(module, context.lines),
    )


# -- CONC105 ----------------------------------------------------------------


def teardown_in_finally(
    finding: Finding, facts: ModuleFacts, context: FixContext, yield_line: int
) -> Fix | None:
    """CONC105: `try: yield ... finally: <the teardown after it>`."""
    found_source = function_source(finding, facts, context)
    if found_source is None:
        return None
    source = found_source[1]
    place = innermost(source, yield_line)
    if place is None or source.line_of(place.statement) != yield_line:
        return None
    block = place.block
    body = list(block.body)
    rest = body[place.index + 1 :]
    if not rest or any(jumps_out(statement) for statement in rest):
        return None  # a `return` in a `finally` swallows the exception of the caller's body
    unit = source.unit
    leading = leading_lines_of(body[place.index])
    guarded = body[place.index].with_changes(leading_lines=())
    new_try = cst.Try(
        body=cst.IndentedBlock(body=[guarded], indent=unit),
        finalbody=cst.Finally(body=cst.IndentedBlock(body=rest, indent=unit)),
        leading_lines=leading,
    )
    body[place.index :] = [new_try]
    module = replace_block(source.module, block, body)
    # An await moved into the `finally` runs in cleanup, where a cancellation
    # stops it (CONC102): the edit is right, but shielding it is the user's call.
    awaits = any(matchers.findall(statement, matchers.Await()) for statement in rest)
    return make_fix(
        "Run the teardown in a `finally:` around the `yield`"
        + (" (its awaits can then be cancelled: shield them)" if awaits else ""),
        not awaits,
        source.edit(module, context.lines),
    )


def jumps_out(node: cst.CSTNode, in_loop: bool = False) -> bool:
    """``node`` holds a `return`, or a `break` / `continue` of no loop inside it:
    in a `finally`, each would swallow the exception being raised."""
    if isinstance(node, cst.Return):
        return True
    if isinstance(node, (cst.Break, cst.Continue)):
        return not in_loop
    if isinstance(node, (cst.FunctionDef, cst.Lambda, cst.ClassDef)):
        return False
    inside = in_loop or isinstance(node, (cst.For, cst.While))
    return any(jumps_out(child, inside) for child in node.children)
