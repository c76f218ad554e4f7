"""What a hint says: its label (in the chosen style), whether it is shown, and
its explanation (see ``conc_lsp/explanations.py``).

Labels put the most important word first (the cleanup place, then the shield,
then the bound) and fit a cap by dropping their least important words whole:
the reasons and callee chains live in the tooltip and hover.

Shared by the command line and the server; no LSP types here.
"""

from __future__ import annotations

from conc_lsp.analysis.model import Context, Hint, HintKind, Resolution, Shield, Verdict

# Re-exported: the labels' callers name the choices from here.
from conc_lsp.label_options import ARROW as ARROW
from conc_lsp.label_options import COMPACT as COMPACT
from conc_lsp.label_options import DEFAULT_MAX_LENGTH as DEFAULT_MAX_LENGTH
from conc_lsp.label_options import LABEL_STYLES as LABEL_STYLES
from conc_lsp.label_options import SHOW_ALL as SHOW_ALL
from conc_lsp.label_options import SHOW_CONTEXT as SHOW_CONTEXT
from conc_lsp.label_options import SHOW_MODES as SHOW_MODES

ELLIPSIS = "…"
SEPARATOR = " · "
ARROW_PREFIX = "<- "

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
_NURSERY = "waits for children"
_LOCK = "checkpoint (enter)"
_COMPACT_NURSERY = "⇄⌛"
_COMPACT_LOCK = "⇄→"

# Compact symbols of resolved checkpoints.
_COMPACT_VERDICT = {
    Verdict.SOMETIMES: "⇄?",
    Verdict.NEVER: "∅",
    Verdict.MAY_NOT_YIELD: "⇄~",
}
_VERDICT_WORDS = {
    Verdict.SOMETIMES: "may checkpoint",
    Verdict.NEVER: "no checkpoint",
    Verdict.MAY_NOT_YIELD: "may not yield",
}
ASYNCIO = "asyncio"  # Resolution.fast_path of asyncio's own fast paths
_EXCEPT_TEXT = 16  # characters of an except clause's exception kept in a label

# For clients without tooltips (Neovim): what the compact symbols mean.
COMPACT_LEGEND = (
    "**Legend** (compact labels): `⇄` checkpoint · `⇄⇄` async with (enter/exit) · "
    "`⇄⌛` nursery: exit waits for children · `⇄→` lock: checkpoint on enter only · "
    "`⇄*` each iteration · `⏏` acm yield: caller runs · `↑` event set, no switch · "
    "`∅` not a checkpoint · `+` schedules a task · `⇄?` may checkpoint · "
    "`⇄~` may not yield (fast path) · `F` finally · `E` except · `A` acm teardown · "
    "`X` `__aexit__` / `aclose` · `S` shielded · `S?` maybe shielded · `U` unshielded "
    "cleanup · `T` bounded by a timeout · `…` more in the hover"
)


# -- which hints are shown -------------------------------------------------


def is_shown(hint: Hint, resolution: Resolution | None = None, show: str = SHOW_ALL) -> bool:
    """Whether a hint appears under ``show`` (``"context"``: only what changes the
    reader's mind; ``"all"``: every checkpoint and look-alike)."""
    if show == SHOW_ALL:
        return True
    if not hint.kind.is_checkpoint:
        # set / release / start_soon / acm yield: a look-alike only matters
        # where a reader could take it for a checkpoint, in async code.
        return hint.in_async_function
    if hint.waits_for_children or has_context(hint):
        return True
    return (
        resolution is not None
        and _surprising(hint, resolution)
        and not _asyncio_norm(hint, resolution)
    )


def has_context(hint: Hint) -> bool:
    """A cleanup place, a shield (sure or maybe) or a bound around this checkpoint."""
    context = hint.context
    return (
        context.on_cleanup_path
        or context.shielded is not Shield.NO
        or context.bounded
        or hint.bounded_call
    )


def _surprising(hint: Hint, resolution: Resolution) -> bool:
    """Resolution found a checkpoint that may not be one."""
    if hint.kind is HintKind.ASYNC_WITH and resolution.enter is not None:
        return bool(_surprising_sides(hint, resolution))
    return not resolution.verdict.guaranteed


