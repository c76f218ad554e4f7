"""Driving the real server (`python -m conc_lsp serve`) the way pytest-lsp does.

The client is pytest-lsp's LanguageClient (pygls's client plus capture of
log messages and the server's stderr), initialized with the capabilities
VS Code recorded.  Shared by lsp_roundtrip.py and memory.py.
"""

from __future__ import annotations

import functools
import sys
import time
from pathlib import Path

from lsprotocol import types
from pytest_lsp import LanguageClient, client_capabilities, make_test_lsp_client

SERVER_COMMAND = (sys.executable, "-m", "conc_lsp", "serve")
CLIENT = "visual-studio-code"


class Session:
    """A started and initialized server."""

    def __init__(self, client: LanguageClient, startup: float, result: types.InitializeResult):
        self.client = client
        self.startup = startup  # seconds from process start to the initialize response
        self.result = result

    @property
    def pid(self) -> int:
        server = self.client._server  # pygls keeps the asyncio subprocess here
        if server is None:
            raise RuntimeError("the server process is not running")
        return server.pid

    def errors(self) -> list[str]:
        """Everything that shows the server failed: error log messages, a dead process."""
        found = [
            message.message
            for message in self.client.log_messages
            if message.type == types.MessageType.Error
        ]
        if self.client.error is not None:
            found.append(f"client error: {self.client.error!r}")
        server = self.client._server
        if server is not None and server.returncode is not None:
            found.append(f"server exited with {server.returncode}")
        return found

    async def close(self) -> None:
        try:
            await self.client.shutdown_session()
        finally:
            await self.client.stop()


@functools.cache
def capabilities() -> types.ClientCapabilities:
    return client_capabilities(CLIENT)


async def start(
    root: Path,
    initialization_options: object | None = None,
    client_name: str = CLIENT,
    on_client: object | None = None,
) -> Session:
    """Start the server and initialize it; ``root`` is the workspace folder.

    Only the server's part is timed: the client's capabilities are loaded and
    the client built before the clock starts.
    """
    params = types.InitializeParams(
        capabilities=client_capabilities(client_name),
        initialization_options=initialization_options,
        root_uri=root.as_uri(),
        workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name=root.name)],
        client_info=types.ClientInfo(name="conc-lsp benchmark", version="0"),
    )
    client = make_test_lsp_client()
    if callable(on_client):
        on_client(client)  # e.g. to add handlers for server-to-client requests
    begin = time.perf_counter()
    await client.start_io(*SERVER_COMMAND, cwd=str(root))
    result = await client.initialize_session(params)
    startup = time.perf_counter() - begin
    if result.capabilities.inlay_hint_provider is None:
        await client.stop()
        raise RuntimeError("the server does not offer inlay hints")
    # A barrier: once this answer is in, the server has handled `initialized`
    # and its workspace/configuration request has been answered.
    await client.text_document_inlay_hint_async(
        types.InlayHintParams(
            text_document=types.TextDocumentIdentifier(uri=(root / "none.py").as_uri()),
            range=types.Range(start=types.Position(0, 0), end=types.Position(0, 0)),
        )
    )
    return Session(client, startup, result)


def open_document(client: LanguageClient, uri: str, text: str, version: int = 1) -> None:
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id="python", version=version, text=text
            )
        )
    )


def whole_range(lines: list[str]) -> types.Range:
    return types.Range(
        start=types.Position(line=0, character=0),
        end=types.Position(line=len(lines) - 1, character=len(lines[-1])),
    )


def line_range(first: int, end: int, lines: list[str]) -> types.Range:
    """Lines first <= line < end, clamped (an editor's visible window)."""
    first = max(first, 0)
    end = min(end, len(lines) - 1)
    return types.Range(
        start=types.Position(line=first, character=0),
        end=types.Position(line=end, character=0),
    )


def hint_key(hint: types.InlayHint) -> tuple[int, int, str]:
    label = hint.label if isinstance(hint.label, str) else "".join(p.value for p in hint.label)
    return (hint.position.line, hint.position.character, label)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (p95 of 36 values is the 35th smallest)."""
    ordered = sorted(values)
    rank = max(1, -(-int(fraction * 1000) * len(ordered) // 1000))
    return ordered[min(rank, len(ordered)) - 1]


def vm_rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")
