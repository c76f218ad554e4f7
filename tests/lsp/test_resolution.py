"""Resolved hints through the protocol: syntactic first, resolved after a refresh.

The workspace is a copy of ``tests/fixtures/projects/trio_app``; the server
resolves in its background process and announces the result: it asks a
client that supports it to refresh its hints, and pushes diagnostics again to
a client that does not pull them. The tests wait for those announcements.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from .helpers import (
    hints,
    label_text,
    lsp_lines,
    open_document,
    pos,
    resolved,
    until_announced,
)
from .test_diagnostics import diagnostics

PROJECT = Path(__file__).parents[1] / "fixtures" / "projects" / "trio_app"
RESOLVE_TIMEOUT = 300.0  # seconds: jedi runs niced, and starves on a busy machine
# A pass that spends its time budget keeps the plain labels of what it did not
# reach, and is not retried until the text changes (by design). On a busy
# machine the niced resolver can spend the default 5 s on typeshed alone:
# these tests are about the labels, so the budget is no limit here.
pytestmark = pytest.mark.init_options({"resolve": {"budget": RESOLVE_TIMEOUT}})


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server starts with an empty cache of verdicts (its own folder)."""
    monkeypatch.setenv("CONC_LSP_CACHE_DIR", str(tmp_path / "cache"))


def copy_project(client: LanguageClient) -> tuple[str, str]:
    root: Path = client.root  # type: ignore[attr-defined]
    shutil.copytree(PROJECT, root, dirs_exist_ok=True)
    return (root / "main.py").read_text(encoding="utf-8"), (root / "trio_app" / "net.py").read_text(
        encoding="utf-8"
    )


def label_on(found: list[types.InlayHint], lines: list[str], text: str) -> str:
    line = next(i for i, source in enumerate(lines) if text in source)
    labels = [label_text(h) for h in found if h.position.line == line]
    assert len(labels) == 1, labels
    return labels[0]


async def wait_for_resolution(client: LanguageClient, uri: str, lines: list[str]) -> None:
    """Until the resolved labels arrive; a client that supports it must have
    been asked to refresh (the recorded VS Code 1.65 cannot be: the new
    diagnostics the server pushes tell it)."""

    async def label() -> str:
        return label_on(await hints(client, uri), lines, 'await log_only("x")')

    got = await until_announced(
        client, label, lambda text: "no checkpoint" in text, RESOLVE_TIMEOUT
    )
    assert got == "<- no checkpoint (log_only never yields)"
    if client.client_name == "neovim":  # type: ignore[attr-defined]
        assert client.inlay_hint_refreshes >= 1  # type: ignore[attr-defined]


@pytest.mark.resolve
async def test_syntactic_hints_first_then_resolved_ones(client: LanguageClient) -> None:
    main, _ = copy_project(client)
    lines = lsp_lines(main)
    uri = open_document(client, main, "main.py")
    first = await hints(client, uri)
    # At once: the syntactic labels, before jedi has run.
    assert label_on(first, lines, 'await log_only("x")') == "<- checkpoint"
    await wait_for_resolution(client, uri, lines)
    after = await hints(client, uri)
    never = "<- no checkpoint (log_only never yields)"
    assert label_on(after, lines, 'await log_only("x")') == never
    assert label_on(after, lines, 'await cached_fetch(stream, "k")') == (
        "<- may checkpoint (fetch_cached returns at L14 without one)"
    )
    assert label_on(after, lines, "await trio.sleep(1)") == "<- checkpoint"
    assert label_on(after, lines, "checkpoint_if_cancelled") == "<- may not yield (trio fast path)"
    assert label_on(after, lines, "async with trio.open_nursery()") == (
        "<- waits for children · no checkpoint on enter"
    )
    # The positions did not move: only labels changed.
    assert [h.position for h in first] == [h.position for h in after]
    # Tooltips (resolved lazily for Neovim) carry the chain.
    line = next(i for i, s in enumerate(lines) if 'await via_log("x")' in s)
    tooltip = next(h for h in await resolved(client, after) if h.position.line == line).tooltip
    assert isinstance(tooltip, types.MarkupContent)
    assert "Resolved: never checkpoints" in tooltip.value
    assert "`via_log` (net.py:24)" in tooltip.value and "log_only" in tooltip.value


@pytest.mark.resolve
async def test_hover_shows_the_chain_and_edits_elsewhere_keep_results(
    client: LanguageClient,
) -> None:
    main, _ = copy_project(client)
    lines = lsp_lines(main)
    uri = open_document(client, main, "main.py")
    await wait_for_resolution(client, uri, lines)
    line = next(i for i, s in enumerate(lines) if "await cached_fetch(" in s)
    column = lines[line].index("await") + 1
    hover = await client.text_document_hover_async(
        types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=pos(client, lines, line, column),
        )
    )
    assert hover is not None and isinstance(hover.contents, types.MarkupContent)
    assert "Resolved: checkpoints only on some paths" in hover.contents.value
    assert "can return without a checkpoint (at L14)" in hover.contents.value
    # An edit above: every hint moves down a line, and keeps its resolved label at once.
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=types.Position(0, 0), end=types.Position(0, 0)),
                    text="# edited\n",
                )
            ],
        )
    )
    moved = await hints(client, uri)
    assert label_on(moved, ["# edited", *lines], 'await log_only("x")') == (
        "<- no checkpoint (log_only never yields)"
    )


