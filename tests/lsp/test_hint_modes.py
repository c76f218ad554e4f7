"""hints.show and hints.max-length over the protocol: the default hides bare
checkpoints (and look-alikes in sync code), "all" shows the whole map, the
cap holds, and compact labels get a legend in hover (issue #14)."""

from __future__ import annotations

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from tests.rule_settings import SEED_RULES

from .helpers import change_configuration, hints, label_text, lsp_lines, open_document, pos

pytestmark = pytest.mark.asyncio(loop_scope="function")

# A workspace of default hint settings (the shared conftest asks for "all").
DEFAULTS = "[tool.conc-lsp]\nselect = [{}]\n".format(", ".join(f'"{code}"' for code in SEED_RULES))

SOURCE = (
    "import trio\n"  # 0
    "\n"  # 1
    "\n"  # 2
    "async def serve(ev, lock):\n"  # 3
    "    await trio.sleep(0)\n"  # 4  bare: hidden by default
    "    try:\n"  # 5
    "        await ev.wait()\n"  # 6  bare: hidden by default
    "    except BaseException:\n"  # 7
    "        await trio.sleep(1)\n"  # 8  except
    "        raise\n"  # 9
    "    finally:\n"  # 10
    "        with trio.move_on_after(3) as cs:\n"  # 11
    "            cs.shield = True\n"  # 12
    "            await ev.wait()\n"  # 13 finally · shielded · bounded
    "    async with trio.open_nursery() as nursery:\n"  # 14 waits for children
    "        nursery.start_soon(trio.sleep, 1)\n"  # 15 look-alike in async code
    "    async with lock:\n"  # 16 bare: hidden by default
    "        ev.set()\n"  # 17 look-alike in async code
    "\n"  # 18
    "\n"  # 19
    "def on_done(ev, lock):\n"  # 20 a sync callback
    "    ev.set()\n"  # 21 hidden by default
    "    lock.release()\n"  # 22 hidden by default
)
DEFAULT_LINES = [8, 13, 14, 15, 17]
ALL_LINES = [4, 6, 8, 13, 14, 15, 16, 17, 21, 22]


def lines_of(found: list[types.InlayHint]) -> list[int]:
    return sorted(hint.position.line for hint in found)


@pytest.mark.pyproject(DEFAULTS)
async def test_default_hides_bare_checkpoints_and_all_shows_them(client: LanguageClient) -> None:
    uri = open_document(client, SOURCE)
    found = await hints(client, uri)
    assert lines_of(found) == DEFAULT_LINES
    assert "<- checkpoint" not in {label_text(hint) for hint in found}
    by_line = {hint.position.line: label_text(hint) for hint in found}
    assert by_line[8] == "<- except BaseException"
    assert by_line[13] == "<- finally · shielded · bounded"

    change_configuration(client, {"conc-lsp": {"hints": {"show": "all"}}})
    found = await hints(client, uri)
    assert lines_of(found) == ALL_LINES
    by_line = {hint.position.line: label_text(hint) for hint in found}
    assert by_line[4] == by_line[6] == "<- checkpoint"
    assert by_line[21] == "<- wakes waiters, no switch"

    change_configuration(client, {"conc-lsp": {"hints": {"show": "context"}}})
    assert lines_of(await hints(client, uri)) == DEFAULT_LINES


@pytest.mark.client_config({"conc-lsp": {"hints": {"maxLength": 20}}})
async def test_labels_fit_the_cap(client: LanguageClient) -> None:
    uri = open_document(client, SOURCE)
    found = await hints(client, uri)
    texts = [label_text(hint) for hint in found]
    assert texts and all(len(text) <= 20 for text in texts), texts
    by_line = {hint.position.line: label_text(hint) for hint in found}
    # whole words dropped, the most important kept, one ellipsis says so
    assert by_line[13] == "<- finally …"
    tooltip = next(hint for hint in found if hint.position.line == 13).tooltip
    if tooltip is not None:  # Neovim resolves tooltips later
        assert isinstance(tooltip, types.MarkupContent)
        assert "**shielded**" in tooltip.value and "**bounded**" in tooltip.value


async def _hover(client: LanguageClient, uri: str, line: int, column: int) -> str:
    lines = lsp_lines(SOURCE)
    hover = await client.text_document_hover_async(
        types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=pos(client, lines, line, column),
        )
    )
    assert hover is not None
    assert isinstance(hover.contents, types.MarkupContent)
    return hover.contents.value


@pytest.mark.client_config({"conc-lsp": {"hints": {"labelStyle": "compact"}}})
async def test_compact_style_hover_has_a_legend(client: LanguageClient) -> None:
    uri = open_document(client, SOURCE)
    labels = {label_text(hint) for hint in await hints(client, uri)}
    assert "⇄ F S T" in labels
    text = await _hover(client, uri, 13, len("            aw"))
    assert "**Legend**" in text and "`S` shielded" in text and "`F` finally" in text
    # the arrow style needs none
    change_configuration(client, {"conc-lsp": {"hints": {"labelStyle": "arrow"}}})
    await hints(client, uri)  # the change has been handled once this answers
    assert "**Legend**" not in await _hover(client, uri, 13, len("            aw"))


async def test_hover_in_an_except_handler_is_one_code_span(client: LanguageClient) -> None:
    """Not "an `except `BaseException`` handler" (nested backticks)."""
    uri = open_document(client, SOURCE)
    text = await _hover(client, uri, 8, len("        aw"))
    assert "an `except BaseException` handler" in text
    assert "``" not in text
