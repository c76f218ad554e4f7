"""CONC101 unbounded-wait-in-cleanup

## What it does
Flags an awaited wait (`Event.wait()`, `Condition.wait()`, `Process.wait()`,
a channel's `receive()`, `Lock.acquire()`, `join()`, `sleep_forever()`, and
any `wait*`, `*_wait` or `wait_for_*` call) on a cleanup path (`finally`, an
`except` handler, the teardown of an async context manager, `__aexit__`,
`aclose`) that is not inside a bounded scope (`move_on_after`, `fail_after`,
`asyncio.timeout`, a `CancelScope` with a deadline).

`asyncio.wait_for(w, timeout)` bounds `w` unless the timeout is `None` or
infinite; `asyncio.shield(w)` bounds nothing; `asyncio.wait(tasks)` is a wait
unless given a `timeout`.

## Why is this bad?
Teardown that waits for another task's progress is a latent deadlock: if the
setter never fires (the peer is stuck, the child never exits, the task that
would set the event is itself waiting for this teardown) the whole
cancellation cascade hangs. tractor's `async_main` hung this way on
`ipc_server.wait_for_no_more_peers()` in a `finally`. A shield alone makes it
worse: nothing can end the wait then.

Not flagged, because the wait provably ends or is not teardown:
- `proc.kill()` (or `terminate`, `send_signal`, `close`, `aclose`,
  `cancel`) on the same object, earlier on the same path, before
  `await proc.wait()`;
- `await lock.acquire()` after the function's own `lock.release()`
  (`Condition.wait` taking its lock back for the caller);
- a wait in the handler of a "not ready / not there" exception (`WouldBlock`,
  `BlockingIOError`, `KeyError`, `StopAsyncIteration`,
  `ssl.SSLWantReadError`, `asyncio.QueueEmpty`...) that does not re-raise
  it: the slow path of the operation, not cleanup. Such a handler inside a
  `finally` is still cleanup.

When the matching `.set()` sits in a `finally` of the setter, the finding is
only informational, because the setter is guaranteed to run once it starts;
a `.set()` that this very function reaches only after the wait does not
count.

Limits: bounds come from the flow facts, which count `move_on_after(math.inf)`
as bounded and keep an outer bound inside a nested shield (which blocks it).

## Example
```python
try:
    await serve(ipc_server)
finally:
    await ipc_server.wait_for_no_more_peers()
```

## Use instead
```python
try:
    await serve(ipc_server)
finally:
    with trio.move_on_after(3, shield=True) as cs:
        await ipc_server.wait_for_no_more_peers()
    if cs.cancelled_caught:
        log.warning("peers still connected after 3s; tearing down anyway")
```

## Fix
Wrap the wait in a bounded (and, on a cancellable cleanup path, shielded)
scope. Safe: only the unbounded wait changes.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass

from conc_lsp.analysis.cleanup import FunctionTree, where_in_cleanup
from conc_lsp.analysis.events import (
    Event,
    EventKind,
    FunctionFacts,
    ModuleFacts,
)
from conc_lsp.analysis.model import Fix, Severity, Verdict
from conc_lsp.analysis.program import INITIALISERS, Program
from conc_lsp.analysis.waits import (
    guaranteed_setter,
    setters_in_finally,
    waiting_call,
)
from conc_lsp.fixes.context import FixContext
from conc_lsp.rules.base import (
    Detection,
    Evidence,
    Rule,
    Words,
    checkpoint_verdict,
    describe,
)
from conc_lsp.rules.story import Trace, TraceBuilder

# Exceptions that mean "not ready yet" / "not there": their handler is the slow
# path of the operation (wait until writable, wait for the filler), not cleanup.
FLOW_EXCEPTIONS = frozenset(
    {
        "WouldBlock",
        "BlockingIOError",
        "InterruptedError",
        "KeyError",
        "IndexError",
        "LookupError",
        "StopIteration",
        "StopAsyncIteration",
        "SSLWantReadError",
        "SSLWantWriteError",
        "WantReadError",
        "WantWriteError",
        "QueueEmpty",
        "QueueFull",
    }
)


@dataclass(frozen=True, slots=True)
class UnboundedWait(Evidence):
    """A wait on a cleanup path with no timeout (and the `.set()` in a `finally`
    that ends it, when there is one: then the finding is information only)."""

    checkpoint: Event
    call: Event
    setter: Event | None = None


def _check(rule: Rule, module: ModuleFacts) -> Iterator[Detection]:
    setters = setters_in_finally(module)
    for function in module.functions:
        handlers: dict[int, list[ast.ExceptHandler]] | None = None
        tree: FunctionTree | None = None
        for checkpoint in function.checkpoints:
            context = checkpoint.context
            if not context.on_cleanup_path or context.bounded or checkpoint.exit:
                continue
            call = waiting_call(module, function, checkpoint)
            if call is None:
                continue
            if checkpoint_verdict(module, function, checkpoint) is Verdict.NEVER:
                continue  # resolved: the callee never yields, so it cannot wait
            if tree is None:
                tree = FunctionTree(function.node)
            if module.level_triggered(function) and tree.cancellation_handled(checkpoint.node):
                continue  # `try: await proc.wait()` / `except BaseException: kill(); ...`
            if not (context.in_finally or context.acm_teardown or context.in_aexit):
                if handlers is None:
                    handlers = _enclosing_handlers(function.node)
                enclosing = handlers.get(id(checkpoint.node), [])
                if enclosing and all(_is_flow_handler(handler) for handler in enclosing):
                    continue
                if enclosing and tree.is_loop_control(enclosing[-1]):
                    continue  # the slow path of a loop, not unwinding
            where = where_in_cleanup(context)
            waited = describe(call, "the wait")
            setter = guaranteed_setter(setters, function, call)
            if setter is not None:
                setter_function, setter_event = setter
                line = setter_event.location.line + 1
                yield rule.detect(
                    function,
                    checkpoint.location,
                    f"`await {waited}` in {where} has no timeout; it ends because its "
                    f"`.set()` runs in a `finally` (line {line})",
                    UnboundedWait(checkpoint, call, setter_event),
                    [
                        (
                            setter_event.location,
                            f"the matching `.set()` in a finally of `{setter_function.qualname}`",
                        )
                    ],
                    severity=Severity.INFORMATION,
                )
                continue
            yield rule.detect(
                function,
                checkpoint.location,
                f"unbounded `await {waited}` in {where}: if it never completes, "
                f"teardown hangs; bound it with a timeout (e.g. `{_bound_for(module, function)}`)",
                UnboundedWait(checkpoint, call),
            )


def _bound_for(module: ModuleFacts, function: FunctionFacts) -> str:
    """The timeout to suggest, in the library the function runs under."""
    library = module.library_of(function)
    if library in ("trio", "anyio"):
        return f"{library}.move_on_after"
    return "asyncio.timeout" if library == "asyncio" else "a timeout scope"


def _is_flow_handler(handler: ast.ExceptHandler) -> bool:
    """`except WouldBlock:` / `except KeyError:` that does not re-raise: the slow path
    of the operation, not unwinding."""
    if handler.type is None:
        return False
    types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    names = [
        node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "") for node in types
    ]
    return all(name in FLOW_EXCEPTIONS for name in names) and not _reraises(handler)


def _reraises(handler: ast.ExceptHandler) -> bool:
    """A bare `raise` of the handler itself (not of a handler or function inside it)."""
    stack: list[ast.AST] = list(handler.body)
    while stack:
        node = stack.pop()
        if isinstance(
            node,
            (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef, ast.ExceptHandler),
        ):
            continue
        if isinstance(node, ast.Raise) and node.exc is None:
            return True
        stack.extend(ast.iter_child_nodes(node))
    return False


def _enclosing_handlers(root: ast.AST) -> dict[int, list[ast.ExceptHandler]]:
    """For each `await` of a function, the except handlers around it (innermost last)."""
    found: dict[int, list[ast.ExceptHandler]] = {}
    stack: list[tuple[ast.AST, tuple[ast.ExceptHandler, ...]]] = [
        (child, ()) for child in ast.iter_child_nodes(root)
    ]
    while stack:
        node, around = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        if isinstance(node, ast.Await):
            found[id(node)] = list(around)
        inner = (*around, node) if isinstance(node, ast.ExceptHandler) else around
        stack.extend((child, inner) for child in ast.iter_child_nodes(node))
    return found


def _trace(
    module: Program, b: TraceBuilder, function: FunctionFacts, evidence: UnboundedWait
) -> Trace | None:
    checkpoint = evidence.checkpoint
    where = "`finally`" if checkpoint.context.in_finally else "cleanup"
    b.add("Task A", None, f"is cancelled, or its body ends → the {where} runs", "enter")
    b.add("Task A", checkpoint.location.line, "waits, with no timeout", "wait")
    setters = _setters_for(module, function, checkpoint)
    if setters:
        owner, event = setters[0]
        b.add(
            "Task B",
            event.location.line,
            f"would set `{event.receiver}` in `{owner.qualname}`, but is stuck, failed or was "
            "cancelled first",
            "setter",
        )
        tasks = [f"Task A runs `{function.qualname}`; Task B runs `{owner.qualname}`."]
    else:
        b.add("Task B", None, "the task Task A waits for never gets there", "setter")
        tasks = [f"Task A runs `{function.qualname}`; Task B is the task it waits for."]
    b.add("Task A", checkpoint.location.line, "still waiting: the teardown hangs", "hang")
    return b.build(tasks, (b.roles["wait"], b.roles["hang"]), "the wait has no bound")


def _setters_for(
    module: Program, function: FunctionFacts, checkpoint: Event
) -> list[tuple[FunctionFacts, Event]]:
    """The `.set()` calls that would end an awaited wait, also through a method
    (`await actor.wait_for_no_more_peers()` waits on `no_more_peers`)."""
    call = function.events[checkpoint.order - 1] if checkpoint.order else None
    if call is None or call.kind is not EventKind.CALL:
        return []
    names: set[str] = set()
    if call.method == "wait" and call.receiver:
        names.add(call.receiver.rsplit(".", 1)[-1])
    else:
        text = f"{call.receiver}.{call.method}" if call.receiver else (call.method or "")
        inner = module.resolve(function, text)
        if inner is not None:
            names |= {
                (e.receiver or "").rsplit(".", 1)[-1]
                for e in inner.events
                if e.kind is EventKind.CALL and e.method == "wait" and e.receiver
            }
    found = []
    for other in module.functions:
        for event in other.events:
            if (
                event.kind is EventKind.CALL
                and event.method == "set"
                and event.receiver
                and event.receiver.rsplit(".", 1)[-1] in names
                and other.name not in INITIALISERS
            ):
                found.append((other, event))
    return found


class UnboundedWaitInCleanup(Rule):
    code = "CONC101"
    name = "unbounded-wait-in-cleanup"
    opt_in = True
    opt_in_reason = (
        "precision on unseen real code 0.14 (round 3: 1 true, 9 deliberate, 6 wrong); "
        "round 4: 0 true, 4 deliberate, 0 wrong"
    )
    category = "deadlock"
    explanation = "an unbounded wait in cleanup: if the setter never fires, the teardown hangs."
    effort = "simple"
    sketch_title = "Bound the wait (and shield it on a cancellable cleanup path)"
    brief = (
        "`await ev.wait()` (and other waits) in `finally` / `except` / acm teardown / `__aexit__` "
        "with no timeout"
    )
    fixes_offered = (
        (
            (
                "wrap the wait in `with trio.move_on_after(T, shield=True) as cs:` + `if "
                "cs.cancelled_caught:` (anyio likewise; asyncio: `async with asyncio.timeout(T)` "
                "in `try/except TimeoutError`), logging with the module's logger if it has one"
            ),
            "safe",
        ),
    )
    rank = 6

    def check(self, module: ModuleFacts) -> Iterator[Detection]:
        return _check(self, module)

    def fix(self, detection: Detection, module: ModuleFacts, context: FixContext) -> Fix | None:
        from conc_lsp.fixes import cleanup  # libcst loads only when fixing (start-up cost)

        return cleanup.bound_wait(detection.finding, module, context)

    def trace(
        self, program: Program, b: TraceBuilder, function: FunctionFacts, detection: Detection
    ) -> Trace | None:
        if isinstance(detection.evidence, UnboundedWait):
            return _trace(program, b, function, detection.evidence)
        return None

    def words(self, evidence: Evidence, trace: Trace) -> Words:
        s = trace.steps_text
        return Words(
            f'The wait of {s("wait")} gets a deadline: {s("hang")} becomes "gives up after T '
            'seconds" and the teardown goes on.',
            "Teardown can finish with the other side still running (log it); T must be longer "
            "than a normal teardown.",
            "Shielding without the bound would make the hang worse: keep both.",
        )


RULE = UnboundedWaitInCleanup()
