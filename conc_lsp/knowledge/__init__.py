"""The knowledge table: checkpoint behaviour of the public async API of trio,
anyio, asyncio and tractor, as data (``apis.toml`` beside this module).

Each entry is keyed by the public dotted name users write (``trio.sleep``,
``trio.Lock.acquire``, ``asyncio.Queue.get``) and, through ``defined``, by the
dotted definition paths jedi reports for it in the pinned library versions
(``trio._timeouts.sleep``). It says, for each way the object can be used:

* ``await_`` -- ``await X(...)`` (for a class entry: ``await`` on an instance);
* ``enter`` / ``exit`` -- ``async with X(...)`` or ``async with obj``: the
  ``__aenter__`` / ``__aexit__`` behaviour;
* ``iteration`` -- ``async for _ in obj``: each ``__anext__`` that yields an item;

with one of three behaviours:

* ``always`` -- every call yields to the event loop (for trio and anyio: a
  schedule point, and a cancel point unless the note says otherwise);
* ``may-not-yield`` -- some path returns without yielding (a fast path);
* ``never`` -- no path yields.

Pure Python, no LSP types. ``benchmarks/knowledge_defined.py`` recomputes the
``defined`` lists with jedi.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Literal, cast

__all__ = ["ApiEntry", "Behaviour", "load_table", "lookup", "parse_table"]

Behaviour = Literal["always", "may-not-yield", "never"]

BEHAVIOURS: frozenset[str] = frozenset({"always", "may-not-yield", "never"})
BEHAVIOUR_KEYS: tuple[str, ...] = ("await", "enter", "exit", "iteration")
_ALLOWED_KEYS: frozenset[str] = frozenset({"name", "note", "source", "defined", *BEHAVIOUR_KEYS})
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
TABLE_FILE = "apis.toml"


@dataclass(frozen=True, slots=True)
class ApiEntry:
    """One public API and its checkpoint behaviour."""

    name: str
    await_: Behaviour | None
    enter: Behaviour | None
    exit: Behaviour | None
    iteration: Behaviour | None
    note: str
    source: str
    defined: tuple[str, ...]

    def behaviours(self) -> tuple[Behaviour | None, ...]:
        """(await, enter, exit, iteration), for comparing two entries."""
        return (self.await_, self.enter, self.exit, self.iteration)


def _fail(where: str, message: str) -> ValueError:
    return ValueError(f"{where}: {message}")


def _behaviour(raw: dict[str, object], key: str, where: str) -> Behaviour | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or value not in BEHAVIOURS:
        allowed = ", ".join(sorted(BEHAVIOURS))
        raise _fail(where, f"{key} = {value!r} is not one of {allowed}")
    return cast(Behaviour, value)


def _text(raw: dict[str, object], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise _fail(where, f"{key} must be a non-empty string")
    if "\n" in value:
        raise _fail(where, f"{key} must be one line")
    return value


def _entry(raw: object, index: int, origin: str) -> ApiEntry:
    where = f"{origin}: [[api]] #{index + 1}"
    if not isinstance(raw, dict):
        raise _fail(where, "not a table")
    name = raw.get("name")
    if not isinstance(name, str) or not _DOTTED.fullmatch(name):
        raise _fail(where, f"name = {name!r} is not a dotted name")
    where = f"{origin}: [[api]] {name!r} (#{index + 1})"
    unknown = sorted(set(raw) - _ALLOWED_KEYS)
    if unknown:
        raise _fail(where, f"unknown key(s) {', '.join(unknown)}")
    await_ = _behaviour(raw, "await", where)
    enter = _behaviour(raw, "enter", where)
    exit_ = _behaviour(raw, "exit", where)
    iteration = _behaviour(raw, "iteration", where)
    if (await_, enter, exit_, iteration) == (None, None, None, None):
        raise _fail(where, "needs at least one of await, enter, exit, iteration")
    if (enter is None) != (exit_ is None):
        raise _fail(where, "enter and exit go together")
    note = _text(raw, "note", where)
    source = _text(raw, "source", where)
    if not source.startswith("https://"):
        raise _fail(where, f"source {source!r} is not an https URL")
    defined_raw = raw.get("defined", [])
    if not isinstance(defined_raw, list):
        raise _fail(where, "defined must be a list of dotted names")
    defined: list[str] = []
    for path in defined_raw:
        if not isinstance(path, str) or not _DOTTED.fullmatch(path):
            raise _fail(where, f"defined entry {path!r} is not a dotted name")
        if path == name or path in defined:
            raise _fail(where, f"defined entry {path!r} repeats a key of the entry")
        defined.append(path)
    return ApiEntry(
        name=name,
        await_=await_,
        enter=enter,
        exit=exit_,
        iteration=iteration,
        note=note,
        source=source,
        defined=tuple(defined),
    )


def parse_table(text: str, origin: str = TABLE_FILE) -> dict[str, ApiEntry]:
    """Parse and check the table's TOML text; keys are names and ``defined`` paths.

    Raises ValueError naming the entry for anything malformed: unknown keys, a
    missing source or behaviour, a value outside always / may-not-yield / never,
    a duplicate name, or a ``defined`` path shared by entries that disagree.
    """
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{origin}: not valid TOML: {error}") from error
    extra = sorted(set(document) - {"api"})
    if extra:
        raise ValueError(f"{origin}: unknown top-level key(s) {', '.join(extra)}")
    raw_entries = document.get("api", [])
    if not isinstance(raw_entries, list):
        raise ValueError(f"{origin}: api must be an array of tables ([[api]])")
    entries = [_entry(raw, index, origin) for index, raw in enumerate(raw_entries)]
    table: dict[str, ApiEntry] = {}
    for entry in entries:
        if entry.name in table:
            raise ValueError(f"{origin}: [[api]] {entry.name!r}: duplicate name")
        table[entry.name] = entry
    for entry in entries:
        for path in entry.defined:
            other = table.get(path)
            if other is None:
                table[path] = entry
            elif other.behaviours() != entry.behaviours():
                raise ValueError(
                    f"{origin}: [[api]] {entry.name!r}: defined path {path!r} is also a key of "
                    f"{other.name!r}, which behaves differently"
                )
    return table


@functools.cache
def load_table() -> Mapping[str, ApiEntry]:
    """The packaged table, read once: public names and defined paths to entries."""
    text = resources.files(__name__).joinpath(TABLE_FILE).read_text(encoding="utf-8")
    return MappingProxyType(parse_table(text))


def _is_class_like(segment: str) -> bool:
    stripped = segment.lstrip("_")
    return bool(stripped) and stripped[0].isupper()


def _candidates(dotted: str) -> list[str]:
    parts = dotted.split(".")
    tops = [parts[0]]
    if parts[0].startswith("_") and len(parts[0]) > 1:
        tops.append(parts[0].lstrip("_"))  # _asyncio.Task -> asyncio.Task
    start = next(
        (i for i in range(1, len(parts)) if _is_class_like(parts[i])),
        len(parts) - 1,
    )
    modules, qualname = parts[1:start], parts[start:]
    if not qualname or start == 0:
        return []
    public_modules = [m for m in modules if not m.startswith("_")]
    out: list[str] = []
    for top in tops:
        for middle in (modules, public_modules, []):
            candidate = ".".join([top, *middle, *qualname])
            if candidate not in out:
                out.append(candidate)
    return out


def lookup(dotted: str) -> ApiEntry | None:
    """The entry for a dotted name: exact, else normalised.

    Normalising keeps the top-level package and the qualname (from the first
    class-like segment, or the last segment) and drops module segments: first
    the private ones, then all of them. ``trio._core._run.Nursery.start`` ->
    ``trio.Nursery.start``; ``asyncio.locks.Lock.acquire`` -> ``asyncio.Lock.acquire``.
    """
    table = load_table()
    found = table.get(dotted)
    if found is not None or "." not in dotted:
        return found
    for candidate in _candidates(dotted):
        found = table.get(candidate)
        if found is not None:
            return found
    return None
