"""No process of the server outlives it, however it dies (SIGKILL, SIGTERM,
its input closed), and `conc.analyse` reads no file it has no business with.

The server runs as the editor runs it (`python -m conc_lsp serve`), driven
over stdio by a bare JSON-RPC client: the test needs the server's process to
kill it. It makes the server start all its workers (the rules, the resolver
and the reports), notes every process below the server, kills the server,
and waits (no time asserted: the machine may be busy) until none is left.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from tests.live_processes import (
    HAS_PROC,
    command_line,
    descendants,
    reads_its_input,
    wait_until,
    wait_until_gone,
)

pytestmark = pytest.mark.skipif(not HAS_PROC, reason="reads /proc")

SERVER_COMMAND = [sys.executable, "-m", "conc_lsp", "serve"]
WORKER = "conc_lsp.processes"  # in the command line of each worker process
TEXT = """import trio


async def handler(event):
    try:
        await trio.sleep(1)
    finally:
        await event.wait()
"""
WAIT = 120.0  # seconds: generous, for a busy machine


class Client:
    """Just enough of an LSP client: requests, notifications, answers."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.process = subprocess.Popen(
            SERVER_COMMAND,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=root,
        )
        self.received: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.next_id = 0
        assert self.process.stdout is not None
        reader = threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True)
        reader.start()

    def _read(self, stream: IO[bytes]) -> None:
        while True:
            length = None
            while (line := stream.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("ascii").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if not line or length is None:
                self.received.put(None)  # the server closed its output
                return
            self.received.put(json.loads(stream.read(length)))

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode("utf-8")
        assert self.process.stdin is not None
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.process.stdin.flush()

    def notify(self, method: str, params: Any) -> None:
        self.send({"method": method, "params": params})

    def request(self, method: str, params: Any) -> dict[str, Any]:
        """The response (``result`` or ``error``), answering the server's own requests."""
        self.next_id += 1
        self.send({"id": self.next_id, "method": method, "params": params})
        while True:
            message = self.received.get(timeout=WAIT)
            assert message is not None, f"the server ended before answering {method}"
            if "method" in message and "id" in message:
                self.send({"id": message["id"], "result": None})
            elif message.get("id") == self.next_id and "method" not in message:
                return message

    def start(self) -> None:
        answer = self.request(
            "initialize",
            {"processId": os.getpid(), "rootUri": self.root.as_uri(), "capabilities": {}},
        )
        assert "result" in answer, answer
        self.notify("initialized", {})

    def open(self, name: str, text: str) -> str:
        uri = (self.root / name).as_uri()
        self.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}},
        )
        return uri

    def analyse(self, *arguments: Any) -> dict[str, Any]:
        return self.request(
            "workspace/executeCommand", {"command": "conc.analyse", "arguments": list(arguments)}
        )


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    root = tmp_path / "workspace"
    root.mkdir()
    # CONC101, the rule TEXT triggers, is opt-in: select it.
    (root / "pyproject.toml").write_text('[tool.conc-lsp]\nselect = ["ALL"]\n', encoding="utf-8")
    client = Client(root)
    try:
        client.start()
        yield client
    finally:
        if client.process.poll() is None:
            client.process.kill()
        client.process.wait()


def start_every_worker(client: Client) -> None:
    """Diagnostics (the rules' worker), inlay hints (the resolver, which also
    starts after `initialized`) and a report (the report worker)."""
    uri = client.open("server.py", TEXT)
    document = {"textDocument": {"uri": uri}}
    answer = client.request("textDocument/diagnostic", document)
    assert answer["result"]["items"], answer
    whole = {"start": {"line": 0, "character": 0}, "end": {"line": 100, "character": 0}}
    answer = client.request("textDocument/inlayHint", {**document, "range": whole})
    assert answer["result"], answer
    answer = client.analyse(uri, "handler")
    assert "markdown" in answer["result"], answer


def workers_of(server: int) -> list[str]:
    return [command_line(pid) for pid, _ in descendants(server) if WORKER in command_line(pid)]


