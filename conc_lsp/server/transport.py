"""The message loop: pygls's framing, with the limits it lacks.

pygls read any ``Content-Length`` in one piece (100 GB: MemoryError) and any
header line whole. Here a header line is read up to `MAX_HEADER_LINE` bytes
and a body up to `MAX_MESSAGE_BYTES`; a longer body is skipped in chunks
(the framing holds: the next message is read as usual) and reported.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from conc_lsp.server.early_init import ByteSource
from conc_lsp.server.protocol import ConcProtocol

logger = logging.getLogger("conc_lsp")

MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # 64 MiB: far above any source file an editor sends
MAX_HEADER_LINE = 8 * 1024
SKIP_CHUNK = 1024 * 1024


class Reader(Protocol):
    """What the loop reads from: `StdinReader` or an `asyncio.StreamReader`."""

    def readline(self) -> Awaitable[bytes]: ...

    def readexactly(self, n: int) -> Awaitable[bytes]: ...


class StdinReader:
    """Blocking reads of stdin in a worker thread, each of bounded size."""

    def __init__(self, stdin: ByteSource, executor: ThreadPoolExecutor) -> None:
        self.stdin = stdin
        self.executor = executor

    def readline(self) -> Awaitable[bytes]:
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self.executor, self.stdin.readline, MAX_HEADER_LINE)

    def readexactly(self, n: int) -> Awaitable[bytes]:
        """Up to ``n`` bytes; fewer only at the end of input."""
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self.executor, self.stdin.read, n)


class ClosedWriter:
    """Where messages go once the session is over: nowhere (the client may be gone)."""

    def write(self, data: bytes) -> None:
        logger.debug("session over, not sent: %d bytes", len(data))

    def close(self) -> None:
        pass


async def _read(reader: Reader, size: int) -> bytes:
    """``size`` bytes, or fewer at the end of input."""
    try:
        return await reader.readexactly(size)
    except asyncio.IncompleteReadError as error:
        return error.partial


async def _headers(reader: Reader, report: Callable[[str], None]) -> dict[str, str] | None:
    """The header fields of the next message (names in lower case); None at the end."""
    fields: dict[str, str] = {}
    while True:
        line = await reader.readline()
        if not line:
            return None
        if not line.strip():
            if fields:
                return fields
            continue  # blank lines between messages
        name, colon, value = line.decode("ascii", "replace").partition(":")
        if colon and line.endswith(b"\n"):
            fields[name.strip().lower()] = value.strip()
        else:
            report(f"ignored a malformed header line: {line[:80]!r}")


def _content_length(fields: dict[str, str], report: Callable[[str], None]) -> int | None:
    text = fields.get("content-length")
    if text is None or not text.isdigit():
        report(f"ignored a message without a valid Content-Length: {fields}")
        return None
    return int(text)


async def serve_messages(
    reader: Reader, protocol: ConcProtocol, report: Callable[[str], None]
) -> None:
    """Read and handle messages until `exit` or the end of input.

    ``report`` receives each refused message's reason (the client's fault,
    not ours: the server goes on)."""
    while protocol.exit_code is None:
        fields = await _headers(reader, report)
        if fields is None:
            return
        length = _content_length(fields, report)
        if length is None:
            continue
        if length > MAX_MESSAGE_BYTES:
            report(
                f"refused a message of {length} bytes (the limit is {MAX_MESSAGE_BYTES}): "
                "skipping it"
            )
            while length > 0:
                skipped = await _read(reader, min(length, SKIP_CHUNK))
                if not skipped:
                    return
                length -= len(skipped)
            continue
        body = await _read(reader, length)
        if len(body) < length:
            return
        try:
            message = json.loads(body, object_hook=protocol.structure_message)
        except Exception as error:  # noqa: BLE001 - not JSON (or nested too deep)
            report(f"dropped a message that is not JSON: {type(error).__name__}: {error}")
            protocol.answer_parse_error(str(error))
            continue
        try:
            protocol.handle_message(message)
        except BrokenPipeError:
            raise  # the client is gone: the session is over
        except Exception:
            logger.exception("failed to handle a message")
