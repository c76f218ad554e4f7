"""CONC302 set-not-guaranteed

## What it does
Flags `await event.wait()` when every `event.set()` of the module for that
event (paired by the event's last name: `self._done`, `ctx_exit.done`, a
`done` unpacked from a tuple) can be skipped by an error, a cancellation or
a hang in the setter:

- it comes after a checkpoint of its function, or after an acm `yield`,
  and is neither in a `finally` nor in a bare / `except BaseException`
  handler;
- it is in such a block, but after a checkpoint of that same block that is
  not both shielded and bounded (the block's own `await` can be cancelled,
  or hang, before the set);
- it runs before its function's first checkpoint, but that function is a
  private helper called (by name) only where it can be skipped:
  `self._mark_done()` at the end of a happy path is as fragile as a set
  written there, one called from a `finally` is as safe. Public functions
  and callbacks may be called from anywhere and count as safe; a nested
  function is called only where it is in scope; an async helper whose call
  is handed to another call (`post(data=body())`, `create_task(work())`)
  runs where that call runs it, not at the call (`await wait_for(work(), 5)`
  runs it here).

A set in `__init__` is the event's initial state (often replaced by a fresh
event later) and is not a setter.

Not flagged: bounded waits (`move_on_after`, `fail_after`, `asyncio.timeout`,
`wait_for`, `CancelScope(deadline=...)`); waits whose setter runs in the
same nursery / task group (a child task, or the nursery body), because an
error there cancels the wait; a wait inside an (async generator) context
manager whose setter sits in the body of `async with that_cm():`, because an
error in the body exits the manager; events no `.set()` of this module
matches.

It is a warning on a cleanup path (`finally`, `except`, acm teardown,
`__aexit__`, `aclose`), where the wait blocks teardown, and informational
elsewhere.

## Why is this bad?
One exception (or cancellation) in the setter's task between its start and
its `.set()` and the waiter hangs forever. Waiting in cleanup on such an
event turns any error in another task into a deadlock of the whole teardown.

## Example
```python
async def worker(self):
    await self.run_jobs()
    self.done.set()

async def aclose(self):
    await self.done.wait()
```

## Use instead
```python
async def worker(self):
    try:
        await self.run_jobs()
    finally:
        self.done.set()
```

## Fix
Move `.set()` into a `finally` of the setter (mechanical when the setter's
body can be wrapped). Safe.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass

from conc_lsp.analysis.events import (
    Event,
    EventKind,
    FunctionFacts,
    ModuleFacts,
    event_name,
    exclusive,
)
from conc_lsp.analysis.handoffs import Handoff, handoffs
from conc_lsp.analysis.libraries import last_name
from conc_lsp.analysis.model import Fix, Severity, Shield
from conc_lsp.analysis.program import Program
from conc_lsp.analysis.reach import awaited_call, function_parents
from conc_lsp.analysis.task_blocks import TaskBlock, around, by_waiter, dotted, task_blocks
from conc_lsp.fixes.context import FixContext
from conc_lsp.rules.base import Detection, Evidence, Rule, Words, checkpoint_words
from conc_lsp.rules.story import (
    ProposedFix,
    Trace,
    TraceBuilder,
    checkpoint_step,
    ref,
    strip_comment,
)

SPAWNERS = frozenset({"start_soon", "start", "create_task"})
CATCH_ALL = frozenset({"", "BaseException", "builtins.BaseException"})
MAX_CALLER_DEPTH = 4
INITIALISERS = frozenset({"__init__", "__post_init__"})


@dataclass(frozen=True, slots=True)
class Risk:
    """Why a `.set()` can be skipped."""

    text: str
    # It is in a `finally` (or a catch-all handler), but after a checkpoint of the
    # same block that can raise or hang: shielding that checkpoint is the fix.
    after_cleanup_checkpoint: bool = False


@dataclass(frozen=True, slots=True)
class _Setter:
    function: FunctionFacts
    event: Event
    risk: Risk | None  # why it can be skipped; None when it cannot
    handoff: Handoff | None = None  # reached through an argument of a call


@dataclass(frozen=True, slots=True)
class LostWakeup(Evidence):
    """A wait whose setters can all be skipped by an error or a cancellation."""

    wait: Event  # the checkpoint of `await ev.wait()`
    setters: tuple[_Setter, ...]


def _callers(module: ModuleFacts, function: FunctionFacts) -> list[tuple[FunctionFacts, Event]]:
    """Direct calls of ``function`` by name: `helper()`, `self.helper()`, `Cls.helper()`.

    A nested function is called by name only in the function it is nested in
    (and the functions nested there): another function's `helper()` is another
    helper. The call of an async helper handed on as an argument
    (`post(data=body())`) runs nothing where it is written: whoever receives
    the coroutine or generator runs it, as a task or a callback does.
    """
    found = []
    receivers = {None, "self", "cls", function.class_name}
    home = function.qualname.rpartition(".<locals>.")[0]
    for caller, event in module.calls(function.name):
        if event.receiver not in receivers or caller is function:
            continue
        if home and caller.qualname != home and not caller.qualname.startswith(home + ".<locals>."):
            continue
        if function.is_async and _handed_on(caller, event):
            continue
        found.append((caller, event))
    return found


def _handed_on(caller: FunctionFacts, call: Event) -> bool:
    """`f(helper())`, `f(x=helper())`: the call's result is the argument of
    another call that is not awaited here (`await wait_for(helper(), 5)` and
    `await gather(helper())` run it in this flow)."""
    parents = function_parents(caller)
    parent = parents.get(call.node)
    if parent is not None and isinstance(parent[0], ast.keyword):
        parent = parents.get(parent[0])
    if parent is None or not isinstance(parent[0], ast.Call) or parent[1] == "func":
        return False
    outer = parents.get(parent[0])
    return outer is None or not isinstance(outer[0], ast.Await)


def _public(function: FunctionFacts) -> bool:
    """A public function or method: callers outside this module count too."""
    if "<locals>" in function.qualname:
        return False
    name = function.name
    return not name.startswith("_") or (name.startswith("__") and name.endswith("__"))


def _risk(
    module: ModuleFacts, function: FunctionFacts, event: Event, seen: frozenset[str] = frozenset()
) -> Risk | None:
    """Why an error, a cancellation or a hang can skip ``event`` (a `.set()`, or a
    call of the function holding one) once its task started; None when nothing can.

    - in a `finally`, or in a bare / `except BaseException` handler: runs on error,
      unless an earlier checkpoint of the same block can raise or hang (anything
      but a shielded, bounded one);
    - after an acm `yield` without `finally`: skipped when the caller's body raises;
    - after a checkpoint of its own function: skipped when that checkpoint raises;
    - otherwise (before the function's first checkpoint) it depends on how the
      function runs: a public function, a task or a callback nobody here calls
      runs it for sure; a private helper called by name is as safe as its best
      call site.
    """
    context = event.context
    catch_all = context.in_except is not None and context.in_except.lstrip("*") in CATCH_ALL
    if context.in_finally or catch_all:
        where = "in a `finally`" if context.in_finally else "in an `except BaseException`"
        for checkpoint in function.checkpoints_in(event.cleanup_block):
            if checkpoint.order >= event.order:
                break
            if (
                checkpoint.cleanup_block == event.cleanup_block
                and not exclusive(checkpoint, event)
                and not (checkpoint.context.shielded is Shield.YES and checkpoint.context.bounded)
            ):
                return Risk(
                    f"{where}, but after {checkpoint_words(checkpoint)}, which can be "
                    "cancelled or hang",
                    after_cleanup_checkpoint=True,
                )
        return None
    if context.acm_teardown:
        return Risk("after the acm `yield`, not in a `finally`")
    for checkpoint in function.checkpoints:
        if checkpoint.order >= event.order:
            break
        if not exclusive(checkpoint, event):
            return Risk(f"after {checkpoint_words(checkpoint)}, not in a `finally`")
    if function.qualname in seen or len(seen) >= MAX_CALLER_DEPTH or _public(function):
        return None
    callers = _callers(module, function)
    if not callers:
        return None
    inner = seen | {function.qualname}
    reasons = []
    for caller, call in callers:
        reason = _risk(module, caller, call, inner)
        if reason is None:
            return None
        text = f"`{function.name}()` is called in `{caller.qualname}` {reason.text}"
        reasons.append(Risk(text, reason.after_cleanup_checkpoint))
    return reasons[0]


def _check(rule: Rule, module: ModuleFacts) -> Iterator[Detection]:
    setters: dict[str, list[_Setter]] = {}
    for function, event in module.calls("set"):
        if event.arguments or event.awaited or not event.receiver:
            continue
        if function.name in INITIALISERS:
            continue  # the initial state of a level-triggered event, often replaced later
        setters.setdefault(event_name(event.receiver), []).append(
            _Setter(function, event, _risk(module, function, event))
        )
    nurseries: dict[tuple[str, str], list[TaskBlock]] | None = None
    for function in module.functions:
        for checkpoint in function.checkpoints:
            call = awaited_call(function, checkpoint)
            if call is None or call.method != "wait" or not call.receiver:
                continue
            if checkpoint.context.bounded:
                continue
            found = _same_event(module, function, call, setters)
            if not found or any(setter.risk is None for setter in found):
                continue
            if any(
                setter.handoff.supervised
                if setter.handoff is not None
                else _supervised(module, function, setter)
                for setter in found
            ):
                continue  # the setter's error reaches the waiter (its nursery, gather)
            if nurseries is None:
                nurseries = by_waiter(task_blocks(module, SPAWNERS))
            if any(
                nursery.cancels_wait(function, checkpoint, setter.function, setter.event)
                for nursery in around(nurseries, function)
                for setter in found
            ):
                continue  # an error in the setter cancels this wait
            cleanup = checkpoint.context.on_cleanup_path
            first = found[0]
            yield rule.detect(
                function,
                checkpoint.location,
                f"`{call.receiver}.wait()` relies on `.set()` in `{first.function.qualname}` "
                f"(line {first.event.location.line + 1}{_handed(call.receiver, first)}), "
                f"{_why(first)}: an error or "
                "cancellation there leaves this wait hanging"
                + (" and blocks teardown" if cleanup else ""),
                LostWakeup(checkpoint, tuple(found)),
                [
                    (setter.event.location, f"setter in {setter.function.qualname}: {_why(setter)}")
                    for setter in found
                ],
                severity=None if cleanup else Severity.INFORMATION,
            )


def _same_event(
    module: ModuleFacts, waiter: FunctionFacts, call: Event, setters: dict[str, list[_Setter]]
) -> list[_Setter]:
    """The setters of the very event waited for. A local event (`done = Event()`,
    a parameter) is set only where it is in scope: the waiter and the functions
    nested in it, and the functions it is handed to as an argument
    (`start_soon(worker, done)` binds it to `worker`'s parameter); another
    function's local of the same name is another event."""
    receiver = call.receiver or ""
    candidates = setters.get(event_name(receiver), [])
    if "." in receiver or receiver in module.state_globals:
        return candidates
    home = waiter.qualname.split(".<locals>.", 1)[0]
    owner = module.function(home)
    if owner is None or receiver not in _created_events(owner):
        return candidates  # a parameter, or unpacked from shared state: may be shared
    found = [
        setter
        for setter in candidates
        if setter.function.qualname == home
        or setter.function.qualname.startswith(home + ".<locals>.")
    ]
    for handoff in handoffs(module, owner, receiver, SPAWNERS):
        found.extend(
            _Setter(setter.function, setter.event, setter.risk, handoff)
            for setter in setters.get(handoff.parameter, [])
            if setter.function is handoff.function and setter.event.receiver == handoff.parameter
        )
    return found


def _created_events(function: FunctionFacts) -> set[str]:
    """Names bound by `name = trio.Event()` (or any `...Event()`) in the function:
    fresh events. One walk per function."""
    memo = function.memo.get("conc302-created-events")
    if isinstance(memo, set):
        return memo
    found: set[str] = set()
    for child in ast.walk(function.node):
        if (
            isinstance(child, ast.Assign)
            and isinstance(child.value, ast.Call)
            and last_name(dotted(child.value.func)) == "Event"
        ):
            found.update(target.id for target in child.targets if isinstance(target, ast.Name))
    function.memo["conc302-created-events"] = found
    return found


def _supervised(module: ModuleFacts, waiter: FunctionFacts, setter: _Setter) -> bool:
    """The setter runs as a child whose error reaches the waiter: started into a
    nursery or task group by the waiter's own function (trio, anyio: the error
    cancels the nursery, and the waiter with it), or gathered with it; or the
    setter is a test body, whose failure ends the test."""
    home = waiter.qualname.split(".<locals>.", 1)[0]
    # What follows depends on the waiter's home and the setter's function only.
    memo = module.memo.setdefault("conc302-supervised", {})
    assert isinstance(memo, dict)
    key = (home, id(setter.function))
    if key not in memo:
        memo[key] = _supervised_by(module, home, setter)
    found: bool = memo[key]
    return found


def _supervised_by(module: ModuleFacts, home: str, setter: _Setter) -> bool:
    owner = module.function(home)
    if owner is None:
        return False
    name = setter.function.name
    if name.startswith("test"):
        return True  # a test body: its failure ends the test and everything it started
    for decorator in setter.function.node.decorator_list:
        # `@nursery.start_soon` over a nested `async def`: started into the nursery
        if isinstance(decorator, ast.Attribute) and decorator.attr in ("start_soon", "start"):
            return module.level_triggered(owner)
    # The setter itself, or a function of the same home that calls it.
    starters = {name} | {
        other.name
        for other in module.functions
        if other.qualname.startswith(home + ".<locals>.")
        and any(event.kind is EventKind.CALL and event.method == name for event in other.events)
    }
    for event in owner.events:
        if event.kind is not EventKind.CALL:
            continue
        started = (event.argument or "").split("(", 1)[0].rsplit(".", 1)[-1]
        if started not in starters:
            continue
        if event.method in ("start_soon", "start") and module.level_triggered(owner):
            return True
        if last_name(event.callee or event.method) == "gather":
            return True
    return False


def _handed(name: str | None, setter: _Setter) -> str:
    handoff = setter.handoff
    if handoff is None:
        return ""
    return f", handed `{name}` as `{handoff.parameter}` on line {handoff.line + 1}"


def _why(setter: _Setter) -> str:
    return setter.risk.text if setter.risk is not None else ""


def _trace(
    module: Program, b: TraceBuilder, function: FunctionFacts, evidence: LostWakeup
) -> Trace | None:
    wait = evidence.wait
    setter_function, setter = evidence.setters[0].function, evidence.setters[0].event
    b.add("Task A", wait.location.line, f"waits for `{setter.receiver}`", "wait")
    before = [
        e
        for e in setter_function.events[: setter.order]
        if e.kind is EventKind.CHECKPOINT and not exclusive(e, setter)
    ]
    setter_name = module.display(setter_function.qualname)
    if before:
        b.add(
            "Task B",
            before[-1].location.line,
            f"{checkpoint_step(module, before[-1])}: raises (an error, or "
            "`Cancelled` when its scope is cancelled)",
            "raise",
        )
    else:
        b.add("Task B", None, f"`{setter_name}` fails or is cancelled before its `.set()`", "raise")
    b.add("Task B", setter.location.line, "is skipped", "skip")
    b.add("Task A", wait.location.line, "waits forever", "hang")
    return b.build(
        [f"Task A runs `{function.qualname}`; Task B runs `{setter_function.qualname}`."],
        (b.roles["raise"], b.roles["hang"]),
        f"the wakeup is lost: nothing sets `{setter.receiver}` any more",
    )


def _sketch_shield_before_set(module: Program, trace: Trace) -> ProposedFix | None:
    """CONC302 when the `.set()` is in a `finally` after a checkpoint: shield and
    bound that checkpoint (pseudocode: the lines between stay as they are)."""
    raising = trace.step("raise")
    skipped = trace.step("skip")
    if raising is None or skipped is None:
        return None
    checkpoint = trace.steps[raising - 1]
    setter = trace.steps[skipped - 1]
    if checkpoint.line is None or setter.line is None:
        return None
    library = next((lib for lib in ("trio", "anyio") if lib in module.facts.libraries), None)
    if library is None:
        return None
    statement = strip_comment(module.source(checkpoint.line))
    setter_text = strip_comment(module.source(setter.line))
    sketch = (
        f"finally:\n"
        f"    ...\n"
        f"    with {library}.move_on_after(5, shield=True):  # L{checkpoint.line + 1}\n"
        f"        {statement}\n"
        f"    ...\n"
        f"    {setter_text}  # L{setter.line + 1}: now always reached"
    )
    return ProposedFix(
        title=f"Shield and bound the checkpoint before the `.set()` ({ref(checkpoint.line)})",
        kind="pseudocode",
        diff="",
        sketch=sketch,
        closes="",
        tradeoffs="",
        risk="",
        effort="simple",
    )


class SetNotGuaranteed(Rule):
    code = "CONC302"
    name = "set-not-guaranteed"
    opt_in = True
    opt_in_reason = (
        "precision on unseen real code 0.45 (round 3: 9 true, 0 deliberate, 11 wrong) "
        "and 0.08 (round 4: 1 / 0 / 12)"
    )
    category = "deadlock"
    explanation = (
        "a lost wakeup: the `.set()` the waiter depends on can be skipped by an error or a "
        "cancellation."
    )
    effort = "simple"
    sketch_title = "Set the event in a `finally` of the setter"
    brief = "a waited event whose `.set()` is not in a `finally`"
    fixes_offered = (("move the setter's `.set()` into a `finally:` around its body", "safe"),)
    rank = 5

    def check(self, module: ModuleFacts) -> Iterator[Detection]:
        return _check(self, module)

    def fix(self, detection: Detection, module: ModuleFacts, context: FixContext) -> Fix | None:
        from conc_lsp.fixes import state  # libcst loads only when fixing (start-up cost)

        evidence = detection.evidence
        if not isinstance(evidence, LostWakeup) or len(evidence.setters) != 1:
            return None
        setter_line = evidence.setters[0].event.location.line
        return state.set_in_finally(detection.finding, module, context, setter_line)

    def trace(
        self, program: Program, b: TraceBuilder, function: FunctionFacts, detection: Detection
    ) -> Trace | None:
        if isinstance(detection.evidence, LostWakeup):
            return _trace(program, b, function, detection.evidence)
        return None

    def words(self, evidence: Evidence, trace: Trace) -> Words:
        s = trace.steps_text
        if _after_cleanup_checkpoint(evidence):
            return Words(
                f"The checkpoint of {s('raise')} is shielded and bounded: neither a cancellation "
                f"nor a hang there skips the `.set()` of {s('skip')}, so the wait of "
                f"{s('wait')} ends.",
                "The cleanup before the `.set()` can delay a cancellation by up to the bound.",
                "A cleanup step that needs longer than the bound is cut short (log it).",
            )
        return Words(
            f"The `.set()` runs in a `finally`, so the error or cancellation of {s('raise')} "
            f"no longer skips it ({s('skip')}): the wait of {s('wait')} ends.",
            "The event is set on failure too: the waiter must check whether the work succeeded.",
            'A waiter that treats the event as "done successfully" proceeds after a failure.',
        )

    def sketches(
        self,
        program: Program,
        detection: Detection,
        trace: Trace,
        name: str,
        lines: list[str],
        has_quick_fix: bool,
    ) -> list[ProposedFix]:
        if has_quick_fix or not _after_cleanup_checkpoint(detection.evidence):
            return []
        sketch = _sketch_shield_before_set(program, trace)
        return [sketch] if sketch is not None else []


def _after_cleanup_checkpoint(evidence: Evidence) -> bool:
    """The first setter is in a `finally` already, but after a checkpoint there."""
    if not isinstance(evidence, LostWakeup) or not evidence.setters:
        return False
    risk = evidence.setters[0].risk
    return risk is not None and risk.after_cleanup_checkpoint


RULE = SetNotGuaranteed()
