"""The walker that turns a module into the rules' facts (``events.py``): what
each function does, in order.

For every function the walker lists *events* in (approximate) execution
order: checkpoints (an ``async with`` gives one on entry and one on exit),
calls, and reads, tests and writes of shared state: module globals that hold
containers or are declared ``global``, class attributes, ``self``/``cls``
attributes, and the containers they hold (with the key they are indexed by).
Each event carries its cancellation context, the locks held, and the branch
path it is on, so that rules can tell two events on exclusive branches apart.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, replace

from conc_lsp import log
from conc_lsp.analysis.checkpoints import (
    ACM_DECORATORS,
    AEXIT_NAMES,
    ScopeEffect,
    after_scope_assignment,
    callee,
    inside_scope,
    scope_effect,
)
from conc_lsp.analysis.events import Event, EventKind, FunctionFacts, Loop, ModuleFacts, Scope
from conc_lsp.analysis.function_list import opens_timeout_scope, outline
from conc_lsp.analysis.libraries import ImportTable, imports_of, last_name
from conc_lsp.analysis.library_choice import module_library
from conc_lsp.analysis.locks import MUTEX_TYPES, is_lock_text, is_mutex
from conc_lsp.analysis.model import EMPTY_CONTEXT, Context, HintKind, Location, Resolution, Verdict
from conc_lsp.analysis.shapes import (
    MUTATING_METHODS,
    POST_VISITED,
    READING_METHODS,
    child_nodes,
    falls_through,
    is_timeout_call,
    iterated_state,
    membership_state,
    node_text,
    state_globals,
)
from conc_lsp.analysis.text import end_position, utf8_to_codepoint


class _Walker:
    def __init__(
        self,
        module: ast.Module,
        lines: list[str],
        table: ImportTable,
        resolved: dict[tuple[int, int, HintKind], Resolution] | None = None,
    ) -> None:
        self.lines = lines
        self.table = table
        self.resolved = resolved or {}
        self.functions: list[FunctionFacts] = []
        self.outline = outline(module)
        self.classes = frozenset(self.outline.classes)
        self.state_globals = frozenset(state_globals(module) | self.outline.declared_global)
        self._ids = 0

    def _new_id(self) -> int:
        self._ids += 1
        return self._ids

    def resolution(self, item: ast.withitem) -> Resolution | None:
        """What resolving found for one item of an `async with`, if anything."""
        if not self.resolved:
            return None
        anchor = item.optional_vars if item.optional_vars is not None else item.context_expr
        return self.resolved.get((*end_position(self.lines, anchor), HintKind.ASYNC_WITH))

    def span(self, node: ast.AST) -> Location:
        line: int = node.lineno  # type: ignore[attr-defined]
        end_line: int = node.end_lineno or line  # type: ignore[attr-defined]
        return Location(
            line - 1,
            utf8_to_codepoint(self.lines[line - 1], node.col_offset),  # type: ignore[attr-defined]
            end_line - 1,
            utf8_to_codepoint(self.lines[end_line - 1], node.end_col_offset or 0),  # type: ignore[attr-defined]
        )

    # -- module --------------------------------------------------------------

    def walk_module(self, module: ast.Module) -> None:
        """List the module's functions; each is walked on first use of its events."""
        for definition in self.outline.functions:
            node = definition.node
            is_async = isinstance(node, ast.AsyncFunctionDef)
            facts = FunctionFacts(
                qualname=definition.qualname,
                name=node.name,
                node=node,
                class_name=definition.class_name,
                is_async=is_async,
                is_acm=is_async and self._is_acm(node),
                walk=self.walk_function,
                may_have_scopes=any(
                    opens_timeout_scope(each, self.table) for each in definition.withs
                ),
            )
            self.functions.append(facts)

    def _is_acm(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
        names = (self.table.resolve(callee(each)) for each in node.decorator_list)
        return any(last_name(name) in ACM_DECORATORS for name in names)

    def walk_function(self, facts: FunctionFacts) -> None:
        node = facts.node
        walk = _FunctionWalk(self, facts)
        try:
            walk.block(node.body, _State(context=Context(in_aexit=node.name in AEXIT_NAMES)))
        except RecursionError:  # deeper than Python's stack: keep the events found so far
            log.warning("line %d: `%s` nests too deeply: facts cut", node.lineno, facts.qualname)


@dataclass(frozen=True, slots=True)
class _State:
    context: Context = EMPTY_CONTEXT
    path: tuple[tuple[int, int], ...] = ()
    guards: frozenset[str] = frozenset()
    testing: bool = False
    handler: int = 0
    cleanup_block: int = 0


class _FunctionWalk:
    def __init__(self, walker: _Walker, facts: FunctionFacts) -> None:
        self.walker = walker
        self.facts = facts
        self.after_yield = False
        self.held: set[str] = set()  # locks held through acquire()/release()
        self.open_scopes: list[Scope] = []
        self.open_loops: list[Loop] = []
        self.scope_names: dict[str, ScopeEffect] = {}
        self.globals: set[str] = set()
        self.teardown_block = 0
        self.awaited_calls: set[int] = set()

    # -- events --------------------------------------------------------------

    def emit(self, kind: EventKind, node: ast.AST, where: _State, **details: object) -> Event:
        context = where.context
        cleanup_block = where.cleanup_block
        if self.after_yield and not context.acm_teardown:
            context = replace(context, acm_teardown=True)
        if self.after_yield and not cleanup_block:
            cleanup_block = self.teardown_block
        event = Event(
            kind=kind,
            location=self.walker.span(node),
            context=context,
            path=where.path,
            order=len(self.facts.events),
            guards=where.guards | frozenset(self.held),
            node=node,
            handler=where.handler,
            cleanup_block=cleanup_block,
            **details,  # type: ignore[arg-type]
        )
        self.facts.events.append(event)
        if kind is EventKind.CHECKPOINT:
            for scope in self.open_scopes:
                scope.checkpoints += 1
            for loop in self.open_loops:
                loop.checkpoints.append(event)
        return event

    # -- statements ----------------------------------------------------------

    def block(self, body: list[ast.stmt], state: _State) -> None:
        for statement in body:
            self.statement(statement, state)
            context = after_scope_assignment(statement, self.scope_names, state.context)
            if context is not state.context:
                state = replace(state, context=context)

    def statement(self, node: ast.stmt, state: _State) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            # Its defaults run here; its body is its own (``_Walker.walk_module`` listed it).
            for default in [*node.args.defaults, *node.args.kw_defaults]:
                if default is not None:
                    self.expression(default, state)
            return
        if isinstance(node, ast.ClassDef):
            return  # its methods are functions of their own
        if isinstance(node, ast.Global):
            self.globals.update(node.names)
            return
        if isinstance(node, ast.If):
            self._if(node, state)
            return
        if isinstance(node, ast.While):
            self.expression(node.test, replace(state, testing=True))
            self.block(node.body, state)
            self.block(node.orelse, state)
            return
        if isinstance(node, (ast.For, ast.AsyncFor)):
            self._for(node, state)
            return
        if isinstance(node, (ast.Try, ast.TryStar)):
            self._try(node, state)
            return
        if isinstance(node, (ast.With, ast.AsyncWith)):
            self._with(node, state)
            return
        if isinstance(node, ast.Match):
            self.expression(node.subject, state)
            for index, case in enumerate(node.cases):
                branch = self._branch(state, node, index)
                if case.guard is not None:
                    self.expression(case.guard, replace(branch, testing=True))
                self.block(case.body, branch)
            return
        if isinstance(node, ast.Assert):
            self.expression(node.test, replace(state, testing=True))
            return
        if isinstance(node, ast.Assign):
            self.expression(node.value, state)
            for target in node.targets:
                self.target(target, state)
            return
        if isinstance(node, ast.AugAssign):
            self.expression(node.value, state)
            self.target(node.target, state, augmented=True)
            return
        if isinstance(node, ast.AnnAssign):
            if node.value is not None:
                self.expression(node.value, state)
                self.target(node.target, state)
            return
        if isinstance(node, ast.Delete):
            for target in node.targets:
                self.target(target, state, deleting=True)
            return
        for child in child_nodes(node):
            if isinstance(child, ast.expr):
                self.expression(child, state)

    def _if(self, node: ast.If, state: _State) -> None:
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
            if not (len(orelse) == 1 and isinstance(orelse[0], ast.If)):
                self.block(orelse, state)
                break
            current = orelse[0]
        for current, before, body_yielded in reversed(opened):
            else_yielded = self.after_yield and falls_through(current.orelse)
            self.after_yield = before or body_yielded or else_yielded

    def _branch(self, state: _State, node: ast.AST, index: int) -> _State:
        return replace(state, path=(*state.path, (id(node), index)))

    def _for(self, node: ast.For | ast.AsyncFor, state: _State) -> None:
        self.expression(node.iter, state)
        iterated = iterated_state(node.iter, self)
        loop = None
        if iterated is not None:
            loop = Loop(self.walker.span(node.iter), iterated)
            self.facts.loops.append(loop)
            self.open_loops.append(loop)
        if isinstance(node, ast.AsyncFor):
            self.emit(EventKind.CHECKPOINT, node.iter, state)
        self.target(node.target, state)
        self.block(node.body, state)
        if loop is not None:
            self.open_loops.remove(loop)
        self.block(node.orelse, state)

    def _try(self, node: ast.Try | ast.TryStar, state: _State) -> None:
        self.block(node.body, state)
        for index, handler in enumerate(node.handlers):
            caught = node_text(handler.type) if handler.type is not None else ""
            if isinstance(node, ast.TryStar):
                caught = f"*{caught}"
            handler_id = self.walker._new_id()
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
            self.block(
                node.finalbody,
                replace(
                    state,
                    context=replace(state.context, in_finally=True),
                    cleanup_block=self.walker._new_id(),
                ),
            )

    def _with(self, node: ast.With | ast.AsyncWith, state: _State) -> None:
        is_async = isinstance(node, ast.AsyncWith)
        inner = state
        # The cleanup block the statement is entered in: its exit may run in
        # another one (an acm's `yield` inside the body makes the rest teardown).
        entry_block = state.cleanup_block or (self.teardown_block if self.after_yield else 0)
        exits: list[ast.withitem] = []
        opened: list[Scope] = []
        saved_names = self.scope_names
        for item in node.items:
            self.expression(item.context_expr, inner)
            found = self.walker.resolution(item) if is_async else None
            effect = scope_effect(item.context_expr, self.walker.table)
            if is_async:
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
            guards = inner.guards
            text = node_text(item.context_expr)
            mutex = is_mutex(text) or (found is not None and found.callee in MUTEX_TYPES)
            if mutex and not effect.is_cancel_scope:
                guards = guards | {text}
            inner = replace(inner, context=context, guards=guards)
            if (effect.is_cancel_scope or effect.waits_for_children) and isinstance(
                item.optional_vars, ast.Name
            ):
                self.scope_names = {**self.scope_names, item.optional_vars.id: effect}
            timeout = effect.bounded or is_timeout_call(item.context_expr, self.walker.table)
            if effect.is_cancel_scope and timeout:
                scope = Scope(self.walker.span(item.context_expr), text, node=node)
                self.facts.scopes.append(scope)
                opened.append(scope)
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

    def target(
        self, node: ast.expr, state: _State, *, augmented: bool = False, deleting: bool = False
    ) -> None:
        if isinstance(node, (ast.Tuple, ast.List)):
            for element in node.elts:
                self.target(element, state, deleting=deleting)
            return
        if isinstance(node, ast.Starred):
            self.target(node.value, state)
            return
        if isinstance(node, ast.Subscript):
            self.expression(node.slice, state)
            found = self.state_of(node.value)
            if found is None:
                self.expression(node.value, state)
                return
            name, owner = found
            if augmented:
                self.emit(
                    EventKind.READ, node, state, state=name, owner=owner, key=node_text(node.slice)
                )
            self.emit(
                EventKind.WRITE,
                node,
                state,
                state=name,
                owner=owner,
                key=node_text(node.slice),
                removal=deleting,
            )
            return
        if isinstance(node, ast.Attribute):
            found = self.state_of(node)
            if found is None:
                self.expression(node.value, state)
                return
            name, owner = found
            if augmented:
                self.emit(EventKind.READ, node, state, state=name, owner=owner)
            self.emit(
                EventKind.WRITE,
                node,
                state,
                state=name,
                owner=owner,
                removal=deleting,
                augmented=augmented,
            )
            return
        if isinstance(node, ast.Name) and node.id in self.globals:
            if augmented:
                self.emit(EventKind.READ, node, state, state=node.id, owner="<module>")
            self.emit(
                EventKind.WRITE, node, state, state=node.id, owner="<module>", augmented=augmented
            )

    def state_of(self, node: ast.expr) -> tuple[str, str] | None:
        """The shared state an expression names, with its owner."""
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            base = node.value.id
            if base in ("self", "cls") and self.facts.class_name:
                return f"{self.facts.class_name}.{node.attr}", self.facts.class_name
            if base in ("self", "cls"):
                return f"{base}.{node.attr}", base
            if base in self.walker.classes:
                return f"{base}.{node.attr}", base
            return None
        if isinstance(node, ast.Name) and (
            node.id in self.walker.state_globals or node.id in self.globals
        ):
            return node.id, "<module>"
        return None

    def expression(self, root: ast.expr, state: _State) -> None:
        """Emit the events of an expression in evaluation order (post-order)."""
        # Iterative post-order: (node, children_done)
        stack: list[tuple[ast.AST, bool, _State]] = [(root, False, state)]
        while stack:
            node, done, current = stack.pop()
            if isinstance(node, ast.Lambda):
                continue  # runs later, if at all
            if not done:
                if isinstance(node, POST_VISITED):
                    stack.append((node, True, current))
                children = child_nodes(node)
                inner = current
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                    # `self.d.pop(k)` is one access, not a read of self.d then a call.
                    if self.state_of(node.func.value) is not None:
                        children = [*node.args, *(k.value for k in node.keywords)]
                elif isinstance(node, ast.Subscript) and self.state_of(node.value) is not None:
                    children = [node.slice]
                elif isinstance(node, ast.Compare) and membership_state(node, self):
                    children = [node.left]
                elif isinstance(node, ast.Await) and isinstance(node.value, ast.Call):
                    self.awaited_calls.add(id(node.value))
                for child in reversed(children):
                    if isinstance(child, (ast.expr, ast.comprehension)) and self._worth(child):
                        stack.append((child, False, inner))
                continue
            self._after_children(node, current)

    def _worth(self, node: ast.AST) -> bool:
        """Whether a child can produce an event: constants never do, and a name or
        a dotted chain only when it names shared state (`trio.sleep` does not)."""
        if isinstance(node, ast.Constant):
            return False
        if isinstance(node, ast.Name):
            return node.id in self.walker.state_globals or node.id in self.globals
        if isinstance(node, ast.Attribute):
            base: ast.expr = node
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name):
                return (
                    base.id in ("self", "cls")
                    or base.id in self.walker.classes
                    or base.id in self.walker.state_globals
                    or base.id in self.globals
                )
        return True

    def _after_children(self, node: ast.AST, state: _State) -> None:
        if isinstance(node, ast.Await):
            self.emit(EventKind.CHECKPOINT, node, state, awaited=True)
            value = node.value
            if (
                isinstance(value, ast.Call)
                and isinstance(value.func, ast.Attribute)
                and value.func.attr == "acquire"
            ):
                self.held.add(node_text(value.func.value))
            return
        if isinstance(node, (ast.Yield, ast.YieldFrom)):
            if self.facts.is_acm and not self.after_yield:
                self.after_yield = True
                self.teardown_block = self.walker._new_id()
            return
        if isinstance(node, ast.comprehension) and node.is_async:
            self.emit(EventKind.CHECKPOINT, node.iter, state)
            return
        if isinstance(node, ast.Call):
            self._call(node, state)
            return
        if isinstance(node, ast.Compare):
            membership = membership_state(node, self)
            if membership is not None:
                name, owner = membership
                self.emit(
                    EventKind.TEST, node, state, state=name, owner=owner, key=node_text(node.left)
                )
            return
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            found = self.state_of(node.value)
            if found is not None:
                kind = EventKind.TEST if state.testing else EventKind.READ
                key = node_text(node.slice)
                self.emit(kind, node, state, state=found[0], owner=found[1], key=key)
            return
        if isinstance(node, (ast.Attribute, ast.Name)) and isinstance(node.ctx, ast.Load):
            found = self.state_of(node)
            if found is not None:
                kind = EventKind.TEST if state.testing else EventKind.READ
                self.emit(kind, node, state, state=found[0], owner=found[1])

    def _call(self, node: ast.Call, state: _State) -> None:
        func = node.func
        awaited = id(node) in self.awaited_calls
        method = func.attr if isinstance(func, ast.Attribute) else None
        receiver = node_text(func.value) if isinstance(func, ast.Attribute) else None
        resolved = self.walker.table.resolve(func)
        if isinstance(func, ast.Attribute):
            found = self.state_of(func.value)
            if found is not None and method is not None:
                name, owner = found
                key = node_text(node.args[0]) if node.args else None
                if method in MUTATING_METHODS:
                    self.emit(
                        EventKind.WRITE,
                        node,
                        state,
                        state=name,
                        owner=owner,
                        key=key,
                        method=method,
                        removal=method
                        in ("pop", "popitem", "popleft", "remove", "discard", "clear"),
                        has_default=len(node.args) > 1,
                    )
                elif method in READING_METHODS:
                    kind = EventKind.TEST if state.testing else EventKind.READ
                    self.emit(
                        kind,
                        node,
                        state,
                        state=name,
                        owner=owner,
                        key=key,
                        method=method,
                        has_default=len(node.args) > 1,
                    )
        self.emit(
            EventKind.CALL,
            node,
            state,
            method=method or (func.id if isinstance(func, ast.Name) else None),
            receiver=receiver,
            callee=resolved,
            awaited=awaited,
            argument=node_text(node.args[0]) if node.args else None,
            arguments=len(node.args) + len(node.keywords),
        )
        if method == "release" and receiver in self.held:
            self.held.discard(receiver)


def module_facts(
    module: ast.Module,
    lines: list[str],
    table: ImportTable | None = None,
    resolved: dict[tuple[int, int, HintKind], Resolution] | None = None,
    path: str | None = None,
) -> ModuleFacts:
    """The rules' view of a parsed module; ``resolved`` (by checkpoint anchor)
    refines it: `async with` sides that never yield, locks known by type;
    ``path`` lets the module's package tell its library when its imports do not."""
    if table is None:
        facts = [fact for statement in module.body for fact in imports_of(statement)]
        table = ImportTable.from_facts(facts)
    walker = _Walker(module, lines, table, resolved)
    walker.walk_module(module)
    return ModuleFacts(
        functions=walker.functions,
        table=table,
        lines=lines,
        classes=walker.classes,
        state_globals=walker.state_globals,
        resolved=resolved or {},
        library=module_library(table, lines, path),
    )
