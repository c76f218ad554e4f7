"""CONC202 check-then-act

## What it does
Flags a test or read of shared state (`if key in self.d`,
`v = self.d.get(k)`, `if self.closed`) followed, across a checkpoint and
without a re-check after it, by an action that relies on it: `self.d[k]`,
`del self.d[k]`, `self.d.pop(k)`, or a write of the same state.

## Why is this bad?
This is the time-of-check-to-time-of-use (TOCTOU) race: at the checkpoint
another task can change the state, so by the time the action runs the check
no longer holds. Two tasks both see a cache miss and both create the entry;
a key checked present is gone by the time it is indexed.

Not flagged, because the action does not rest on the check or no other
task can run in between:
- a check and an action under the same lock, or on exclusive branches, or
  with a re-check of the same state after the last checkpoint;
- an action the task's own write stands between (`if self.state == "idle":
  self.state = "connecting"; await ...; self.state = "up"` claims the state
  first; a state machine acts on its own claim);
- an action after an `if` none of whose branches returns, raises, breaks or
  continues: it runs whatever the check found (`if not self._pending:
  await lot.park()` then `self._pending.popleft()`);
- a checkpoint in a branch that returns or raises before the action, one
  inside a `while` whose test is the check (the loop re-tests it), and
  `await checkpoint_if_cancelled()` (others run only if it raises);
- a reset to a constant in a `finally` or `except` (`self._state =
  _State.CLOSED`): it holds whatever happened;
- a guard that only raises on misuse of one object (`if self._cm is not
  None: raise RuntimeError(...)`) before a plain attribute assignment; keyed
  state (`if name in self._handlers: raise ...`) stays flagged.

## Example
```python
if key not in self.cache:
    conn = await connect(key)
    self.cache[key] = conn
```

## Use instead
```python
if key not in self.cache:
    conn = await connect(key)
    if key in self.cache:  # another task won the race
        await conn.aclose()
    else:
        self.cache[key] = conn
```

## Fix
Re-check after the checkpoint, or use the atomic form
(`self.cache.setdefault(key, conn)`, `d.pop(k, None)`). Safe.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass

from conc_lsp.analysis.event_index import none_exclusive_before, writes_before, writes_between
from conc_lsp.analysis.events import Event, EventKind, FunctionFacts, ModuleFacts, exclusive
from conc_lsp.analysis.model import Fix
from conc_lsp.analysis.program import INITIALISERS, Program
from conc_lsp.analysis.reach import Parents, function_parents, gap, reaches
from conc_lsp.analysis.sharing import callers_hold_a_lock, is_shared
from conc_lsp.fixes.context import FixContext
from conc_lsp.rules.base import Detection, Evidence, Rule, Words, checkpoint_words
from conc_lsp.rules.story import (
    Trace,
    TraceBuilder,
    act_words,
    checkpoint_step,
    first_event,
    state_text,
)

_LEAVES = (ast.Return, ast.Raise, ast.Break, ast.Continue)


def _is_check(event: Event) -> bool:
    if event.kind is EventKind.TEST:
        return True
    return (
        event.kind is EventKind.READ
        and not event.augmented
        and (event.method == "get" or (event.key is not None and event.method is None))
    )


def _is_action(event: Event) -> bool:
    if event.kind is EventKind.WRITE:
        return not event.has_default and event.method != "setdefault"
    return event.kind is EventKind.READ and event.key is not None and event.method is None


def _same_target(check: Event, action: Event) -> bool:
    return check.state == action.state and check.key == action.key


def _rechecked(function: FunctionFacts, after: Event, action: Event) -> bool:
    return any(
        event.kind is EventKind.TEST and _same_target(event, action)
        for event in function.events[after.order + 1 : action.order]
    )


def _rewritten(function: FunctionFacts, parents: Parents, check: Event, action: Event) -> bool:
    """The task itself wrote the target between the check and the action.

    The check was acted on by that write (`if self.state == "idle":
    self.state = "connecting"`); what follows acts on the task's own write.
    """
    return any(
        not exclusive(event, check)
        and not exclusive(event, action)
        and reaches(parents, event.node, action.node)
        for event in writes_between(function, (action.state, action.key), check.order, action.order)
    )


# How many of an action's latest writes `_rewritten_before` tries: a bound on
# the search, never on what is found.
_BARRIER_TRIES = 4


def _rewritten_before(function: FunctionFacts, parents: Parents, action: Event) -> int:
    """An order before which every check is `_rewritten` for ``action``: a write of
    its target that reaches it, on a path through every earlier event (-1: none)."""
    earlier = writes_before(function, (action.state, action.key), action.order)
    for write in earlier[-1 : -_BARRIER_TRIES - 1 : -1]:
        if (
            not exclusive(write, action)
            and none_exclusive_before(function, write)
            and reaches(parents, write.node, action.node)
        ):
            return write.order
    return -1


def _statement(parents: Parents, node: ast.AST) -> tuple[ast.stmt | None, str]:
    """The statement an expression belongs to, and the field it sits in."""
    field = ""
    while node in parents and not isinstance(node, ast.stmt):
        node, field = parents[node]
    return (node, field) if isinstance(node, ast.stmt) else (None, "")


def _inside(parents: Parents, ancestor: ast.AST, node: ast.AST) -> bool:
    while node in parents:
        node = parents[node][0]
        if node is ancestor:
            return True
    return False


def _leaves(statements: list[ast.stmt]) -> bool:
    return any(isinstance(node, _LEAVES) for stmt in statements for node in ast.walk(stmt))


def _independent(parents: Parents, check: Event, action: Event) -> bool:
    """The action runs whatever the check found.

    `if not self._pending: await self._lot.park()` then `self._pending.popleft()`:
    the action follows the `if` on both outcomes (no branch returns, raises,
    breaks or continues), so it rests on what the branches did, not on the
    check.
    """
    statement, field = _statement(parents, check.node)
    if not isinstance(statement, ast.If) or field != "test":
        return False
    if _inside(parents, statement, action.node):
        return False
    return not _leaves(statement.body) and not _leaves(statement.orelse)


def _while_checkpoints(parents: Parents, check: Event, action: Event) -> ast.While | None:
    """The `while` whose test is the check, when the loop re-tests it before the action."""
    statement, field = _statement(parents, check.node)
    if not isinstance(statement, ast.While) or field != "test":
        return None
    if _inside(parents, statement, action.node) or _leaves(statement.body):
        return None
    return statement


def _is_constant(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.UnaryOp):
        return _is_constant(node.operand)
    # `_State.CLOSED`: an enum member or a module constant.
    return isinstance(node, ast.Attribute) and node.attr.isupper()


def _cleanup_reset(parents: Parents, action: Event) -> bool:
    """`finally: self._state = _State.CLOSED`: a reset that holds whatever happened."""
    context = action.context
    if not (context.in_finally or context.in_except is not None):
        return False
    if action.kind is not EventKind.WRITE or action.removal or action.method is not None:
        return False
    statement, _ = _statement(parents, action.node)
    return isinstance(statement, ast.Assign) and _is_constant(statement.value)


def _misuse_guard(parents: Parents, check: Event, action: Event) -> bool:
    """`if self._cm is not None: raise RuntimeError(...)` before `self._cm = cm`.

    A guard that only raises protects one object against being used twice
    (entered, bound, served), a programming error; it is no synchronisation
    between tasks, and flagging it would flag every such guard. Keyed state
    (a registry by name) stays flagged: many tasks use it at once by design.
    """
    if check.key is not None or action.key is not None:
        return False
    if action.kind is not EventKind.WRITE or action.removal or action.method is not None:
        return False
    statement, field = _statement(parents, check.node)
    return (
        isinstance(statement, ast.If)
        and field == "test"
        and not statement.orelse
        and len(statement.body) == 1
        and isinstance(statement.body[0], ast.Raise)
    )


def _idempotent_write(parents: Parents, check: Event, action: Event) -> bool:
    """A one-way flag or an idempotent lazy load of one attribute (not of keyed
    state): `if not self._closed: ...; self._closed = True`, `if self._x is None:
    self._x = await load()`. Two tasks doing it both end in the same state."""
    if check.key is not None or action.key is not None or check.state != action.state:
        return False
    if action.kind is not EventKind.WRITE or action.removal or action.method is not None:
        return False
    if action.augmented:
        return False
    statement, _ = _statement(parents, action.node)
    if not isinstance(statement, (ast.Assign, ast.AnnAssign)) or statement.value is None:
        return False
    return _is_constant(statement.value) or _lazily_loaded(parents, check)


def _lazily_loaded(parents: Parents, check: Event) -> bool:
    """The check asks whether the attribute is there yet: `if self._x is None:`,
    `if not self._x:`."""
    test, _ = _statement(parents, check.node)
    if not isinstance(test, (ast.If, ast.While)):
        return False
    condition = test.test
    if isinstance(condition, ast.UnaryOp) and isinstance(condition.op, ast.Not):
        return True
    return (
        isinstance(condition, ast.Compare)
        and len(condition.ops) == 1
        and isinstance(condition.ops[0], (ast.Is, ast.IsNot))
        and isinstance(condition.comparators[0], ast.Constant)
        and condition.comparators[0].value is None
    )


def _outside_the_if(parents: Parents, check: Event, action: Event) -> bool:
    """A plain write of one attribute after the `if` that tests it, not under it:
    it happens whatever the test said (`if self._last is None and ...: ...`
    then `self._last = part`)."""
    if check.key is not None or action.key is not None:
        return False
    if action.kind is not EventKind.WRITE or action.removal or action.method is not None:
        return False
    statement, field = _statement(parents, check.node)
    return (
        isinstance(statement, ast.If)
        and field == "test"
        and not _inside(parents, statement, action.node)
    )


def _in_loop_body(parents: Parents, check: Event, action: Event) -> bool:
    """The check is a `while` test and the action is in its body: the loop tests
    again before it acts again."""
    statement, field = _statement(parents, check.node)
    return (
        isinstance(statement, ast.While)
        and field == "test"
        and _inside(parents, statement, action.node)
    )


def _rechecked_under_lock(parents: Parents, check: Event, action: Event) -> bool:
    """Double-checked locking: the action sits under a lock taken after the check,
    inside an `if` within that lock's block (the re-check)."""
    taken = action.guards - check.guards
    if not taken:
        return False
    node: ast.AST = action.node
    seen_if = False
    while node in parents:
        node = parents[node][0]
        if isinstance(node, ast.If):
            seen_if = True
        if isinstance(node, (ast.With, ast.AsyncWith)) and any(
            ast.unparse(item.context_expr) in taken for item in node.items
        ):
            return seen_if
    return False


