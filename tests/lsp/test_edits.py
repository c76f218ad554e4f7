"""Incremental edits, through a syntax error and back; odd requests."""

from __future__ import annotations

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from .helpers import (
    errors_reported,
    eventually,
    hints,
    lsp_lines,
    open_document,
    pos,
    summary,
    units,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

EDIT_DOC = (
    "import trio\n"  # 0
    "\n"  # 1
    "\n"  # 2
    "async def first(ev):\n"  # 3
    "    await trio.sleep(1)  # é\n"  # 4
    "    await ev.wait()\n"  # 5
    "\n"  # 6
    "\n"  # 7
    "async def second(ev):\n"  # 8
    "    with trio.move_on_after(1):\n"  # 9
    "        await ev.wait()  # 🐍 中\n"  # 10  <- the new line is typed after this one
    "        await trio.sleep(3)\n"  # 11
    "\n"  # 12
    "\n"  # 13
    "async def third(lock):\n"  # 14
    '    s = "🐍🐍"\n'  # 15
    "    async with lock:\n"  # 16
    '        await trio.sleep(4); t = "é"\n'  # 17
)
TYPED = '        x = ("🐍", await trio.sleep(5))'
TYPED_AWAIT = "await trio.sleep(5)"


def expected_hints(
    lines: list[str], encoding: str, typed_complete: bool
) -> list[tuple[int, int, str]]:
    """The hints the text calls for, computed from the text alone."""
    result = []
    function = ""
    for number, line in enumerate(lines):
        if line.startswith("async def "):
            function = line[len("async def ") : line.index("(")]
        label = "<- checkpoint · bounded" if function == "second" else "<- checkpoint"
        stripped = line.strip()
        if stripped.startswith("await "):
            code = line.split("  #")[0].split(";")[0].rstrip()
            result.append((number, units(code, encoding), label))
        elif stripped.startswith("async with "):
            end = line.index("lock:") + len("lock:")  # the label follows the colon
            result.append((number, units(line[:end], encoding), "<- checkpoint (enter)"))
        elif typed_complete and line == TYPED:
            end = line.index(TYPED_AWAIT) + len(TYPED_AWAIT)
            result.append((number, units(line[:end], encoding), label))
    return sorted(result)


def change(
    client: LanguageClient,
    uri: str,
    version: int,
    lines: list[str],
    start: tuple[int, int],
    end: tuple[int, int],
    text: str,
) -> None:
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(
                        start=pos(client, lines, *start), end=pos(client, lines, *end)
                    ),
                    text=text,
                )
            ],
        )
    )


def apply(lines: list[str], start: tuple[int, int], end: tuple[int, int], text: str) -> list[str]:
    """The same edit on our own copy (code-point columns)."""
    joined = "\n".join(lines)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)
    a = offsets[start[0]] + start[1]
    b = offsets[end[0]] + end[1]
    return lsp_lines(joined[:a] + text + joined[b:])


async def test_typing_through_a_syntax_error(module_client: LanguageClient) -> None:
    client = module_client
    enc = client.encoding  # type: ignore[attr-defined]
    lines = lsp_lines(EDIT_DOC)
    uri = open_document(client, EDIT_DOC)
    version = 1
    original = expected_hints(lines, enc, typed_complete=False)
    assert [line for line, _, _ in original] == [4, 5, 10, 11, 16, 17]
    assert summary(await hints(client, uri)) == original

    # Enter at the end of line 10 (VS Code auto-indents the new line)
    edit = ((10, len(lines[10])), (10, len(lines[10])), "\n        ")
    change(client, uri, version := version + 1, lines, *edit)
    lines = apply(lines, *edit)
    assert summary(await hints(client, uri)) == expected_hints(lines, enc, False)

    # then the rest of the line, one character at a time
    broken_states = 0
    for char in TYPED.strip():
        column = len(lines[11])
        edit = ((11, column), (11, column), char)
        change(client, uri, version := version + 1, lines, *edit)
        lines = apply(lines, *edit)
        complete = lines[11] == TYPED
        found = summary(await hints(client, uri))
        expected = expected_hints(lines, enc, complete)
        assert found == expected, (lines[11], found, expected)
        try:
            compile("\n".join(lines), "doc", "exec")
        except SyntaxError:
            broken_states += 1
    assert broken_states >= len(TYPED.strip()) - 3  # the file really was broken meanwhile
    assert lines[11] == TYPED
    final = summary(await hints(client, uri))
    assert [line for line, _, _ in final] == [4, 5, 10, 11, 12, 17, 18]
    typed_end = TYPED.index(TYPED_AWAIT) + len(TYPED_AWAIT)
    assert (11, units(TYPED[:typed_end], enc), "<- checkpoint · bounded") in final

    # delete the typed line again (from the end of line 10 to the end of line 11)
    edit = ((10, len(lines[10])), (11, len(lines[11])), "")
    change(client, uri, version := version + 1, lines, *edit)
    lines = apply(lines, *edit)
    assert lines == lsp_lines(EDIT_DOC)
    assert summary(await hints(client, uri)) == original
    assert errors_reported(client) == []


