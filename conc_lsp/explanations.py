"""What a hint means, in two or three sentences of markdown: the tooltip and
hover text, where the reasons and callee chains that labels leave out live.

Shared by the command line and the server; no LSP types here.
"""

from __future__ import annotations

from conc_lsp.analysis.model import Context, Hint, HintKind, Resolution, Shield, Verdict
from conc_lsp.labels import exit_method

_HEADLINES = {
    Verdict.ALWAYS: "**Resolved: always checkpoints.**",
    Verdict.SOMETIMES: "**Resolved: checkpoints only on some paths.**",
    Verdict.NEVER: "**Resolved: never checkpoints**: nothing here lets another task run "
    "or delivers a cancellation.",
    Verdict.MAY_NOT_YIELD: "**Resolved: may not yield**: a fast path returns without "
    "switching tasks.",
    Verdict.UNKNOWN: "**Resolved in part.**",
    Verdict.ASSUMED: "**Resolved in part.**",
}
_SIDE_WORDS = {
    Verdict.ALWAYS: "always checkpoints",
    Verdict.SOMETIMES: "checkpoints only on some paths",
    Verdict.NEVER: "never checkpoints",
    Verdict.MAY_NOT_YIELD: "may not yield (a fast path returns without switching tasks)",
    Verdict.UNKNOWN: "is not known (read as a checkpoint)",
    Verdict.ASSUMED: "is not known (read as a checkpoint)",
}


def explanation(hint: Hint, resolution: Resolution | None = None) -> str:
    """What this construct does to the schedule, then what resolving its callee
    found (its reason and the chain of callees) when known."""
    if hint.kind is HintKind.ASYNC_WITH and resolution is not None and _sides_known(resolution):
        return _resolved_with(hint, resolution)
    text = _syntactic_explanation(hint)
    if resolution is None or not (resolution.chain or resolution.reason):
        return text
    return f"{text}\n\n{_HEADLINES[resolution.verdict]} `{resolution.callee}`{_details(resolution)}"


def _sides_known(resolution: Resolution) -> bool:
    """Resolution found what entering or leaving an `async with` does."""
    sides = (resolution.enter, resolution.exit)
    return resolution.enter is not None and any(
        side not in (None, Verdict.UNKNOWN) for side in sides
    )


def _details(resolution: Resolution) -> str:
    reason = " ".join(resolution.reason.split())
    steps = "\n".join(f"- {step.strip()}" for step in resolution.chain)
    return (f": {reason}." if reason else ":") + (f"\n{steps}" if steps else "")


def _resolved_with(hint: Hint, resolution: Resolution) -> str:
    """An `async with` whose sides were resolved: each side says what it does
    (a nursery's enter never yields even though its exit waits)."""
    code = f"`{hint.code}`" if hint.code else "this"
    enter = resolution.enter or Verdict.UNKNOWN
    exit_ = resolution.exit or Verdict.UNKNOWN
    text = (
        f"**async with** {code} in `{hint.function}`: **entering {_SIDE_WORDS[enter]}**; "
        f"**leaving {_SIDE_WORDS[exit_]}**."
    )
    if hint.waits_for_children:
        text += (
            " This is a nursery / task group: leaving the block **waits for every child "
            "task** to finish, so the exit can block for as long as the slowest child."
        )
    elif hint.releases_on_exit and not exit_.possible:
        text += " Leaving the block only releases the lock."
    text += _context_sentence(hint)
    return f"{text}\n\n**Resolved** `{resolution.callee}`{_details(resolution)}"


def _syntactic_explanation(hint: Hint) -> str:
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
            text = (
                f"**Nursery / task group** {code} in `{hint.function}`: leaving the block "
                "**waits for every child task** to finish, so the exit can block for as "
                "long as the slowest child. `__aenter__` and `__aexit__` are awaited: "
                "whether entering checkpoints depends on the library (resolving tells)."
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
        text += _context_sentence(hint)
    return text


def _context_sentence(hint: Hint) -> str:
    context: Context = hint.context
    parts: list[str] = []
    if context.shielded is Shield.YES:
        parts.append("It is **shielded**: cancellation from outside the shield is held off.")
    elif context.shielded is Shield.MAYBE:
        parts.append(
            "It is **maybe shielded**: the shield is a runtime value, so whether outer "
            "cancellation reaches it depends on that value."
        )
    if context.bounded or hint.bounded_call:
        parts.append("It is **bounded** by a timeout, so it cannot wait forever.")
    cleanup = []
    if context.in_finally:
        cleanup.append("a `finally` block")
    if context.in_except is not None:
        # One code span: a nested pair of backticks would render as broken text.
        handler = f"except {context.in_except}" if context.in_except else "except"
        cleanup.append(f"an `{handler}` handler")
    if context.acm_teardown:
        cleanup.append("the teardown of an async context manager (after its `yield`)")
    if context.in_aexit:
        cleanup.append(f"`{exit_method(hint)}`")
    if cleanup:
        parts.append(
            "It sits in " + " and ".join(cleanup) + ": a cleanup path. If the enclosing "
            "scope is being cancelled, this checkpoint raises `Cancelled` at once and the "
            "rest of the cleanup does not run"
            + (" unless it is shielded." if context.shielded is Shield.NO else ".")
        )
    return (" " + " ".join(parts)) if parts else ""
