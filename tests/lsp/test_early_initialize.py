"""`initialize` answered before the server loads (conc_lsp/server/early_init.py):
the same answer and the same session as when pygls answers it, for real
clients' capabilities and for odd first messages."""

from __future__ import annotations

import copy
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from cattrs import ClassValidationError
from lsprotocol import types
from pygls.protocol import default_converter
from pytest_lsp.client import client_capabilities

from conc_lsp.server import early_init, initialize_table, transport
from conc_lsp.server.protocol import strict_converter

from .conftest import CLIENTS, SERVER_COMMAND
from .raw import WAIT

EARLY_NOTE = b"answered before the server loaded"


def recorded(client: str) -> dict[str, Any]:
    """The capabilities pytest-lsp sends for ``client`` (as in the protocol tests)."""
    capabilities = default_converter().unstructure(client_capabilities(client))
    as_sent: dict[str, Any] = json.loads(json.dumps(capabilities))  # enums as plain values
    return as_sent


def frame(message: Any) -> bytes:
    body = json.dumps(message).encode("utf-8")
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def initialize(capabilities: dict[str, Any], **params: Any) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"processId": None, "rootUri": None, "capabilities": capabilities, **params},
    }


END = [
    {"jsonrpc": "2.0", "method": "initialized", "params": {}},
    {"jsonrpc": "2.0", "id": 99, "method": "shutdown"},
    {"jsonrpc": "2.0", "method": "exit"},
]


def parse(output: bytes) -> list[dict[str, Any]]:
    """The server's messages; the ids of its own requests (random) left out."""
    messages = []
    stream = io.BytesIO(output)
    while True:
        fields = early_init.read_first_message(stream)
        if fields[1] is None:
            assert not fields[0].strip(), f"unreadable output: {fields[0][:200]!r}"
            return messages
        message = fields[1]
        if "method" in message:
            message.pop("id", None)
        messages.append(message)


def session(data: bytes, early: bool, root: Path) -> tuple[list[dict[str, Any]], int, bytes]:
    """The whole output of a server fed ``data``, its exit code and its stderr."""
    env = {
        **os.environ,
        early_init.DISABLE_VARIABLE: "1" if early else "0",
        "CONC_LSP_LOG_LEVEL": "INFO",
    }
    with tempfile.TemporaryFile() as stderr:
        done = subprocess.run(
            SERVER_COMMAND,
            input=data,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
            cwd=root,
            timeout=WAIT,
            check=False,
        )
        stderr.seek(0)
        return parse(done.stdout), done.returncode, stderr.read()


def both_ways(data: bytes, root: Path) -> tuple[list[dict[str, Any]], bytes]:
    """Run the server with and without the early answer: same messages, same exit code."""
    early, early_code, early_log = session(data, True, root)
    normal, normal_code, normal_log = session(data, False, root)
    assert early == normal
    assert early_code == normal_code
    assert EARLY_NOTE not in normal_log
    assert b"answered early with" not in early_log  # protocol.py's mismatch report
    return early, early_log


ODD_OPTIONS = {
    "bogus": 1,
    "hints": {"show": 3, "unknown": True},
    "select": "CONC101",
    "resolve": [],
}
CASES = {
    "vscode": initialize(recorded("visual-studio-code")),
    "neovim": initialize(recorded("neovim")),
    "utf-8 only": initialize({"general": {"positionEncodings": ["utf-8"]}}),
    "unknown encodings": initialize({"general": {"positionEncodings": ["utf-7", "x"]}}),
    "odd options": initialize(recorded("neovim"), initializationOptions=ODD_OPTIONS),
    "options as a list": initialize({}, initializationOptions=[1, 2]),
}


ROOTLESS = {"options as a list"}  # no workspace folder: no pyproject either
PYPROJECT = '[tool.conc-lsp]\nselect = "CONC101"\nbogus = true\n[tool.conc-lsp.hints]\nshow = 1\n'


