"""Helpers shared by the protocol tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from lsprotocol import types
from pytest_lsp import LanguageClient

T = TypeVar("T")
_counter = 0

# Seconds a test waits for an answer or for background work before it fails.
# Only a hang guard: on a busy 2-core machine a loaded server can take many
# times its usual time, and the figures belong in benchmarks/, not here.
GENEROUS_TIMEOUT = 120.0


def units(text: str, encoding: str) -> int:
    """Length of ``text`` in the units of a position encoding."""
    if encoding == "utf-8":
        return len(text.encode("utf-8"))
    if encoding == "utf-16":
        return len(text.encode("utf-16-le")) // 2
    return len(text)


def lsp_lines(text: str) -> list[str]:
    """Lines the way LSP counts them: only \\r\\n, \\r and \\n end a line."""
    lines: list[str] = []
    current: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\r":
            lines.append("".join(current))
            current = []
            if text[index + 1 : index + 2] == "\n":
                index += 1
        elif char == "\n":
            lines.append("".join(current))
            current = []
        else:
            current.append(char)
        index += 1
    lines.append("".join(current))
    return lines


def pos(client: LanguageClient, lines: list[str], line: int, column: int) -> types.Position:
    """LSP position of code-point ``column`` on ``line`` in the client's encoding."""
    return types.Position(line=line, character=units(lines[line][:column], client.encoding))  # type: ignore[attr-defined]


def open_document(client: LanguageClient, text: str, name: str | None = None) -> str:
    global _counter
    _counter += 1
    uri = str((client.root / (name or f"doc{_counter}.py")).as_uri())  # type: ignore[attr-defined]
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id="python", version=1, text=text
            )
        )
    )
    return uri


WHOLE = types.Range(
    start=types.Position(line=0, character=0),
    end=types.Position(line=1_000_000, character=0),
)


async def answer(request: Awaitable[T], timeout: float = GENEROUS_TIMEOUT) -> T:
    """The response to ``request``, or TimeoutError after ``timeout`` seconds.
    The request is not cancelled: pygls's client fails the whole session
    (InvalidStateError "CANCELLED") when a response arrives for a request
    whose wait was cancelled, and the next test would fail for it."""
    return await asyncio.wait_for(asyncio.shield(request), timeout)


async def hints(
    client: LanguageClient,
    uri: str,
    range_: types.Range = WHOLE,
    timeout: float = GENEROUS_TIMEOUT,
) -> list[types.InlayHint]:
    result = await answer(
        client.text_document_inlay_hint_async(
            types.InlayHintParams(text_document=types.TextDocumentIdentifier(uri=uri), range=range_)
        ),
        timeout,
    )
    assert isinstance(result, (list, tuple)), result  # pygls structures arrays as tuples
    return list(result)


def label_text(hint: types.InlayHint) -> str:
    label = hint.label
    if isinstance(label, str):
        return label
    return "".join(part.value for part in label)


def summary(found: list[types.InlayHint]) -> list[tuple[int, int, str]]:
    """(line, character, label) of each hint, sorted by position."""
    return sorted((h.position.line, h.position.character, label_text(h)) for h in found)


async def settle(client: LanguageClient) -> None:
    """One request round trip: everything sent before it has been handled."""
    await client.text_document_hover_async(
        types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri="file:///nonexistent/settle.py"),
            position=types.Position(line=0, character=0),
        )
    )


def errors_reported(client: LanguageClient) -> list[str]:
    """Messages of type Error the server showed or logged."""
    shown = [m.message for m in client.messages if m.type == types.MessageType.Error]
    logged = [m.message for m in client.log_messages if m.type == types.MessageType.Error]
    return shown + logged


async def eventually(
    produce: Any, predicate: Any, timeout: float = GENEROUS_TIMEOUT, interval: float = 0.02
) -> Any:
    """Call the coroutine function ``produce`` until ``predicate`` holds on its
    result (for effects the server applies asynchronously); return the result.
    Where the server announces the effect, prefer ``until_announced``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await produce()
        if predicate(value) or loop.time() > deadline:
            return value
        await asyncio.sleep(interval)


def announce(client: LanguageClient) -> None:
    """The server sent something that announces new results: published
    diagnostics, or a request to refresh inlay hints or diagnostics."""
    client.announced.set()  # type: ignore[attr-defined]


async def until_announced(
    client: LanguageClient,
    produce: Callable[[], Awaitable[T]],
    predicate: Callable[[T], bool],
    timeout: float = GENEROUS_TIMEOUT,
) -> T:
    """Call ``produce`` now, and again after each announcement of new results
    (see ``announce``), until ``predicate`` holds on its result or ``timeout``
    seconds pass; return the last result (the test asserts on it)."""
    announced: asyncio.Event = client.announced  # type: ignore[attr-defined]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        announced.clear()  # one that arrives while we ask makes us ask again
        value = await produce()
        if predicate(value):
            return value
        try:
            await asyncio.wait_for(announced.wait(), deadline - loop.time())
        except TimeoutError:
            return value


def change_configuration(client: LanguageClient, settings: Any) -> None:
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=settings))


async def resolved(client: LanguageClient, found: list[types.InlayHint]) -> list[types.InlayHint]:
    """Hints with their tooltips: a client that resolves tooltips (Neovim 0.11) gets
    them through inlayHint/resolve; the hints it receives carry none, only data."""
    if client.client_name != "neovim":  # type: ignore[attr-defined]
        return found
    result = []
    for hint in found:
        assert hint.tooltip is None and hint.data is not None
        result.append(await client.inlay_hint_resolve_async(hint))
    return result
