"""The lock vocabulary, in one place: which names are synchronisation
primitives at all (a lock, semaphore, limiter, condition), and which of them
are mutexes, held by one task at a time and so able to guard state.

Judged on the last dotted name, word by word (`_host_sems` -> host, sems;
`CapacityLimiter` -> capacity, limiter), so `clock`, `blocks` and
`BlockingPortal()` are not locks.
"""

from __future__ import annotations

import ast
import re

LOCK_WORDS = frozenset(
    {"lock", "locks", "rlock", "rlocks", "mutex", "mutexes", "sem", "sems", "semaphore"}
    | {"semaphores", "limiter", "limiters", "guard", "guards", "lk", "mtx", "condition"}
)


_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")


def name_words(name: str) -> list[str]:
    """`_host_sems` -> [host, sems]; `CapacityLimiter` -> [capacity, limiter]."""
    return [word.lower() for part in name.split("_") for word in _WORD.findall(part)]


def is_lock_text(text: str) -> bool:
    """Whether an expression's text names a lock (or semaphore, limiter,
    condition): `self._lock`, `locks[key]`, `trio.Lock()`, `CapacityLimiter(2)`;
    judged on the last dotted name, word by word, so `clock`, `blocks` and
    `BlockingPortal()` are not."""
    head = re.split(r"[(\[]", text, maxsplit=1)[0].strip()
    last = head.rsplit(".", 1)[-1]
    return any(word in LOCK_WORDS for word in name_words(last))


def is_lock_name(node: ast.expr) -> bool:
    """`is_lock_text` for a node, without unparsing calls and subscripts."""
    while isinstance(node, (ast.Call, ast.Subscript)):
        node = node.func if isinstance(node, ast.Call) else node.value
    if isinstance(node, ast.Attribute):
        return is_lock_text(node.attr)
    if isinstance(node, ast.Name):
        return is_lock_text(node.id)
    return False


# A mutex: one task at a time. A semaphore or capacity limiter lets several
# tasks in: it guards no state, even when its name also says "lock".
MUTEX_WORDS = frozenset(
    {"lock", "locks", "rlock", "rlocks", "mutex", "mutexes", "mtx", "lk", "condition", "cond"}
)
NOT_MUTEX_WORDS = frozenset({"sem", "sems", "semaphore", "semaphores", "limiter", "limiters"})

# Resolved types that one task holds at a time (a Condition holds its lock).
MUTEX_TYPES = frozenset(
    f"{library}.{name}"
    for library in ("trio", "anyio", "asyncio")
    for name in ("Lock", "StrictFIFOLock", "Condition")
)


def is_mutex(text: str) -> bool:
    """Whether an expression's text names a mutex (`self._lock`, `locks[key]`,
    `trio.Lock()`, `cond`), not a semaphore or limiter."""
    head = re.split(r"[(\[]", text, maxsplit=1)[0].strip()
    words = name_words(head.rsplit(".", 1)[-1])
    if any(word in NOT_MUTEX_WORDS for word in words):
        return False
    return any(word in MUTEX_WORDS for word in words)


def holds_locks(state: str | None) -> bool:
    """Whether shared state holds synchronisation primitives: `_Cache.locks`,
    `self._host_sems`, `key_lock` (only the attribute's own name counts)."""
    return bool(state) and is_lock_text(state or "")


def holds_mutexes(state: str | None) -> bool:
    """Whether shared state holds mutexes (`_Cache.locks`, not `self._host_sems`)."""
    return bool(state) and is_mutex((state or "").rsplit(".", 1)[-1])
