"""The hints of the one walk (``walk.py``): how a checkpoint or a look-alike
becomes a ``Hint`` (its label's anchor, its keyword, a preview of its code),
and the cheap traversal the walk uses for an expression when it lists no
flow events (the editor's hints, `conc-lsp hints`).

The walk hands every hook the context the construct runs in (an acm's
teardown already applied); nothing here decides a cancellation context.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from conc_lsp.analysis.checkpoints import (
    BOUNDED_CALLS,
    SPAWN_FUNCTIONS,
    SPAWN_METHODS,
    ScopeEffect,
    is_unbounded_constant,
)
from conc_lsp.analysis.libraries import ImportTable, last_name
from conc_lsp.analysis.locks import is_lock_name
from conc_lsp.analysis.model import Context, Hint, HintKind
from conc_lsp.analysis.shapes import BARREN, child_nodes
from conc_lsp.analysis.text import utf8_to_codepoint

CODE_PREVIEW = 60


@dataclass(frozen=True, slots=True)
class WalkedFunction:
    """The function a walk is in (``<module>`` for code outside functions)."""

    qualname: str
    is_acm: bool = False
    in_aexit: bool = False
    is_async: bool = False


MODULE = WalkedFunction("<module>")


class HintRecorder:
    """The hints of one parsed piece of code.

    ``lines`` are the lines the tree was parsed from; ``column_offset`` is
    added to every column (for fragments that were dedented before parsing).
    ``keyword_counts`` (prefix counts of the lines holding a hint keyword)
    let a walk skip the statements and expressions that cannot hold a hint;
    without them nothing is skipped.
    """

    def __init__(
        self,
        lines: list[str],
        table: ImportTable,
        keyword_counts: list[int] | None = None,
        *,
        column_offset: int = 0,
    ) -> None:
        self.lines = lines
        self.table = table
        self.counts = keyword_counts
        self.column_offset = column_offset
        self.hints: list[Hint] = []
        self._awaited: set[int] = set()

    def interesting(self, node: ast.AST) -> bool:
        """Whether the lines of ``node`` (with its decorators) can hold a hint."""
        counts = self.counts
        if counts is None:
            return True
        first: int = node.lineno  # type: ignore[attr-defined]
        decorators = getattr(node, "decorator_list", None)
        if decorators:
            first = min(first, decorators[0].lineno)
        last: int = node.end_lineno or first  # type: ignore[attr-defined]
        if last >= len(counts):
            last = len(counts) - 1
        return counts[last] - counts[first - 1] > 0

    # -- the traversal of an expression, for hints alone ----------------------

    def expression(self, root: ast.expr, function: WalkedFunction, context: Context) -> bool:
        """Record the hints of an expression, in source order; whether it
        holds the `yield` of an async context manager."""
        if not self.interesting(root):
            return False
        yielded = False
        stack: list[ast.AST] = [root]
        while stack:
            node = stack.pop()
            if isinstance(node, ast.Await):
                self.awaited(node, function, context)
            elif isinstance(node, ast.Call):
                self.call(node, function, context)
            elif isinstance(node, (ast.Yield, ast.YieldFrom)):
                yielded = self.yielded(node, function, context) or yielded
            elif isinstance(node, ast.comprehension) and node.is_async:
                self.async_comprehension(node, function, context)
            stack.extend(reversed(child_nodes(node, BARREN, skip_chains=True)))  # in source order
        return yielded

    # -- one hook per construct ------------------------------------------------

    def note_awaited(self, call: ast.Call) -> None:
        """An awaited call is a checkpoint, not a look-alike (for a post-order walk,
        which meets the call before its `await`)."""
        self._awaited.add(id(call))

    def awaited(self, node: ast.Await, function: WalkedFunction, context: Context) -> None:
        value = node.value
        bounded_call = False
        if isinstance(value, ast.Call):
            self._awaited.add(id(value))
            if last_name(self.table.resolve(value.func)) in BOUNDED_CALLS:
                timeout = value.args[1] if len(value.args) > 1 else None
                for keyword in value.keywords:
                    if keyword.arg == "timeout":
                        timeout = keyword.value
                bounded_call = timeout is not None and not is_unbounded_constant(timeout)
        self._add(
            HintKind.AWAIT,
            node,
            (node.lineno, node.col_offset, len("await")),
            function,
            context,
            self._code(value),
            bounded_call=bounded_call,
        )

    def call(self, node: ast.Call, function: WalkedFunction, context: Context) -> None:
        """A call that is not awaited may be a look-alike: `.set()`, `.release()`, a spawn."""
        if id(node) in self._awaited:
            return
        func = node.func
        if isinstance(func, ast.Attribute):
            method = func.attr
            if method in ("set", "release") and not node.args and not node.keywords:
                kind = HintKind.EVENT_SET if method == "set" else HintKind.LOCK_RELEASE
            elif method in SPAWN_METHODS or self.table.resolve(func) in SPAWN_FUNCTIONS:
                kind = HintKind.SPAWN
            else:
                return
            keyword = (func.end_lineno or func.lineno, _attribute_column(func), len(method))
            self._add(kind, node, keyword, function, context, self._code(node))
        elif isinstance(func, ast.Name) and self.table.resolve(func) in SPAWN_FUNCTIONS:
            keyword = (func.lineno, func.col_offset, len(func.id))
            self._add(HintKind.SPAWN, node, keyword, function, context, self._code(node))

    def yielded(
        self, node: ast.Yield | ast.YieldFrom, function: WalkedFunction, context: Context
    ) -> bool:
        """A `yield`: the caller's body runs there when the function is an acm."""
        if not function.is_acm:
            return False
        keyword = (node.lineno, node.col_offset, len("yield"))
        self._add(HintKind.ACM_YIELD, node, keyword, function, context, self._code(node))
        return True

    def async_for(self, node: ast.AsyncFor, function: WalkedFunction, context: Context) -> None:
        keyword = (node.lineno, node.col_offset, len("async for"))
        self._add(HintKind.ASYNC_FOR, node.iter, keyword, function, context, self._code(node.iter))

    def async_with_item(
        self,
        node: ast.AsyncWith,
        index: int,
        effect: ScopeEffect,
        function: WalkedFunction,
        context: Context,
    ) -> None:
        item = node.items[index]
        anchor = item.optional_vars if item.optional_vars is not None else item.context_expr
        if index == 0:
            keyword = (node.lineno, node.col_offset, len("async with"))
        else:
            keyword = (item.context_expr.lineno, item.context_expr.col_offset, 0)
        self._add(
            HintKind.ASYNC_WITH,
            anchor,
            keyword,
            function,
            context,
            self._code(item.context_expr),
            waits_for_children=effect.waits_for_children,
            releases_on_exit=is_lock_name(item.context_expr),
        )

    def async_comprehension(
        self, node: ast.comprehension, function: WalkedFunction, context: Context
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
        keyword = (keyword_line, keyword_column, len("async for"))
        self._add(HintKind.ASYNC_FOR, node.iter, keyword, function, context, self._code(node.iter))

    # -- helpers ---------------------------------------------------------------

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
        keyword: tuple[int, int, int],  # 1-based line, byte column, length
        function: WalkedFunction,
        context: Context,
        code: str,
        *,
        waits_for_children: bool = False,
        bounded_call: bool = False,
        releases_on_exit: bool = False,
    ) -> None:
        keyword_line, keyword_column, keyword_length = keyword
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


def _attribute_column(node: ast.Attribute) -> int:
    """Byte column of the attribute name in `obj.name` (its end minus its length)."""
    end: int = node.end_col_offset or 0
    return max(end - len(node.attr.encode("utf-8")), 0)
