"""Positions in the negotiated encoding, and lines counted the LSP way."""

from __future__ import annotations

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from .helpers import hints, label_text, lsp_lines, open_document, pos, resolved, summary, units

pytestmark = pytest.mark.asyncio(loop_scope="module")

# é is 2 UTF-8 bytes / 1 UTF-16 unit, 中 and 文 3 bytes / 1 unit,
# 🐍 4 bytes / 2 units (a surrogate pair).
WIDE = (
    "import trio\n"
    "\n"
    "\n"
    "async def f(ev):\n"
    '    x = "🐍é中"; await trio.sleep(0); y = "文🐍"\n'
    '    s = "🐍🐍"; await ev.wait()\n'
    "    # 🐍 comment é\n"
    '    await trio.sleep("中文🐍")  # 🐍\n'
)


def expected_end(line: str, construct: str) -> int:
    """Code-point column just after ``construct`` on ``line``."""
    return line.index(construct) + len(construct)


async def test_hint_positions_after_wide_characters(module_client: LanguageClient) -> None:
    client = module_client
    enc = client.encoding  # type: ignore[attr-defined]
    lines = lsp_lines(WIDE)
    uri = open_document(client, WIDE)
    found = await hints(client, uri)

    line4, line5, line7 = lines[4], lines[5], lines[7]
    end4 = line4[: expected_end(line4, "await trio.sleep(0)")]
    end5 = line5[: expected_end(line5, "await ev.wait()")]
    end7 = line7[: expected_end(line7, 'await trio.sleep("中文🐍")')]
    if enc == "utf-8":
        chars = [len(end4.encode("utf-8")), len(end5.encode("utf-8")), len(end7.encode("utf-8"))]
    else:
        chars = [
            len(end4.encode("utf-16-le")) // 2,
            len(end5.encode("utf-16-le")) // 2,
            len(end7.encode("utf-16-le")) // 2,
        ]
    # guard the test itself: the encodings really differ on these lines
    assert len(end4.encode("utf-8")) != len(end4.encode("utf-16-le")) // 2 != len(end4)
    assert summary(found) == [
        (4, chars[0], "<- checkpoint"),
        (5, chars[1], "<- checkpoint"),
        (7, chars[2], "<- checkpoint"),
    ]
    found = await resolved(client, found)
    for hint in found:
        assert hint.padding_left is True
        assert isinstance(hint.tooltip, types.MarkupContent)
        assert hint.tooltip.kind == types.MarkupKind.Markdown
        assert hint.tooltip.value.strip()


async def test_hover_range_covers_the_await_keyword(module_client: LanguageClient) -> None:
    client = module_client
    enc = client.encoding  # type: ignore[attr-defined]
    lines = lsp_lines(WIDE)
    uri = open_document(client, WIDE)
    for number in (4, 5, 7):
        line = lines[number]
        column = line.index("await")
        start = units(line[:column], enc)
        end = units(line[: column + len("await")], enc)
        for character in (start, start + 2, end):  # at, inside and just after the keyword
            hover = await client.text_document_hover_async(
                types.HoverParams(
                    text_document=types.TextDocumentIdentifier(uri=uri),
                    position=types.Position(line=number, character=character),
                )
            )
            assert hover is not None, (number, character)
            assert hover.range == types.Range(
                start=types.Position(line=number, character=start),
                end=types.Position(line=number, character=end),
            )
            assert isinstance(hover.contents, types.MarkupContent)
            assert hover.contents.kind == types.MarkupKind.Markdown
            assert "**Checkpoint**" in hover.contents.value
            assert "in `f`" in hover.contents.value
        # before the keyword (on the `;` + space) there is nothing to explain
        before = await client.text_document_hover_async(
            types.HoverParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line=number, character=start - 1),
            )
        )
        assert before is None


async def test_hover_on_line_start_is_not_the_keyword(module_client: LanguageClient) -> None:
    """Column 0 of a line whose `await` is far right: no hover."""
    client = module_client
    uri = open_document(client, WIDE)
    hover = await client.text_document_hover_async(
        types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=4, character=0),
        )
    )
    assert hover is None


# Characters str.splitlines() breaks at but LSP (and Python) do not:
# \f \v \x1c \x1d \x1e \x85 U+2028 U+2029.
ODD_BREAKS = (
    "import trio\n"
    "\f\n"
    "async def f(ev):\n"
    '    s = "a\u2028b\u2029c"  # d\x0be\x1cf\x1dg\x1eh\x85i\u2028j\n'
    "    await trio.sleep(0)\n"
    "\f\n"
    "async def g(ev):\n"
    '    t = "\u2028"; await ev.wait()\n'
    "    await trio.sleep(1)\r\n"
    "    await trio.sleep(2)\r"
    "    await trio.sleep(3)\n"
)


async def test_hint_lines_count_only_lsp_line_breaks(module_client: LanguageClient) -> None:
    client = module_client
    enc = client.encoding  # type: ignore[attr-defined]
    lines = lsp_lines(ODD_BREAKS)
    assert len(lines) == 12
    assert len(ODD_BREAKS.splitlines()) > 12  # the trap is really there
    uri = open_document(client, ODD_BREAKS)
    found = await hints(client, uri)
    expected = []
    for number, line in enumerate(lines):
        if "await " in line:
            column = len(line.rstrip())
            expected.append((number, units(line[:column], enc), "<- checkpoint"))
    assert [e[0] for e in expected] == [4, 7, 8, 9, 10]
    assert summary(found) == expected

    # hover on the line after U+2028 inside a string
    column = lines[7].index("await")
    hover = await client.text_document_hover_async(
        types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=pos(client, lines, 7, column),
        )
    )
    assert hover is not None
    assert hover.range is not None
    assert hover.range.start == pos(client, lines, 7, column)
    assert hover.range.end == pos(client, lines, 7, column + 5)

    # an incremental edit below the odd characters lands on the right line:
    # insert a new await line before line 10 ("    await trio.sleep(3)")
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(
                        start=pos(client, lines, 10, 0), end=pos(client, lines, 10, 0)
                    ),
                    text="    await ev.wait()\n",
                )
            ],
        )
    )
    found = await hints(client, uri)
    assert [(h.position.line, label_text(h)) for h in found] == [
        (4, "<- checkpoint"),
        (7, "<- checkpoint"),
        (8, "<- checkpoint"),
        (9, "<- checkpoint"),
        (10, "<- checkpoint"),
        (11, "<- checkpoint"),
    ]
    assert found[4].position.character == len("    await ev.wait()")
    assert found[5].position.character == len("    await trio.sleep(3)")
