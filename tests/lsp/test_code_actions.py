"""Quick fixes through the LSP, applied the way VS Code and Neovim apply them:
the returned WorkspaceEdit is applied to the client's text in its position
encoding; the result must parse, lose the finding, gain none, and change
nothing outside the edit."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from conc_lsp.rules import opt_in_codes

from .helpers import lsp_lines, open_document
from .raw import RawServer, document_uri
from .test_diagnostics import diagnostics

FIXES = Path(__file__).resolve().parent.parent / "fixtures" / "fixes"


def offset(text: str, position: types.Position, encoding: str) -> int:
    """Offset in ``text`` (whose lines end in "\n") of an LSP position."""
    lines = lsp_lines(text)
    start = sum(len(line) + 1 for line in lines[: position.line])
    line = lines[position.line] if position.line < len(lines) else ""
    units = 0
    for index, char in enumerate(line):
        if units >= position.character:
            return start + index
        units += (
            len(char.encode("utf-8")) if encoding == "utf-8" else (2 if ord(char) > 0xFFFF else 1)
        )
    return start + len(line)


def apply(text: str, edit: types.WorkspaceEdit, uri: str, encoding: str) -> str:
    assert edit.document_changes, "edits come as versioned document changes"
    edits: list[types.TextEdit] = []
    for change in edit.document_changes:
        assert isinstance(change, types.TextDocumentEdit)
        assert change.text_document.uri == uri
        edits.extend(e for e in change.edits if isinstance(e, types.TextEdit))
    spans = sorted(
        (
            (offset(text, e.range.start, encoding), offset(text, e.range.end, encoding), e.new_text)
            for e in edits
        ),
        reverse=True,
    )
    for start, end, new_text in spans:
        text = text[:start] + new_text + text[end:]
    return text


def replace_text(client: LanguageClient, uri: str, version: int, text: str) -> None:
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
        )
    )


async def actions(
    client: LanguageClient, uri: str, diagnostic: types.Diagnostic | None, only: list[str] | None
) -> list[types.CodeAction]:
    full = types.Range(
        start=types.Position(line=0, character=0), end=types.Position(line=10_000, character=0)
    )
    result = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=diagnostic.range if diagnostic else full,
            context=types.CodeActionContext(
                diagnostics=[diagnostic] if diagnostic else [], only=only
            ),
        )
    )
    return [action for action in result or [] if isinstance(action, types.CodeAction)]


async def test_quick_fix_applied_by_the_client(client: LanguageClient) -> None:
    encoding = client.encoding  # type: ignore[attr-defined]
    # A non-ASCII line before the wait: positions must be right in both encodings.
    text = (
        (FIXES / "conc101_trio.input.py")
        .read_text(encoding="utf-8")
        .replace("# wait for every peer", "# wait 🐍 for every peer")
    )
    uri = open_document(client, text)
    found = await diagnostics(client, uri, count=2)
    target = next(d for d in found if d.code == "CONC101")
    offered = await actions(client, uri, target, [types.CodeActionKind.QuickFix])
    fix = next(a for a in offered if a.title.endswith("(CONC101)"))
    assert fix.kind == types.CodeActionKind.QuickFix and fix.is_preferred
    assert fix.diagnostics and fix.diagnostics[0].code == "CONC101"
    assert fix.edit is not None
    new_text = apply(text, fix.edit, uri, encoding)
    ast.parse(new_text)
    old_lines, new_lines = text.splitlines(), new_text.splitlines()
    assert new_lines[:12] == old_lines[:12]  # everything before the statement
    assert new_lines[-1] == old_lines[-1]  # and after it
    assert "with trio.move_on_after(5, shield=True) as cs:" in new_text
    replace_text(client, uri, 2, new_text)
    after = await diagnostics(client, uri, count=0)
    assert [d.code for d in after] == []


async def test_fix_all_applies_every_safe_fix(client: LanguageClient) -> None:
    encoding = client.encoding  # type: ignore[attr-defined]
    text = (
        (FIXES / "conc103_release.input.py").read_text(encoding="utf-8")
        + "\n\n"
        + (FIXES / "conc202_del.input.py").read_text(encoding="utf-8").replace("import trio\n", "")
    )
    uri = open_document(client, text)
    found = await diagnostics(client, uri, count=2)
    assert {d.code for d in found} == {"CONC103", "CONC202"}
    offered = await actions(client, uri, None, ["source.fixAll.conc"])
    assert [a.kind for a in offered] == ["source.fixAll.conc"]
    assert offered[0].edit is not None
    new_text = apply(text, offered[0].edit, uri, encoding)
    ast.parse(new_text)
    assert "finally:\n            lock.release()" in new_text
    assert "self.conns.pop(key, None)" in new_text
    replace_text(client, uri, 2, new_text)
    assert await diagnostics(client, uri, count=0) == []
    # Nothing left to fix: no action is offered.
    assert await actions(client, uri, None, ["source.fixAll.conc"]) == []


async def test_unsafe_fix_is_labelled_and_not_preferred(client: LanguageClient) -> None:
    text = (FIXES / "conc110_scope.input.py").read_text(encoding="utf-8")
    uri = open_document(client, text)
    found = await diagnostics(client, uri, count=1)
    offered = await actions(client, uri, found[0], None)
    fixes = [a for a in offered if not a.title.startswith("Disable ")]
    assert len(fixes) == 1
    # the rule's title says why it is unsafe; the action says it once
    assert fixes[0].title.lower().count("unsafe") == 1, fixes[0].title
    assert fixes[0].title.endswith("(CONC110)") and not fixes[0].is_preferred
    # fixAll applies safe fixes only
    assert await actions(client, uri, None, ["source.fixAll.conc"]) == []


async def test_no_actions_away_from_findings(client: LanguageClient) -> None:
    text = (FIXES / "conc201_loop.input.py").read_text(encoding="utf-8")
    uri = open_document(client, text)
    await diagnostics(client, uri, count=1)
    cursor = types.Range(
        start=types.Position(line=2, character=0), end=types.Position(line=2, character=0)
    )
    result = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=cursor,
            context=types.CodeActionContext(diagnostics=[]),
        )
    )
    assert not result


GOLDEN_INPUTS = sorted(FIXES.glob("*.input.py"))


async def test_every_golden_fix_through_the_client(client: LanguageClient) -> None:
    """Each quick fix of each golden input, applied as the client applies it: the
    result parses, that diagnostic is gone, none is new, nothing else changed."""
    encoding = client.encoding  # type: ignore[attr-defined]
    applied = 0
    fixed_files: set[str] = set()
    for path in GOLDEN_INPUTS:
        text = path.read_text(encoding="utf-8")
        uri = open_document(client, text, name=f"golden_{path.stem.split('.')[0]}.py")
        found = await pulled_or_pushed(client, uri)
        for diagnostic in found:
            offered = await actions(client, uri, diagnostic, [types.CodeActionKind.QuickFix])
            mine = [
                a
                for a in offered
                if a.title.endswith(f"({diagnostic.code})")
                or a.title.endswith(f"({diagnostic.code}) [unsafe]")
            ]
            for action in mine:
                assert action.edit is not None
                new_text = apply(text, action.edit, uri, encoding)
                ast.parse(new_text)
                edits = [
                    e
                    for change in action.edit.document_changes or []
                    if isinstance(change, types.TextDocumentEdit)
                    for e in change.edits
                    if isinstance(e, types.TextEdit)
                ]
                first = min(e.range.start.line for e in edits)
                last = max(e.range.end.line for e in edits)
                old_lines, new_lines = text.split("\n"), new_text.split("\n")
                assert new_lines[:first] == old_lines[:first], path.name
                tail = len(old_lines) - last - 1
                assert new_lines[len(new_lines) - tail :] == old_lines[last + 1 :], path.name
                fixed_uri = open_document(client, new_text, name=f"fixed_{applied}.py")
                after = await pulled_or_pushed(client, fixed_uri)
                before = sorted(str(d.code) for d in found)
                before.remove(str(diagnostic.code))
                remaining = sorted(str(d.code) for d in after)
                assert all(remaining.count(c) <= before.count(c) for c in remaining), (
                    path.name,
                    action.title,
                    remaining,
                )
                applied += 1
                fixed_files.add(path.name)
    # Every golden input of a default rule got its fix through the client (an
    # opt-in rule's input has no finding under the default settings).
    opt_in = {code.lower() for code in opt_in_codes()}
    wanted = {path.name for path in GOLDEN_INPUTS if path.name[:7] not in opt_in}
    assert fixed_files >= wanted and applied >= len(wanted)


async def pulled_or_pushed(client: LanguageClient, uri: str) -> list[types.Diagnostic]:
    """The document's diagnostics, once they are computed (pull, or wait for the push)."""
    if client.client_name == "neovim":  # type: ignore[attr-defined]
        return await diagnostics(client, uri)
    for _ in range(200):
        if uri in client.diagnostics:
            return list(client.diagnostics[uri])
        await asyncio.sleep(0.05)
    return []


