"""`initialize` answered before the server loads.

pygls and lsprotocol take about half a second to import, and a client waits for
the answer to `initialize` before it sends anything else. So `serve` reads the
first message itself (standard library only) and, when it is an `initialize`
request whose params surely fit lsprotocol's types, writes the answer at once:
the server's capabilities, recorded from the real server in
``initialize_result.json`` (``python -m conc_lsp.server.initialize_table``
writes it; a test keeps it equal to the server's own answer), with the position
encoding negotiated as pygls does.

Then the server loads (or meanwhile, for a client slow to send `initialize`:
see `answer_initialize`). Either way, the bytes read are replayed to the
server's message loop, so the server handles that first message exactly as
without this module (settings, root, capabilities); the only difference is that
its answer to an `initialize` already answered is not sent again
(`protocol.ConcProtocol`). Anything not understood here (another method, odd
framing or JSON, odd params) is simply left to the server: behaviour as
before, errors included.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import select
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from conc_lsp import __version__

TABLE = Path(__file__).with_name("initialize_result.json")
DISABLE_VARIABLE = "CONC_LSP_EARLY_INITIALIZE"  # "0": leave initialize to pygls
SERVER_MODULE = "conc_lsp.server.app"
FIRST_MESSAGE_WAIT = 0.01  # seconds: initialize written at once is in the pipe by now
# The transport's limits (transport.MAX_HEADER_LINE, MAX_MESSAGE_BYTES), repeated
# here because importing transport loads pygls; a test keeps them equal.
MAX_HEADER_LINE = 8 * 1024
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
# lsprotocol's integer fields: a subset of both its integer and uinteger ranges
INTEGER_RANGE = range(0, 2**31)
SUPPORTED_ENCODINGS = ("utf-8", "utf-16", "utf-32")  # pygls's choice
DEFAULT_ENCODING = "utf-16"
HEADER = b"Content-Length: %d\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n"


class ByteSource(Protocol):
    """What the message loop reads: stdin's binary buffer, or a `Replay` of it."""

    def readline(self, limit: int = -1, /) -> bytes: ...

    def read(self, size: int = -1, /) -> bytes: ...


class Replay:
    """The bytes already read, then the rest of the stream."""

    def __init__(self, consumed: bytes, rest: ByteSource) -> None:
        self.consumed = consumed
        self.rest = rest

    def readline(self, limit: int = -1, /) -> bytes:
        if not self.consumed:
            return self.rest.readline(limit)
        end = self.consumed.find(b"\n") + 1 or len(self.consumed)
        if limit >= 0:
            end = min(end, limit)
        line, self.consumed = self.consumed[:end], self.consumed[end:]
        if line.endswith(b"\n") or self.consumed or (limit >= 0 and len(line) >= limit):
            return line
        return line + self.rest.readline(limit - len(line) if limit >= 0 else -1)

    def read(self, size: int = -1, /) -> bytes:
        if size < 0:
            data, self.consumed = self.consumed + self.rest.read(), b""
            return data
        data, self.consumed = self.consumed[:size], self.consumed[size:]
        if len(data) < size:
            data += self.rest.read(size - len(data))
        return data


@dataclass
class EarlyStart:
    """What was read before the server loaded, and the answer already sent."""

    consumed: bytes
    answer: dict[str, Any] | None = None  # the response message, as sent

    def stream(self, rest: ByteSource) -> Replay:
        return Replay(self.consumed, rest)


def answer_initialize(stdin: ByteSource, stdout: BinaryIO) -> EarlyStart:
    """Read the first message; answer it when it is an `initialize` understood here.
    Returns once the server is loaded.

    A client writes `initialize` as it starts the server: it is read, answered,
    then the server loads. When nothing comes within `FIRST_MESSAGE_WAIT`, the
    server loads in a thread while the message is awaited, as it loaded before
    while waiting for the client (both at once share the interpreter's lock:
    the answer waits longer, so not for the common case)."""
    if os.environ.get(DISABLE_VARIABLE) == "0":
        return EarlyStart(b"")  # the server reads everything, as before early_init
    collecting = gc.isenabled()
    gc.disable()  # loading makes no garbage (see cli._serve): no collection meanwhile
    try:
        if _readable(stdin, FIRST_MESSAGE_WAIT):
            early = _answer(stdin, stdout)
            _load_server()
            return early
        loading = threading.Thread(target=_load_server, name="conc-lsp load", daemon=True)
        loading.start()
        try:
            return _answer(stdin, stdout)
        finally:
            loading.join()
    finally:
        if collecting:
            gc.enable()


def _readable(stdin: ByteSource, timeout: float) -> bool:
    """Input waits on ``stdin`` within ``timeout`` seconds."""
    fileno = getattr(stdin, "fileno", None)
    try:
        descriptor = fileno() if fileno else None
    except (OSError, ValueError):  # io.UnsupportedOperation: a stream in memory
        descriptor = None
    if not isinstance(descriptor, int):
        return True  # not a file: its bytes are all there already
    try:
        return bool(select.select([descriptor], [], [], timeout)[0])
    except (OSError, ValueError):  # no select for it (pipes on Windows): load meanwhile
        return False


def _load_server() -> None:
    try:
        importlib.import_module(SERVER_MODULE)
    except Exception:  # noqa: BLE001 - `serve` imports it again, and that import reports it
        return


