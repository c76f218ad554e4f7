"""CONC111 no-guaranteed-checkpoint

## What it does
*Opt-in* (pedantic for most code bases, like flake8-async's ASYNC910): turn
it on with `extend-select = ["CONC111"]`.

Flags two things that can run from start to end without a checkpoint:

- an `async def` in a trio or anyio module with a path from its start to a
  normal return (a `return`, or the end of its body) that passes no
  checkpoint;
- a `while True:` loop in an async function, of any library, whose body
  holds a checkpoint but can finish an iteration (its end, or `continue`)
  without one.

Awaits count by what their callee does, when conc-lsp could follow it
(with jedi, in the background in the editor, and in `conc-lsp check`): an
`await helper()` whose `helper` never checkpoints does not count, nor does
an asyncio fast path (`await lock.acquire()` on a free lock). Callees that
could not be followed count as checkpoints. Raising is not a way out that
needs a checkpoint. A `for` may run zero times, unless it loops over a
non-empty literal (`range(10)`, `("a", "b")`). Stubs (a body of `pass`, `...`, a docstring or a
`raise`), abstract methods, overloads, fixtures, async generators and
`@asynccontextmanager` functions are not flagged.

## Why is this bad?
trio and anyio promise that every `await` of one of their async functions
is a checkpoint: callers rely on it to let other tasks run and to notice
cancellation (a loop that awaits such a function is a cancellable loop).
An async function that can return without a checkpoint breaks that
promise on some paths, silently: a loop over it can hog the event loop and
ignore cancellation. A `while True:` loop with a checkpoint-free iteration
spins without letting other tasks run: the task it waits for never gets to
run, and a cancellation is not delivered.

## Example
```python
async def next_message(self):
    if self._buffer:
        return self._buffer.popleft()  # no checkpoint on this path
    return await self._stream.receive()
```

## Use instead
```python
async def next_message(self):
    if self._buffer:
        await trio.lowlevel.checkpoint()
        return self._buffer.popleft()
    return await self._stream.receive()
```

## Fix
Insert the library's explicit checkpoint (`await trio.lowlevel.checkpoint()`,
`await anyio.lowlevel.checkpoint()`, `await asyncio.sleep(0)`) before each
checkpoint-free `return` or `continue` and at the end of the body.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass

from conc_lsp.analysis.control_paths import (
    PathResult,
    PathWalker,
    decorator_name,
    is_generator,
    returns_at,
)
from conc_lsp.analysis.events import FunctionFacts, ModuleFacts
from conc_lsp.analysis.model import Fix, HintKind, Location, Resolution, Severity, Verdict
from conc_lsp.analysis.program import Program
from conc_lsp.analysis.text import utf8_to_codepoint
from conc_lsp.fixes.context import FixContext
from conc_lsp.rules.base import Detection, Evidence, Rule, Words
from conc_lsp.rules.story import Trace, TraceBuilder

CHECKPOINT_LIBRARIES = frozenset({"trio", "anyio"})
EXEMPT_DECORATORS = frozenset(
    {"abstractmethod", "overload", "fixture", "asynccontextmanager", "acm"}
)
WORDS = {
    Verdict.NEVER: "never checkpoints",
    Verdict.SOMETIMES: "checkpoints only on some paths",
    Verdict.MAY_NOT_YIELD: "may return without yielding",
}


class ResolvedEffects:
    """What each checkpoint is worth, from the module's resolutions."""

    def __init__(self, module: ModuleFacts) -> None:
        self.module = module

    def awaited(self, node: ast.Await) -> Verdict:
        return self.module.verdict_of(node, HintKind.AWAIT)

    def entered(self, item: ast.withitem) -> Verdict:
        found = self._with(item)
        return (found.enter or Verdict.UNKNOWN) if found is not None else Verdict.UNKNOWN

    def exited(self, item: ast.withitem) -> Verdict:
        found = self._with(item)
        return (found.exit or Verdict.UNKNOWN) if found is not None else Verdict.UNKNOWN

    def _with(self, item: ast.withitem) -> Resolution | None:
        anchor = item.optional_vars or item.context_expr
        return self.module.resolution_of(anchor, HintKind.ASYNC_WITH)

    def iterated(self, iterable: ast.expr) -> Verdict:
        return self.module.verdict_of(iterable, HintKind.ASYNC_FOR)