def edits_of(action: types.CodeAction) -> list[types.TextEdit]:
    assert action.edit is not None
    return [
        e
        for change in action.edit.document_changes or []
        if isinstance(change, types.TextDocumentEdit)
        for e in change.edits
        if isinstance(e, types.TextEdit)
    ]


def codes_by_line(found: list[types.Diagnostic]) -> list[tuple[str, int]]:
    return sorted((str(d.code), d.range.start.line) for d in found)


NOQA_INPUTS = GOLDEN_INPUTS


async def test_disable_for_this_line_on_every_finding(client: LanguageClient) -> None:
    """Every finding offers "Disable CODE for this line": applied as the client
    applies it, the text parses, only that line changed (a `# noqa: CODE`
    added), that finding is gone and every other one is still there."""
    encoding = client.encoding  # type: ignore[attr-defined]
    checked = 0
    for number, path in enumerate(NOQA_INPUTS):
        text = path.read_text(encoding="utf-8")
        uri = open_document(client, text, name=f"noqa_{number}.py")
        found = await pulled_or_pushed(client, uri)
        for diagnostic in found:
            offered = await actions(client, uri, diagnostic, [types.CodeActionKind.QuickFix])
            title = f"Disable {diagnostic.code} for this line"
            noqa = [a for a in offered if a.title == title]
            assert len(noqa) == 1, (path.name, diagnostic.code, [a.title for a in offered])
            action = noqa[0]
            assert action.kind == types.CodeActionKind.QuickFix and not action.is_preferred
            assert action.diagnostics and action.diagnostics[0].code == diagnostic.code
            line = diagnostic.range.start.line
            assert {(e.range.start.line, e.range.end.line) for e in edits_of(action)} == {
                (line, line)
            }
            new_text = apply(text, action.edit, uri, encoding)  # type: ignore[arg-type]
            ast.parse(new_text)
            old_lines, new_lines = text.split("\n"), new_text.split("\n")
            assert len(new_lines) == len(old_lines)
            assert [
                i for i, (a, b) in enumerate(zip(old_lines, new_lines, strict=True)) if a != b
            ] == [line]
            assert new_lines[line].startswith(old_lines[line].rstrip())
            assert f"# noqa: {diagnostic.code}" in new_lines[line]
            fixed_uri = open_document(client, new_text, name=f"noqa_{number}_{checked}.py")
            after = await pulled_or_pushed(client, fixed_uri)
            expected = [
                item for item in codes_by_line(found) if item != (str(diagnostic.code), line)
            ]
            assert codes_by_line(after) == expected, (path.name, diagnostic.code, line)
            checked += 1
    assert checked >= len(NOQA_INPUTS)


