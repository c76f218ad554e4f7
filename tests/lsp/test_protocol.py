"""JSON-RPC by the book, through the real server over stdio with raw framing
(pytest-lsp cannot send malformed messages): every request gets exactly one
answer, `shutdown` and `exit` end the session cleanly, absurd framing is
refused. No timing: each wait is for the message that announces the effect."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from .raw import INITIALIZE, WAIT, RawServer, document_uri

INVALID_REQUEST = -32600
INVALID_PARAMS = -32602
PARSE_ERROR = -32700
REQUEST_CANCELLED = -32800
MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # conc_lsp.server.transport's limit, restated on purpose

TEXT = "import trio\n\nasync def f():\n    await trio.sleep(0)\n"


@pytest.fixture
def server() -> Iterator[RawServer]:
    raw = RawServer()
    try:
        raw.initialize()
        yield raw
    finally:
        raw.close()


def opened(server: RawServer, name: str) -> str:
    uri = document_uri(name)
    server.open(uri, TEXT)
    return uri


def whole(uri: str) -> dict[str, Any]:
    return {
        "textDocument": {"uri": uri},
        "range": {"start": {"line": 0, "character": 0}, "end": {"line": 10, "character": 0}},
    }


def assert_alive(server: RawServer, uri: str) -> None:
    answer = server.call("textDocument/inlayHint", whole(uri))
    assert [hint["position"]["line"] for hint in answer["result"]] == [3], answer


def assert_quiet(server: RawServer) -> None:
    stderr = server.stderr()
    assert "Traceback" not in stderr, stderr
    assert "MemoryError" not in stderr, stderr


def logged_errors(server: RawServer) -> list[str]:
    return [
        message["params"]["message"]
        for message in server.received
        if message.get("method") == "window/logMessage" and message["params"]["type"] == 1
    ]


def position(line: Any, character: Any = 0) -> dict[str, Any]:
    return {"line": line, "character": character}


def bad_params(uri: str) -> dict[str, tuple[str, Any]]:
    """name -> (method, params) of requests whose params do not fit the method."""
    document = {"uri": uri}
    return {
        "range-as-string": ("textDocument/inlayHint", {"textDocument": document, "range": "0:0"}),
        "params-null": ("textDocument/inlayHint", None),
        "hover-params-null": ("textDocument/hover", None),
        "negative-line": (
            "textDocument/hover",
            {"textDocument": document, "position": position(-1)},
        ),
        "line-2**31": (
            "textDocument/hover",
            {"textDocument": document, "position": position(2**31)},
        ),
        "range-line-2**31": (
            "textDocument/inlayHint",
            {"textDocument": document, "range": {"start": position(0), "end": position(2**31)}},
        ),
        "missing-textDocument": ("textDocument/inlayHint", {"range": whole(uri)["range"]}),
        "line-as-string": (
            "textDocument/hover",
            {"textDocument": document, "position": position("1")},
        ),
        "character-as-float": (
            "textDocument/hover",
            {"textDocument": document, "position": position(1, 1.5)},
        ),
        "code-action-without-context": (
            "textDocument/codeAction",
            {"textDocument": document, "range": whole(uri)["range"]},
        ),
    }


CASES = list(bad_params("file:///x.py"))


@pytest.mark.parametrize("case", CASES)
def test_wrong_params_get_invalid_params(server: RawServer, case: str) -> None:
    uri = opened(server, f"params-{case}.py")
    method, params = bad_params(uri)[case]
    answer = server.call(method, params)
    assert "result" not in answer, answer
    assert answer["error"]["code"] == INVALID_PARAMS, answer
    assert method in answer["error"]["message"]
    assert_alive(server, uri)
    assert_quiet(server)


def test_a_body_that_is_not_json_gets_a_parse_error(server: RawServer) -> None:
    uri = opened(server, "not-json.py")
    server.send_bytes(b"Content-Length: 9\r\n\r\n{not json")
    answer = server.next_message()
    while answer is not None and "error" not in answer:
        answer = server.next_message()
    assert answer is not None and answer["id"] is None, answer
    assert answer["error"]["code"] == PARSE_ERROR
    assert_alive(server, uri)
    assert_quiet(server)


def test_requests_after_shutdown_get_invalid_request_and_exit_ends_with_0(
    server: RawServer,
) -> None:
    uri = opened(server, "after-shutdown.py")
    assert server.call("shutdown", None)["result"] is None
    answer = server.call(
        "textDocument/hover", {"textDocument": {"uri": uri}, "position": position(3)}
    )
    assert answer["error"]["code"] == INVALID_REQUEST, answer
    answer = server.call("textDocument/inlayHint", whole(uri))
    assert answer["error"]["code"] == INVALID_REQUEST, answer
    server.notify("exit")
    assert server.wait() == 0  # stdin left open: the server ends by itself
    assert_quiet(server)


def test_shutdown_with_requests_in_flight_answers_each_once(server: RawServer) -> None:
    """Two reports and two pulls in flight: pygls's shutdown failed with
    'dictionary changed size during iteration' and left tracebacks behind."""
    uri = opened(server, "in-flight.py")
    command = {"command": "conc.analyse", "arguments": [uri]}
    in_flight = [
        server.request("workspace/executeCommand", command),
        server.request("workspace/executeCommand", command),
        server.request("textDocument/diagnostic", {"textDocument": {"uri": uri}}),
        server.request("textDocument/diagnostic", {"textDocument": {"uri": uri}}),
    ]
    shutdown = server.request("shutdown", None)
    assert server.response(shutdown)["result"] is None
    server.notify("exit")
    assert server.wait() == 0
    while server.next_message() is not None:  # everything it wrote before it ended
        pass
    answers = [message for message in server.received if message.get("id") in in_flight]
    assert sorted(message["id"] for message in answers) == in_flight  # exactly one each
    for answer in answers:
        assert "result" in answer or answer["error"]["code"] == REQUEST_CANCELLED, answer
    assert_quiet(server)
    assert "dictionary changed size" not in server.stderr()


def test_exit_without_shutdown_ends_with_1(server: RawServer) -> None:
    uri = opened(server, "exit-only.py")
    assert_alive(server, uri)
    server.notify("exit")
    assert server.wait() == 1
    assert_quiet(server)


def test_exit_with_a_request_in_flight_ends_cleanly(server: RawServer) -> None:
    uri = opened(server, "exit-in-flight.py")
    server.request("workspace/executeCommand", {"command": "conc.analyse", "arguments": [uri]})
    server.notify("exit")
    assert server.wait() == 1
    assert_quiet(server)


def test_end_of_input_without_exit_ends_with_1(server: RawServer) -> None:
    server.close_stdin()
    assert server.wait() == 1
    assert_quiet(server)


def test_absurd_content_length_is_refused_not_allocated(server: RawServer) -> None:
    """Content-Length: 100000000000 was read in one piece: MemoryError."""
    server.send_bytes(b"Content-Length: 100000000000\r\n\r\n{}")
    while not any("refused a message of 100000000000 bytes" in m for m in logged_errors(server)):
        assert server.next_message() is not None, server.stderr()
    # The server is skipping what the client announced; the client gives up.
    server.close_stdin()
    assert server.wait() == 1
    assert "refused a message of 100000000000 bytes" in server.stderr()
    assert_quiet(server)


def test_a_message_over_the_limit_is_skipped_and_the_server_goes_on(server: RawServer) -> None:
    uri = opened(server, "over-limit.py")
    size = MAX_MESSAGE_BYTES + 1
    server.send_bytes(b"Content-Length: %d\r\n\r\n" % size + b" " * size)
    assert_alive(server, uri)
    assert any(f"refused a message of {size} bytes" in text for text in logged_errors(server))
    assert_quiet(server)


def test_malformed_headers_are_reported_and_skipped(server: RawServer) -> None:
    uri = opened(server, "headers.py")
    server.send_bytes(b"Content-Length: 12x\r\n\r\n")  # no valid length: nothing to read
    server.send_bytes(b"no colon here\r\n")
    assert_alive(server, uri)
    errors = logged_errors(server)
    assert any("without a valid Content-Length" in text for text in errors), errors
    assert any("malformed header line" in text for text in errors), errors
    assert_quiet(server)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_tcp_session_answers_and_exits() -> None:
    """`serve --tcp` runs the same loop: params checked, exit after shutdown: 0."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "conc_lsp", "serve", "--tcp", f"127.0.0.1:{port}"],
        stderr=subprocess.PIPE,
    )
    try:
        connection = _connect(port, process)
        client = Framed(connection)
        client.send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INITIALIZE})
        assert "result" in client.answer(1)
        client.send({"jsonrpc": "2.0", "id": 2, "method": "textDocument/hover", "params": None})
        assert client.answer(2)["error"]["code"] == INVALID_PARAMS
        client.send({"jsonrpc": "2.0", "id": 3, "method": "shutdown"})
        assert client.answer(3)["result"] is None
        client.send({"jsonrpc": "2.0", "method": "exit"})
        assert process.wait(timeout=WAIT) == 0
        connection.close()
        assert process.stderr is not None
        assert "Traceback" not in process.stderr.read().decode()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _connect(port: int, process: subprocess.Popen[bytes]) -> socket.socket:
    """Connect once the server listens (it says nothing when it does: retry)."""
    for _ in range(600):
        assert process.poll() is None, "the TCP server ended before listening"
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        except ConnectionRefusedError:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=0.1)  # a pause before the next try
    raise AssertionError("the TCP server never listened")


class Framed:
    """JSON-RPC framing over a socket's stream."""

    def __init__(self, connection: socket.socket) -> None:
        self.stream = connection.makefile("rwb")

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message).encode()
        self.stream.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.stream.flush()

    def read(self) -> dict[str, Any]:
        length = 0
        while (line := self.stream.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        assert length, "the connection closed"
        message: dict[str, Any] = json.loads(self.stream.read(length))
        return message

    def answer(self, request_id: int) -> dict[str, Any]:
        while True:
            message = self.read()
            if message.get("id") == request_id and "method" not in message:
                return message
