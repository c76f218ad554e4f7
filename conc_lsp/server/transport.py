"""The message loop: pygls's framing, with the limits it lacks.

pygls read any ``Content-Length`` in one piece (100 GB: MemoryError) and any
header line whole. Here a header line is read up to `MAX_HEADER_LINE` bytes
and a body up to `MAX_MESSAGE_BYTES`; a longer body is skipped in chunks
(the framing holds: the next message is read as usual) and reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
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
    """Blocking reads of stdin, each of bounded size, in a daemon thread of its own.

    Not in the server's thread pool: a read waiting for the client there would
    keep the process alive after the session ended some other way (Ctrl-C,
    an error), since the pool's threads are joined at shutdown and at exit."""

    def __init__(self, stdin: ByteSource) -> None:
        self.stdin = stdin
        self._reads: queue.SimpleQueue[_Read] = queue.SimpleQueue()
        threading.Thread(target=self._serve, name="conc-lsp stdin", daemon=True).start()

    def readline(self) -> Awaitable[bytes]:
        return self._call(self.stdin.readline, MAX_HEADER_LINE)

    def readexactly(self, n: int) -> Awaitable[bytes]:
        """Up to ``n`` bytes; fewer only at the end of input."""
        return self._call(self.stdin.read, n)

    def _call(self, read: Callable[[int], bytes], size: int) -> Awaitable[bytes]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes] = loop.create_future()
        self._reads.put(_Read(read, size, future, loop))
        return future

    def _serve(self) -> None:
        while True:
            request = self._reads.get()
            try:
                data = request.read(request.size)
            except BaseException as error:  # noqa: BLE001 - handed to the awaiting loop
                request.settle(None, error)
            else:
                request.settle(data, None)


@dataclass
class _Read:
    read: Callable[[int], bytes]
    size: int
    future: asyncio.Future[bytes]
    loop: asyncio.AbstractEventLoop

    def settle(self, data: bytes | None, error: BaseException | None) -> None:
        """Hand the outcome to the loop (gone once the session is over: then dropped)."""
        with contextlib.suppress(RuntimeError):  # the loop is closed
            self.loop.call_soon_threadsafe(self._set, data, error)

    def _set(self, data: bytes | None, error: BaseException | None) -> None:
        if self.future.done():  # cancelled: the session ended meanwhile
            return
        if error is not None:
            self.future.set_exception(error)
        else:
            self.future.set_result(data or b"")


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
