"""Fixes of the shared-state and hand-over rules: bring two writes together or
iterate over a copy (CONC201), the atomic form or a re-check (CONC202), set
an event in a `finally` (CONC302), drain a pipe (CONC401)."""

from __future__ import annotations

import libcst as cst

from conc_lsp.analysis.events import ModuleFacts
from conc_lsp.analysis.model import Finding, Fix
from conc_lsp.fixes.context import FixContext
from conc_lsp.fixes.toolbox import (
    Place,
    Source,
    first_function,
    function_source,
    innermost,
    leading_lines_of,
    make_fix,
    parse_function,
    replace_block,
    statement_places,
    walk,
)

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
                comments = [
                    line for line in leading_lines_of(self.moved) if line.comment is not None
                ]
                body.append(self.moved.with_changes(leading_lines=comments))
                changed = True
        if not changed:
            return updated_node
        if not body:
            body = [cst.SimpleStatementLine(body=[cst.Pass()])]
        return updated_node.with_changes(body=body)


def _assigned_names(statement: cst.CSTNode) -> set[str]:
    names: set[str] = set()
    for node in walk(statement):
        targets: list[cst.CSTNode] = []
        if isinstance(node, (cst.AssignTarget, cst.AugAssign, cst.AnnAssign, cst.For, cst.CompFor)):
            targets.append(node.target)
        elif isinstance(node, cst.AsName):
            targets.append(node.name)
        elif isinstance(node, cst.NamedExpr):
            targets.append(node.target)
        for target in targets:
            names.update(n.value for n in walk(target) if isinstance(n, cst.Name))
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
    if any(isinstance(node, (cst.Await, cst.Yield, cst.Return)) for node in walk(moved)):
        return None
    used = {node.value for node in walk(moved) if isinstance(node, cst.Name)}
    start, end = source.end_line_of(anchor), source.line_of(moved)
    between = [
        place.statement
        for place in statement_places(source.module, [])
        if start < source.line_of(place.statement) < end
    ]
    if any(used & _assigned_names(statement) for statement in between):
        return None  # the write uses a name set in the window: it cannot move above it
    new = source.module.visit(_Move(anchor, moved))
    code = context.lines[finding.location.line].strip()
    return make_fix(
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
    for node in walk(source.module):
        if isinstance(node, cst.For) and not node.asynchronous:
            position = source.positions[node.iter]
            line = position.start.line - 1 - (1 if source.wrapped else 0) + source.first
            if line == finding.location.line and position.start.column == finding.location.column:
                copy = cst.Call(func=cst.Name("list"), args=[cst.Arg(node.iter)])
                module = source.module.deep_replace(node, node.with_changes(iter=copy))
                assert isinstance(module, cst.Module)
                iterable = source.module.code_for_node(node.iter)
                return make_fix(
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
            for node in walk(only)
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
    module = replace_block(source.module, place.block, body)
    return make_fix(
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
    definition = first_function(source.module)
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
    leading = leading_lines_of(guarded[0])
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
    return make_fix(
        f"Move `{code}` into a `finally:` of `{setter.name}`",
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
    if any(isinstance(node, (cst.Await, cst.Yield)) for node in walk(place.statement)):
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
        leading_lines=leading_lines_of(statement),
    )
    body = list(place.block.body)
    body[place.index] = wrapped
    module = replace_block(source.module, place.block, body)
    return make_fix(
        f"Check `{test}` again after the await (unsafe: the action is skipped when "
        "another task got there first)",
        False,
        source.edit(module, context.lines),
    )


# -- CONC203 ----------------------------------------------------------------
