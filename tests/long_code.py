"""Generated trio code whose methods are as long as asked: the same lines cut
into short or long methods, for what a rule costs per line as functions grow
(tests/test_scaling.py, benchmarks/long_function.py)."""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType

HEADER = '''\
"""Generated: one pool whose methods are {size} lines long."""

import trio


class Pool:
    def __init__(self, factory):
        self.factory = factory
        self.lock = trio.Lock()
        self.ready = trio.Event()
        self.done = trio.Event()
        self.closed = trio.Event()
        self.values = {{}}
        self.resources = {{}}
        self.pending = {{}}
        self.cache = {{}}
        self.results = {{}}
        self.items = []
        self.users = 0

    async def waiter(self, key):
        await self.ready.wait()
        return self.results[key]

    async def finisher(self):
        self.done.set()

'''

# 31 lines of a method body.
UNIT = """\
        value_{k} = await self.factory.fetch(key, {k})
        self.values[key] = value_{k}
        await trio.sleep(0)
        self.resources[key] = value_{k}
        if key in self.pending:
            self.pending.pop(key)
        self.users += 1
        if self.users == 0:
            self.resources.pop(key)
        async with self.lock:
            self.cache[key] = {k}
        self.ready.set()
        self.results[key] = {k}
        await self.done.wait()
        seen_{k} = self.results.get(key)
        try:
            await self.factory.flush(key, seen_{k})
        finally:
            self.closed.set()
        with trio.move_on_after({k} + 1):
            await self.factory.release(key)
        for item in self.items:
            await item.close()
        self.users -= 1
        if seen_{k} is None:
            self.values[key] = None
        else:
            self.values.pop(key)
        ready_{k} = trio.Event()
        ready_{k}.set()
        await ready_{k}.wait()
"""
UNIT_LINES = UNIT.count("\n")


def long_methods(total: int, function_lines: int) -> str:
    """About ``total`` lines of methods, each about ``function_lines`` long."""
    parts = [HEADER.format(size=function_lines)]
    units_per_function = max(function_lines // UNIT_LINES, 1)
    functions = max(total // (units_per_function * UNIT_LINES), 1)
    unit = 0
    for number in range(functions):
        parts.append(f"    async def op_{number}(self, key):\n")
        for _ in range(units_per_function):
            parts.append(UNIT.format(k=unit))
            unit += 1
        parts.append("\n")
    text = "".join(parts)
    ast.parse(text)
    return text


def cache_copies(total: int) -> str:
    """The seed's `_Cache` example (tests/fixtures/report/cache.py, four findings
    a copy) renamed copy after copy, padded to ``total`` lines."""
    source = (Path(__file__).parent / "fixtures" / "report" / "cache.py").read_text("utf-8")
    head, _, body = source.partition("import trio\n")
    text = head + "import trio\n"
    copy = 0
    while text.count("\n") + body.count("\n") <= total:
        text += (
            body.replace("_Cache", f"_Cache{copy}")
            .replace("maybe_open_context", f"maybe_open_context{copy}")
            .replace("run_ctx", f"run_ctx{copy}")
        )
        copy += 1
    return text + "# padding\n" * (total - text.count("\n"))


def counted_calls(work: Callable[[], object]) -> int:
    """How many Python and C calls ``work`` makes: a cost that does not depend
    on how busy the machine is (the scaling tests compare these, never times)."""
    count = 0

    def counter(frame: FrameType, event: str, arg: object) -> None:
        nonlocal count
        if event in ("call", "c_call"):
            count += 1

    sys.setprofile(counter)
    try:
        work()
    finally:
        sys.setprofile(None)
    return count