@dataclass(frozen=True, slots=True)
class Gap(Evidence):
    """A function or loop that can run without a checkpoint, and its ways out."""

    node: ast.AsyncFunctionDef | ast.While
    escapes: tuple[int, ...]  # 0-based lines: returns, continues, the end of a body
    result: PathResult | None  # for a function


def gaps(module: ModuleFacts, function: FunctionFacts) -> Iterator[Gap]:
    """The checkpoint-free function and loops of ``function``."""
    node = function.node
    if not isinstance(node, ast.AsyncFunctionDef) or _exempt(node):
        return
    effects = ResolvedEffects(module)
    if module.libraries & CHECKPOINT_LIBRARIES:
        result = PathWalker(effects).function(node)
        if result.all_escapes:
            yield Gap(node, tuple(result.all_escapes), result)
    for loop in _own_loops(node):
        if not (isinstance(loop.test, ast.Constant) and loop.test.value is True):
            continue
        probe = PathWalker(effects)
        lines = probe.loop_iteration(loop)
        if lines and probe.result.possible:
            yield Gap(loop, tuple(sorted(set(lines))), None)


def _check(rule: Rule, module: ModuleFacts) -> Iterator[Detection]:
    for function in module.functions:
        for gap in gaps(module, function):
            yield _detection(rule, module, function, gap)


def _detection(rule: Rule, module: ModuleFacts, function: FunctionFacts, gap: Gap) -> Detection:
    node = gap.node
    lines = ", ".join(f"L{line + 1}" for line in gap.escapes[:4])
    related: list[tuple[Location, str]] = []
    if isinstance(node, ast.AsyncFunctionDef):
        location = _name_location(module, node)
        result = gap.result
        never = result is not None and not result.possible
        end = (node.end_lineno or node.lineno) - 1
        for line in gap.escapes:
            ends_body = line == end and not returns_at(node, line)
            words = "the end of the body" if ends_body else "returns"
            related.append((_line_location(module, line), f"{words}: no checkpoint on the way"))
        weak = result.weak if result is not None else []
        for item in weak[:3]:
            found = module.resolution_of(item.node, HintKind.AWAIT)
            if found is not None and item.verdict in WORDS:
                reason = f": {found.reason}" if found.reason else ""
                related.append(
                    (
                        _line_location(module, item.line),
                        f"`{found.callee}` {WORDS[item.verdict]}{reason}",
                    )
                )
        if node.name in ("__aenter__", "__aexit__"):
            side = "entering" if node.name == "__aenter__" else "leaving"
            how = "never checkpoints" if never else f"can return without a checkpoint ({lines})"
            message = (
                f"`{node.name}` {how}: {side} an `async with` on this class "
                "may let no other task run and not notice cancellation"
            )
        elif never:
            message = (
                f"`{node.name}` never checkpoints: `await {node.name}(...)` lets no other task "
                "run and cannot be cancelled"
            )
        else:
            message = (
                f"`{node.name}` can return without a checkpoint ({lines}): callers cannot "
                f"rely on `await {node.name}(...)` to checkpoint"
            )
    else:
        location = _line_location(module, node.lineno - 1, length=len("while"))
        for line in gap.escapes:
            related.append((_line_location(module, line), "an iteration ends here without one"))
        message = (
            f"this `while True:` loop can run an iteration without a checkpoint ({lines}): "
            "it can starve other tasks and ignore cancellation"
        )
    return rule.detect(function, location, message, gap, related)


def _exempt(node: ast.AsyncFunctionDef) -> bool:
    if any(decorator_name(decorator) in EXEMPT_DECORATORS for decorator in node.decorator_list):
        return True
    body = list(node.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    if all(
        isinstance(statement, (ast.Pass, ast.Raise))
        or (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant))
        for statement in body
    ):
        return True  # a stub
    return is_generator(node)


def _own_loops(node: ast.AsyncFunctionDef) -> Iterator[ast.While]:
    stack: list[ast.AST] = list(node.body)
    while stack:
        child = stack.pop()
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(child, ast.While):
            yield child
        stack.extend(ast.iter_child_nodes(child))


