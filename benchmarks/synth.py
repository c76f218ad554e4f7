"""Synthetic, realistic trio modules for the server benchmarks.

A module is built from a ~50-line unit of top-level async functions (deadlines,
retries, nurseries, ``async for``, ``try``/``finally`` with shielded cleanup)
repeated with renamed functions, and, every few thousand lines, a big class
whose methods use a lock, an event and awaits.  Every generated text parses.

``Module.function_anchors`` / ``Module.method_anchors`` are (line, column)
positions just after a plain assignment target inside a function body
(``attempt`` in ``attempt = 0``), where typing a letter keeps the text valid
and typing ``(`` breaks it.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

HEADER = '''\
"""Generated trio module {tag}: services, workers and pools."""

from __future__ import annotations

import math
from contextlib import asynccontextmanager

import trio


'''

# One unit: about 50 lines.  {p} is a per-file prefix, {k} the unit number.
UNIT = '''\
async def {p}fetch_{k}(client, url, retries={retries}):
    """Fetch ``url`` with a deadline per attempt (unit {k})."""
    attempt = 0
    result = None
    while attempt < retries:
        attempt += 1
        with trio.move_on_after({timeout}) as scope:
            response = await client.get(url)
            result = response.json()
        if scope.cancelled_caught:
            await trio.sleep(0.1 * attempt)
            continue
        break
    return result


async def {p}serve_{k}(listener, handler, *, task_status=trio.TASK_STATUS_IGNORED):
    async with trio.open_nursery() as nursery:
        task_status.started(listener)
        while True:
            stream = await listener.accept()
            nursery.start_soon(handler, stream)


async def {p}drain_{k}(stream, limit={limit}):
    chunks = []
    try:
        async for chunk in stream:
            chunks.append(chunk)
            if len(chunks) > limit:
                break
    finally:
        with trio.CancelScope(shield=True):
            await stream.aclose()
    return b"".join(chunks)


@asynccontextmanager
async def {p}session_{k}(factory, event):
    conn = await factory.connect()
    try:
        yield conn
    except trio.Cancelled:
        await conn.rollback()
        raise
    finally:
        event.set()
        await conn.close()


'''

CLASS_HEAD = '''\
class {p}Pool{c}:
    """A connection pool with {methods} operations (class {c})."""

    def __init__(self, size, factory):
        self.size = size
        self.factory = factory
        self.lock = trio.Lock()
        self.ready = trio.Event()
        self.items = []

'''

# One method pair: 20 lines.
CLASS_METHOD = """\
    async def op_{m}(self, key, deadline=math.inf):
        async with self.lock:
            item = await self.factory.acquire(key)
        try:
            value = item.compute(key, "{m}")
            with trio.fail_at(deadline):
                await item.flush()
            return value
        finally:
            self.ready.set()
            await self.factory.release(item)

    async def watch_{m}(self, channel):
        seen = 0
        async with channel:
            async for message in channel:
                seen += 1
                await self.op_{m}(message.key)
        return seen

"""

UNIT_LINES = UNIT.count("\n")
METHOD_LINES = CLASS_METHOD.count("\n")


@dataclass
class Module:
    text: str
    lines: int
    function_anchors: list[tuple[int, int]] = field(default_factory=list)
    method_anchors: list[tuple[int, int]] = field(default_factory=list)
    classes: list[tuple[str, int, int]] = field(default_factory=list)  # name, first, end

    def nearest(self, anchors: list[tuple[int, int]], line: int) -> tuple[int, int]:
        return min(anchors, key=lambda anchor: abs(anchor[0] - line))


def trio_module(
    total_lines: int,
    *,
    prefix: str = "",
    seed: int = 0,
    class_every: int = 2500,
    class_methods: int = 30,
) -> Module:
    """A valid trio module of exactly ``total_lines`` lines (text ends with a newline).

    A class of ``class_methods`` method pairs (20 lines each) is placed after
    every ``class_every`` lines of functions; small modules get one smaller
    class in the middle.
    """
    out: list[str] = [HEADER.format(tag=f"{prefix or 'main'}#{seed}")]
    used = out[0].count("\n")
    function_anchors: list[tuple[int, int]] = []
    method_anchors: list[tuple[int, int]] = []
    classes: list[tuple[str, int, int]] = []
    unit = 0
    cls = 0
    since_class = 0
    if total_lines < class_every:
        class_every = max(total_lines // 2, UNIT_LINES)
        class_methods = max(min(class_methods, (total_lines // 4) // METHOD_LINES), 1)
    while True:
        if since_class >= class_every:
            head = CLASS_HEAD.format(p=prefix, c=cls, methods=2 * class_methods)
            body = [CLASS_METHOD.format(m=f"{cls}_{m}") for m in range(class_methods)]
            size = head.count("\n") + METHOD_LINES * class_methods + 1
            if used + size <= total_lines:
                first = used
                out.append(head)
                used += head.count("\n")
                for method in body:
                    for offset, line in enumerate(method.splitlines()):
                        if line.startswith("            value = "):
                            method_anchors.append((used + offset, len("            value")))
                    out.append(method)
                    used += METHOD_LINES
                out.append("\n")
                used += 1
                classes.append((f"{prefix}Pool{cls}", first, used))
                cls += 1
            since_class = 0
        if used + UNIT_LINES > total_lines:
            break
        seed_value = seed * 7919 + unit
        text = UNIT.format(
            p=prefix,
            k=unit,
            retries=2 + seed_value % 5,
            timeout=1 + seed_value % 9,
            limit=16 + seed_value % 48,
        )
        for offset, line in enumerate(text.splitlines()):
            if line == "    attempt = 0":
                function_anchors.append((used + offset, len("    attempt")))
        out.append(text)
        used += UNIT_LINES
        since_class += UNIT_LINES
        unit += 1
    while used < total_lines:
        out.append(f"# padding {used}\n")
        used += 1
    text = "".join(out)
    # ``text`` ends with a newline, so LSP sees total_lines + 1 lines (the last empty).
    assert text.count("\n") == total_lines, (text.count("\n"), total_lines)
    ast.parse(text)  # a generator bug should fail loudly, not skew the figures
    return Module(text, total_lines, function_anchors, method_anchors, classes)