async def test_broken_function_keeps_its_older_hints(module_client: LanguageClient) -> None:
    """While `second` does not parse, its hints are the last good ones, moved
    by the edits; the other functions are re-analysed."""
    client = module_client
    enc = client.encoding  # type: ignore[attr-defined]
    lines = lsp_lines(EDIT_DOC)
    uri = open_document(client, EDIT_DOC)
    assert len(await hints(client, uri)) == 6  # as an editor does right after opening
    # break `second` with an unclosed bracket on a new line 11
    edit = ((10, len(lines[10])), (10, len(lines[10])), "\n        x = (")
    change(client, uri, 2, lines, *edit)
    lines = apply(lines, *edit)
    # insert a line at the top of `third`'s body (it still parses): its hints move down
    edit = ((16, 0), (16, 0), "    await lock.acquire()\n")
    change(client, uri, 3, lines, *edit)
    lines = apply(lines, *edit)
    # and widen the first line of `first` with wide characters before its await
    edit = ((4, 4), (4, 4), 'y = "🐍中"; ')
    change(client, uri, 4, lines, *edit)
    lines = apply(lines, *edit)
    found = summary(await hints(client, uri))
    line4_end = lines[4].index("await trio.sleep(1)") + len("await trio.sleep(1)")
    assert found == [
        (4, units(lines[4][:line4_end], enc), "<- checkpoint"),
        (5, units(lines[5], enc), "<- checkpoint"),
        (10, units("        await ev.wait()", enc), "<- checkpoint · bounded"),
        (12, units(lines[12], enc), "<- checkpoint · bounded"),
        (16, units(lines[16], enc), "<- checkpoint"),
        (18, units("    async with lock:", enc), "<- checkpoint (enter)"),
        (19, units("        await trio.sleep(4)", enc), "<- checkpoint"),
    ]
    assert lines[12] == "        await trio.sleep(3)"
    assert lines[16] == "    await lock.acquire()"
    # hover still finds the moved keyword of the broken function
    column = lines[12].index("await")
    hover = await client.text_document_hover_async(
        types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=pos(client, lines, 12, column),
        )
    )
    assert hover is not None and hover.range is not None
    assert hover.range.start == pos(client, lines, 12, column)
    assert errors_reported(client) == []