def wait_for_workers(server: int, count: int) -> None:
    """Until ``count`` workers run below the server (the resolver's warm-up is
    in the background)."""
    started = wait_until(lambda: len(workers_of(server)) >= count, timeout=WAIT)
    assert started, f"workers below the server: {workers_of(server)}"


def end_by_sigkill(client: Client) -> None:
    client.process.send_signal(signal.SIGKILL)


def end_by_sigterm(client: Client) -> None:
    client.process.send_signal(signal.SIGTERM)


def end_by_sigint(client: Client) -> None:
    client.process.send_signal(signal.SIGINT)  # Ctrl-C in the terminal that started it


def end_by_closing_its_input(client: Client) -> None:
    assert client.process.stdin is not None
    client.process.stdin.close()


@pytest.mark.parametrize(
    "end",
    [end_by_sigkill, end_by_sigterm, end_by_sigint, end_by_closing_its_input],
    ids=lambda end: end.__name__,
)
def test_no_process_outlives_the_server(client: Client, end: Any) -> None:
    server = client.process.pid
    start_every_worker(client)
    wait_for_workers(server, 3)
    below = descendants(server)
    end(client)
    client.process.wait(timeout=WAIT)  # closing the input: the server ends by itself
    left = wait_until_gone(lambda: below, timeout=WAIT)
    assert left == [], [command_line(pid) for pid, _ in left]


def test_ctrl_c_before_initialize_ends_the_server_without_a_traceback(tmp_path: Path) -> None:
    """Ctrl-C while the server waits for `initialize` (it answers it before
    loading pygls: see early_init) ends it as it would later: exit code 1
    (LSP's code for an end without `shutdown`), nothing on stderr."""
    server = subprocess.Popen(
        SERVER_COMMAND,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    try:
        waiting = wait_until(lambda: reads_its_input(server.pid) is not False, timeout=WAIT)
        if reads_its_input(server.pid) is None:
            pytest.skip("the kernel does not say what a process waits for (/proc/PID/syscall)")
        assert waiting, "the server never waited for its input"
        server.send_signal(signal.SIGINT)
        _, errors = server.communicate(timeout=WAIT)
    finally:
        if server.poll() is None:
            server.kill()
        server.wait()
    assert server.returncode == 1
    assert errors.decode("utf-8", "replace") == ""


def test_shutdown_and_exit_end_the_server_and_its_workers(client: Client) -> None:
    """`shutdown` stops the workers at once (even in the middle of a job: see
    tests/test_processes.py), and `exit` ends the server."""
    start_every_worker(client)
    server = client.process.pid
    below = descendants(server)
    assert client.request("shutdown", None).get("result", "error") is None
    client.notify("exit", None)
    assert client.process.wait(timeout=WAIT) == 0
    assert wait_until_gone(lambda: below, timeout=WAIT) == []


def test_analyse_refuses_files_it_has_no_business_with(client: Client, tmp_path: Path) -> None:
    """Only open documents and regular .py files inside the workspace; a FIFO
    is never opened (it would block the server)."""
    fifo = client.root / "pipe.py"
    os.mkfifo(fifo)
    outside = tmp_path / "outside.py"
    outside.write_text(TEXT, encoding="utf-8")
    (client.root / "link.py").symlink_to(outside)
    (client.root / "notes.txt").write_text(TEXT, encoding="utf-8")
    inside = client.root / "inside.py"
    inside.write_text(TEXT, encoding="utf-8")
    refused = {
        fifo: "not a regular file",
        Path("/etc/passwd"): "not inside the workspace",
        outside: "not inside the workspace",
        client.root / "link.py": "not inside the workspace",
        client.root / "notes.txt": "not a .py file",
    }
    for path, reason in refused.items():
        answer = client.analyse(path.as_uri())
        assert answer.get("error", {}).get("code") == -32602, (path, answer)
        assert reason in answer["error"]["message"], (path, answer)
    answer = client.analyse(inside.as_uri(), "handler")
    assert "handler" in answer["result"]["markdown"], answer
