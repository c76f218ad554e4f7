"""The one walk of a function's statements: the cancellation context of
everything in it, and from the same traversal its hints, its flow events,
or both.

A walk carries, statement by statement, the context a checkpoint runs in
(shielded, bounded, `finally`, `except`, an acm's teardown, `__aexit__`),
the names bound to cancel scopes, and for the events the branch path, the
locks held and the cleanup block. Three uses, one walk:

- **hints** (the editor, `conc-lsp hints`): ``hints`` set, no ``facts``;
  statements whose lines hold no hint keyword are skipped, nested functions
  and classes are walked where they stand.
- **events** (the rules): ``facts`` set, no ``hints``; each listed function
  is walked on its own (``flow.py``), nested ones are not entered.
- **both** (the report): ``facts`` and ``hints``; one traversal gives both,
  and a nested function listed in ``listed`` has its events filled too.

A `yield` of an async context manager makes what follows it teardown from
the end of the expression that holds it (the caller's body runs there).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import replace

from conc_lsp.analysis.checkpoints import (
    ACM_DECORATORS,
    AEXIT_NAMES,
    ScopeEffect,
    after_scope_assignment,
    callee,
    inside_scope,
    scope_effect,
)
from conc_lsp.analysis.events import EventKind, FunctionFacts, Loop, Scope
from conc_lsp.analysis.libraries import ImportTable, last_name
from conc_lsp.analysis.locks import MUTEX_TYPES, is_lock_text, is_mutex
from conc_lsp.analysis.model import Context, Verdict
from conc_lsp.analysis.shapes import falls_through, is_timeout_call, iterated_state, node_text
from conc_lsp.analysis.walk_events import EventWalk, FlowModule, WalkState
from conc_lsp.analysis.walk_hints import HintRecorder, WalkedFunction


class FunctionWalk(EventWalk):
    """One function's walk (or the code outside functions: ``walk_hints.MODULE``)."""

    def __init__(
        self,
        function: WalkedFunction,
        flow: FlowModule,
        *,
        facts: FunctionFacts | None = None,
        hints: HintRecorder | None = None,
        prefix: str = "",
        listed: Mapping[int, FunctionFacts] | None = None,
    ) -> None:
        self.function = function
        self.flow = flow
        self.facts = facts
        self.hints = hints
        self.prefix = prefix  # of the qualified names of the functions defined here
        self.listed = listed
        self.after_yield = False
        self.yielded = False
        self.teardown_block = 0
        self.held = set()
        self.open_scopes = []
        self.open_loops = []
        self.scope_names: dict[str, ScopeEffect] = {}
        self.globals = set()
        self.awaited_calls = set()

    def walk_body(self, body: list[ast.stmt]) -> None:
        self.block(body, WalkState(context=Context(in_aexit=self.function.in_aexit)))

    # -- statements ----------------------------------------------------------

    def block(self, body: list[ast.stmt], state: WalkState) -> None:
        for statement in body:
            state = self.step(statement, state)

    def step(self, statement: ast.stmt, state: WalkState) -> WalkState:
        """One statement of a block; the state the next one starts in."""
        hints = self.hints
        if self.facts is not None or hints is None or hints.interesting(statement):
            self.statement(statement, state)
        context = after_scope_assignment(statement, self.scope_names, state.context)
        return state if context is state.context else replace(state, context=context)

    def statement(self, node: ast.stmt, state: WalkState) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            self._definition(node, state)
        elif isinstance(node, ast.ClassDef):
            self._class(node, state)
        elif isinstance(node, ast.Global):
            self.globals.update(node.names)
        elif isinstance(node, ast.If):
            self._if(node, state)
        elif isinstance(node, ast.While):
            self.expression(node.test, replace(state, testing=True))
            self.block(node.body, state)
            self.block(node.orelse, state)
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            self._for(node, state)
        elif isinstance(node, (ast.Try, ast.TryStar)):
            self._try(node, state)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            self._with(node, state)
        elif isinstance(node, ast.Match):
            self.expression(node.subject, state)
            for index, case in enumerate(node.cases):
                branch = self._branch(state, node, index)
                if case.guard is not None:
                    self.expression(case.guard, replace(branch, testing=True))
                self.block(case.body, branch)
        elif isinstance(node, ast.Assert):
            self.expression(node.test, replace(state, testing=True))
            if node.msg is not None:
                self.hints_only(node.msg, state)
        elif isinstance(node, ast.Assign):
            self.expression(node.value, state)
            for target in node.targets:
                self.target(target, state)
        elif isinstance(node, ast.AugAssign):
            self.expression(node.value, state)
            self.target(node.target, state, augmented=True)
        elif isinstance(node, ast.AnnAssign):
            self.hints_only(node.annotation, state)
            if node.value is not None:
                self.expression(node.value, state)
                self.target(node.target, state)
            else:
                self.hints_only(node.target, state)
        elif isinstance(node, ast.Delete):
            for target in node.targets:
                self.target(target, state, deleting=True)
        else:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.expr) and not isinstance(child, ast.Constant):
                    self.expression(child, state)

    def _definition(self, node: ast.FunctionDef | ast.AsyncFunctionDef, state: WalkState) -> None:
        # Decorators and defaults run here; the body is a function of its own.
        for decorator in node.decorator_list:
            self.hints_only(decorator, state)
        arguments = node.args
        for default in [*arguments.defaults, *arguments.kw_defaults]:
            if default is not None:
                self.expression(default, state)
        if self.hints is None:
            return  # walking for events: ``flow.py`` lists it and walks it apart
        is_async = isinstance(node, ast.AsyncFunctionDef)
        qualname = f"{self.prefix}{node.name}"
        function = WalkedFunction(
            qualname,
            is_acm=is_async and is_acm(node, self.flow.table),
            in_aexit=node.name in AEXIT_NAMES,
            is_async=is_async,
        )
        facts = self.listed.get(id(node)) if self.listed is not None else None
        if facts is not None:
            if facts.walk is None:
                facts = None  # its events are listed already
            else:
                facts.walk = None  # this walk lists them
        inner = type(self)(
            function,
            self.flow,
            facts=facts,
            hints=self.hints,
            prefix=f"{qualname}.<locals>.",
            listed=self.listed,
        )
        inner.walk_body(node.body)

    def _class(self, node: ast.ClassDef, state: WalkState) -> None:
        if self.hints is None:
            return  # its methods are functions of their own; its body has no events
        for expression in [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]:
            self.hints_only(expression, state)
        facts, prefix = self.facts, self.prefix
        self.facts, self.prefix = None, f"{prefix}{node.name}."
        try:
            self.block(node.body, state)
        finally:
            self.facts, self.prefix = facts, prefix

    def _if(self, node: ast.If, state: WalkState) -> None:
        """An `if` and its `elif`s, in a loop (2,000 `elif`s nest too deep to recurse).
        In an acm, a `yield` in a branch makes neither the other branch teardown nor,
        when it returns (`if cached: yield x; return`), what follows the `if`."""
        opened: list[tuple[ast.If, bool, bool]] = []  # (if, after_yield before, body yielded)
        current = node
        while True:
            self.expression(current.test, replace(state, testing=True))
            before = self.after_yield
            self.block(current.body, self._branch(state, current, 0))
            opened.append((current, before, self.after_yield and falls_through(current.body)))
            self.after_yield = before
            state = self._branch(state, current, 1)
            orelse = current.orelse
            elif_ = orelse[0] if len(orelse) == 1 and isinstance(orelse[0], ast.If) else None
            if elif_ is None or (
                self.facts is None and self.hints is not None and not self.hints.interesting(elif_)
            ):
                self.block(orelse, state)
                break
            current = elif_
        for current, before, body_yielded in reversed(opened):
            else_yielded = self.after_yield and falls_through(current.orelse)
            self.after_yield = before or body_yielded or else_yielded

    def _branch(self, state: WalkState, node: ast.AST, index: int) -> WalkState:
        if self.facts is None:
            return state  # only events tell branches apart
        return replace(state, path=(*state.path, (id(node), index)))

    def _for(self, node: ast.For | ast.AsyncFor, state: WalkState) -> None:
        self.expression(node.iter, state)
        facts = self.facts
        loop = None
        if facts is not None:
            iterated = iterated_state(node.iter, self)
            if iterated is not None:
                loop = Loop(self.flow.span(node.iter), iterated)
                facts.found_loops.append(loop)
                self.open_loops.append(loop)
        if isinstance(node, ast.AsyncFor):
            if self.hints is not None:
                self.hints.async_for(node, self.function, self.hint_context(state.context))
            self.emit(EventKind.CHECKPOINT, node.iter, state)
        self.target(node.target, state)
        self.block(node.body, state)
        if loop is not None:
            self.open_loops.remove(loop)
        self.block(node.orelse, state)

    def _try(self, node: ast.Try | ast.TryStar, state: WalkState) -> None:
        self.block(node.body, state)
        for index, handler in enumerate(node.handlers):
            caught = ""
            if handler.type is not None:
                self.hints_only(handler.type, state)
                caught = node_text(handler.type)
            if isinstance(node, ast.TryStar):
                caught = f"*{caught}"
            handler_id = self.flow.new_id() if self.facts is not None else 0
            branch = self._branch(state, node, index + 1)
            self.block(
                handler.body,
                replace(
                    branch,
                    context=replace(branch.context, in_except=caught),
                    handler=handler_id,
                    cleanup_block=handler_id,
                ),
            )
        self.block(node.orelse, self._branch(state, node, 0))
        if node.finalbody:
            finally_id = self.flow.new_id() if self.facts is not None else 0
            self.block(
                node.finalbody,
                replace(
                    state,
                    context=replace(state.context, in_finally=True),
                    cleanup_block=finally_id,
                ),
            )

    def _with(self, node: ast.With | ast.AsyncWith, state: WalkState) -> None:
        is_async = isinstance(node, ast.AsyncWith)
        facts = self.facts
        inner = state
        # The cleanup block the statement is entered in: its exit may run in
        # another one (an acm's `yield` inside the body makes the rest teardown).
        entry_block = state.cleanup_block or (self.teardown_block if self.after_yield else 0)
        exits: list[ast.withitem] = []
        opened: list[Scope] = []
        saved_names = self.scope_names
        for index, item in enumerate(node.items):
            self.expression(item.context_expr, inner)
            effect = scope_effect(item.context_expr, self.flow.table)
            if is_async and self.hints is not None:
                self.hints.async_with_item(
                    node,  # type: ignore[arg-type]
                    index,
                    effect,
                    self.function,
                    self.hint_context(inner.context),
                )
            found = self.flow.resolution(item) if facts is not None and is_async else None
            if facts is not None and is_async:
                # Resolved, a side that never yields is no checkpoint (asyncio.timeout's
                # both sides); nor is a nursery's or task group's enter, resolved or not.
                never = found is not None and found.enter is Verdict.NEVER
                if not never and not effect.waits_for_children:
                    self.emit(EventKind.CHECKPOINT, item.context_expr, inner)
                # A lock's (semaphore's, limiter's) __aexit__ only releases it:
                # leaving `async with lock:` is no checkpoint.
                if found is not None and found.exit is not None:
                    if found.exit is not Verdict.NEVER:
                        exits.append(item)
                elif not is_lock_text(node_text(item.context_expr)):
                    exits.append(item)
            if item.optional_vars is not None:
                self.target(item.optional_vars, inner)
            context = inside_scope(inner.context, effect)
            if facts is not None:
                text = node_text(item.context_expr)
                guards = inner.guards
                mutex = is_mutex(text) or (found is not None and found.callee in MUTEX_TYPES)
                if mutex and not effect.is_cancel_scope:
                    guards = guards | {text}
                inner = replace(inner, context=context, guards=guards)
                timeout = effect.bounded or is_timeout_call(item.context_expr, self.flow.table)
                if effect.is_cancel_scope and timeout:
                    scope = Scope(self.flow.span(item.context_expr), text, node=node)
                    facts.found_scopes.append(scope)
                    opened.append(scope)
            elif context is not inner.context:
                inner = replace(inner, context=context)
            if (effect.is_cancel_scope or effect.waits_for_children) and isinstance(
                item.optional_vars, ast.Name
            ):
                self.scope_names = {**self.scope_names, item.optional_vars.id: effect}
        self.open_scopes.extend(opened)
        self.block(node.body, inner)
        for scope in opened:
            self.open_scopes.remove(scope)
        self.scope_names = saved_names
        for item in reversed(exits):
            self.emit(
                EventKind.CHECKPOINT, item.context_expr, state, exit=True, entry_block=entry_block
            )

    # -- expressions ---------------------------------------------------------

    def expression(self, root: ast.expr, state: WalkState) -> None:
        """What an expression does: its events, its hints, or both."""
        if self.facts is not None:
            self.flow_expression(root, state)
        elif self.hints is not None:
            hint_context = self.hint_context(state.context)
            self.yielded |= self.hints.expression(root, self.function, hint_context)
        if self.yielded:
            self._after_the_yield()

    def hints_only(self, root: ast.expr, state: WalkState) -> None:
        """An expression whose code the events leave out (decorators, annotations,
        the types an `except` catches)."""
        if self.hints is not None:
            hint_context = self.hint_context(state.context)
            self.yielded |= self.hints.expression(root, self.function, hint_context)
            if self.yielded:
                self._after_the_yield()

    def target(
        self, node: ast.expr, state: WalkState, *, augmented: bool = False, deleting: bool = False
    ) -> None:
        super().target(node, state, augmented=augmented, deleting=deleting)
        if self.yielded:
            self._after_the_yield()

    def _after_the_yield(self) -> None:
        self.yielded = False
        if not self.after_yield:
            self.after_yield = True
            self.teardown_block = self.flow.new_id()


def is_acm(node: ast.FunctionDef | ast.AsyncFunctionDef, table: ImportTable) -> bool:
    """Whether a function is decorated as an async context manager."""
    names = (table.resolve(callee(each)) for each in node.decorator_list)
    return any(last_name(name) in ACM_DECORATORS for name in names)
