"""Garbage in: an answer (a list, possibly empty), and a live server after.
How fast the answers come is measured by benchmarks/hostile_input.py."""

from __future__ import annotations

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from .helpers import errors_reported, hints, open_document, summary

pytestmark = pytest.mark.asyncio(loop_scope="module")

GOOD = "import trio\n\nasync def ok():\n    await trio.sleep(0)\n"
NESTED = "(" * 200 + "1" + ")" * 200

GARBAGE = {
    "unclosed-def": "async def f(:",
    "nul-byte": "import trio\nasync def f():\n    await trio.sleep(0)\n\x00\n",
    "nul-only": "\x00",
    "nested-200": f"x = {NESTED}\n",
    "nested-200-await": f"async def f(g):\n    x = {'(' * 200}await g(){')' * 200}\n",
    "nested-99-await": f"async def f(g):\n    x = {'(' * 99}await g(){')' * 99}\n",
    "mixed-tabs": "async def f():\n\tawait g()\n        await h()\n",
    "only-newlines": "\n" * 1000,
    "crlf-mix": "async def f(g):\r\n    await g()\r    await g()\n",
    "bom": "\ufeffasync def f(g):\n    await g()\n",
}

# What each garbage document may answer: None means "any list" (the test
# still checks it is a list of hints); otherwise the exact lines of the hints.
EXPECTED_LINES: dict[str, list[int] | None] = {
    "unclosed-def": [],
    "nul-byte": [2],  # ast refuses the NUL line; the function before it is still analysed
    "nul-only": [],
    "nested-200": [],
    "nested-200-await": [],  # 201 levels: CPython refuses it ("too many nested parentheses")
    "nested-99-await": [1],
    "mixed-tabs": [],  # TabError: does not parse
    "only-newlines": [],
    "crlf-mix": [1, 2],
    "bom": None,  # editors strip the BOM before sending text; Python refuses U+FEFF inside
}


async def still_alive(client: LanguageClient) -> None:
    uri = open_document(client, GOOD)
    assert summary(await hints(client, uri)) == [
        (3, len("    await trio.sleep(0)"), "<- checkpoint")
    ]


@pytest.mark.parametrize("name", list(GARBAGE))
async def test_garbage_gets_an_answer(module_client: LanguageClient, name: str) -> None:
    client = module_client
    uri = open_document(client, GARBAGE[name])
    found = await hints(client, uri)
    hover = await client.text_document_hover_async(
        types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=1, character=4),
        )
    )
    assert all(isinstance(h, types.InlayHint) for h in found)
    expected = EXPECTED_LINES[name]
    if expected is not None:
        assert [h.position.line for h in found] == expected
    assert hover is None or isinstance(hover, types.Hover)
    await still_alive(client)
    assert errors_reported(client) == []


async def test_twenty_thousand_awaits(module_client: LanguageClient) -> None:
    client = module_client
    body = "    await trio.sleep(0)\n"
    text = "import trio\n\nasync def f():\n" + body * 20_000
    uri = open_document(client, text)
    visible = await hints(
        client,
        uri,
        types.Range(
            start=types.Position(line=0, character=0), end=types.Position(line=60, character=0)
        ),
    )
    assert [h.position.line for h in visible] == list(range(3, 60))
    assert all(h.position.character == len(body) - 1 for h in visible)

    middle = await hints(
        client,
        uri,
        types.Range(
            start=types.Position(line=10_000, character=0),
            end=types.Position(line=10_050, character=0),
        ),
    )
    assert [h.position.line for h in middle] == list(range(10_000, 10_050))

    everything = await hints(client, uri)
    assert len(everything) == 20_000
    assert everything[-1].position.line == 20_002
    # an edit at the top of the big file is answered too
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(
                        start=types.Position(line=3, character=4),
                        end=types.Position(line=3, character=4),
                    ),
                    text="x = 1; ",
                )
            ],
        )
    )
    visible = await hints(
        client,
        uri,
        types.Range(
            start=types.Position(line=0, character=0), end=types.Position(line=5, character=0)
        ),
    )
    assert [(h.position.line, h.position.character) for h in visible] == [
        (3, len("    x = 1; await trio.sleep(0)")),
        (4, len(body) - 1),
    ]
    # The times of these requests are figures of benchmarks/hostile_input.py.
    await still_alive(client)
    assert errors_reported(client) == []