@pytest.mark.resolve
@pytest.mark.client_config({"conc-lsp": {"extend-select": ["CONC111"]}})
async def test_conc111_follows_the_resolved_callees(client: LanguageClient) -> None:
    _, net = copy_project(client)
    uri = open_document(client, net, "trio_app/net.py")
    await hints(client, uri)  # shown in the editor: resolution starts

    async def functions() -> set[str]:
        found = await diagnostics(client, uri)
        return {d.message.split("`")[1] for d in found if d.code == "CONC111"}

    before = await functions()
    assert "log_only" in before  # no await at all: flagged before and after resolution
    after = await until_announced(
        client, functions, lambda names: "via_log" in names, RESOLVE_TIMEOUT
    )
    assert "via_log" in after, after
    assert "sleep_then_log" not in after


@pytest.mark.resolve
async def test_a_document_never_shown_is_not_resolved(client: LanguageClient) -> None:
    """Resolution waits for the editor to show a document (its first inlay hint
    request): 50 files restored at startup must not keep jedi busy."""
    main, net = copy_project(client)
    hidden = open_document(client, net, "trio_app/net.py")
    uri = open_document(client, main, "main.py")
    lines = lsp_lines(main)
    await wait_for_resolution(client, uri, lines)
    # net.py was opened first but never shown: unlike main.py it is not
    # resolved yet, so its first hints are the plain ones.
    net_lines = lsp_lines(net)
    first = await hints(client, hidden)
    assert label_on(first, net_lines, "await log_only(message)") == "<- checkpoint"
    refreshes = client.inlay_hint_refreshes  # type: ignore[attr-defined]

    async def label() -> str:
        return label_on(await hints(client, hidden), net_lines, "await log_only(message)")

    got = await until_announced(
        client, label, lambda text: "no checkpoint" in text, RESOLVE_TIMEOUT
    )
    assert got == "<- no checkpoint (log_only never yields)"
    if client.client_name == "neovim":  # type: ignore[attr-defined]
        assert client.inlay_hint_refreshes > refreshes  # type: ignore[attr-defined]


@pytest.mark.resolve
@pytest.mark.client_config({"conc-lsp": {"resolve": {"enabled": False}}})
async def test_resolution_can_be_turned_off(client: LanguageClient) -> None:
    main, _ = copy_project(client)
    lines = lsp_lines(main)
    uri = open_document(client, main, "main.py")
    await hints(client, uri)
    refreshes = client.inlay_hint_refreshes  # type: ignore[attr-defined]
    await asyncio.sleep(4)  # well past the resolve delay and a resolution of this file
    assert client.inlay_hint_refreshes == refreshes  # type: ignore[attr-defined]
    assert label_on(await hints(client, uri), lines, 'await log_only("x")') == "<- checkpoint"


@pytest.mark.resolve
@pytest.mark.init_options({"resolve": {"budget": 0.001}})
async def test_passes_go_on_until_the_document_is_done(client: LanguageClient) -> None:
    """A budget spent after one checkpoint: the next passes go on where each
    stopped, until every label is resolved (as with all the time needed)."""
    main, _ = copy_project(client)
    lines = lsp_lines(main)
    uri = open_document(client, main, "main.py")
    await hints(client, uri)

    async def labels() -> dict[str, str]:
        found = await hints(client, uri)
        return {
            text: label_on(found, lines, text)
            for text in ('await log_only("x")', "await trio.sleep(1)", "checkpoint_if_cancelled")
        }

    got = await until_announced(
        client,
        labels,
        lambda found: (
            "no checkpoint" in found['await log_only("x")']
            and "may not yield" in found["checkpoint_if_cancelled"]
        ),
        RESOLVE_TIMEOUT,
    )
    assert got['await log_only("x")'] == "<- no checkpoint (log_only never yields)"
    assert got["checkpoint_if_cancelled"] == "<- may not yield (trio fast path)"
    assert got["await trio.sleep(1)"] == "<- checkpoint"


@pytest.mark.resolve
async def test_an_edit_inside_a_function_keeps_its_resolved_labels(
    client: LanguageClient,
) -> None:
    main, _ = copy_project(client)
    lines = lsp_lines(main)
    uri = open_document(client, main, "main.py")
    await wait_for_resolution(client, uri, lines)
    # A new line inside `main`, just above its awaits: the function's text changed.
    line = next(i for i, s in enumerate(lines) if "await trio.sleep(1)" in s)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=types.Position(line, 0), end=types.Position(line, 0)),
                    text="    started = True\n",
                )
            ],
        )
    )
    edited = [*lines[:line], "    started = True", *lines[line:]]
    moved = await hints(client, uri)  # at once: before any new pass could end
    assert label_on(moved, edited, 'await log_only("x")') == (
        "<- no checkpoint (log_only never yields)"
    )
    assert label_on(moved, edited, 'await cached_fetch(stream, "k")') == (
        "<- may checkpoint (fetch_cached returns at L14 without one)"
    )
