"""Inlay hints: the requested range, the labels and the tooltips."""

from __future__ import annotations

import asyncio

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from .helpers import (
    WHOLE,
    answer,
    hints,
    lsp_lines,
    open_document,
    pos,
    resolved,
    summary,
    units,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

MANY = (
    "import trio\n"
    "\n"
    "\n"
    "async def f(ev, a, b):\n"
    + "".join(f"    await trio.sleep({n})\n" for n in range(20))  # lines 4..23
    + "    await ev.wait(\n"  # 24: keyword here, construct ends on 26
    "        1,\n"
    "    )\n"
    '    await a(); x = "🐍🐍🐍🐍"; await b()\n'  # 27: two hints on one line
    "    await trio.sleep(99)\n"  # 28
)


def r(
    client: LanguageClient, lines: list[str], a: tuple[int, int], b: tuple[int, int]
) -> types.Range:
    return types.Range(start=pos(client, lines, *a), end=pos(client, lines, *b))


async def test_range_returns_only_hints_inside(module_client: LanguageClient) -> None:
    client = module_client
    lines = lsp_lines(MANY)
    uri = open_document(client, MANY)

    everything = await hints(client, uri)
    assert [h.position.line for h in everything] == [*range(4, 24), 26, 27, 27, 28]

    async def lines_in(a: tuple[int, int], b: tuple[int, int]) -> list[int]:
        return [h.position.line for h in await hints(client, uri, r(client, lines, a, b))]

    assert await lines_in((8, 0), (12, 0)) == [8, 9, 10, 11]
    assert await lines_in((8, 0), (11, 4)) == [8, 9, 10]  # line 11's hint is at its end
    assert await lines_in((8, 10), (12, 3)) == [8, 9, 10, 11]
    assert await lines_in((0, 0), (4, 0)) == []
    assert await lines_in((0, 0), (3, 10)) == []
    # a construct over several lines: its hint sits at its end (line 26)
    assert await lines_in((24, 0), (26, 0)) == []
    assert await lines_in((24, 0), (26, 5)) == [26]
    assert await lines_in((25, 0), (27, 0)) == [26]


async def test_range_columns_on_a_line_with_two_hints(module_client: LanguageClient) -> None:
    client = module_client
    enc = client.encoding  # type: ignore[attr-defined]
    lines = lsp_lines(MANY)
    line = lines[27]
    uri = open_document(client, MANY)
    first_end = line.index("await a()") + len("await a()")
    second_start = line.index("await b()")
    second_end = second_start + len("await b()")

    def chars(found: list[types.InlayHint]) -> list[tuple[int, int]]:
        return [(h.position.line, h.position.character) for h in found]

    only_first = await hints(client, uri, r(client, lines, (27, 0), (27, first_end + 2)))
    assert chars(only_first) == [(27, units(line[:first_end], enc))]
    # starts after the emoji, just before the second await
    only_second = await hints(client, uri, r(client, lines, (27, second_start), (28, 0)))
    assert chars(only_second) == [(27, units(line[:second_end], enc))]
    # a range that ends inside the emoji run: the second hint lies beyond it
    inside = line.index("🐍") + 2
    cut = await hints(client, uri, r(client, lines, (27, 0), (27, inside)))
    assert chars(cut) == [(27, units(line[:first_end], enc))]


LABELS = (
    "import trio\n"  # 0
    "from contextlib import asynccontextmanager\n"  # 1
    "\n"  # 2
    "\n"  # 3
    "async def cleanup(ev, lock, nursery):\n"  # 4
    "    try:\n"  # 5
    "        await trio.sleep(0)\n"  # 6
    "    finally:\n"  # 7
    "        await ev.wait()\n"  # 8
    "        with trio.move_on_after(3) as cs:\n"  # 9
    "            cs.shield = True\n"  # 10
    "            await ev.wait()\n"  # 11
    "    async with trio.open_nursery() as n:\n"  # 12
    "        n.start_soon(trio.sleep, 1)\n"  # 13
    "    ev.set()\n"  # 14
    "    lock.release()\n"  # 15
    "    nursery.start_soon(trio.sleep, 1)\n"  # 16
    "\n"  # 17
    "\n"  # 18
    "@asynccontextmanager\n"  # 19
    "async def resource():\n"  # 20
    "    yield 1\n"  # 21
    "\n"  # 22
    "\n"  # 23
    "async def consume(stream):\n"  # 24
    "    async for item in stream:\n"  # 25
    "        pass\n"  # 26
)

EXPECTED_LABELS = [
    # (line, the text the hint follows, label); the whole map (hints.show = "all")
    (6, "await trio.sleep(0)", "<- checkpoint"),
    (8, "await ev.wait()", "<- finally · unshielded"),
    (11, "await ev.wait()", "<- finally · shielded · bounded"),
    (12, "as n:", "<- waits for children"),  # after the colon, not before it
    (13, "n.start_soon(trio.sleep, 1)", "<- schedules task, no switch"),
    (14, "ev.set()", "<- wakes waiters, no switch"),
    (15, "lock.release()", "<- not a checkpoint"),
    (16, "nursery.start_soon(trio.sleep, 1)", "<- schedules task, no switch"),
    (21, "yield 1", "<- suspend: caller runs"),
    (25, "in stream:", "<- checkpoint each iteration"),
]


async def test_labels_and_tooltips(module_client: LanguageClient) -> None:
    client = module_client
    enc = client.encoding  # type: ignore[attr-defined]
    lines = lsp_lines(LABELS)
    uri = open_document(client, LABELS)
    found = await hints(client, uri)
    expected = [
        (line, units(lines[line][: lines[line].index(text) + len(text)], enc), label)
        for line, text, label in EXPECTED_LABELS
    ]
    assert summary(found) == expected
    found = await resolved(client, found)
    for hint in found:
        assert isinstance(hint.tooltip, types.MarkupContent)
        assert hint.tooltip.kind == types.MarkupKind.Markdown
        assert len(hint.tooltip.value.strip()) > 40
    by_line = {h.position.line: h for h in found}
    tooltip = by_line[11].tooltip
    assert isinstance(tooltip, types.MarkupContent)
    assert "**shielded**" in tooltip.value and "**bounded**" in tooltip.value
    assert "`finally` block" in tooltip.value
    tooltip = by_line[12].tooltip
    assert isinstance(tooltip, types.MarkupContent)
    assert "child task" in tooltip.value
    tooltip = by_line[21].tooltip
    assert isinstance(tooltip, types.MarkupContent)
    assert "`resource`" in tooltip.value


@pytest.mark.parametrize(
    ("line", "call", "offsets"),
    [
        (14, "ev.set()", (0, 1, 2, 3, 5, 7, 8)),  # receiver, dot, name, parentheses
        (15, "lock.release()", (0, 4, 6, 13)),
        (16, "nursery.start_soon(trio.sleep, 1)", (0, 9, 20, 33)),
    ],
)
async def test_hover_on_a_look_alike_call(
    module_client: LanguageClient, line: int, call: str, offsets: tuple[int, ...]
) -> None:
    """The hover of `ev.set()`, `lock.release()`, `start_soon(...)` answers
    anywhere on the call (issue #14: `K` on them returned nothing)."""
    client = module_client
    lines = lsp_lines(LABELS)
    uri = open_document(client, LABELS)
    start = lines[line].index(call)
    for offset in offsets:
        hover = await client.text_document_hover_async(
            types.HoverParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=pos(client, lines, line, start + offset),
            )
        )
        assert hover is not None, (call, offset)
        assert hover.range == types.Range(
            start=pos(client, lines, line, start), end=pos(client, lines, line, start + len(call))
        )
        assert isinstance(hover.contents, types.MarkupContent)
        assert hover.contents.value.startswith(f"**Not a checkpoint**: `{call}`")


