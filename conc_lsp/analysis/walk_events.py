"""The flow events of the one walk (``walk.py``): what a function does to
shared state, its calls and its checkpoints, in evaluation order.

``EventWalk`` is the part of the walk that lists events: ``walk.py`` calls
``emit``, ``target`` and ``flow_expression`` where the function runs code.
An expression's traversal here is post-order (events in evaluation order);
when the walk also records hints, it hands each checkpoint and look-alike to
the hint recorder on the way, so that one traversal gives both.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, replace

from conc_lsp.analysis.events import Event, EventKind, FunctionFacts, Loop, Scope
from conc_lsp.analysis.libraries import ImportTable
from conc_lsp.analysis.model import EMPTY_CONTEXT, Context, HintKind, Location, Resolution
from conc_lsp.analysis.shapes import (
    MUTATING_METHODS,
    POST_VISITED,
    READING_METHODS,
    child_nodes,
    membership_state,
    node_text,
)
from conc_lsp.analysis.text import end_position, utf8_to_codepoint
from conc_lsp.analysis.walk_hints import HintRecorder, WalkedFunction

REMOVING_METHODS = frozenset({"pop", "popitem", "popleft", "remove", "discard", "clear"})


@dataclass(frozen=True, slots=True)
class WalkState:
    """What holds for a statement and everything in it."""

    context: Context = EMPTY_CONTEXT
    path: tuple[tuple[int, int], ...] = ()  # the branches taken: (id of the node, branch)
    guards: frozenset[str] = frozenset()  # the locks held by `async with`
    testing: bool = False  # in the test of an `if`/`while`/`assert`/guard
    handler: int = 0  # the `except` handler it is in
    cleanup_block: int = 0  # the `except`/`finally` block it is in


class FlowModule:
    """What the flow events of a module's functions share: its lines, imports,
    classes and state globals, and what resolving its checkpoints found."""

    def __init__(
        self,
        lines: list[str],
        table: ImportTable,
        classes: frozenset[str],
        state_globals: frozenset[str],
        resolved: dict[tuple[int, int, HintKind], Resolution] | None = None,
    ) -> None:
        self.lines = lines
        self.table = table
        self.classes = classes
        self.state_globals = state_globals
        self.resolved = resolved or {}
        self._ids = 0

    def new_id(self) -> int:
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


class EventWalk:
    """The event half of ``walk.FunctionWalk`` (which sets these attributes)."""

    function: WalkedFunction
    facts: FunctionFacts | None  # None: no events (a walk for hints, or a class body)
    flow: FlowModule
    hints: HintRecorder | None
    after_yield: bool
    yielded: bool  # a `yield` met in the current expression: teardown from its end
    teardown_block: int
    held: set[str]  # locks held through acquire()/release()
    open_scopes: list[Scope]
    open_loops: list[Loop]
    globals: set[str]
    awaited_calls: set[int]

    def hint_context(self, context: Context) -> Context:
        """The context a hint or an event shows: an acm's teardown after its yield."""
        if self.after_yield and not context.acm_teardown:
            return replace(context, acm_teardown=True)
        return context

    def emit(self, kind: EventKind, node: ast.AST, where: WalkState, **details: object) -> None:
        facts = self.facts
        if facts is None:
            return
        cleanup_block = where.cleanup_block
        if self.after_yield and not cleanup_block:
            cleanup_block = self.teardown_block
        event = Event(
            kind=kind,
            location=self.flow.span(node),
            context=self.hint_context(where.context),
            path=where.path,
            order=len(facts.events),
            guards=where.guards | frozenset(self.held),
            node=node,
            handler=where.handler,
            cleanup_block=cleanup_block,
            **details,  # type: ignore[arg-type]
        )
        facts.events.append(event)
        if kind is EventKind.CHECKPOINT:
            for scope in self.open_scopes:
                scope.checkpoints += 1
            for loop in self.open_loops:
                loop.checkpoints.append(event)

    # -- assignment targets -----------------------------------------------------

    def target(
        self, node: ast.expr, state: WalkState, *, augmented: bool = False, deleting: bool = False
    ) -> None:
        if self.facts is None:
            if self.hints is not None:
                self.yielded |= self.hints.expression(
                    node, self.function, self.hint_context(state.context)
                )
            return
        if isinstance(node, (ast.Tuple, ast.List)):
            for element in node.elts:
                self.target(element, state, deleting=deleting)
            return
        if isinstance(node, ast.Starred):
            self.target(node.value, state)
            return
        if isinstance(node, ast.Subscript):
            self.flow_expression(node.slice, state)
            found = self.state_of(node.value)
            if found is None:
                self.flow_expression(node.value, state)
                return
            name, owner = found
            key = node_text(node.slice)
            if augmented:
                self.emit(EventKind.READ, node, state, state=name, owner=owner, key=key)
            self.emit(
                EventKind.WRITE, node, state, state=name, owner=owner, key=key, removal=deleting
            )
            return
        if isinstance(node, ast.Attribute):
            found = self.state_of(node)
            if found is None:
                self.flow_expression(node.value, state)
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
            class_name = self.facts.class_name if self.facts is not None else None
            if base in ("self", "cls") and class_name:
                return f"{class_name}.{node.attr}", class_name
            if base in ("self", "cls"):
                return f"{base}.{node.attr}", base
            if base in self.flow.classes:
                return f"{base}.{node.attr}", base
            return None
        if isinstance(node, ast.Name) and (
            node.id in self.flow.state_globals or node.id in self.globals
        ):
            return node.id, "<module>"
        return None

    # -- expressions -------------------------------------------------------------

    def flow_expression(self, root: ast.expr, state: WalkState) -> None:
        """The events of an expression in evaluation order (post-order), and
        its hints when the walk records them."""
        hints = self.hints
        stack: list[tuple[ast.AST, bool, WalkState]] = [(root, False, state)]
        while stack:
            node, done, current = stack.pop()
            if done:
                self._after_children(node, current)
                continue
            if isinstance(node, ast.Lambda):
                # Its body runs later, if at all: no events, but its look-alikes are hints.
                if hints is not None:
                    self.yielded |= hints.expression(
                        node, self.function, self.hint_context(current.context)
                    )
                continue
            if isinstance(node, POST_VISITED):
                stack.append((node, True, current))
            children = child_nodes(node)
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
                if hints is not None:
                    hints.note_awaited(node.value)
            for child in reversed(children):
                if isinstance(child, (ast.expr, ast.comprehension, ast.keyword)) and self._worth(
                    child
                ):
                    stack.append((child, False, current))

    def _worth(self, node: ast.AST) -> bool:
        """Whether a child can produce an event: constants never do, and a name or
        a dotted chain only when it names shared state (`trio.sleep` does not)."""
        if isinstance(node, ast.Constant):
            return False
        if isinstance(node, ast.Name):
            return node.id in self.flow.state_globals or node.id in self.globals
        if isinstance(node, ast.Attribute):
            base: ast.expr = node
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name):
                return (
                    base.id in ("self", "cls")
                    or base.id in self.flow.classes
                    or base.id in self.flow.state_globals
                    or base.id in self.globals
                )
        return True

    def _after_children(self, node: ast.AST, state: WalkState) -> None:
        hints = self.hints
        if isinstance(node, ast.Await):
            if hints is not None:
                hints.awaited(node, self.function, self.hint_context(state.context))
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
            if hints is not None:
                hints.yielded(node, self.function, self.hint_context(state.context))
            self.yielded |= self.function.is_acm
            return
        if isinstance(node, ast.comprehension):
            if node.is_async:
                if hints is not None:
                    hints.async_comprehension(node, self.function, self.hint_context(state.context))
                self.emit(EventKind.CHECKPOINT, node.iter, state)
            return
        if isinstance(node, ast.Call):
            if hints is not None:
                hints.call(node, self.function, self.hint_context(state.context))
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

    def _call(self, node: ast.Call, state: WalkState) -> None:
        func = node.func
        awaited = id(node) in self.awaited_calls
        method = func.attr if isinstance(func, ast.Attribute) else None
        receiver = node_text(func.value) if isinstance(func, ast.Attribute) else None
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
                        removal=method in REMOVING_METHODS,
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
            callee=self.flow.table.resolve(func),
            awaited=awaited,
            argument=node_text(node.args[0]) if node.args else None,
            arguments=len(node.args) + len(node.keywords),
        )
        if method == "release" and receiver in self.held:
            self.held.discard(receiver)