def _asyncio_norm(hint: Hint, resolution: Resolution) -> bool:
    """Only an asyncio fast path may skip the yield: asyncio never promises that
    an await yields (a done future, a set event return at once), so in asyncio
    code that is how every await works, not news; "all" and hover still say it."""
    if resolution.fast_path != ASYNCIO:
        return False
    if hint.kind is HintKind.ASYNC_WITH and resolution.enter is not None:
        verdicts = [verdict for _side, verdict in _surprising_sides(hint, resolution)]
    else:
        verdicts = [resolution.verdict]
    return all(verdict is Verdict.MAY_NOT_YIELD for verdict in verdicts)


def _surprising_sides(hint: Hint, resolution: Resolution) -> list[tuple[str, Verdict]]:
    sides = [("enter", resolution.enter or Verdict.UNKNOWN)]
    if not hint.releases_on_exit:  # a lock's exit only releases: no surprise there
        sides.append(("exit", resolution.exit or Verdict.UNKNOWN))
    return [(side, verdict) for side, verdict in sides if not verdict.guaranteed]


# -- labels ----------------------------------------------------------------


def label(
    hint: Hint,
    style: str = ARROW,
    resolution: Resolution | None = None,
    max_length: int = 0,
) -> str:
    """The inline label of a hint; ``resolution`` says what its callee really does.

    ``max_length`` caps the label (0: no cap): the least important words go
    first, replaced by one ``…``; the hover and tooltip keep them all."""
    if style == COMPACT:
        head, tags = _compact_parts(hint, resolution)
        return fit(head, tags, max_length, separator=" ")
    head, reason, tags = _arrow_parts(hint, resolution)
    if reason:
        full = fit(f"{head} ({reason})", tags, 0, prefix=ARROW_PREFIX)
        if not max_length or len(full) <= max_length:
            return full
    return fit(head, tags, max_length, prefix=ARROW_PREFIX)


def fit(
    head: str, tags: list[str], max_length: int, *, prefix: str = "", separator: str = SEPARATOR
) -> str:
    """``prefix + head`` and as many ``tags`` (most important first) as fit."""
    whole = prefix + separator.join([head, *tags])
    if not max_length or len(whole) <= max_length:
        return whole
    kept = list(tags)
    while kept:
        kept.pop()
        text = prefix + separator.join([head, *kept]) + " " + ELLIPSIS
        if len(text) <= max_length:
            return text
    text = prefix + head
    if len(text) <= max_length:
        return text
    return text[: max(max_length - 1, 1)] + ELLIPSIS


def _arrow_parts(hint: Hint, resolution: Resolution | None) -> tuple[str, str, list[str]]:
    """(first words, reason for them, context words) of an arrow label."""
    kind = hint.kind
    if not kind.is_checkpoint:
        return _ARROW_BASE[kind], "", []
    tags = context_words(hint)
    if kind is HintKind.ASYNC_WITH:
        return _with_parts(hint, resolution, tags)
    each = " each iteration" if kind is HintKind.ASYNC_FOR else ""
    if resolution is not None and not resolution.verdict.guaranteed:
        words = _VERDICT_WORDS[resolution.verdict]
        return f"{words}{each}", _reason(resolution), tags
    if hint.context.on_cleanup_path:
        # On a cleanup path the place is the news: every await is a checkpoint.
        return tags[0], "", [*tags[1:], *(["each iteration"] if each else [])]
    return _ARROW_BASE[kind], "", tags


def _with_parts(
    hint: Hint, resolution: Resolution | None, tags: list[str]
) -> tuple[str, str, list[str]]:
    sides = (
        _surprising_sides(hint, resolution)
        if resolution is not None and resolution.enter is not None
        else []
    )
    words = [f"{_VERDICT_WORDS[verdict]} on {side}" for side, verdict in sides]
    if len(words) == 2 and sides[0][1] is sides[1][1]:
        words = [_VERDICT_WORDS[sides[0][1]]]  # both sides alike: say it once
    elif resolution is not None and resolution.enter is None and _surprising(hint, resolution):
        words = [_VERDICT_WORDS[resolution.verdict]]  # one verdict for the whole statement
    reason = _reason(resolution) if resolution is not None and words else ""
    if hint.waits_for_children:
        return _NURSERY, "", [*words, *tags]
    if words:
        return words[0], reason, [*words[1:], *tags]
    if hint.context.on_cleanup_path:
        return tags[0], "", tags[1:]
    return (_LOCK if hint.releases_on_exit else _ARROW_BASE[HintKind.ASYNC_WITH]), "", tags