async def test_several_changes_in_one_notification(module_client: LanguageClient) -> None:
    """Multi-cursor typing: VS Code sends the changes bottom-up in one
    notification, each range in the text left by the previous change."""
    client = module_client
    enc = client.encoding  # type: ignore[attr-defined]
    lines = lsp_lines(EDIT_DOC)
    uri = open_document(client, EDIT_DOC)
    assert len(await hints(client, uri)) == 6
    edits = [
        ((17, 8), (17, 8), 'z = "🐍"; '),  # before `await trio.sleep(4)`
        ((10, 8), (10, 8), "q = '中🐍'; "),  # before `await ev.wait()` in `second`
        ((4, 0), (5, 0), ""),  # delete line 4 of `first`
    ]
    content_changes = []
    for start, end, text in edits:
        content_changes.append(
            types.TextDocumentContentChangePartial(
                range=types.Range(start=pos(client, lines, *start), end=pos(client, lines, *end)),
                text=text,
            )
        )
        lines = apply(lines, start, end, text)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=content_changes,
        )
    )
    found = summary(await hints(client, uri))
    ends = {
        4: "    await ev.wait()",
        9: "        q = '中🐍'; await ev.wait()",
        10: "        await trio.sleep(3)",
        15: "    async with lock:",
        16: '        z = "🐍"; await trio.sleep(4)',
    }
    assert [(line, char) for line, char, _ in found] == [
        (line, units(text, enc)) for line, text in ends.items()
    ]
    for line, text in ends.items():
        assert lines[line].startswith(text)
    assert errors_reported(client) == []


async def test_whole_document_change(module_client: LanguageClient) -> None:
    client = module_client
    enc = client.encoding  # type: ignore[attr-defined]
    uri = open_document(client, EDIT_DOC)
    assert len(await hints(client, uri)) == 6
    # drop `first` (lines 3-7) and append a function
    new_text = "".join(
        EDIT_DOC.splitlines(keepends=True)[:3] + EDIT_DOC.splitlines(keepends=True)[8:]
    )
    new_text += "\n\nasync def fourth():\n    await trio.sleep(6)\n"
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=new_text)],
        )
    )
    lines = lsp_lines(new_text)
    assert summary(await hints(client, uri)) == expected_hints(lines, enc, False)
    assert [h.position.line for h in await hints(client, uri)] == [5, 6, 11, 12, 16]
    # and a whole-document change to something that does not parse, then back
    for text in ("async def f(:\n", new_text):
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=3),
                content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
            )
        )
        found = await hints(client, uri)
        if text == new_text:
            assert summary(found) == expected_hints(lines, enc, False)
        else:
            assert found == []
    assert errors_reported(client) == []


async def test_change_to_unopened_document_and_odd_requests(module_client: LanguageClient) -> None:
    client = module_client
    missing = (client.root / "never_opened.py").as_uri()  # type: ignore[attr-defined]
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=missing, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(
                        start=types.Position(line=0, character=0),
                        end=types.Position(line=0, character=0),
                    ),
                    text="async def f():\n    await g()\n",
                )
            ],
        )
    )
    assert await hints(client, missing) == []
    hover = await client.text_document_hover_async(
        types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=missing),
            position=types.Position(line=1, character=4),
        )
    )
    assert hover is None

    empty = open_document(client, "")
    assert await hints(client, empty) == []
    for line, character in ((0, 0), (0, 9), (7, 3)):
        hover = await client.text_document_hover_async(
            types.HoverParams(
                text_document=types.TextDocumentIdentifier(uri=empty),
                position=types.Position(line=line, character=character),
            )
        )
        assert hover is None
    # typing into the empty document works
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=empty, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(
                        start=types.Position(line=0, character=0),
                        end=types.Position(line=0, character=0),
                    ),
                    text="async def f(g):\n    await g()\n",
                )
            ],
        )
    )
    assert summary(await hints(client, empty)) == [(1, len("    await g()"), "<- checkpoint")]
    # a closed document is forgotten
    client.text_document_did_close(
        types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=empty))
    )
    assert await hints(client, empty) == []
    assert errors_reported(client) == []


# no final newline: the last hint sits at the very end of the document
TAIL_DOC = "import trio\n\nasync def f():\n    await trio.sleep(1)\n    await trio.sleep(2)"


async def test_range_past_the_end_of_the_document(module_client: LanguageClient) -> None:
    client = module_client
    uri = open_document(client, TAIL_DOC)
    past = types.Range(
        start=types.Position(line=3, character=0), end=types.Position(line=500, character=80)
    )
    assert [h.position.line for h in await hints(client, uri, past)] == [3, 4]
    hover = await client.text_document_hover_async(
        types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=200, character=4),
        )
    )
    assert hover is None
    assert errors_reported(client) == []


