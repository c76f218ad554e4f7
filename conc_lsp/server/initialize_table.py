"""Writes ``initialize_result.json``, what `early_init` answers `initialize` from.

Taken from the real server: its capabilities as pygls computes them for a client
without capabilities (`early_init` adds what pygls derives from the client's:
the position encoding, and textDocumentSync's willSave flags, for which it
records whether the server handles those methods), its serverInfo
name, and the shape of lsprotocol's InitializeParams (field names as sent,
types, required or not) so that `early_init` answers only params the server
surely accepts. ``python -m conc_lsp.server.initialize_table`` rewrites the
file; tests/lsp/test_early_initialize.py fails when it is out of date.
"""

from __future__ import annotations

import collections.abc
import enum
import json
import sys
import types as python_types
import typing
from typing import Any

import attrs
from lsprotocol import types

from conc_lsp.server.app import create_server
from conc_lsp.server.early_init import TABLE

PARAMS_CLASS = types.InitializeParams
SEQUENCES = (list, collections.abc.Sequence)


def _json_name(name: str) -> str:
    """lsprotocol's converter's renaming: snake_case -> camelCase, a trailing _ dropped."""
    parts = name.removesuffix("_").split("_")
    return parts[0] + "".join(part.title() for part in parts[1:])


def _spec(hint: Any, schema: dict[str, dict[str, list[Any]]]) -> Any:
    """A JSON description of a field's type (see `early_init.fits`)."""
    simple = {type(None): "null", str: "str", bool: "bool", int: "int", typing.Any: "any"}
    if hint in simple:
        return simple[hint]
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return ["enum", *(member.value for member in hint)]
    if attrs.has(hint):
        _add_class(hint, schema)
        return ["class", hint.__name__]
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, python_types.UnionType):
        return ["union", *(_spec(argument, schema) for argument in arguments)]
    if origin in SEQUENCES and len(arguments) == 1:
        return ["list", _spec(arguments[0], schema)]
    if origin is typing.Literal:
        return ["enum", *arguments]
    return ["unknown", repr(hint)]  # early_init.fits refuses it: the server answers


def _add_class(cls: type, schema: dict[str, dict[str, list[Any]]]) -> None:
    if cls.__name__ in schema:
        return
    schema[cls.__name__] = fields = {}
    hints = typing.get_type_hints(cls, vars(types))
    for field in attrs.fields(cls):
        required = field.default is attrs.NOTHING
        fields[_json_name(field.name)] = [_spec(hints[field.name], schema), required]


def schema() -> dict[str, dict[str, list[Any]]]:
    found: dict[str, dict[str, list[Any]]] = {}
    _add_class(PARAMS_CLASS, found)
    return found


def server_answer(params: types.InitializeParams) -> dict[str, Any]:
    """The real server's InitializeResult for ``params``, as JSON."""
    server = create_server()
    protocol = server.protocol
    steps = protocol.lsp_initialize(params)
    handler, arguments, _ = next(steps)
    handler(*arguments)
    try:
        steps.send(None)
    except StopIteration as done:
        answer: dict[str, Any] = protocol._converter.unstructure(done.value)
        return answer
    raise RuntimeError("pygls's initialize yielded more than once")


def table() -> dict[str, Any]:
    features = create_server().protocol.fm.features
    answer = server_answer(
        types.InitializeParams(capabilities=types.ClientCapabilities(), process_id=None)
    )
    capabilities = dict(answer["capabilities"])
    del capabilities["positionEncoding"]  # negotiated per client
    server_info = dict(answer["serverInfo"])
    del server_info["version"]  # conc_lsp.__version__ when answering
    return {
        "params_class": PARAMS_CLASS.__name__,
        "capabilities": capabilities,
        "server_info": server_info,
        "will_save": {  # textDocumentSync key -> the server handles that method
            "willSave": types.TEXT_DOCUMENT_WILL_SAVE in features,
            "willSaveWaitUntil": types.TEXT_DOCUMENT_WILL_SAVE_WAIT_UNTIL in features,
        },
        "schema": schema(),
    }


def render() -> str:
    return json.dumps(table(), indent=1, sort_keys=True) + "\n"


def main() -> int:
    TABLE.write_text(render(), encoding="utf-8")
    print(f"wrote {TABLE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
