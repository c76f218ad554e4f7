"""The knowledge table (conc_lsp/knowledge/apis.toml) and its loader."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import tomllib
from collections.abc import Coroutine, Iterator
from importlib import resources
from typing import Any

import anyio
import jedi
import pytest
import trio
import trio.testing

from conc_lsp.knowledge import (
    BEHAVIOURS,
    ApiEntry,
    load_table,
    lookup,
    parse_table,
)

RUNTIME_LIBRARIES = ("trio", "anyio", "asyncio")
DOC_PREFIXES = {
    "trio": "https://trio.readthedocs.io/en/stable/",
    "anyio": "https://anyio.readthedocs.io/en/stable/",
    "asyncio": "https://docs.python.org/3.11/library/asyncio",
    "tractor": "https://github.com/goodboy/tractor",
}


def entries() -> list[ApiEntry]:
    unique: dict[str, ApiEntry] = {}
    for entry in load_table().values():
        unique.setdefault(entry.name, entry)
    return list(unique.values())


def raw_text() -> str:
    return resources.files("conc_lsp.knowledge").joinpath("apis.toml").read_text(encoding="utf-8")


def resolve(dotted: str) -> object:
    """Import the longest importable prefix of `dotted`, then getattr the rest."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


def same_object(a: object, b: object) -> bool:
    return getattr(a, "__func__", a) is getattr(b, "__func__", b)


def jedi_full_names(dotted: str) -> set[str]:
    parts = dotted.split(".")
    modules = [".".join(parts[:i]) for i in range(1, len(parts)) if parts[i - 1][:1].islower()]
    source = "".join(f"import {m}\n" for m in modules) + dotted + "\n"
    script = jedi.Script(source)
    names: set[str] = set()
    for prefer_stubs in (False, True):
        for found in script.goto(
            len(modules) + 1, len(dotted), follow_imports=True, prefer_stubs=prefer_stubs
        ):
            if found.full_name:
                names.add(found.full_name)
    return names


# ---------------------------------------------------------------- the packaged table


def test_table_loads_and_is_cached() -> None:
    table = load_table()
    assert table is load_table()
    assert len(entries()) >= 300
    for library in ("trio", "anyio", "asyncio", "tractor"):
        assert any(e.name.startswith(library + ".") for e in entries()), library


def test_entries_are_frozen() -> None:
    entry = load_table()["trio.sleep"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.note = "changed"  # type: ignore[misc]


def test_every_entry_has_a_documentation_source_and_a_behaviour() -> None:
    for entry in entries():
        library = entry.name.split(".")[0]
        assert entry.source.startswith(DOC_PREFIXES[library]), entry.name
        assert entry.note.strip(), entry.name
        values = [v for v in entry.behaviours() if v is not None]
        assert values, entry.name
        assert all(v in BEHAVIOURS for v in values), entry.name
        assert (entry.enter is None) == (entry.exit is None), entry.name


def test_no_duplicate_names_in_the_file() -> None:
    names = [raw["name"] for raw in tomllib.loads(raw_text())["api"]]
    assert len(names) == len(set(names))


def test_every_key_maps_to_its_entry() -> None:
    table = load_table()
    for entry in entries():
        assert table[entry.name] is entry
        for path in entry.defined:
            assert table[path].behaviours() == entry.behaviours(), (entry.name, path)


def test_public_names_exist_in_the_pinned_libraries() -> None:
    """Each trio / anyio / asyncio name resolves in the installed library; the few
    that are not class attributes at runtime -- trio's async file methods (made by
    __getattr__, declared under TYPE_CHECKING) and asyncio.Condition.acquire (an
    instance attribute, declared in typeshed) -- through jedi."""
    static_only = []
    for entry in entries():
        if entry.name.split(".")[0] not in RUNTIME_LIBRARIES:
            continue
        try:
            resolve(entry.name)
        except (ImportError, AttributeError):
            static_only.append(entry.name)
    expected = {"asyncio.Condition.acquire"}
    assert all(
        n.startswith("trio._file_io.AsyncIOWrapper.") or n in expected for n in static_only
    ), static_only
    table = load_table()
    for name in static_only:
        assert jedi_full_names(name) & {name, *table[name].defined}, name


def test_defined_paths_are_where_the_objects_are_defined() -> None:
    """Each defined path resolves to the very object the public name does (or,
    for a stub-only path, is what jedi reports for the name)."""
    checked = 0
    for entry in entries():
        if entry.name.split(".")[0] not in RUNTIME_LIBRARIES:
            continue
        try:
            public = resolve(entry.name)
        except (ImportError, AttributeError):
            public = None
        for path in entry.defined:
            try:
                defined = resolve(path)
            except (ImportError, AttributeError):
                assert path in jedi_full_names(entry.name), (entry.name, path)
                continue
            assert public is not None and same_object(defined, public), (entry.name, path)
            checked += 1
    assert checked >= 250


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("trio.sleep", "trio._timeouts.sleep"),
        ("trio.Lock.acquire", "trio._sync._LockImpl.acquire"),
        ("trio.to_thread.run_sync", "trio._threads.to_thread_run_sync"),
        ("anyio.Lock.acquire", "anyio._core._synchronization.Lock.acquire"),
        ("anyio.create_task_group", "anyio._core._tasks.create_task_group"),
        ("asyncio.Lock.acquire", "asyncio.locks.Lock.acquire"),
        ("asyncio.Task", "_asyncio.Task"),
        ("asyncio.timeout", "asyncio.timeouts.timeout"),
    ],
)
def test_jedi_reports_the_defined_paths(name: str, path: str) -> None:
    assert path in load_table()[name].defined
    assert path in jedi_full_names(name)


