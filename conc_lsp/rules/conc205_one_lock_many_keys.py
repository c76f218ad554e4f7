"""CONC205 one-lock-many-keys

## What it does
*Opt-in* (new; not yet judged on enough real code): turn it on with
`extend-select = ["CONC205"]`.

Flags one lock (an attribute such as `self._lock`, or a global) that guards
state kept per key, in two shapes:

- **taken again while held**: inside `async with self._lock:` the code
  awaits a method (or module function) that takes the same lock, directly
  or through up to three calls. Locks of trio, anyio and asyncio are not
  re-entrant: the second `async with` waits for the first, which waits for
  it. Work on one key that touches another key through the same code path
  deadlocks this way. A warning.
- **every key waits in line**: the lock is held across a checkpoint while
  the block reads or writes an entry chosen by a key the caller passes,
  and the awaited call is given that key (`self._conns[host] = await
  connect(host)`): the slow `await` for one key holds up every other key.
  Informational.

Not flagged: a lock held across shared work (one reader of a connection
filing what it reads by stream id), per-key locks (`self._locks[key]`), semaphores and limiters,
locks whose name says they are re-entrant (`rlock`), a callee that checks
`lock.locked()` first, sync callees (they cannot take an async lock).

## Why is this bad?
A lock shared by all keys turns independent work into one queue, and the
first nested use of a second key hangs the task forever, holding the lock:
every other task that needs it hangs behind it.

## Example
```python
async def refresh(self, key):
    async with self._lock:
        await self._evict(key)

async def _evict(self, key):
    async with self._lock:
        self._conns.pop(key, None)
```

## Use instead
```python
async def refresh(self, key):
    async with self._lock:
        self._evict_locked(key)

def _evict_locked(self, key):
    self._conns.pop(key, None)
```

## Fix
No quick fix: split the callee into a locked wrapper and an unlocked body,
or keep a lock per key (`self._locks.setdefault(key, trio.Lock())`) whose
lifetime matches the entry's (see CONC204).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass

from conc_lsp.analysis.events import Event, EventKind, FunctionFacts, ModuleFacts
from conc_lsp.analysis.locks import is_mutex, name_words
from conc_lsp.analysis.model import Severity
from conc_lsp.analysis.program import Program
from conc_lsp.analysis.sharing import is_shared, keyed_by_variable
from conc_lsp.rules.base import Detection, Evidence, Rule, Words
from conc_lsp.rules.story import Trace, TraceBuilder

MAX_CALL_DEPTH = 3
REENTRANT_WORDS = frozenset({"rlock", "reentrant", "recursive"})


@dataclass(frozen=True, slots=True)
class TakenAgain(Evidence):
    """An awaited call made while holding ``lock`` reaches a block taking it again."""

    lock: str
    call: Event  # the awaited call, under the lock
    chain: tuple[str, ...]  # the functions followed, outermost first
    again: Event  # the first event under the lock in the innermost function


@dataclass(frozen=True, slots=True)
class KeysInLine(Evidence):
    """One lock held across a checkpoint around entries chosen by a variable key."""

    lock: str
    checkpoint: Event  # awaited under the lock
    access: Event  # a keyed read or write under the same lock


def _single_lock(text: str) -> bool:
    """A lock of its own (`self._lock`, `_LOCK`), not one per key (`locks[key]`)
    nor one that says it is re-entrant."""
    if "[" in text or "(" in text or not is_mutex(text):
        return False
    return not any(word.lower() in REENTRANT_WORDS for word in name_words(text.rsplit(".", 1)[-1]))


def _callee(module: ModuleFacts, caller: FunctionFacts, call: Event) -> FunctionFacts | None:
    """The async function of this module an awaited call runs: `self.m()` in the
    same class, or a module-level `f()`; None when unknown or ambiguous."""
    if not call.awaited or not call.method:
        return None
    named = module.functions_named(call.method)
    if call.receiver in ("self", "cls"):
        found = [f for f in named if f.class_name == caller.class_name and f.is_async]
    elif call.receiver is None:
        found = [
            f for f in named if f.class_name is None and "<locals>" not in f.qualname and f.is_async
        ]
    else:
        return None
    return found[0] if len(found) == 1 else None


def _checks_locked(function: FunctionFacts, lock: str) -> bool:
    return any(
        event.kind is EventKind.CALL and event.method == "locked" and event.receiver == lock
        for event in function.events
    )


def _takes(
    module: ModuleFacts, function: FunctionFacts, lock: str, depth: int, seen: frozenset[str]
) -> tuple[tuple[str, ...], Event] | None:
    """Whether ``function`` (entered without ``lock``) takes ``lock``: the chain of
    functions followed and the first event under it."""
    if _checks_locked(function, lock):
        return None  # `if not self._lock.locked():` a caller holding it is expected
    for event in function.events:
        if lock in event.guards:
            return (function.qualname,), event
    if depth >= MAX_CALL_DEPTH:
        return None
    for event in function.events:
        if event.kind is not EventKind.CALL:
            continue
        inner = _callee(module, function, event)
        if inner is None or inner.qualname in seen:
            continue
        found = _takes(module, inner, lock, depth + 1, seen | {inner.qualname})
        if found is not None:
            return (function.qualname, *found[0]), found[1]
    return None


def _taken_again(module: ModuleFacts, function: FunctionFacts) -> Iterator[TakenAgain]:
    reported: set[str] = set()
    for event in function.events:
        if event.kind is not EventKind.CALL or not event.guards:
            continue
        callee = _callee(module, function, event)
        if callee is None:
            continue  # (a recursive call is followed: it takes the lock again too)
        for lock in sorted(event.guards):
            if lock in reported or not _single_lock(lock):
                continue
            found = _takes(module, callee, lock, 1, frozenset({function.qualname}))
            if found is not None:
                reported.add(lock)
                yield TakenAgain(lock, event, found[0], found[1])


def _keys_in_line(module: ModuleFacts, function: FunctionFacts) -> Iterator[KeysInLine]:
    """The lock held across an await done *for one key*: the key is a parameter
    (each caller brings its own) and the awaited call is given it
    (`self._conns[host] = await connect(host)`); a wait on shared work (one
    reader of a connection) serialises by design."""
    arguments = function.node.args
    parameters = {
        argument.arg
        for argument in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
    }
    checkpoints: dict[tuple[str, str], Event] = {}
    accesses: dict[tuple[str, str], Event] = {}
    for event in function.events:
        for lock in event.guards:
            if not _single_lock(lock):
                continue
            if event.kind is EventKind.CHECKPOINT and event.awaited:
                for name in _names(event.node) & parameters:
                    checkpoints.setdefault((lock, name), event)
            elif (
                event.kind in (EventKind.READ, EventKind.WRITE)
                and event.key in parameters
                and keyed_by_variable(event)
                and is_shared(module, event)
            ):
                accesses.setdefault((lock, event.key or ""), event)
    reported = set()
    for lock, key in sorted(checkpoints.keys() & accesses.keys()):
        if lock not in reported:
            reported.add(lock)
            yield KeysInLine(lock, checkpoints[lock, key], accesses[lock, key])


def _names(node: ast.AST) -> set[str]:
    return {child.id for child in ast.walk(node) if isinstance(child, ast.Name)}


class OneLockManyKeys(Rule):
    code = "CONC205"
    name = "one-lock-many-keys"
    opt_in = True
    opt_in_reason = "new; precision on unseen real code 0.00 (round 4: both findings wrong)"
    category = "deadlock"
    explanation = (
        "one lock for state kept per key: a nested use of a second key waits for itself, and "
        "unrelated keys wait in line."
    )
    effort = "moderate"
    sketch_title = "Split the locked callee, or keep a lock per key"
    brief = "one lock taken again while held, or held across a checkpoint for every key"
    rank = 4.5

    def check(self, module: ModuleFacts) -> Iterator[Detection]:
        for function in module.functions:
            if not function.is_async:
                continue
            deadlocks = set()
            for again in _taken_again(module, function):
                deadlocks.add(again.lock)
                chain = " → ".join(f"`{name}`" for name in again.chain)
                yield self.detect(
                    function,
                    again.call.location,
                    f"`{again.lock}` is taken again while held: this call reaches {chain}, "
                    f"which enters `async with {again.lock}` "
                    f"(line {again.again.location.line + 1}); the lock is not re-entrant, so "
                    "this deadlocks",
                    again,
                    [(again.again.location, f"`{again.lock}` is taken again here")],
                )
            for line in _keys_in_line(module, function):
                if line.lock in deadlocks:
                    continue  # the deadlock says more
                yield self.detect(
                    function,
                    line.checkpoint.location,
                    f"`{line.lock}` is held across this checkpoint around `{line.access.state}` "
                    f"entries chosen by `{line.access.key}`: every other key waits for it",
                    line,
                    [(line.access.location, "the keyed entry this lock guards")],
                    severity=Severity.INFORMATION,
                )

    def trace(
        self, program: Program, b: TraceBuilder, function: FunctionFacts, detection: Detection
    ) -> Trace | None:
        evidence = detection.evidence
        if isinstance(evidence, TakenAgain):
            b.add("Task A", evidence.call.location.line, f"holds `{evidence.lock}`", "hold")
            b.add(
                "Task A",
                evidence.again.location.line,
                f"waits for `{evidence.lock}`, which it holds itself",
                "again",
            )
            return b.build(
                [f"Task A runs `{function.qualname}`."],
                (b.roles["hold"], b.roles["again"]),
                "the task waits for a lock it holds: it never wakes, and every task that "
                "needs the lock hangs behind it",
            )
        if isinstance(evidence, KeysInLine):
            b.add(
                "Task A",
                evidence.checkpoint.location.line,
                f"holds `{evidence.lock}` while it waits here",
                "hold",
            )
            b.add(
                "Task B",
                evidence.access.location.line,
                f"wants another key of `{evidence.access.state}`: waits for `{evidence.lock}`",
                "queue",
            )
            return b.build(
                [f"Task A and Task B run `{function.qualname}` for two different keys."],
                (b.roles["hold"], b.roles["queue"]),
                "unrelated keys wait in one queue",
            )
        return None

    def words(self, evidence: Evidence, trace: Trace) -> Words:
        s = trace.steps_text
        if isinstance(evidence, TakenAgain):
            return Words(
                f"The callee no longer takes the lock ({s('again')}): the caller of {s('hold')} "
                "holds it for both.",
                "Every caller of the unlocked body must hold the lock (name it `*_locked`).",
                "A new caller that forgets the lock races.",
            )
        return Words(
            f"A lock per key: the wait of {s('hold')} holds up only its own key.",
            "One lock object per key: remove it with its entry (CONC204).",
            "Two keys taken in different orders by two tasks deadlock.",
        )


RULE = OneLockManyKeys()