def _window(function: FunctionFacts, parents: Parents, check: Event, action: Event) -> list[Event]:
    """The checkpoints that let another task change the state between check and action."""
    if _rewritten(function, parents, check, action) or _independent(parents, check, action):
        return []
    if _cleanup_reset(parents, action) or _misuse_guard(parents, check, action):
        return []
    if _idempotent_write(parents, check, action) or _in_loop_body(parents, check, action):
        return []
    if _outside_the_if(parents, check, action):
        return []
    if _rechecked_under_lock(parents, check, action):
        return []
    between = gap(function, parents, check, action)
    loop = _while_checkpoints(parents, check, action)
    if loop is not None:
        between = [event for event in between if not _inside(parents, loop, event.node)]
    return between


@dataclass(frozen=True, slots=True)
class CheckThenAct(Evidence):
    """A check of shared state, a checkpoint, then an action relying on the check."""

    check: Event
    checkpoint: Event
    action: Event


def _check(rule: Rule, module: ModuleFacts) -> Iterator[Detection]:
    for function in module.functions:
        if not function.is_async or callers_hold_a_lock(module, function):
            continue
        parents = function_parents(function)
        events = function.events
        checks: dict[tuple[str | None, str | None], list[Event]] = {}  # by target
        for event in events:
            if _is_action(event) and is_shared(module, event):
                barrier = _rewritten_before(function, parents, event)
                for earlier in reversed(checks.get((event.state, event.key), [])):
                    if earlier.order < barrier:
                        break  # this check and the earlier ones are `_rewritten`
                    if exclusive(earlier, event):
                        continue
                    if earlier.kind is not EventKind.TEST and (
                        event.kind is not EventKind.WRITE or event.removal
                    ):
                        # After a plain read only a write back is a lost update.
                        continue
                    if earlier.guards & event.guards:
                        continue
                    between = _window(function, parents, earlier, event)
                    if not between or _rechecked(function, between[-1], event):
                        continue
                    checkpoint = between[-1]
                    target = f"{event.state}[{event.key}]" if event.key else f"{event.state}"
                    yield rule.detect(
                        function,
                        event.location,
                        f"check-then-act: `{target}` is used at line {event.location.line + 1} "
                        f"on the strength of the check at line {earlier.location.line + 1}, but "
                        f"{checkpoint_words(checkpoint)} lets another task change it in between; "
                        "re-check after the await",
                        CheckThenAct(earlier, checkpoint, event),
                        [
                            (earlier.location, f"check: {module.source(earlier.location)}"),
                            (
                                checkpoint.location,
                                f"checkpoint: {module.source(checkpoint.location)}",
                            ),
                        ],
                    )
                    break
            if _is_check(event):
                checks.setdefault((event.state, event.key), []).append(event)