# ---------------------------------------------------------------- behaviours that matter


@pytest.mark.parametrize(
    ("name", "field", "value"),
    [
        ("trio.sleep", "await_", "always"),
        ("trio.lowlevel.checkpoint", "await_", "always"),
        ("trio.lowlevel.checkpoint_if_cancelled", "await_", "may-not-yield"),
        ("trio.open_nursery", "enter", "never"),
        ("trio.open_nursery", "exit", "always"),
        ("trio.Lock", "enter", "always"),
        ("trio.Lock", "exit", "never"),
        ("trio.MemoryReceiveChannel", "iteration", "always"),
        ("anyio.create_task_group", "exit", "always"),
        ("anyio.lowlevel.checkpoint", "await_", "always"),
        ("anyio.streams.memory.MemoryObjectSendStream.aclose", "await_", "never"),
        ("anyio.abc.SocketStream.send_eof", "await_", "never"),
        ("asyncio.sleep", "await_", "always"),
        ("asyncio.Lock.acquire", "await_", "may-not-yield"),
        ("asyncio.Queue.get", "await_", "may-not-yield"),
        ("asyncio.Event.wait", "await_", "may-not-yield"),
        ("asyncio.timeout", "enter", "never"),
        ("asyncio.timeout", "exit", "never"),
        ("asyncio.TaskGroup", "exit", "may-not-yield"),
        ("asyncio.Task", "await_", "may-not-yield"),
        ("tractor.Portal.run", "await_", "always"),
        ("tractor.open_nursery", "exit", "always"),
    ],
)
def test_spot_checks(name: str, field: str, value: str) -> None:
    assert getattr(load_table()[name], field) == value


def completes_without_yielding(coro: Coroutine[Any, Any, object]) -> bool:
    """Drive a coroutine one step: True if it finished without yielding."""
    try:
        coro.send(None)
    except StopIteration:
        return True
    coro.close()
    return False


def test_asyncio_fast_paths_really_do_not_yield() -> None:
    async def main() -> None:
        lock = asyncio.Lock()
        assert completes_without_yielding(lock.acquire())
        queue: asyncio.Queue[int] = asyncio.Queue()
        queue.put_nowait(1)
        assert completes_without_yielding(queue.get())
        event = asyncio.Event()
        event.set()
        assert completes_without_yielding(event.wait())
        timeout = asyncio.timeout(10)
        assert completes_without_yielding(timeout.__aenter__())
        assert completes_without_yielding(timeout.__aexit__(None, None, None))
        group = asyncio.TaskGroup()
        await group.__aenter__()
        assert completes_without_yielding(group.__aexit__(None, None, None))
        assert not completes_without_yielding(asyncio.sleep(0))

    asyncio.run(main())


def test_trio_claims_hold_at_runtime() -> None:
    async def main() -> None:
        lock = trio.Lock()
        with trio.testing.assert_checkpoints():
            await lock.__aenter__()
        with trio.testing.assert_no_checkpoints():
            await lock.__aexit__(None, None, None)
        event = trio.Event()
        event.set()
        with trio.testing.assert_checkpoints():
            await event.wait()
        send, _receive = trio.open_memory_channel[int](1)
        with trio.testing.assert_checkpoints():
            await send.aclose()
        with trio.testing.assert_no_checkpoints():
            nursery_manager = trio.open_nursery()
            await nursery_manager.__aenter__()
        # an empty nursery's exit is a schedule point but not a cancel point
        task = trio.lowlevel.current_task()
        schedule_points, cancel_points = task._schedule_points, task._cancel_points
        await nursery_manager.__aexit__(None, None, None)
        assert task._schedule_points > schedule_points
        assert task._cancel_points == cancel_points

    trio.run(main)


def test_anyio_memory_stream_close_does_not_yield() -> None:
    send, receive = anyio.create_memory_object_stream[int](1)
    assert completes_without_yielding(send.aclose())
    assert completes_without_yielding(receive.aclose())


# ---------------------------------------------------------------- lookup


