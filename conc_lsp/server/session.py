"""One session of the server: over stdin / stdout, or with one client over TCP.

Each runs the message loop (`transport.serve_messages`) until `exit` or the end
of input, and whatever ends it (the client gone, Ctrl-C) ends in the server's
`shutdown`: the worker processes, then the transport.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import BinaryIO, Protocol

from pygls.io_ import StdoutWriter

from conc_lsp.server import transport
from conc_lsp.server.early_init import ByteSource
from conc_lsp.server.protocol import ConcProtocol

logger = logging.getLogger("conc_lsp")


class Server(Protocol):
    """What a session needs of the server (`app.ConcLanguageServer`)."""

    @property
    def protocol(self) -> ConcProtocol: ...

    def refuse(self, reason: str) -> None: ...

    def shutdown(self) -> None: ...


def serve_stdio(server: Server, stdin: ByteSource, stdout: BinaryIO | None = None) -> None:
    """Serve over stdin / stdout until `exit` or the end of input."""
    reader = transport.StdinReader(stdin)
    server.protocol.set_writer(StdoutWriter(stdout or sys.stdout.buffer))
    try:
        asyncio.run(_session(server, reader))
    except BrokenPipeError:
        logger.error("the client closed the connection")
    except KeyboardInterrupt:
        logger.info("interrupted")
    finally:
        server.shutdown()


def serve_tcp(server: Server, host: str, port: int) -> None:
    """Serve one client at HOST:PORT until `exit` or the end of its connection."""

    async def listen() -> None:
        done = asyncio.Event()

        async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            server.protocol.set_writer(writer)
            try:
                await _session(server, reader)
            finally:
                writer.close()
                done.set()

        listener = await asyncio.start_server(connected, host, port)
        logger.info("serving on %s:%s", host, port)
        async with listener:
            await done.wait()

    try:
        asyncio.run(listen())
    except (BrokenPipeError, ConnectionError):
        logger.error("the client closed the connection")
    except KeyboardInterrupt:
        logger.info("interrupted")
    finally:
        server.shutdown()


async def _session(server: Server, reader: transport.Reader) -> None:
    try:
        await transport.serve_messages(reader, server.protocol, server.refuse)
    finally:
        # Before asyncio.run cancels the tasks in any order (see cancel_requests);
        # what they still send goes nowhere: the client may be gone.
        server.protocol.cancel_requests()
        server.protocol.set_writer(transport.ClosedWriter())