def _trace(
    module: Program, b: TraceBuilder, function: FunctionFacts, evidence: CheckThenAct
) -> Trace | None:
    action, check, checkpoint = evidence.action, evidence.check, evidence.checkpoint
    target = state_text(action)
    reads = check.kind is EventKind.READ
    verb, same = ("reads", "the same value") if reads else ("checks", "the same answer")
    b.add("Task A", check.location.line, f"{verb} {target}", "check")
    b.add(
        "Task A",
        checkpoint.location.line,
        checkpoint_step(module, checkpoint) + ": Task A is switched out",
        "checkpoint",
    )
    tasks = [f"Task A runs `{function.qualname}`."]
    if action.kind is EventKind.WRITE:
        tasks.append(f"Task B runs `{function.qualname}` too.")
        b.add("Task B", check.location.line, f"{verb} {target}: {same}", "b1")
        b.add("Task B", action.location.line, act_words(action), "b2")
    else:
        writer = first_event(
            e
            for other in module.functions
            if other is not function and other.name not in INITIALISERS
            for e in other.events
            if e.kind is EventKind.WRITE and e.state == action.state
        )
        owner = module.function_at(writer.location) if writer else None
        tasks.append(
            f"Task B runs `{owner.qualname}`." if owner else "Task B is any task that changes it."
        )
        b.add(
            "Task B",
            writer.location.line if writer else None,
            f"changes {target}",
            "b1",
        )
    b.add(
        "Task A",
        action.location.line,
        f"{act_words(action)} on the strength of step {b.roles['check']}, which no longer holds",
        "act",
    )
    last = max(b.roles.get("b1", 0), b.roles.get("b2", 0))
    return b.build(
        tasks,
        (b.roles["checkpoint"], last),
        f"{target} changes between Task A's check and its action",
    )


