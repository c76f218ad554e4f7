"""Lookups over one function's events, built once on first use and kept in the
function's memo, so that a rule asks "which writes of this entry lie between
these two events" in the time of the answer, not of the function's length.

The walker has finished when rules run; each index still checks the number of
events it was built from.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from conc_lsp.analysis.events import Event, EventKind, FunctionFacts

Target = tuple[str | None, str | None]  # (state, key) of an access


@dataclass(slots=True)
class _Writes:
    events: int  # how many events the index was built from
    by_target: dict[Target, tuple[list[Event], list[int]]]


def _writes(function: FunctionFacts) -> dict[Target, tuple[list[Event], list[int]]]:
    memo = function.memo.get("writes-by-target")
    if isinstance(memo, _Writes) and memo.events == len(function.events):
        return memo.by_target
    found: dict[Target, tuple[list[Event], list[int]]] = {}
    for event in function.events:
        if event.kind is EventKind.WRITE:
            events, orders = found.setdefault((event.state, event.key), ([], []))
            events.append(event)
            orders.append(event.order)
    function.memo["writes-by-target"] = _Writes(len(function.events), found)
    return found


def writes_between(function: FunctionFacts, target: Target, after: int, before: int) -> list[Event]:
    """The writes of ``target`` whose order lies strictly between ``after`` and ``before``."""
    found = _writes(function).get(target)
    if found is None:
        return []
    events, orders = found
    start = bisect.bisect_right(orders, after)
    return events[start : bisect.bisect_left(orders, before, start)]


def writes_before(function: FunctionFacts, target: Target, before: int) -> list[Event]:
    """The writes of ``target`` before order ``before``, in order."""
    found = _writes(function).get(target)
    if found is None:
        return []
    events, orders = found
    return events[: bisect.bisect_left(orders, before)]


@dataclass(slots=True)
class _Branches:
    events: int
    # (id of an `if` / `try` / `match`, branch) -> order of its first event
    first: dict[tuple[int, int], int]
    # id of an `if` / `try` / `match` -> the branches seen
    branches: dict[int, set[int]]


def _branches(function: FunctionFacts) -> _Branches:
    memo = function.memo.get("branch-orders")
    if isinstance(memo, _Branches) and memo.events == len(function.events):
        return memo
    first: dict[tuple[int, int], int] = {}
    branches: dict[int, set[int]] = {}
    for event in function.events:
        for entry in event.path:
            if entry not in first:
                first[entry] = event.order
                branches.setdefault(entry[0], set()).add(entry[1])
    found = function.memo["branch-orders"] = _Branches(len(function.events), first, branches)
    return found


def none_exclusive_before(function: FunctionFacts, event: Event) -> bool:
    """No earlier event of the function sits on another branch of an `if` /
    `try` / `match` that ``event`` is in: every earlier event is on a path
    through ``event`` (``exclusive`` is False for each)."""
    if not event.path:
        return True
    index = _branches(function)
    for node, branch in event.path:
        for other in index.branches.get(node, ()):
            if other != branch and index.first[(node, other)] < event.order:
                return False
    return True
