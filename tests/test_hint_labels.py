"""Label shapes, the cap, what the "context" default shows, and the hover and
label bugs of issue #14 (item 6), on hints built by hand or from source."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from conc_lsp.analysis.model import Context, Hint, HintKind, Resolution, Shield, Verdict
from conc_lsp.analysis.parse import analyse_lines
from conc_lsp.analysis.resolve import Resolver
from conc_lsp.analysis.text import split_lines
from conc_lsp.explanations import explanation
from conc_lsp.labels import (
    COMPACT,
    COMPACT_LEGEND,
    DEFAULT_MAX_LENGTH,
    SHOW_ALL,
    SHOW_CONTEXT,
    fit,
    is_shown,
    label,
)


def hint(kind: HintKind = HintKind.AWAIT, function: str = "f", **context: object) -> Hint:
    return Hint(
        kind=kind,
        line=0,
        column=0,
        keyword_line=0,
        keyword_column=0,
        keyword_end_column=5,
        function=function,
        context=Context(**context),  # type: ignore[arg-type]
        code="ev.wait()",
    )


NURSERY = replace(hint(HintKind.ASYNC_WITH), waits_for_children=True, code="trio.open_nursery()")
LOCK = replace(hint(HintKind.ASYNC_WITH), releases_on_exit=True, code="lock")


@pytest.mark.parametrize(
    ("made", "expected"),
    [
        (hint(), "<- checkpoint"),
        (hint(in_finally=True), "<- finally · unshielded"),
        (
            hint(in_finally=True, shielded=Shield.YES, bounded=True),
            "<- finally · shielded · bounded",
        ),
        (hint(in_finally=True, shielded=Shield.MAYBE), "<- finally · maybe shielded"),
        (hint(in_except="BaseException"), "<- except BaseException"),
        (hint(in_except=""), "<- except"),
        (hint(in_except="trio.Cancelled"), "<- except Cancelled"),
        (hint(in_except="(KeyError, ValueError)"), "<- except (KeyError, …)"),
        (hint(in_except="*OSError"), "<- except *OSError"),
        (hint(acm_teardown=True), "<- teardown · unshielded"),
        (hint(in_aexit=True, function="R.__aexit__"), "<- __aexit__ · unshielded"),
        (hint(bounded=True), "<- checkpoint · bounded"),
        (hint(shielded=Shield.YES), "<- checkpoint · shielded"),
        (replace(hint(), bounded_call=True), "<- checkpoint · bounded"),
        (hint(HintKind.ASYNC_FOR), "<- checkpoint each iteration"),
        (hint(HintKind.ASYNC_FOR, in_finally=True), "<- finally · unshielded · each iteration"),
        (hint(HintKind.ASYNC_WITH), "<- checkpoint (enter/exit)"),
        (NURSERY, "<- waits for children"),
        (LOCK, "<- checkpoint (enter)"),
        (hint(HintKind.ASYNC_WITH, in_finally=True), "<- finally · unshielded"),
        (hint(HintKind.ACM_YIELD), "<- suspend: caller runs"),
        (hint(HintKind.EVENT_SET), "<- wakes waiters, no switch"),
        (hint(HintKind.LOCK_RELEASE), "<- not a checkpoint"),
        (hint(HintKind.SPAWN), "<- schedules task, no switch"),
    ],
)
def test_label_shapes(made: Hint, expected: str) -> None:
    assert label(made) == expected
    assert len(label(made, max_length=DEFAULT_MAX_LENGTH)) <= DEFAULT_MAX_LENGTH


def test_awaits_in_aclose_are_not_called_aexit() -> None:
    made = hint(in_aexit=True, function="Stream.aclose", shielded=Shield.YES)
    assert label(made) == "<- aclose · shielded"
    assert label(made, COMPACT) == "⇄ X S"
    assert "`aclose`" in explanation(made) and "__aexit__" not in explanation(made)
    source = "import trio\n\n\nclass S:\n    async def aclose(self):\n        await trio.sleep(0)\n"
    (found,) = analyse_lines(split_lines(source)).hints
    assert label(found) == "<- aclose · unshielded"


NEVER = Resolution(Verdict.NEVER, "log_only", "log_only never yields")
FAST = Resolution(Verdict.MAY_NOT_YIELD, "helper", "helper:  fast path in inner")


def test_resolved_labels_put_the_verdict_first_and_the_reason_last() -> None:
    assert label(hint(), resolution=NEVER) == "<- no checkpoint (log_only never yields)"
    # the reason goes (to the tooltip) when it does not fit the cap
    assert label(hint(), resolution=NEVER, max_length=32) == "<- no checkpoint"
    assert label(hint(in_finally=True), resolution=NEVER, max_length=32) == (
        "<- no checkpoint · finally …"
    )
    short = Resolution(Verdict.SOMETIMES, "g", "g returns at L3")
    assert label(hint(), resolution=short, max_length=40) == "<- may checkpoint (g returns at L3)"
    assert label(hint(), resolution=Resolution(Verdict.ALWAYS, "trio.sleep", "")) == (
        "<- checkpoint"
    )


def test_a_reason_never_shows_a_double_space() -> None:
    assert label(hint(), resolution=FAST) == "<- may not yield (helper: fast path in inner)"
    assert "  " not in explanation(hint(), FAST)


def test_resolved_async_with_names_the_surprising_side() -> None:
    nursery = Resolution(
        Verdict.ALWAYS, "trio.open_nursery", "", ("step",), Verdict.NEVER, Verdict.ALWAYS
    )
    assert label(NURSERY, resolution=nursery) == "<- waits for children · no checkpoint on enter"
    assert label(NURSERY, resolution=nursery, max_length=32) == "<- waits for children …"
    assert label(NURSERY, COMPACT, nursery) == "∅⇄"
    lock = Resolution(Verdict.ALWAYS, "trio.Lock", "", (), Verdict.ALWAYS, Verdict.NEVER)
    assert label(LOCK, resolution=lock) == "<- checkpoint (enter)"
    both = Resolution(Verdict.NEVER, "Pool", "Pool never yields", (), Verdict.NEVER, Verdict.NEVER)
    assert label(hint(HintKind.ASYNC_WITH), resolution=both) == (
        "<- no checkpoint (Pool never yields)"
    )
    whole = Resolution(Verdict.MAY_NOT_YIELD, "Pool", "asyncio fast path")
    assert label(hint(HintKind.ASYNC_WITH), resolution=whole) == (
        "<- may not yield (asyncio fast path)"
    )


def test_hover_of_a_resolved_nursery_agrees_with_its_label() -> None:
    """Not "checkpoint on enter and exit ... Resolved: always checkpoints" while
    the label says the enter never yields."""
    nursery = Resolution(
        Verdict.ALWAYS,
        "trio.open_nursery",
        "",
        ("`trio.open_nursery`: enter never yields, exit always checkpoints",),
        Verdict.NEVER,
        Verdict.ALWAYS,
    )
    text = explanation(NURSERY, nursery)
    assert "**entering never checkpoints**" in text
    assert "**leaving always checkpoints**" in text
    assert "waits for every child" in text
    assert "Checkpoint on enter and exit" not in text
    assert "Resolved: always checkpoints" not in text


def test_except_handler_hover_is_one_code_span() -> None:
    text = explanation(hint(in_except="KeyError"))
    assert "an `except KeyError` handler" in text
    assert "``" not in text
    assert "an `except` handler" in explanation(hint(in_except=""))


@pytest.mark.parametrize("cap", [10, 14, 20, 25, 32])
def test_every_label_fits_every_cap(cap: int) -> None:
    contexts = [
        {"in_finally": True, "in_except": "BaseExceptionGroup", "acm_teardown": True},
        {"in_aexit": True, "shielded": Shield.MAYBE, "bounded": True},
        {"in_except": "(OSError, trio.BrokenResourceError)", "bounded": True},
    ]
    for context in contexts:
        for kind in (HintKind.AWAIT, HintKind.ASYNC_FOR, HintKind.ASYNC_WITH):
            made = hint(kind, **context)
            for resolution in (None, NEVER, FAST):
                for style in ("arrow", COMPACT):
                    text = label(made, style, resolution, cap)
                    assert len(text) <= cap, (text, cap)


def test_fit_drops_whole_words_then_cuts() -> None:
    assert fit("finally", ["shielded", "bounded"], 0) == "finally · shielded · bounded"
    assert fit("finally", ["shielded", "bounded"], 22) == "finally · shielded …"
    assert fit("finally", ["shielded", "bounded"], 10) == "finally …"
    assert fit("finally", ["shielded", "bounded"], 8) == "finally"
    assert fit("waits for children", [], 10, prefix="<- ") == "<- waits …"


def test_context_default_shows_what_changes_the_readers_mind() -> None:
    assert not is_shown(hint(), None, SHOW_CONTEXT)
    assert is_shown(hint(), None, SHOW_ALL)
    for shown in (
        hint(in_finally=True),
        hint(in_except="KeyError"),
        hint(shielded=Shield.MAYBE),
        hint(bounded=True),
        NURSERY,
        hint(HintKind.EVENT_SET),
        hint(HintKind.ACM_YIELD),
    ):
        assert is_shown(shown, None, SHOW_CONTEXT), shown
    assert not is_shown(hint(HintKind.ASYNC_WITH), None, SHOW_CONTEXT)
    assert not is_shown(LOCK, None, SHOW_CONTEXT)
    # a resolved surprise joins; a confirmed checkpoint stays hidden
    assert is_shown(hint(), NEVER, SHOW_CONTEXT)
    assert not is_shown(hint(), Resolution(Verdict.ALWAYS, "x", ""), SHOW_CONTEXT)
    lock = Resolution(Verdict.ALWAYS, "trio.Lock", "", (), Verdict.ALWAYS, Verdict.NEVER)
    assert not is_shown(LOCK, lock, SHOW_CONTEXT)
    odd = Resolution(Verdict.ALWAYS, "Conn", "", (), Verdict.SOMETIMES, Verdict.ALWAYS)
    assert is_shown(hint(HintKind.ASYNC_WITH), odd, SHOW_CONTEXT)


def test_an_asyncio_fast_path_is_no_surprise_by_default() -> None:
    """asyncio never promises that an await yields: `await future` on a done
    future is how it works. The default leaves it out; "all" says it."""
    future = Resolution(
        Verdict.MAY_NOT_YIELD, "asyncio.Future", "asyncio fast path", (), None, None, "asyncio"
    )
    assert not is_shown(hint(), future, SHOW_CONTEXT)
    assert is_shown(hint(), future, SHOW_ALL)
    assert label(hint(), resolution=future) == "<- may not yield (asyncio fast path)"
    # its context still shows it, with the verdict first
    assert is_shown(hint(in_finally=True), future, SHOW_CONTEXT)
    # anyio and trio promise a checkpoint: their fast paths are news
    anyio = replace(future, callee="anyio.abc.AsyncResource.aclose", fast_path="anyio")
    assert is_shown(hint(), anyio, SHOW_CONTEXT)
    # a side that never yields is news even when the other is asyncio's fast path
    lock = Resolution(
        Verdict.MAY_NOT_YIELD,
        "asyncio.Lock",
        "asyncio fast path",
        (),
        Verdict.MAY_NOT_YIELD,
        Verdict.MAY_NOT_YIELD,
        "asyncio",
    )
    assert not is_shown(hint(HintKind.ASYNC_WITH), lock, SHOW_CONTEXT)
    odd = replace(lock, exit=Verdict.NEVER)
    assert is_shown(hint(HintKind.ASYNC_WITH), odd, SHOW_CONTEXT)


def test_look_alikes_in_sync_callbacks_are_hidden_by_default() -> None:
    source = (
        "import trio\n\n\n"
        "async def main(ev, lock, nursery):\n"
        "    ev.set()\n"
        "    lock.release()\n"
        "    nursery.start_soon(trio.sleep, 1)\n\n"
        "    def callback():\n"
        "        ev.set()\n\n\n"
        "def on_done(ev, lock, nursery):\n"
        "    ev.set()\n"
        "    lock.release()\n"
        "    nursery.start_soon(trio.sleep, 1)\n"
    )
    hints = analyse_lines(split_lines(source)).hints
    shown = sorted(h.keyword_line for h in hints if is_shown(h, None, SHOW_CONTEXT))
    assert shown == [4, 5, 6]
    assert len(hints) == 7  # "all" keeps every one


def test_compact_legend_explains_every_symbol() -> None:
    for symbol in ("⇄", "⇄⇄", "⇄⌛", "⇄→", "⇄*", "⏏", "↑", "∅", "+", "⇄?", "⇄~"):
        assert f"`{symbol}`" in COMPACT_LEGEND
    for letter in ("F", "E", "A", "X", "S", "S?", "U", "T"):
        assert f"`{letter}`" in COMPACT_LEGEND


def test_a_helpers_fast_path_names_its_library(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not "outer:  fast path in inner" (double space, no library)."""
    monkeypatch.setenv("CONC_LSP_CACHE_DIR", str(tmp_path / "cache"))
    package = tmp_path / "app"
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    main = package / "main.py"
    main.write_text(
        "import asyncio\n\n\n"
        "class Worker:\n"
        "    def __init__(self) -> None:\n"
        "        self.lock = asyncio.Lock()\n\n"
        "    async def inner(self) -> None:\n"
        "        await self.lock.acquire()\n\n"
        "    async def outer(self) -> None:\n"
        "        await self.inner()\n\n\n"
        "async def main() -> None:\n"
        "    await Worker().outer()\n",
        encoding="utf-8",
    )
    lines = split_lines(main.read_text(encoding="utf-8"))
    result = Resolver(str(tmp_path)).resolve_lines(lines, str(main), budget=120)
    reasons = {key[0]: found.reason for key, found in result.resolutions.items()}
    assert reasons["main"] == "outer: asyncio fast path in inner"
    # the library travels as data through both helpers, and through the cache
    again = Resolver(str(tmp_path)).resolve_lines(lines, str(main), budget=120)
    for found in (result, again):
        assert {key[0]: r.fast_path for key, r in found.resolutions.items()} == {
            "Worker.inner": "asyncio",
            "Worker.outer": "asyncio",
            "main": "asyncio",
        }
    assert again.cached
