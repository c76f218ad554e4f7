"""The checkpoint collector (the hints): every checkpoint and look-alike of one
parsed piece of code, with its cancellation context.

The collector walks statements in source order, carrying the cancellation
context (shielded / bounded / finally / except / acm teardown / __aexit__).
Nested functions and classes own their awaits.  Subtrees whose lines hold
none of the keywords that can start a hint are skipped without a visit:
that keeps the walk far cheaper than the parse itself.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, replace

from conc_lsp.analysis.libraries import ImportTable, last_name
from conc_lsp.analysis.locks import is_lock_name, name_words
from conc_lsp.analysis.model import EMPTY_CONTEXT, Context, Hint, HintKind, Shield
from conc_lsp.analysis.shapes import falls_through
from conc_lsp.analysis.text import utf8_to_codepoint

TIMEOUT_SCOPES = frozenset({"move_on_after", "move_on_at", "fail_after", "fail_at"})
ASYNCIO_TIMEOUTS = frozenset(
    {
        "asyncio.timeout",
        "asyncio.timeout_at",
        "asyncio.timeouts.timeout",
        "asyncio.timeouts.timeout_at",
        "async_timeout.timeout",
        "async_timeout.timeout_at",
    }
)
BOUNDED_CALLS = frozenset({"wait_for"})  # asyncio.wait_for(aw, timeout)
NURSERIES = frozenset({"open_nursery", "create_task_group", "TaskGroup", "open_service_nursery"})
ACM_DECORATORS = frozenset({"asynccontextmanager", "acm"})
AEXIT_NAMES = frozenset({"__aexit__", "aclose"})
SPAWN_METHODS = frozenset({"start_soon", "create_task"})
SPAWN_FUNCTIONS = frozenset({"asyncio.ensure_future", "asyncio.create_task"})
CODE_PREVIEW = 60


@dataclass(slots=True)
class _Function:
    qualname: str
    is_acm: bool
    in_aexit: bool
    is_async: bool = False
    after_yield: bool = False
    yield_pending: bool = False


SHIELD_WORDS = frozenset({"shield", "shielded"})


@dataclass(frozen=True, slots=True)
class ScopeEffect:
    bounded: bool = False
    shield: Shield = Shield.NO
    waits_for_children: bool = False
    is_cancel_scope: bool = False


NO_EFFECT = ScopeEffect()


class Collector:
    """Collects the hints of one parsed module fragment.

    ``lines`` are the lines the tree was parsed from; ``column_offset`` is
    added to every column (for fragments that were dedented before parsing)
    and ``prefix`` to every function name (for methods parsed apart from
    their class).
    """

    def __init__(
        self,
        lines: list[str],
        table: ImportTable,
        keyword_counts: list[int],
        *,
        column_offset: int = 0,
        prefix: str = "",
    ) -> None:
        self.lines = lines
        self.table = table
        self.counts = keyword_counts
        self.column_offset = column_offset
        self.prefix = prefix
        self.hints: list[Hint] = []
        self._awaited: set[int] = set()
        self._scope_names: dict[str, ScopeEffect] = {}

    # -- entry point -------------------------------------------------------

    def collect(self, tree: ast.Module) -> list[Hint]:
        module = _Function(qualname="<module>", is_acm=False, in_aexit=False)
        self._block(tree.body, module, EMPTY_CONTEXT, self.prefix)
        return self.hints

    # -- helpers -----------------------------------------------------------

    def _interesting(self, first: int, last: int) -> bool:
        counts = self.counts
        if last >= len(counts):
            last = len(counts) - 1
        return counts[last] - counts[first - 1] > 0

    def _column(self, lineno: int, byte_column: int) -> int:
        return utf8_to_codepoint(self.lines[lineno - 1], byte_column) + self.column_offset

    def _code(self, node: ast.AST) -> str:
        line = self.lines[node.lineno - 1]  # type: ignore[attr-defined]
        start = utf8_to_codepoint(line, node.col_offset)  # type: ignore[attr-defined]
        if node.end_lineno == node.lineno:  # type: ignore[attr-defined]
            end = utf8_to_codepoint(line, node.end_col_offset)  # type: ignore[attr-defined]
            text = line[start:end]
        else:
            text = line[start:].rstrip() + " ..."
        if len(text) > CODE_PREVIEW:
            text = text[: CODE_PREVIEW - 3] + "..."
        return text

    def _add(
        self,
        kind: HintKind,
        anchor: ast.AST,
        keyword_line: int,
        keyword_column: int,
        keyword_length: int,
        function: _Function,
        context: Context,
        code: str,
        *,
        waits_for_children: bool = False,
        bounded_call: bool = False,
        releases_on_exit: bool = False,
    ) -> None:
        if function.after_yield and not context.acm_teardown:
            context = replace(context, acm_teardown=True)
        end_line: int = anchor.end_lineno  # type: ignore[attr-defined]
        keyword_col = self._column(keyword_line, keyword_column)
        self.hints.append(
            Hint(
                kind=kind,
                line=end_line - 1,
                column=self._column(end_line, anchor.end_col_offset),  # type: ignore[attr-defined]
                keyword_line=keyword_line - 1,
                keyword_column=keyword_col,
                keyword_end_column=keyword_col + keyword_length,
                function=function.qualname,
                context=context,
                code=code,
                waits_for_children=waits_for_children,
                bounded_call=bounded_call,
                releases_on_exit=releases_on_exit,
                in_async_function=function.is_async,
            )
        )

    # -- statements --------------------------------------------------------

    def _block(
        self, body: list[ast.stmt], function: _Function, context: Context, prefix: str
    ) -> None:
        for statement in body:
            context = self._step(statement, function, context, prefix)

    def _step(
        self, statement: ast.stmt, function: _Function, context: Context, prefix: str
    ) -> Context:
        """One statement of a block: its hints; the context the next one starts in."""
        first = statement.lineno
        decorators = getattr(statement, "decorator_list", None)
        if decorators:
            first = min(first, decorators[0].lineno)
        if self._interesting(first, statement.end_lineno or first):
            self._statement(statement, function, context, prefix)
            if function.yield_pending:
                function.after_yield = True
                function.yield_pending = False
        return after_scope_assignment(statement, self._scope_names, context)

    def _statement(
        self, node: ast.stmt, function: _Function, context: Context, prefix: str
    ) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            self._function(node, function, context, prefix)
        elif isinstance(node, ast.ClassDef):
            for expression in [
                *node.decorator_list,
                *node.bases,
                *(k.value for k in node.keywords),
            ]:
                self._expression(expression, function, context)
            self._block(node.body, function, context, f"{prefix}{node.name}.")
        elif isinstance(node, (ast.Try, ast.TryStar)):
            self._block(node.body, function, context, prefix)
            for handler in node.handlers:
                if handler.type is not None:
                    self._expression(handler.type, function, context)
                caught = ast.unparse(handler.type) if handler.type is not None else ""
                if isinstance(node, ast.TryStar):
                    caught = f"*{caught}"
                self._block(handler.body, function, replace(context, in_except=caught), prefix)
            self._block(node.orelse, function, context, prefix)
            self._block(node.finalbody, function, replace(context, in_finally=True), prefix)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            self._with(node, function, context, prefix)
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            self._expression(node.target, function, context)
            self._expression(node.iter, function, context)
            if isinstance(node, ast.AsyncFor):
                self._add(
                    HintKind.ASYNC_FOR,
                    node.iter,
                    node.lineno,
                    node.col_offset,
                    len("async for"),
                    function,
                    context,
                    self._code(node.iter),
                )
            self._block(node.body, function, context, prefix)
            self._block(node.orelse, function, context, prefix)
        elif isinstance(node, ast.If):
            self._if(node, function, context, prefix)
        elif isinstance(node, ast.While):
            self._expression(node.test, function, context)
            self._block(node.body, function, context, prefix)
            self._block(node.orelse, function, context, prefix)
        elif isinstance(node, ast.Match):
            self._expression(node.subject, function, context)
            for case in node.cases:
                if case.guard is not None:
                    self._expression(case.guard, function, context)
                self._block(case.body, function, context, prefix)
        else:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.expr):
                    self._expression(child, function, context)
                elif isinstance(child, ast.stmt):  # pragma: no cover - no such simple stmt
                    self._statement(child, function, context, prefix)

    def _if(self, node: ast.If, function: _Function, context: Context, prefix: str) -> None:
        """An `if` and its `elif`s, in a loop (2,000 `elif`s nest too deep to recurse).
        In an acm, a `yield` in a branch does not make the other one teardown,
        nor what follows the `if` when the branch returns."""
        opened: list[tuple[ast.If, bool, bool]] = []  # (if, after_yield before, body yielded)
        current = node
        while True:
            self._expression(current.test, function, context)
            before = function.after_yield
            self._block(current.body, function, context, prefix)
            opened.append((current, before, function.after_yield and falls_through(current.body)))
            function.after_yield = before
            orelse = current.orelse
            elif_ = orelse[0] if len(orelse) == 1 and isinstance(orelse[0], ast.If) else None
            if elif_ is None or not self._interesting(
                elif_.lineno, elif_.end_lineno or elif_.lineno
            ):
                self._block(orelse, function, context, prefix)
                break
            current = elif_
        for depth in range(len(opened) - 1, -1, -1):
            current, before, body_yielded = opened[depth]
            else_yielded = function.after_yield and falls_through(current.orelse)
            function.after_yield = before or body_yielded or else_yielded
            if depth and function.yield_pending:  # as `_block` does after its statement
                function.after_yield = True
                function.yield_pending = False

    def _function(
        self,
        node: ast.FunctionDef | ast.AsyncFunctionDef,
        outer: _Function,
        context: Context,
        prefix: str,
    ) -> None:
        # Decorators, defaults and annotations run in the enclosing function.
        for expression in node.decorator_list:
            self._expression(expression, outer, context)
        arguments = node.args
        for default in [*arguments.defaults, *arguments.kw_defaults]:
            if default is not None:
                self._expression(default, outer, context)
        qualname = f"{prefix}{node.name}"
        is_acm = isinstance(node, ast.AsyncFunctionDef) and any(
            last_name(self.table.resolve(callee(decorator))) in ACM_DECORATORS
            for decorator in node.decorator_list
        )
        inner = _Function(
            qualname=qualname,
            is_acm=is_acm,
            in_aexit=node.name in AEXIT_NAMES,
            is_async=isinstance(node, ast.AsyncFunctionDef),
        )
        saved_scopes = self._scope_names
        self._scope_names = {}
        self._block(
            node.body,
            inner,
            Context(in_aexit=inner.in_aexit),
            f"{qualname}.<locals>.",
        )
        self._scope_names = saved_scopes

    def _with(
        self,
        node: ast.With | ast.AsyncWith,
        function: _Function,
        context: Context,
        prefix: str,
    ) -> None:
        is_async = isinstance(node, ast.AsyncWith)
        inner = context
        bound_names: dict[str, ScopeEffect] = {}
        for index, item in enumerate(node.items):
            self._expression(item.context_expr, function, inner)
            if item.optional_vars is not None:
                self._expression(item.optional_vars, function, inner)
            effect = scope_effect(item.context_expr, self.table)
            if is_async:
                anchor = item.optional_vars if item.optional_vars is not None else item.context_expr
                if index == 0:
                    keyword_line, keyword_column, length = (
                        node.lineno,
                        node.col_offset,
                        len("async with"),
                    )
                else:
                    expr = item.context_expr
                    keyword_line, keyword_column, length = expr.lineno, expr.col_offset, 0
                self._add(
                    HintKind.ASYNC_WITH,
                    anchor,
                    keyword_line,
                    keyword_column,
                    length,
                    function,
                    inner,
                    self._code(item.context_expr),
                    waits_for_children=effect.waits_for_children,
                    releases_on_exit=is_lock_name(item.context_expr),
                )
            if effect is not NO_EFFECT:
                inner = inside_scope(inner, effect)
                if (effect.is_cancel_scope or effect.waits_for_children) and isinstance(
                    item.optional_vars, ast.Name
                ):
                    bound_names[item.optional_vars.id] = effect
        saved = self._scope_names
        if bound_names:
            self._scope_names = {**saved, **bound_names}
        self._block(node.body, function, inner, prefix)
        self._scope_names = saved

    # -- expressions -------------------------------------------------------

    def _expression(self, root: ast.expr, function: _Function, context: Context) -> None:
        if not self._interesting(root.lineno, root.end_lineno or root.lineno):
            return
        stack: list[ast.AST] = [root]
        while stack:
            node = stack.pop()
            if isinstance(node, ast.Await):
                self._await(node, function, context)
            elif isinstance(node, ast.Call):
                if id(node) not in self._awaited:
                    self._call(node, function, context)
            elif isinstance(node, (ast.Yield, ast.YieldFrom)):
                if function.is_acm:
                    self._add(
                        HintKind.ACM_YIELD,
                        node,
                        node.lineno,
                        node.col_offset,
                        len("yield"),
                        function,
                        context,
                        self._code(node),
                    )
                    function.yield_pending = True
            elif isinstance(node, ast.comprehension) and node.is_async:
                self._async_comprehension(node, function, context)
            stack.extend(reversed(children_of(node)))  # pop in source order

    def _await(self, node: ast.Await, function: _Function, context: Context) -> None:
        value = node.value
        bounded_call = False
        if isinstance(value, ast.Call):
            self._awaited.add(id(value))
            name = last_name(self.table.resolve(value.func))
            if name in BOUNDED_CALLS:
                timeout = value.args[1] if len(value.args) > 1 else None
                for keyword in value.keywords:
                    if keyword.arg == "timeout":
                        timeout = keyword.value
                bounded_call = timeout is not None and not is_unbounded_constant(timeout)
        self._add(
            HintKind.AWAIT,
            node,
            node.lineno,
            node.col_offset,
            len("await"),
            function,
            context,
            self._code(value),
            bounded_call=bounded_call,
        )

    def _call(self, node: ast.Call, function: _Function, context: Context) -> None:
        func = node.func
        if isinstance(func, ast.Attribute):
            method = func.attr
            if method in ("set", "release") and not node.args and not node.keywords:
                kind = HintKind.EVENT_SET if method == "set" else HintKind.LOCK_RELEASE
            elif method in SPAWN_METHODS or self.table.resolve(func) in SPAWN_FUNCTIONS:
                kind = HintKind.SPAWN
            else:
                return
            self._add(
                kind,
                node,
                func.end_lineno or func.lineno,
                _attribute_column(func),
                len(method),
                function,
                context,
                self._code(node),
            )
        elif isinstance(func, ast.Name) and self.table.resolve(func) in SPAWN_FUNCTIONS:
            self._add(
                HintKind.SPAWN,
                node,
                func.lineno,
                func.col_offset,
                len(func.id),
                function,
                context,
                self._code(node),
            )

    def _async_comprehension(
        self, node: ast.comprehension, function: _Function, context: Context
    ) -> None:
        # A comprehension has no position of its own: find `async for`
        # before its target.
        target = node.target
        line_index = target.lineno - 1
        column = target.col_offset
        keyword_line, keyword_column = target.lineno, target.col_offset
        while line_index >= 0:
            encoded = self.lines[line_index].encode("utf-8")
            found = encoded.rfind(
                b"async", 0, column if line_index == target.lineno - 1 else len(encoded)
            )
            if found >= 0:
                keyword_line, keyword_column = line_index + 1, found
                break
            line_index -= 1
            if line_index < target.lineno - 4:
                break
        self._add(
            HintKind.ASYNC_FOR,
            node.iter,
            keyword_line,
            keyword_column,
            len("async for"),
            function,
            context,
            self._code(node.iter),
        )


# Nodes that can never hold a checkpoint or a look-alike below them.
_BARREN = (
    ast.Name,
    ast.Constant,
    ast.expr_context,
    ast.operator,
    ast.boolop,
    ast.unaryop,
    ast.cmpop,
)


def children_of(node: ast.AST) -> list[ast.AST]:
    """The child nodes worth visiting for hints (no leaves, no dotted-name chains)."""
    children: list[ast.AST] = []
    for name in node._fields:
        value = getattr(node, name, None)
        if isinstance(value, list):
            children.extend(
                item
                for item in value
                if isinstance(item, ast.AST) and not isinstance(item, _BARREN)
            )
        elif (
            isinstance(value, ast.AST)
            and not isinstance(value, _BARREN)
            and not (isinstance(value, ast.Attribute) and _dotted(value))
        ):
            children.append(value)
    return children


def _dotted(node: ast.Attribute) -> bool:
    """`a.b.c`: a chain of names, which holds no call and no await."""
    value: ast.expr = node
    while isinstance(value, ast.Attribute):
        value = value.value
    return isinstance(value, ast.Name)


def callee(decorator: ast.expr) -> ast.expr:
    return decorator.func if isinstance(decorator, ast.Call) else decorator


def _attribute_column(node: ast.Attribute) -> int:
    """Byte column of the attribute name in `obj.name` (its end minus its length)."""
    end: int = node.end_col_offset or 0
    return max(end - len(node.attr.encode("utf-8")), 0)


def is_unbounded_constant(node: ast.expr) -> bool:
    """`None`, `math.inf` or `float("inf")`: a timeout that never fires."""
    if isinstance(node, ast.Constant):
        return node.value is None or node.value == float("inf")
    if isinstance(node, ast.Attribute) and node.attr == "inf":
        return True
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "float"
        and bool(node.args)
        and isinstance(node.args[0], ast.Constant)
        and str(node.args[0].value).lower() in ("inf", "+inf", "infinity")
    )


def after_scope_assignment(
    statement: ast.stmt, scopes: dict[str, ScopeEffect], context: Context
) -> Context:
    """The context after `cs.shield = ...` or `cs.deadline = ...` on a cancel
    scope ``cs`` bound by an enclosing `with`."""
    if not scopes or not isinstance(statement, ast.Assign):
        return context
    for target in statement.targets:
        if not isinstance(target, ast.Attribute):
            continue
        owner = target.value
        # `n.cancel_scope.shield = True` on a nursery / task group bound by the `with`.
        if isinstance(owner, ast.Attribute) and owner.attr == "cancel_scope":
            owner = owner.value
        if not (isinstance(owner, ast.Name) and owner.id in scopes):
            continue
        value = statement.value
        if target.attr == "shield":
            if isinstance(value, ast.Constant):
                if value.value:
                    # A shield blocks every outer cancellation, outer deadlines too.
                    own = scopes[owner.id].bounded
                    return replace(context, shielded=Shield.YES, bounded=own)
                # `cs.shield = False`: what follows can be cancelled again.
                return replace(context, shielded=Shield.NO)
            if context.shielded is Shield.NO:
                return replace(context, shielded=Shield.MAYBE)
        elif target.attr in ("deadline", "relative_deadline") and not is_unbounded_constant(value):
            return replace(context, bounded=True)
    return context


def inside_scope(context: Context, effect: ScopeEffect) -> Context:
    """The context inside a `with` item with ``effect``."""
    if effect.shield is Shield.YES:
        # Only the shielded scope's own deadline can still interrupt its body.
        return replace(context, shielded=Shield.YES, bounded=effect.bounded)
    if effect.bounded and not context.bounded:
        context = replace(context, bounded=True)
    if effect.shield is Shield.MAYBE and context.shielded is Shield.NO:
        context = replace(context, shielded=Shield.MAYBE)
    return context


def scope_effect(expression: ast.expr, table: ImportTable) -> ScopeEffect:
    """What a `with` item does to the checkpoints in its body."""
    if not isinstance(expression, ast.Call):
        return NO_EFFECT
    name = table.resolve(expression.func)
    final = last_name(name)
    if final in NURSERIES:
        return ScopeEffect(waits_for_children=True)
    if SHIELD_WORDS & set(name_words(final)) and name != "asyncio.shield":
        # A project's own shield wrapper (httpcore's `AsyncShieldCancellation()`,
        # a `shielded()` helper): its `__enter__` opens a shielded cancel scope.
        return ScopeEffect(shield=Shield.YES, is_cancel_scope=True)
    is_timeout = final in TIMEOUT_SCOPES or name in ASYNCIO_TIMEOUTS
    if not is_timeout and final != "CancelScope":
        return NO_EFFECT
    bounded = False
    shield = Shield.NO
    if is_timeout and expression.args:
        bounded = not is_unbounded_constant(expression.args[0])
    for keyword in expression.keywords:
        value = keyword.value
        if keyword.arg in ("deadline", "relative_deadline"):
            bounded = not is_unbounded_constant(value)
        elif keyword.arg == "shield":
            if isinstance(value, ast.Constant):
                shield = Shield.YES if value.value else Shield.NO
            else:
                shield = Shield.MAYBE
        elif keyword.arg in ("delay", "seconds", "when") and is_timeout:
            bounded = not is_unbounded_constant(value)
    return ScopeEffect(bounded=bounded, shield=shield, is_cancel_scope=True)