@pytest.mark.parametrize(
    ("dotted", "expected"),
    [
        ("trio.sleep", "trio.sleep"),
        ("trio._timeouts.sleep", "trio.sleep"),
        ("trio._core._run.Nursery.start", "trio.Nursery.start"),
        ("trio._sync._LockImpl.acquire", "trio.Lock.acquire"),
        ("anyio._core._synchronization.Lock.acquire", "anyio.Lock.acquire"),
        ("asyncio.locks.Lock.acquire", "asyncio.Lock.acquire"),
        ("_asyncio.Task", "asyncio.Task"),
        # not in any defined list: found by normalising alone
        ("trio._not_a_module._nor_this.Nursery.start", "trio.Nursery.start"),
        ("anyio._somewhere.Event.wait", "anyio.Event.wait"),
        ("asyncio.elsewhere.Queue.get", "asyncio.Queue.get"),
        ("trio._private.sleep_forever", "trio.sleep_forever"),
    ],
)
def test_lookup_normalises(dotted: str, expected: str) -> None:
    found = lookup(dotted)
    assert found is not None and found.name == expected


@pytest.mark.parametrize(
    "dotted",
    [
        "trio",
        "not_a_library.sleep",
        "trio.no_such_function",
        "asyncio.somewhere.Unrelated.sleep",  # a method never falls back to a function
        "anyio._backends._asyncio.TaskGroup.start",
    ],
)
def test_lookup_misses(dotted: str) -> None:
    assert lookup(dotted) is None


# ---------------------------------------------------------------- malformed tables


def one(body: str) -> str:
    return "[[api]]\n" + body.strip() + "\n"


GOOD = one(
    """
name = "trio.good"
await = "always"
note = "fine"
source = "https://trio.readthedocs.io/en/stable/reference-core.html#trio.sleep"
"""
)


def test_a_minimal_table_parses() -> None:
    table = parse_table(GOOD)
    assert table["trio.good"].await_ == "always"
    assert table["trio.good"].defined == ()


def malformed() -> Iterator[tuple[str, str]]:
    src = 'source = "https://trio.readthedocs.io/x"'
    yield one(f'name = "trio.bogus"\nawait = "sometimes"\nnote = "n"\n{src}'), "sometimes"
    yield one(f'name = "trio.bogus"\nawait = "always"\nkind = "x"\nnote = "n"\n{src}'), "kind"
    yield one('name = "trio.bogus"\nawait = "always"\nnote = "n"'), "source"
    yield one(f'name = "trio.bogus"\nawait = "always"\n{src}'), "note"
    yield one(f'name = "trio.bogus"\nnote = "n"\n{src}'), "at least one"
    yield one(f'name = "trio.bogus"\nenter = "never"\nnote = "n"\n{src}'), "enter and exit"
    yield one('name = "trio.bogus"\nawait = "always"\nnote = "n"\nsource = "docs"'), "https"
    yield one(f'name = "trio.bogus"\nawait = "always"\nnote = "n"\n{src}\ndefined = "x"'), "list"
    yield one(f'name = "trio.bogus"\nawait = "always"\nnote = "n"\n{src}\ndefined = ["a b"]'), "a b"
    yield one(f'name = "trio.bogus"\nawait = 1\nnote = "n"\n{src}'), "await"


@pytest.mark.parametrize(("text", "message"), list(malformed()))
def test_malformed_entries_raise_naming_the_entry(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=r"trio\.bogus") as raised:
        parse_table(text, origin="test.toml")
    assert message in str(raised.value)
    assert "test.toml" in str(raised.value)


def test_a_duplicate_name_raises() -> None:
    with pytest.raises(ValueError, match=r"'trio.good': duplicate name"):
        parse_table(GOOD + GOOD)


def test_a_defined_path_shared_by_entries_that_disagree_raises() -> None:
    src = 'source = "https://trio.readthedocs.io/x"'
    text = one(
        f'name = "trio.a"\nawait = "always"\nnote = "n"\n{src}\ndefined = ["trio._x.shared"]'
    ) + one(f'name = "trio.b"\nawait = "never"\nnote = "n"\n{src}\ndefined = ["trio._x.shared"]')
    with pytest.raises(ValueError, match=r"'trio.b'.*trio._x.shared.*'trio.a'"):
        parse_table(text)


def test_a_defined_path_shared_by_entries_that_agree_is_fine() -> None:
    src = 'source = "https://trio.readthedocs.io/x"'
    text = one(
        f'name = "trio.a"\nawait = "always"\nnote = "n"\n{src}\ndefined = ["trio._x.shared"]'
    ) + one(f'name = "trio.b"\nawait = "always"\nnote = "n"\n{src}\ndefined = ["trio._x.shared"]')
    assert parse_table(text)["trio._x.shared"].name == "trio.a"


@pytest.mark.parametrize(
    "text",
    ["[[api]]\nname = ", 'other = 1\n[[api]]\nname = "x"', "api = 3", "[[api]]\nname = 3"],
)
def test_broken_documents_raise(text: str) -> None:
    with pytest.raises(ValueError):
        parse_table(text)
