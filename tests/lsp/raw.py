"""A raw JSON-RPC client for the server over stdio: it can send what
pytest-lsp cannot (malformed params, bad framing, requests after shutdown)."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO, Any

from tests.rule_settings import SEED_RULES

SERVER_COMMAND = [sys.executable, "-m", "conc_lsp", "serve"]
WAIT = 60.0  # generous: a hang guard, never a speed test

INITIALIZE = {
    "processId": None,
    "rootUri": None,
    "capabilities": {},
    # the whole hint map: the tests check that a bare `await` still gets its hint
    # and the rules the tests exercise, opt-in ones included
    "initializationOptions": {
        "resolve": {"enabled": False},
        "hints": {"show": "all"},
        "select": list(SEED_RULES),
    },
}


class RawServer:
    """The real server in a subprocess; messages framed by hand."""

    def __init__(self) -> None:
        # A file, not a pipe: a server writing much to stderr never blocks on it.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(
            SERVER_COMMAND,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self._messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._next_id = 0
        self.received: list[dict[str, Any]] = []

    def _read(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        while True:
            length = None
            while True:
                line = stdout.readline()
                if not line:
                    self._messages.put(None)
                    return
                if line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.decode("ascii").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            assert length is not None, "a message without Content-Length"
            self._messages.put(json.loads(stdout.read(length)))

    # -- sending ----------------------------------------------------------

    @property
    def stdin(self) -> IO[bytes]:
        assert self.process.stdin is not None
        return self.process.stdin

    def send_bytes(self, data: bytes) -> None:
        self.stdin.write(data)
        self.stdin.flush()

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message).encode("utf-8")
        self.send_bytes(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def request(self, method: str, params: Any, **extra: Any) -> int:
        """Send a request (``params`` sent as given, even None); return its id."""
        self._next_id += 1
        self.send({"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params})
        return self._next_id

    def notify(self, method: str, params: Any = None) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)

    # -- receiving --------------------------------------------------------

    def next_message(self) -> dict[str, Any] | None:
        """The next message from the server; None once its stdout closed."""
        message = self._messages.get(timeout=WAIT)
        if message is not None:
            self.received.append(message)
        return message

    def response(self, request_id: int) -> dict[str, Any]:
        """Wait for the response to ``request_id`` (answering what the server asks)."""
        while True:
            message = self.next_message()
            assert message is not None, f"stdout closed before response {request_id}"
            if "method" in message and "id" in message:  # a request of the server
                self.send({"jsonrpc": "2.0", "id": message["id"], "result": None})
            elif message.get("id") == request_id and "method" not in message:
                return message

    def call(self, method: str, params: Any) -> dict[str, Any]:
        return self.response(self.request(method, params))

    def initialize(self) -> None:
        answer = self.call("initialize", INITIALIZE)
        assert "result" in answer, answer
        self.notify("initialized", {})

    def open(self, uri: str, text: str) -> None:
        self.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}},
        )

    # -- ending -----------------------------------------------------------

    def close_stdin(self) -> None:
        if not self.stdin.closed:
            self.stdin.close()

    def wait(self) -> int:
        """Exit code of the server (stdin is left open: the server must end by itself)."""
        return self.process.wait(timeout=WAIT)

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")

    def close(self) -> None:
        """End the server: politely if it still runs (so that it stops its
        worker processes, which share its stdout), else by force."""
        if self.process.poll() is None and not self.stdin.closed:
            try:
                self.send({"jsonrpc": "2.0", "id": "close", "method": "shutdown"})
                self.notify("exit")
                self.process.wait(timeout=WAIT)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.close_stdin()
        # Not stdout: a worker process that outlived the server may hold the
        # pipe open, and closing it would wait for the reading thread.
        self._stderr.close()


def document_uri(name: str) -> str:
    return (Path(tempfile.gettempdir()) / name).as_uri()