class CheckThenActRule(Rule):
    code = "CONC202"
    name = "check-then-act"
    opt_in = True
    opt_in_reason = (
        "precision on unseen real code 0.14 (round 3: 1 true, 2 deliberate, 6 wrong) and "
        "0.40 (round 4: 2 / 0 / 3)"
    )
    category = "TOCTOU"
    explanation = (
        "time of check to time of use: the state changes between the check and the action "
        "based on it."
    )
    effort = "simple"
    sketch_title = "Re-check after the await, or use the atomic form"
    brief = "a check of shared state relied upon after a checkpoint, without a re-check (TOCTOU)"
    fixes_offered = (
        ("the atomic form: `del d[k]` / `d.pop(k)` -> `d.pop(k, None)`", "safe"),
        ("check again after the await: the write is wrapped in the same `if` test", "unsafe"),
    )
    rank = 2

    def check(self, module: ModuleFacts) -> Iterator[Detection]:
        return _check(self, module)

    def fix(self, detection: Detection, module: ModuleFacts, context: FixContext) -> Fix | None:
        from conc_lsp.fixes import state  # libcst loads only when fixing (start-up cost)

        evidence = detection.evidence
        if not isinstance(evidence, CheckThenAct):
            return None
        check_line = evidence.check.location.line
        return state.atomic_pop(detection.finding, module, context, check_line)

    def trace(
        self, program: Program, b: TraceBuilder, function: FunctionFacts, detection: Detection
    ) -> Trace | None:
        if isinstance(detection.evidence, CheckThenAct):
            return _trace(program, b, function, detection.evidence)
        return None

    def words(self, evidence: Evidence, trace: Trace) -> Words:
        s = trace.steps_text
        return Words(
            f"Task A re-checks after the checkpoint ({s('checkpoint')}) or acts atomically, so "
            f"the change Task B made ({s('b1', 'b2')}) is seen before the action "
            f"({s('act')}).",
            'One more test per call; the losing task must handle the "someone else got '
            'there first" case.',
            "When the re-check fails the action is skipped: make sure the caller copes "
            "(a connection is not returned, a value is not created).",
        )


RULE = CheckThenActRule()