async def test_range_entirely_past_the_end_is_empty(module_client: LanguageClient) -> None:
    client = module_client
    uri = open_document(client, TAIL_DOC)
    beyond = types.Range(
        start=types.Position(line=100, character=0), end=types.Position(line=200, character=0)
    )
    assert await hints(client, uri, beyond) == []


async def test_broken_before_first_request_keeps_open_time_hints(
    module_client: LanguageClient,
) -> None:
    client = module_client
    enc = client.encoding  # type: ignore[attr-defined]
    lines = lsp_lines(EDIT_DOC)
    uri = open_document(client, EDIT_DOC)
    # no request in between: the edit arrives right after didOpen
    edit = ((10, len(lines[10])), (10, len(lines[10])), "\n        x = (")
    change(client, uri, 2, lines, *edit)
    lines = apply(lines, *edit)
    found = summary(await hints(client, uri))
    assert found == [
        (4, units(lines[4].split("  #")[0], enc), "<- checkpoint"),
        (5, units(lines[5], enc), "<- checkpoint"),
        (10, units("        await ev.wait()", enc), "<- checkpoint · bounded"),
        (12, units(lines[12], enc), "<- checkpoint · bounded"),
        (17, units("    async with lock:", enc), "<- checkpoint (enter)"),
        (18, units("        await trio.sleep(4)", enc), "<- checkpoint"),
    ]


SNIPPETS = [
    "await x()",
    "\n",
    "\n    ",
    "(",
    ")",
    "x",
    " ",
    "é",
    "🐍",
    "中",
    "#",
    "'",
    ":",
    "\n    await ev.wait()",
    "async with a:\n        pass\n",
    "try:\n",
    "finally:\n",
]


def offset(lines: list[str], line: int, column: int) -> int:
    return sum(len(text) + 1 for text in lines[:line]) + column


def parses(lines: list[str]) -> bool:
    try:
        compile("\n".join(lines), "doc", "exec", dont_inherit=True)
    except SyntaxError:
        return False
    return True


async def test_random_edits_match_a_fresh_open(module_client: LanguageClient) -> None:
    """Seeded random edits with wide characters, sent in the client's encoding:
    whenever the text parses, the edited document's hints equal those of the
    same text opened fresh."""
    import random

    client = module_client
    rnd = random.Random(20250)
    lines = lsp_lines(EDIT_DOC)
    uri = open_document(client, EDIT_DOC)
    compared = broken = 0
    good = lines
    for version in range(2, 80):
        l1 = rnd.randrange(len(lines))
        c1 = rnd.randint(0, len(lines[l1]))
        l2, c2 = l1, c1
        if rnd.random() < 0.3:
            l2 = min(len(lines) - 1, l1 + rnd.randint(0, 2))
            c2 = rnd.randint(0, len(lines[l2])) if l2 > l1 else rnd.randint(c1, len(lines[l1]))
        text = rnd.choice(SNIPPETS) if rnd.random() < 0.8 else ""
        removed = "\n".join(lines)[offset(lines, l1, c1) : offset(lines, l2, c2)]
        change(client, uri, version, lines, (l1, c1), (l2, c2), text)
        lines = apply(lines, (l1, c1), (l2, c2), text)
        found = await hints(client, uri)
        if not parses(lines):
            broken += 1
            if rnd.random() < 0.5:  # undo it, as the user would
                *rest, last = text.split("\n")
                end = (l1 + len(rest), (c1 if not rest else 0) + len(last))
                change(client, uri, version, lines, (l1, c1), end, removed)
                lines = apply(lines, (l1, c1), end, removed)
                found = await hints(client, uri)
            elif broken >= 3:  # select all, paste the last good text
                end = (len(lines) - 1, len(lines[-1]))
                change(client, uri, version, lines, (0, 0), end, "\n".join(good))
                lines = apply(lines, (0, 0), end, "\n".join(good))
                found = await hints(client, uri)
            if not parses(lines):
                continue
        broken = 0
        good = lines
        fresh = await hints(client, open_document(client, "\n".join(lines)))
        assert summary(found) == summary(fresh), (version, lines)
        compared += 1
    print(f"\nrandom edits: {compared} parsed states compared")
    assert compared >= 30
    assert errors_reported(client) == []