@pytest.mark.parametrize("name", list(CASES))
def test_the_early_answer_is_the_servers_own(name: str, tmp_path: Path) -> None:
    """The whole session's output is the same with and without the early answer
    (the answer, then the settings' warnings at `initialized`, ...)."""
    message = copy.deepcopy(CASES[name])
    if name not in ROOTLESS:
        (tmp_path / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
        message["params"]["workspaceFolders"] = [{"uri": tmp_path.as_uri(), "name": "root"}]
    messages, log = both_ways(b"".join(frame(m) for m in [message, *END]), tmp_path)
    assert EARLY_NOTE in log  # this case did take the early path
    answer = messages[0]
    assert answer["id"] == 1 and "capabilities" in answer["result"]
    assert {"id": 99, "jsonrpc": "2.0", "result": None} in messages


def _deeply_nested(levels: int) -> bytes:
    """An initialize whose options nest ``levels`` objects and lists (written out:
    too deep for json.dumps)."""
    message = json.dumps(initialize({}, initializationOptions="@")).encode("utf-8")
    options = b'{"a": [' * (levels // 2) + b"1" + b"]}" * (levels // 2)
    body = message.replace(b'"@"', options)
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


ODD_FIRST = {
    "not initialize": frame({"jsonrpc": "2.0", "id": 1, "method": "shutdown"}),
    "a notification": frame({"jsonrpc": "2.0", "method": "initialized", "params": {}}),
    "not JSON": b"Content-Length: 5\r\n\r\n{nope",
    "a batch": frame([initialize({})]),
    "a header line without a colon": b"Content-Length 12\r\n" + frame(initialize({})),
    "no Content-Length": b"Content-Type: x\r\n\r\n" + frame(initialize({})),
    "invalid params": frame(initialize({}, processId="7")),
    "a string where a list is": frame(initialize({"general": {"positionEncodings": "utf-8"}})),
    "a message inside the options": frame(initialize({}, initializationOptions={"jsonrpc": 1})),
    "blank lines first": b"\r\n\r\n" + frame(initialize({})),
    "a string id": frame({**initialize({}), "id": "first"}),
    "options nested 1,000 deep": _deeply_nested(1000),
    "options nested 10,000 deep": _deeply_nested(10_000),
}


@pytest.mark.parametrize("name", list(ODD_FIRST))
def test_an_odd_first_message_is_handled_as_before(name: str, tmp_path: Path) -> None:
    data = ODD_FIRST[name] + b"".join(frame(m) for m in [initialize({}), *END])
    messages, _ = both_ways(data, tmp_path)
    assert messages  # the server answered something, the same both ways


def test_end_of_input_at_once_is_as_before(tmp_path: Path) -> None:
    assert both_ways(b"", tmp_path)[0] == []


@pytest.mark.parametrize("client", list(CLIENTS))
def test_the_protocol_tests_take_the_early_path(client: str, tmp_path: Path) -> None:
    """conftest.py's sessions (SERVER_COMMAND, its initialize params as pytest-lsp
    sends them) are answered early: the protocol tests run through early_init."""
    params = types.InitializeParams(
        capabilities=client_capabilities(client),
        root_uri=tmp_path.as_uri(),
        initialization_options={"resolve": {"enabled": False}},
        process_id=os.getpid(),
    )
    sent = json.loads(json.dumps(default_converter().unstructure(params)))
    message = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": sent}
    messages, code, log = session(b"".join(frame(m) for m in [message, *END]), True, tmp_path)
    assert EARLY_NOTE in log
    assert code == 0 and messages[0]["id"] == 1


# -- the pieces, without a server ------------------------------------------------


def test_the_table_is_up_to_date() -> None:
    """Else: python -m conc_lsp.server.initialize_table"""
    assert early_init.TABLE.read_text(encoding="utf-8") == initialize_table.render()


def test_the_limits_are_the_transports() -> None:
    assert early_init.MAX_HEADER_LINE == transport.MAX_HEADER_LINE
    assert early_init.MAX_MESSAGE_BYTES == transport.MAX_MESSAGE_BYTES


def test_only_the_first_message_is_read() -> None:
    first, second = frame(initialize({})), frame(END[0])
    stream = io.BytesIO(b"\r\n" + first + second)
    consumed, message = early_init.read_first_message(stream)
    assert consumed == b"\r\n" + first and message == initialize({})
    assert stream.read() == second


def test_the_replay_gives_back_every_byte() -> None:
    data = b"Content-Length: 3\r\n\r\nabcContent-Length: 1\r\n\r\nz"
    for split in range(len(data) + 1):
        for limit in (-1, 4, 64):
            replay = early_init.Replay(data[:split], io.BytesIO(data[split:]))
            read = b""
            while line := replay.readline(limit):
                read += line + replay.read(2)
            assert read == data, (split, limit)


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [path] + [p for key, item in value.items() for p in _leaves(item, (*path, key))]
    if isinstance(value, list):
        return [path] + [p for i, item in enumerate(value) for p in _leaves(item, (*path, i))]
    return [path]


def _replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = value.copy()
    copy[path[0]] = _replaced(value[path[0]], path[1:], new)
    return copy


ODD_VALUES = [None, "x", 1, -1, 2**40, True, 1.5, [], {}, ["x"], {"x": 1}]


@pytest.mark.parametrize("client", ["visual-studio-code", "neovim"])
def test_what_early_init_accepts_the_server_accepts(client: str) -> None:
    """Every one-value change of a real client's initialize: when early_init
    answers it, lsprotocol structures it (else the server would refuse what
    was already accepted)."""
    converter = strict_converter()
    table = json.loads(early_init.TABLE.read_bytes())
    message = initialize(recorded(client), initializationOptions={"a": 1})
    assert early_init.initialize_response(message, table) is not None
    request_type = types.InitializeRequest
    accepted = 0
    for path in _leaves(message["params"]):
        for new in ODD_VALUES:
            changed = _replaced(message, ("params", *path), new)
            if early_init.initialize_response(changed, table) is None:
                continue
            accepted += 1
            converter.structure(changed, request_type)  # raises if it does not fit
    assert accepted > len(_leaves(message["params"]))  # the sweep did test something


def _maximal(spec: Any, schema: dict[str, Any]) -> Any:
    """A value of ``spec`` with every optional flag and object present (flags true)."""
    if spec == "bool":
        return True
    kind = spec[0] if isinstance(spec, list) else None
    if kind == "union":
        options = [option for option in spec[1:] if option not in ("null", "any")]
        ranked = sorted(options, key=lambda option: not isinstance(option, list))
        return _maximal(ranked[0], schema) if ranked else None
    if kind == "class":
        made = {}
        for name, (field, required) in schema[spec[1]].items():
            value = _maximal(field, schema)
            if value is None and required:
                value = {"str": "x", "int": 1}.get(field) or _first(field)
            if value is not None:
                made[name] = value
        return made
    return [] if kind == "list" else None


def _first(spec: Any) -> Any:
    return spec[1] if isinstance(spec, list) and spec[0] == "enum" else None


def _flags(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [flag for key, item in value.items() for flag in _flags(item, (*path, key))]
    return [path] if isinstance(value, bool) else []


def _without(value: dict[str, Any], path: tuple[Any, ...]) -> dict[str, Any]:
    copy = dict(value)
    if len(path) == 1:
        del copy[path[0]]
    else:
        copy[path[0]] = _without(value[path[0]], path[1:])
    return copy


def test_every_client_flag_gets_the_servers_capabilities() -> None:
    """pygls derives some capabilities from the client's (willSave, ...): for a
    client with every flag on, and with each flag off or left out in turn, the
    early capabilities are pygls's."""
    converter = strict_converter()
    table = json.loads(early_init.TABLE.read_bytes())
    everything = _maximal(["class", "ClientCapabilities"], table["schema"])
    flags = _flags(everything)
    assert len(flags) > 100  # the sweep covers the capabilities, not a few of them
    variants = [everything]
    for flag in flags:
        variants += [_replaced(everything, flag, False), _without(everything, flag)]
    for capabilities in variants:
        message = initialize(capabilities)
        early = early_init.initialize_response(message, table)
        if early is None:  # a required flag left out: the server refuses it too
            with pytest.raises(ClassValidationError):
                converter.structure(message["params"], types.InitializeParams)
            continue
        params = converter.structure(message["params"], types.InitializeParams)
        assert early["result"] == initialize_table.server_answer(params)


LOADED_AFTER_ANSWER = """\
import io, sys
from conc_lsp.server import early_init
before = "lsprotocol.types" in sys.modules
early = early_init.answer_initialize(sys.stdin.buffer, io.BytesIO())
print(before, early.answer is not None, early_init.SERVER_MODULE in sys.modules)
"""
LATE = 0.5  # seconds: a client slow to send initialize (the server loads meanwhile)


def run_late(command: list[str], data: bytes, env: dict[str, str], delay: float) -> bytes:
    """Run ``command``, write ``data`` ``delay`` seconds after its start; its stdout."""
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    )
    time.sleep(delay)
    output, _ = process.communicate(data, timeout=WAIT)
    return output


@pytest.mark.parametrize("delay", [0.0, LATE])
@pytest.mark.parametrize(
    ("flag", "expected"), [("1", "False True True"), ("0", "False False False")]
)
def test_the_server_is_loaded_once_the_first_message_is_read(
    flag: str, expected: str, delay: float
) -> None:
    """early_init itself loads no LSP code; the server is loaded by the time it
    returns (after the answer, or meanwhile for a late message); with
    CONC_LSP_EARLY_INITIALIZE=0 it does nothing (the server reads and loads)."""
    env = {**os.environ, early_init.DISABLE_VARIABLE: flag}
    command = [sys.executable, "-c", LOADED_AFTER_ANSWER]
    output = run_late(command, frame(initialize({})), env, delay)
    assert output.decode().split() == expected.split()


def test_a_late_initialize_gets_the_same_session(tmp_path: Path) -> None:
    """A client that writes initialize late (the server loads meanwhile)."""
    data = b"".join(frame(m) for m in [initialize(recorded("neovim")), *END])
    sessions = [
        parse(
            run_late(SERVER_COMMAND, data, {**os.environ, early_init.DISABLE_VARIABLE: flag}, LATE)
        )
        for flag in ("1", "0")
    ]
    assert sessions[0] == sessions[1]
    assert sessions[0][0]["result"]["capabilities"]["positionEncoding"] == "utf-8"
