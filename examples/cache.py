"""A per-key resource cache shared by many tasks, in the shape of tractor's
`_Cache` / `maybe_open_context` (see the conc-anal seed).  It has the races
the seed describes: try `conc-lsp hints examples/cache.py`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager as acm
from typing import Any

import trio


class _Cache:
    service_tn: trio.Nursery | None = None
    locks: dict[str, trio.Lock] = {}
    users: int = 0
    values: dict[str, Any] = {}
    resources: dict[str, tuple[trio.Nursery, trio.Event]] = {}

    @classmethod
    async def run_ctx(
        cls,
        mngr: Callable[[], Any],
        ctx_key: str,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        async with mngr() as value:
            _, no_more_users = cls.resources[ctx_key]
            cls.values[ctx_key] = value
            task_status.started()
            try:
                await no_more_users.wait()
            finally:
                cls.values.pop(ctx_key)
        cls.resources.pop(ctx_key)


@acm
async def maybe_open_context(
    acm_func: Callable[[], Any],
    key: str,
) -> AsyncIterator[tuple[bool, Any]]:
    ctx_key = f"{id(acm_func)}:{key}"
    lock = _Cache.locks.setdefault(ctx_key, trio.Lock())
    await lock.acquire()
    try:
        yielded = _Cache.values[ctx_key]
    except KeyError:
        service_n = _Cache.service_tn
        assert service_n is not None
        _Cache.resources[ctx_key] = (service_n, trio.Event())
        await service_n.start(_Cache.run_ctx, acm_func, ctx_key)
        _Cache.users += 1
        lock.release()
        yield False, _Cache.values[ctx_key]
    else:
        _Cache.users += 1
        lock.release()
        yield True, yielded
    finally:
        _Cache.users -= 1
        if _Cache.users == 0:
            _, no_more_users = _Cache.resources[ctx_key]
            no_more_users.set()
            _Cache.locks.pop(ctx_key)


async def serve_peers(listeners: list[trio.SocketListener], done: trio.Event) -> None:
    async with trio.open_nursery() as nursery:
        for listener in listeners:
            nursery.start_soon(trio.serve_listeners, print, [listener])
        try:
            await trio.sleep_forever()
        finally:
            with trio.move_on_after(3) as cs:
                cs.shield = True
                await done.wait()
            await done.wait()  # unbounded and unshielded: the bug the seed warns about


async def stream_lines(receive: trio.MemoryReceiveChannel[str]) -> list[str]:
    return [line async for line in receive if line]