# -- issue 13: changes the strict converter refuses, reused versions ---------

FINALLY_DOC = "import trio\n\n\nasync def f(done):\n    try:\n        pass\n    finally:\n"
LONG_DOC = FINALLY_DOC + "        x = 1\n" * 12 + "        await done.wait()\n"
SHORT_DOC = FINALLY_DOC + "        await done.wait()\n"


def send_raw_change(client: LanguageClient, uri: str, version: object, change: object) -> None:
    """A didChange as some clients send it, which lsprotocol would refuse to build."""
    client.protocol._send_data(
        {
            "jsonrpc": "2.0",
            "method": "textDocument/didChange",
            "params": {
                "textDocument": {"uri": uri, "version": version},
                "contentChanges": [change],
            },
        }
    )


def lsp_range(start: tuple[int, int], end: tuple[int, int]) -> dict[str, object]:
    return {
        "start": {"line": start[0], "character": start[1]},
        "end": {"line": end[0], "character": end[1]},
    }


async def test_change_with_a_negative_position_is_applied(module_client: LanguageClient) -> None:
    client = module_client
    uri = open_document(client, SHORT_DOC)
    # Clamped to the start of the document, as a position past the end is clamped to the end.
    send_raw_change(client, uri, 2, {"range": lsp_range((-1, 0), (0, -3)), "text": "# a\n"})
    found = summary(await hints(client, uri))
    assert found == [(8, len("        await done.wait()"), "<- finally · unshielded")]
    assert errors_reported(client) == []


async def test_change_with_a_null_version_is_applied(module_client: LanguageClient) -> None:
    client = module_client
    uri = open_document(client, SHORT_DOC)
    send_raw_change(client, uri, None, {"range": lsp_range((7, 0), (7, 0)), "text": "\n\n"})
    found = summary(await hints(client, uri))
    assert found == [(9, len("        await done.wait()"), "<- finally · unshielded")]
    assert errors_reported(client) == []


async def current_diagnostics(client: LanguageClient, uri: str) -> list[tuple[object, ...]]:
    """The document's diagnostics as this client has them now (pulled or pushed)."""
    if client.client_name == "neovim":  # type: ignore[attr-defined]
        report = await client.text_document_diagnostic_async(
            types.DocumentDiagnosticParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )
        assert isinstance(report, types.RelatedFullDocumentDiagnosticReport)
        found = list(report.items)
    else:
        found = list(client.diagnostics.get(uri, []))
    return sorted(
        (d.code, d.range.start.line, d.range.start.character, d.range.end.line) for d in found
    )


async def diagnostics_of_a_fresh_open(
    client: LanguageClient, text: str
) -> list[tuple[object, ...]]:
    fresh = open_document(client, text)
    return await eventually(lambda: current_diagnostics(client, fresh), bool, timeout=30)


@pytest.mark.parametrize("how", ["same version", "second didOpen"])
async def test_new_text_under_an_old_version_gets_new_diagnostics(
    module_client: LanguageClient, how: str
) -> None:
    client = module_client
    long_expected = await diagnostics_of_a_fresh_open(client, LONG_DOC)
    short_expected = await diagnostics_of_a_fresh_open(client, SHORT_DOC)
    assert long_expected != short_expected
    uri = open_document(client, LONG_DOC)
    assert await eventually(lambda: current_diagnostics(client, uri), bool, timeout=30) == (
        long_expected
    )
    if how == "same version":
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=1),
                content_changes=[types.TextDocumentContentChangeWholeDocument(text=SHORT_DOC)],
            )
        )
    else:
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri, language_id="python", version=1, text=SHORT_DOC
                )
            )
        )
    found = await eventually(
        lambda: current_diagnostics(client, uri), lambda now: now == short_expected, timeout=30
    )
    assert found == short_expected
    assert all(line < len(lsp_lines(SHORT_DOC)) for *_, line in found)
    assert errors_reported(client) == []