async def test_an_answer_nobody_waits_for_any_more_breaks_nothing(
    module_client: LanguageClient,
) -> None:
    """A test that stops waiting for an answer must not break the session for
    the tests after it: the answer that arrives later is taken, not refused
    with a "CANCELLED" error (as it was when the wait cancelled the request)."""
    client = module_client
    text = "import trio\n\nasync def f():\n" + "    await trio.sleep(0)\n" * 2_000
    uri = open_document(client, text)
    request = asyncio.ensure_future(
        client.text_document_inlay_hint_async(
            types.InlayHintParams(text_document=types.TextDocumentIdentifier(uri=uri), range=WHOLE)
        )
    )
    await asyncio.sleep(0)  # sent; no answer can be back yet
    with pytest.raises(TimeoutError):
        await answer(request, timeout=0)
    # answered in order, so after this answer the first one has arrived too
    assert len(await hints(client, uri)) == 2_000
    assert client.error is None
    assert len(await request) == 2_000


async def test_hover_says_when_a_callee_is_not_followed(module_client: LanguageClient) -> None:
    """With resolution off, the hover of a checkpoint says its callee is *not
    followed* (issue #14: hover says "not followed" / "resolving..." where true)."""
    client = module_client
    lines = lsp_lines(LABELS)
    uri = open_document(client, LABELS)
    line = next(number for number, text in enumerate(lines) if "await " in text)
    hover = await client.text_document_hover_async(
        types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=pos(client, lines, line, lines[line].index("await ") + 1),
        )
    )
    assert hover is not None
    assert isinstance(hover.contents, types.MarkupContent)
    assert "Callee: *not followed*." in hover.contents.value
