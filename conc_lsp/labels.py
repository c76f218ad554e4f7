"""What a hint says: its label (in the chosen style) and its explanation.

Shared by the command line and the server; no LSP types here.
"""

from __future__ import annotations

from conc_lsp.analysis.model import Context, Hint, HintKind, Resolution, Shield, Verdict

ARROW = "arrow"
COMPACT = "compact"
LABEL_STYLES = (ARROW, COMPACT)

_ARROW_BASE = {
    HintKind.AWAIT: "checkpoint",
    HintKind.ASYNC_WITH: "checkpoint (enter/exit)",
    HintKind.ASYNC_FOR: "checkpoint each iteration",
    HintKind.ACM_YIELD: "suspend: caller runs",
    HintKind.EVENT_SET: "wakes waiters, no switch",
    HintKind.LOCK_RELEASE: "not a checkpoint",
    HintKind.SPAWN: "schedules task, no switch",
}
_COMPACT_BASE = {
    HintKind.AWAIT: "⇄",
    HintKind.ASYNC_WITH: "⇄⇄",
    HintKind.ASYNC_FOR: "⇄*",
    HintKind.ACM_YIELD: "⏏",
    HintKind.EVENT_SET: "↑",
    HintKind.LOCK_RELEASE: "∅",
    HintKind.SPAWN: "+",
}


def context_tags(context: Context, *, bounded_call: bool = False) -> list[str]:
    """The short context words of a checkpoint, most important first."""
    tags: list[str] = []
    if context.shielded is Shield.YES:
        tags.append("shielded")
    elif context.shielded is Shield.MAYBE:
        tags.append("maybe shielded")
    if context.bounded or bounded_call:
        tags.append("bounded")
    if context.in_finally:
        tags.append("in finally")
    if context.in_except is not None:
        tags.append(f"in except {context.in_except}".rstrip())
    if context.acm_teardown:
        tags.append("acm teardown")
    if context.in_aexit:
        tags.append("in __aexit__")
    return tags


def label(hint: Hint, style: str = ARROW, resolution: Resolution | None = None) -> str:
    """The inline label of a hint; ``resolution`` says what its callee really does."""
    tags = (
        context_tags(hint.context, bounded_call=hint.bounded_call)
        if hint.kind.is_checkpoint
        else []
    )
    resolved = _resolved_base(hint, resolution, style) if resolution is not None else None
    if style == COMPACT:
        base = _COMPACT_BASE[hint.kind]
        if hint.waits_for_children:
            base = "⇄⌛"
        elif hint.releases_on_exit:
            base = "⇄→"
        return (resolved or base) + "".join(f" {_compact_tag(tag)}" for tag in tags)
    base = _ARROW_BASE[hint.kind]
    if hint.waits_for_children:
        base = "checkpoint (enter) · waits for children on exit"
    elif hint.releases_on_exit:
        base = "checkpoint (enter)"
    return "<- " + " · ".join([resolved or base, *tags])


# Compact symbols of resolved checkpoints.
_COMPACT_VERDICT = {
    Verdict.SOMETIMES: "⇄?",
    Verdict.NEVER: "∅",
    Verdict.MAY_NOT_YIELD: "⇄~",
}


def _resolved_base(hint: Hint, resolution: Resolution, style: str) -> str | None:
    """The label's first part for a resolved checkpoint; None keeps the syntactic one."""
    verdict = resolution.verdict
    if hint.kind is HintKind.ASYNC_WITH and resolution.enter is not None:
        return _with_base(resolution, style, hint.waits_for_children)
    if verdict.guaranteed:
        return None
    if style == COMPACT:
        return _COMPACT_VERDICT[verdict]
    each = " each iteration" if hint.kind is HintKind.ASYNC_FOR else ""
    reason = f" ({resolution.reason})" if resolution.reason else ""
    if verdict is Verdict.SOMETIMES:
        return f"may checkpoint{each}{reason}"
    if verdict is Verdict.NEVER:
        return f"no checkpoint{each}{reason}"
    return f"may not yield{each}{reason}"


def _with_base(resolution: Resolution, style: str, waits_for_children: bool) -> str | None:
    enter = resolution.enter or Verdict.UNKNOWN
    exit_ = resolution.exit or Verdict.UNKNOWN
    if enter is Verdict.UNKNOWN and exit_ is Verdict.UNKNOWN:
        return None
    if style == COMPACT:
        return f"{_compact_side(enter)}{_compact_side(exit_)}"
    reason = f" ({resolution.reason})" if resolution.reason else ""
    if enter.guaranteed and exit_.guaranteed:
        return None if Verdict.UNKNOWN in (enter, exit_) else "checkpoint (enter/exit)"
    if not enter.possible and not exit_.possible:
        return f"no checkpoint{reason}"
    parts = []
    for side, verdict in (("enter", enter), ("exit", exit_)):
        if verdict.guaranteed:
            waits = " (waits for children)" if side == "exit" and waits_for_children else ""
            parts.append(f"checkpoint on {side}{waits}")
        elif verdict is Verdict.NEVER:
            parts.append(f"no checkpoint on {side}")
        elif verdict is Verdict.MAY_NOT_YIELD:
            parts.append(f"may not yield on {side}")
        else:
            parts.append(f"may checkpoint on {side}")
    return " · ".join(parts) + reason