def _reason(resolution: Resolution) -> str:
    # Collapse stray spaces (a reason built from an empty part).
    return " ".join(resolution.reason.split())


def context_words(hint: Hint) -> list[str]:
    """The label words of a checkpoint's context, most important first: where
    it sits on a cleanup path, then its shield, then its bound."""
    context = hint.context
    words = cleanup_places(hint)
    if context.shielded is Shield.YES:
        words.append("shielded")
    elif context.shielded is Shield.MAYBE:
        words.append("maybe shielded")
    elif context.in_finally or context.acm_teardown or context.in_aexit:
        # Cleanup that must run to its end: the lack of a shield is the news.
        # (An except handler is often the normal path: `except WouldBlock: await ...`.)
        words.append("unshielded")
    if context.bounded or hint.bounded_call:
        words.append("bounded")
    return words


def cleanup_places(hint: Hint) -> list[str]:
    """`finally`, `except E`, `teardown` (of an acm), `__aexit__` or `aclose`."""
    context = hint.context
    places: list[str] = []
    if context.in_finally:
        places.append("finally")
    if context.in_except is not None:
        places.append(f"except {_short_exception(context.in_except)}".rstrip())
    if context.acm_teardown:
        places.append("teardown")
    if context.in_aexit:
        places.append(exit_method(hint))
    return places


def exit_method(hint: Hint) -> str:
    """`aclose` or `__aexit__`: the method a checkpoint's cleanup context comes from."""
    return "aclose" if hint.function.rsplit(".", 1)[-1] == "aclose" else "__aexit__"


def _short_exception(caught: str) -> str:
    """`trio.Cancelled` -> `Cancelled`; `(KeyError, ValueError)` -> `(KeyError, …)`."""
    star = "*" if caught.startswith("*") else ""
    text = caught.removeprefix("*")
    if text.startswith("(") and "," in text:
        first = text[1:].split(",", 1)[0].strip().rsplit(".", 1)[-1]
        text = f"({first}, {ELLIPSIS})"
    elif "(" not in text:
        text = text.rsplit(".", 1)[-1]
    if len(text) > _EXCEPT_TEXT:
        text = text[: _EXCEPT_TEXT - 1] + ELLIPSIS
    return star + text


def _compact_parts(hint: Hint, resolution: Resolution | None) -> tuple[str, list[str]]:
    kind = hint.kind
    base = _COMPACT_BASE[kind]
    if hint.waits_for_children:
        base = _COMPACT_NURSERY
    elif hint.releases_on_exit:
        base = _COMPACT_LOCK
    if not kind.is_checkpoint:
        return base, []
    if resolution is not None:
        if kind is HintKind.ASYNC_WITH and resolution.enter is not None:
            enter = resolution.enter
            exit_ = resolution.exit or Verdict.UNKNOWN
            if not (enter.guaranteed and exit_.guaranteed):
                base = f"{_compact_side(enter)}{_compact_side(exit_)}"
        elif not resolution.verdict.guaranteed:
            base = _COMPACT_VERDICT[resolution.verdict]
    return base, [_COMPACT_TAGS.get(word, _compact_place(word)) for word in context_words(hint)]


def _compact_side(verdict: Verdict) -> str:
    return "⇄" if verdict.guaranteed else _COMPACT_VERDICT[verdict]


_COMPACT_TAGS = {
    "shielded": "S",
    "maybe shielded": "S?",
    "unshielded": "U",
    "bounded": "T",
    "finally": "F",
    "teardown": "A",
    "__aexit__": "X",
    "aclose": "X",
}


def _compact_place(word: str) -> str:
    return "E" if word.startswith("except") else word


# -- the report's words (its goldens keep this wording) ---------------------


def context_tags(context: Context, *, bounded_call: bool = False) -> list[str]:
    """The report's context words of a checkpoint, in its order."""
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