def _name_location(module: ModuleFacts, node: ast.AsyncFunctionDef) -> Location:
    line = node.lineno - 1
    text = module.lines[line] if line < len(module.lines) else ""
    start = text.find(node.name, utf8_to_codepoint(text, node.col_offset))
    if start < 0:
        start = utf8_to_codepoint(text, node.col_offset)
    return Location(line, start, line, start + len(node.name))


def _line_location(module: ModuleFacts, line: int, length: int | None = None) -> Location:
    text = module.lines[line] if line < len(module.lines) else ""
    start = len(text) - len(text.lstrip())
    end = start + length if length is not None else len(text.rstrip())
    return Location(line, start, line, max(end, start))


def _trace(b: TraceBuilder, function: FunctionFacts, gap: Gap) -> Trace:
    node = gap.node
    first_escape = gap.escapes[0] if gap.escapes else None
    if isinstance(node, ast.While):
        b.add("Task A", node.lineno - 1, "starts an iteration of the loop", "enter")
        b.add("Task A", first_escape, "ends the iteration without a checkpoint", "escape")
        b.add("Task A", node.lineno - 1, "starts the next one: still no checkpoint", "again")
        b.add("Task B", None, "never gets the CPU; a cancellation of Task A is never delivered")
        return b.build(
            [f"Task A runs the loop in `{function.qualname}`; Task B is any other task."],
            (b.roles["enter"], b.roles["again"]),
            "the loop runs on without ever letting another task in",
        )
    b.add("Task A", None, f"calls `await {node.name}(...)`, counting on a checkpoint", "call")
    b.add("Task A", first_escape, f"`{node.name}` returns here without one", "escape")
    b.add("Task B", None, "does not run, and a pending cancellation of Task A is not noticed")
    return b.build(
        [f"Task A calls `{function.qualname}`; Task B is any other task."],
        (b.roles["call"], b.roles["escape"]),
        f"`await {node.name}(...)` returns without letting another task run",
    )


class NoGuaranteedCheckpoint(Rule):
    code = "CONC111"
    name = "no-guaranteed-checkpoint"
    severity = Severity.INFORMATION
    opt_in = True
    opt_in_reason = (
        "pedantic by design, like flake8-async's ASYNC910 (round 3: 0 true, 16 deliberate, "
        "4 wrong; round 4: 0 / 15 / 0)"
    )
    uses_resolution = True
    category = "missing checkpoint"
    explanation = (
        "an `await` that callers expect to checkpoint can return without one: no other task "
        "runs and a cancellation is not noticed there."
    )
    effort = "simple"
    sketch_title = "Add a checkpoint on every way out"
    brief = (
        "an `async def` (trio / anyio) that can return without a checkpoint, or a `while True:` "
        "loop that can spin without one, counting each await by what its callee [really "
        "does](#does-this-await-really-checkpoint)"
    )
    fixes_offered = (
        (
            "insert `await trio.lowlevel.checkpoint()` / `anyio.lowlevel.checkpoint()` / "
            "`asyncio.sleep(0)` before each way out that has none",
            "unsafe",
        ),
    )
    rank = 11

    def check(self, module: ModuleFacts) -> Iterator[Detection]:
        return _check(self, module)

    def fix(self, detection: Detection, module: ModuleFacts, context: FixContext) -> Fix | None:
        from conc_lsp.fixes import cleanup  # libcst loads only when fixing (start-up cost)

        gap = detection.evidence
        if not isinstance(gap, Gap):
            return None
        return cleanup.insert_checkpoints(detection.finding, module, context, gap.node, gap.escapes)

    def trace(
        self, program: Program, b: TraceBuilder, function: FunctionFacts, detection: Detection
    ) -> Trace | None:
        if isinstance(detection.evidence, Gap):
            return _trace(b, function, detection.evidence)
        return None

    def words(self, evidence: Evidence, trace: Trace) -> Words:
        s = trace.steps_text
        return Words(
            f"A checkpoint before {s('escape')} lets other tasks run and delivers a pending "
            "cancellation on every way out.",
            "One more scheduling point per call or iteration (a few microseconds).",
            "Code that relied on running without a switch (an atomic update across the call) "
            "now has a checkpoint in it: check the callers.",
        )


RULE = NoGuaranteedCheckpoint()