def _compact_side(verdict: Verdict) -> str:
    return "⇄" if verdict.guaranteed else _COMPACT_VERDICT[verdict]


def _compact_tag(tag: str) -> str:
    short = {
        "shielded": "S",
        "maybe shielded": "S?",
        "bounded": "T",
        "in finally": "F",
        "acm teardown": "A",
        "in __aexit__": "X",
    }
    return short.get(tag, "E" if tag.startswith("in except") else tag)


def explanation(hint: Hint, resolution: Resolution | None = None) -> str:
    """Two or three sentences (markdown) on what this construct does to the schedule,
    then what resolving its callee found (the chain of callees) when known."""
    text = _syntactic_explanation(hint)
    if resolution is None or not resolution.chain:
        return text
    verdict = resolution.verdict
    headline = {
        Verdict.ALWAYS: "**Resolved: always checkpoints.**",
        Verdict.SOMETIMES: "**Resolved: checkpoints only on some paths.**",
        Verdict.NEVER: "**Resolved: never checkpoints**: nothing here lets another task run "
        "or delivers a cancellation.",
        Verdict.MAY_NOT_YIELD: "**Resolved: may not yield**: a fast path returns without "
        "switching tasks.",
        Verdict.UNKNOWN: "**Resolved in part.**",
        Verdict.ASSUMED: "**Resolved in part.**",
    }[verdict]
    steps = "\n".join(f"- {step.strip()}" for step in resolution.chain)
    return f"{text}\n\n{headline} `{resolution.callee}`:\n{steps}"


def _syntactic_explanation(hint: Hint) -> str:
    context = hint.context
    kind = hint.kind
    code = f"`{hint.code}`" if hint.code else "this"
    if kind is HintKind.AWAIT:
        text = (
            f"**Checkpoint** in `{hint.function}`: at `await {hint.code}` the scheduler may "
            "switch to another task, and a cancellation (`Cancelled` / `CancelledError`) "
            "can be raised here. Shared state read before this line may have changed after it."
        )
    elif kind is HintKind.ASYNC_WITH:
        text = (
            f"**Checkpoint on enter and exit** of {code} in `{hint.function}`: "
            "`__aenter__` and `__aexit__` are awaited, so other tasks may run and "
            "cancellation may be delivered on the way in and on the way out."
        )
        if hint.releases_on_exit:
            text = (
                f"**Checkpoint on enter** of {code} in `{hint.function}`: acquiring may "
                "let other tasks run and may be cancelled. Leaving the block only "
                "releases the lock, which is *not* a checkpoint."
            )
        if hint.waits_for_children:
            text += (
                " This is a nursery / task group: leaving the block **waits for every "
                "child task** to finish, so the exit can block for as long as the slowest child."
            )
    elif kind is HintKind.ASYNC_FOR:
        text = (
            f"**Checkpoint on each iteration** over {code} in `{hint.function}`: every "
            "`__anext__` is awaited; other tasks may run between iterations."
        )
    elif kind is HintKind.ACM_YIELD:
        text = (
            f"**Suspend: the caller runs** at {code} in the async context manager "
            f"`{hint.function}`: the body of the caller's `async with` runs here, with "
            "all its checkpoints. Code after this `yield` is teardown and runs while the "
            "caller unwinds, possibly under cancellation."
        )
    elif kind is HintKind.EVENT_SET:
        text = (
            f"**Not a checkpoint**: {code} makes the waiting tasks *ready* but does not "
            "switch to them; this task keeps running until its next checkpoint, so the "
            "code between here and the next `await` runs before any waiter wakes."
        )
    elif kind is HintKind.LOCK_RELEASE:
        text = (
            f"**Not a checkpoint**: {code} changes the lock's state without letting another "
            "task run; the next waiter acquires it only at this task's next checkpoint."
        )
    else:
        text = (
            f"**Not a checkpoint**: {code} only schedules a new task; it starts running at "
            "this task's next checkpoint, not here."
        )
    if kind.is_checkpoint:
        text += _context_sentence(context, hint.bounded_call)
    return text


def _context_sentence(context: Context, bounded_call: bool) -> str:
    parts: list[str] = []
    if context.shielded is Shield.YES:
        parts.append("It is **shielded**: cancellation from outside the shield is held off.")
    elif context.shielded is Shield.MAYBE:
        parts.append(
            "It is **maybe shielded**: the shield is a runtime value, so whether outer "
            "cancellation reaches it depends on that value."
        )
    if context.bounded or bounded_call:
        parts.append("It is **bounded** by a timeout, so it cannot wait forever.")
    cleanup = []
    if context.in_finally:
        cleanup.append("a `finally` block")
    if context.in_except is not None:
        caught = f" `{context.in_except}`" if context.in_except else ""
        cleanup.append(f"an `except{caught}` handler")
    if context.acm_teardown:
        cleanup.append("the teardown of an async context manager (after its `yield`)")
    if context.in_aexit:
        cleanup.append("`__aexit__` / `aclose`")
    if cleanup:
        parts.append(
            "It sits in " + " and ".join(cleanup) + ": a cleanup path. If the enclosing "
            "scope is being cancelled, this checkpoint raises `Cancelled` at once and the "
            "rest of the cleanup does not run"
            + (" unless it is shielded." if context.shielded is Shield.NO else ".")
        )
    return (" " + " ".join(parts)) if parts else ""