NOQA_CASES = """import trio


async def handler(lock: trio.Lock, ev: trio.Event) -> None:
    try:
        pass
    finally:
        await ev.wait()  # noqa: E501
"""


@pytest.mark.init_options({"select": ["CONC101"]})
async def test_disable_joins_an_existing_noqa(client: LanguageClient) -> None:
    encoding = client.encoding  # type: ignore[attr-defined]
    uri = open_document(client, NOQA_CASES)
    found = await diagnostics(client, uri, count=1)
    assert [d.code for d in found] == ["CONC101"]
    offered = await actions(client, uri, found[0], [types.CodeActionKind.QuickFix])
    action = next(a for a in offered if a.title == "Disable CONC101 for this line")
    new_text = apply(NOQA_CASES, action.edit, uri, encoding)  # type: ignore[arg-type]
    assert new_text == NOQA_CASES.replace("# noqa: E501", "# noqa: E501, CONC101")
    ast.parse(new_text)
    replace_text(client, uri, 2, new_text)
    assert await diagnostics(client, uri, count=0) == []


CONTINUED = """import trio


async def handler(ev: trio.Event) -> None:
    try:
        pass
    finally:
        await \\
            ev.wait()
"""


@pytest.mark.init_options({"select": ["CONC101"]})
async def test_no_disable_where_no_comment_can_go(client: LanguageClient) -> None:
    """A line continued by a backslash cannot end in a comment: no action
    (one that broke the file would be worse than none)."""
    uri = open_document(client, CONTINUED)
    found = await diagnostics(client, uri, count=1)
    assert [d.code for d in found] == ["CONC101"]
    offered = await actions(client, uri, found[0], [types.CodeActionKind.QuickFix])
    assert [a for a in offered if a.title.startswith("Disable ")] == []
    assert any(a.title.endswith("(CONC101)") for a in offered)  # the fix is still there


def test_analyse_action_on_a_finding_without_a_fix() -> None:
    """A finding with no quick fix offers "Analyse concurrency" of its function;
    the command it carries builds that function's report.  (Over raw JSON:
    lsprotocol reads a CodeAction that carries a command as a bare Command.)"""
    text = (FIXES.parent / "rules" / "conc301.py").read_text(encoding="utf-8")
    uri = document_uri("analyse_action.py")
    server = RawServer()
    try:
        server.initialize()
        server.open(uri, text)
        whole = {"start": {"line": 0, "character": 0}, "end": {"line": 10_000, "character": 0}}
        answer = server.call(
            "textDocument/codeAction",
            {
                "textDocument": {"uri": uri},
                "range": whole,
                "context": {"diagnostics": [], "only": ["quickfix"]},
            },
        )
        offered = answer["result"]
        analyse = [a for a in offered if "command" in a]
        disable = [a for a in offered if a["title"] == "Disable CONC301 for this line"]
        assert len(disable) == text.count("# expect: CONC301")
        # one per function with a finding and no fix (conc301's findings have none)
        assert len(analyse) >= 3
        for action in analyse:
            assert action["kind"] == "quickfix" and "edit" not in action
            assert action["title"].startswith("Analyse concurrency of ")
            assert action["command"]["command"] == "conc.analyse"
            assert action["command"]["arguments"][0] == uri
        command = analyse[0]["command"]
        result = server.call(
            "workspace/executeCommand",
            {"command": command["command"], "arguments": command["arguments"]},
        )["result"]
        target = command["arguments"][1]
        assert result["markdown"].startswith(f"## Concurrency analysis: `{target}`")
    finally:
        server.close()