def _answer(stdin: ByteSource, stdout: BinaryIO) -> EarlyStart:
    consumed, message = read_first_message(stdin)
    if message is None:
        return EarlyStart(consumed)
    try:
        table = json.loads(TABLE.read_bytes())
        answer = initialize_response(message, table)
    # No usable table, or params too deeply nested to walk here: the server answers.
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return EarlyStart(consumed)
    if answer is None:
        return EarlyStart(consumed)
    body = json.dumps(answer).encode("utf-8")  # ASCII: its length in bytes is in characters
    try:
        stdout.write(HEADER % len(body) + body)  # the header as pygls writes it
        stdout.flush()
    except OSError:  # the client is gone: the server finds out and ends as before
        return EarlyStart(consumed)
    return EarlyStart(consumed, answer)


def read_first_message(stdin: ByteSource) -> tuple[bytes, Any]:
    """The bytes of the first message (never more), and its JSON when its framing
    is one the transport reads without a complaint (else None)."""
    consumed = b""
    fields: dict[str, str] = {}
    while True:
        line = stdin.readline(MAX_HEADER_LINE)
        consumed += line
        if not line:
            return consumed, None
        if not line.strip():
            if fields:
                break
            continue  # blank lines before a message: the transport skips them too
        name, colon, value = line.decode("ascii", "replace").partition(":")
        if not (colon and line.endswith(b"\n")):
            return consumed, None  # the transport reports it: its path
        fields[name.strip().lower()] = value.strip()
    text = fields.get("content-length", "")
    if not text.isdigit() or int(text) > MAX_MESSAGE_BYTES:
        return consumed, None
    body = stdin.read(int(text))
    consumed += body
    if len(body) < int(text):
        return consumed, None
    try:
        return consumed, json.loads(body)
    except (ValueError, RecursionError):
        return consumed, None


def initialize_response(message: Any, table: dict[str, Any]) -> dict[str, Any] | None:
    """The response to an `initialize` request the server surely accepts; None for
    anything else (the server answers that itself)."""
    if not (
        isinstance(message, dict)
        and message.get("jsonrpc") == "2.0"
        and message.get("method") == "initialize"
        and "result" not in message
        and "error" not in message
        and (_is_integer(message.get("id")) or isinstance(message.get("id"), str))
    ):
        return None
    params = message.get("params")
    if not isinstance(params, dict):
        return None
    schema: dict[str, dict[str, list[Any]]] = table["schema"]
    if not fits(params, ["class", table["params_class"]], schema) or _has_message_inside(params):
        return None
    capabilities = {**table["capabilities"], "positionEncoding": position_encoding(params)}
    capabilities["textDocumentSync"] = text_document_sync(params, table)
    result = {
        "capabilities": capabilities,
        "serverInfo": {**table["server_info"], "version": __version__},
    }
    return {"id": message["id"], "result": result, "jsonrpc": "2.0"}


def position_encoding(params: dict[str, Any]) -> str:
    """The client's first encoding that pygls supports, else UTF-16 (pygls's rule)."""
    general = params["capabilities"].get("general") or {}
    for encoding in general.get("positionEncodings") or ():
        if encoding in SUPPORTED_ENCODINGS:
            return str(encoding)
    return DEFAULT_ENCODING


def text_document_sync(params: dict[str, Any], table: dict[str, Any]) -> dict[str, Any]:
    """pygls's rule: willSave is the client's flag (when it sends one) and-ed with
    whether the server handles the method; the same for willSaveWaitUntil."""
    sync = dict(table["capabilities"]["textDocumentSync"])
    client = (params["capabilities"].get("textDocument") or {}).get("synchronization") or {}
    for key, handled in table["will_save"].items():
        if client.get(key) is not None:
            sync[key] = client[key] and handled
    return sync


def fits(value: Any, spec: Any, schema: dict[str, dict[str, list[Any]]]) -> bool:
    """``value`` surely structures as ``spec`` (an entry of the table's schema).

    Stricter than cattrs where it is lenient (a number for a string, a string
    for a list): a value refused here only goes the slow way."""
    if isinstance(spec, str):
        return _PRIMITIVES[spec](value)
    kind = spec[0]
    if kind == "class":
        return isinstance(value, dict) and _fits_class(value, schema[spec[1]], schema)
    if kind == "union":
        return any(fits(value, option, schema) for option in spec[1:])
    if kind == "list":
        return isinstance(value, list) and all(fits(item, spec[1], schema) for item in value)
    if kind == "enum":  # [enum, values...]: a member's value, of the same JSON type
        return any(type(value) is type(member) and value == member for member in spec[1:])
    return False  # a kind this table does not hold: not understood


def _fits_class(
    value: dict[str, Any], fields: dict[str, list[Any]], schema: dict[str, dict[str, list[Any]]]
) -> bool:
    for name, (spec, required) in fields.items():
        if name in value:
            if not fits(value[name], spec, schema):
                return False
        elif required:
            return False
    return True  # other keys: cattrs ignores them


def _is_integer(value: object) -> bool:
    return type(value) is int and value in INTEGER_RANGE


_PRIMITIVES: dict[str, Callable[[Any], bool]] = {
    "null": lambda value: value is None,
    "str": lambda value: isinstance(value, str),
    "bool": lambda value: isinstance(value, bool),
    "int": _is_integer,
    "any": lambda value: True,
}


def _has_message_inside(value: Any) -> bool:
    """An object with a "jsonrpc" key inside the params: the server's reader would
    take it for a message of its own (an odd case, left to the server)."""
    if isinstance(value, dict):
        return "jsonrpc" in value or any(_has_message_inside(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_message_inside(item) for item in value)
    return False
