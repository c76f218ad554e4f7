"""Fixes that are safe when they say so (issue 13, part 2): the names a fix
uses exist, the library is the function's, a bound is never defeated, and no
new finding appears."""

from __future__ import annotations

import ast

from conc_lsp.analysis.text import split_lines
from conc_lsp.diagnose import check_lines, fix_lines
from tests.fix_properties import EVERY_RULE, must_hold, sweep_module
from tests.rule_settings import SEED_SETTINGS


def fixed(source: str) -> tuple[str, list[str]]:
    lines = split_lines(source)
    new, applied, result = fix_lines(lines, SEED_SETTINGS, "m.py")
    assert applied >= 1
    text = "\n".join(new)
    ast.parse(text)
    return text, sorted(finding.code for finding in result.findings)


def test_an_attribute_logger_is_not_taken_for_a_module_logger() -> None:
    source = (
        "import trio\n\n\nasync def teardown(actor, done: trio.Event):\n"
        "    actor.log.warning('starting')\n    try:\n        await actor.serve()\n"
        "    finally:\n        await done.wait()\n"
    )
    text, _ = fixed(source)
    assert "move_on_after" in text
    # no bare, undefined `log.warning(...)`: the module has no logger of its own
    assert "\n            log." not in text and " log.warning" not in text.replace("actor.log", "")


def test_an_asyncio_function_of_a_module_importing_trio_too_gets_asyncio() -> None:
    source = (
        "import asyncio\nimport trio\n\n\nasync def trio_side(ev: trio.Event):\n"
        "    await trio.sleep(1)\n\n\nasync def asyncio_side(proc):\n    try:\n"
        "        await asyncio.sleep(1)\n    finally:\n        await proc.wait()\n"
    )
    text, _ = fixed(source)
    asyncio_part = text.split("async def asyncio_side", 1)[1]
    assert "asyncio.timeout(" in asyncio_part and "trio." not in asyncio_part


def test_the_shield_of_a_bounded_cleanup_keeps_a_deadline() -> None:
    source = (
        "import trio\n\n\nasync def close(conn, registry):\n    try:\n"
        "        await conn.serve()\n    finally:\n        with trio.move_on_after(30):\n"
        "            await conn.send_goodbye()\n            registry.pop(conn)\n"
    )
    assert [f.code for f in check_lines(split_lines(source), SEED_SETTINGS, "m.py").findings] == [
        "CONC102"
    ]
    text, remaining = fixed(source)
    assert "CancelScope(shield=True)" not in text  # a bare shield defeats the bound
    assert "move_on_after(5, shield=True)" in text
    assert remaining == []  # no CONC101 appears: the shielded wait has a deadline


# -- every offered fix keeps the properties (tests/fix_properties.py) -----------


def offered_fix_titles(source: str, code: str) -> list[str]:
    """The titles of the fixes offered for ``code``, after asserting that each
    of them, applied alone, keeps every property (an unsafe one: those it must)."""
    lines = split_lines(source)
    tally = sweep_module("m.py", lines, codes=[code])
    assert [(f.broken, f.detail) for f in tally.failures if must_hold(f)] == []
    findings = check_lines(lines, EVERY_RULE, "m.py", fixes=True).findings
    return [f.fix.title for f in findings if f.code == code and f.fix is not None]


CONC103_HEAD = (
    "import trio\n\n\nasync def get(cache, lock, done, key, fetch):\n    await lock.acquire()\n"
    "    try:\n        value = cache[key]\n    except KeyError:\n        value = await fetch(key)\n"
)


def test_a_conc103_fix_moves_every_release_the_await_would_skip() -> None:
    # Moving only `lock.release()` left `done.set()` skipped: one CONC103 for another.
    source = CONC103_HEAD + "        lock.release()\n        done.set()\n    return value\n"
    assert offered_fix_titles(source, "CONC103") == [
        "Move `lock.release()` and 1 more into a `finally:`"
    ]
    text, remaining = fixed(source)
    assert "    finally:\n            lock.release()\n            done.set()\n" in text
    assert "CONC103" not in remaining


def test_a_conc103_fix_is_not_offered_when_a_later_await_would_skip_a_release() -> None:
    # The fix protected the first release; the second await then skipped `done.set()`.
    source = (
        CONC103_HEAD
        + "        lock.release()\n        await fetch(key)\n        done.set()\n    return value\n"
    )
    assert offered_fix_titles(source, "CONC103") == []


def test_a_conc103_fix_does_not_reorder_code_between_two_releases() -> None:
    source = (
        CONC103_HEAD
        + "        lock.release()\n        print('released')\n        done.set()\n"
        + "    return value\n"
    )
    assert offered_fix_titles(source, "CONC103") == []


def test_a_conc103_fix_never_moves_an_await_into_the_finally() -> None:
    # An awaited close in the `finally` would be an unshielded await in cleanup (CONC102).
    source = CONC103_HEAD + "        await done.aclose()\n        lock.release()\n"
    source += "    return value\n"
    assert offered_fix_titles(source, "CONC103") == ["Move `lock.release()` into a `finally:`"]
    text, _ = fixed(source)
    assert "            await done.aclose()\n        finally:\n            lock.release()\n" in text


def test_a_logger_parameter_of_another_function_is_not_taken_for_a_module_logger() -> None:
    # `log` is a parameter of `serve`: the fix in `teardown` called an undefined `log.warning`.
    source = (
        "import trio\n\n\nasync def serve(listener, log):\n    try:\n"
        "        await listener.accept()\n    except OSError:\n        log.error('accept failed')\n"
        "\n\nasync def teardown(done: trio.Event):\n    try:\n        await trio.sleep(1)\n"
        "    finally:\n        await done.wait()\n"
    )
    assert offered_fix_titles(source, "CONC101") != []
    text, _ = fixed(source)
    assert "log.warning" not in text and "pass  # conc-lsp: gave up on the wait" in text


def test_a_module_logger_shadowed_in_the_function_is_not_used() -> None:
    source = (
        "import logging\n\nimport trio\n\nlog = logging.getLogger(__name__)\n\n\n"
        "async def teardown(done: trio.Event, log: list[str]):\n    try:\n"
        "        await trio.sleep(1)\n    finally:\n        await done.wait()\n"
    )
    assert offered_fix_titles(source, "CONC101") != []
    text, _ = fixed(source)
    assert "log.warning" not in text


def test_a_module_logger_is_used() -> None:
    source = (
        "import logging\n\nimport trio\n\nlogger = logging.getLogger(__name__)\n\n\n"
        "async def teardown(done: trio.Event):\n    try:\n"
        "        await trio.sleep(1)\n    finally:\n        await done.wait()\n"
    )
    text, _ = fixed(source)
    assert 'logger.warning("gave up on the wait after 5 s")' in text


# -- CONC401: every unread pipe, stdout and stderr alike ------------------------

ASYNCIO_PIPES = "import asyncio\nfrom asyncio.subprocess import PIPE\n\n\n"


def test_conc401_with_stdout_read_sends_the_unread_stderr_to_devnull() -> None:
    # `communicate()` before the wait came too late: reading stdout to its end
    # already deadlocks once stderr fills.
    source = ASYNCIO_PIPES + (
        "async def dump(url):\n"
        "    proc = await asyncio.create_subprocess_exec('dump', url, stdout=PIPE, stderr=PIPE)\n"
        "    data = await proc.stdout.read()\n    await proc.wait()\n    return data\n"
    )
    assert offered_fix_titles(source, "CONC401") != []
    text, remaining = fixed(source)
    assert "stdout=PIPE, stderr=asyncio.subprocess.DEVNULL)" in text
    assert "communicate" not in text and "CONC401" not in remaining


def test_conc401_moves_both_pipes_whatever_their_spelling() -> None:
    source = ASYNCIO_PIPES + (
        "async def start(argv, pids):\n    proc = await asyncio.create_subprocess_exec(\n"
        "        *argv, stdout=asyncio.subprocess.PIPE, stderr=PIPE\n    )\n"
        "    pids.append(proc.pid)\n"
    )
    assert offered_fix_titles(source, "CONC401") != []
    text, remaining = fixed(source)
    assert "stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL" in text
    assert "CONC401" not in remaining


def test_conc401_is_not_offered_when_the_output_is_read_after_the_wait() -> None:
    # `communicate()` before the wait would leave nothing for the read after it.
    source = ASYNCIO_PIPES + (
        "async def packages():\n"
        "    proc = await asyncio.create_subprocess_exec('pip', 'list', stdout=PIPE)\n"
        "    await proc.wait()\n    return await proc.stdout.read()\n"
    )
    assert offered_fix_titles(source, "CONC401") == []


def test_conc401_leaves_the_pipes_of_another_process_alone() -> None:
    spawn = "await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess."
    source = ASYNCIO_PIPES + (
        f"async def both(argv):\n    reader = {spawn}PIPE)\n"
        f"    first = await reader.stdout.read()\n    proc = {spawn}PIPE)\n"
        "    await asyncio.wait_for(proc.wait(), 5)\n    return first\n"
    )
    assert offered_fix_titles(source, "CONC401") != []
    text, _ = fixed(source)
    assert f"reader = {spawn}PIPE)\n" in text
    # the wait keeps its timeout: no unbounded `communicate()` before it
    assert f"proc = {spawn}DEVNULL)\n" in text and "communicate" not in text


def test_conc401_anyio_default_pipes_get_devnull_when_the_module_can_name_it() -> None:
    source = (
        "import subprocess\n\nimport anyio\n\n\nasync def run_tests(argv):\n"
        "    proc = await anyio.open_process(argv)\n    return await proc.wait()\n"
    )
    assert offered_fix_titles(source, "CONC401") != []
    text, remaining = fixed(source)
    assert "anyio.open_process(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)" in text
    assert "CONC401" not in remaining


def test_a_method_naming_no_library_gets_its_class_s_library() -> None:
    # `__aexit__` names no library; its class makes an asyncio.Event: the bound is asyncio's.
    source = (
        "import asyncio\nimport trio\n\n\nclass Session:\n    def __init__(self):\n"
        "        self._closed = asyncio.Event()\n\n    async def __aexit__(self, *exc_info):\n"
        "        await self._closed.wait()\n"
    )
    text, remaining = fixed(source)
    assert "asyncio.timeout(5)" in text and "trio." not in text.split("class Session", 1)[1]
    assert "CONC101" not in remaining


def test_no_bound_in_another_library_when_the_function_s_own_is_not_imported_by_name() -> None:
    # asyncio is imported only as `from asyncio import ...`: `trio.move_on_after` was used.
    source = (
        "from asyncio import Event, sleep\n\nimport trio\n\n\nasync def close(done: Event):\n"
        "    try:\n        await sleep(1)\n    finally:\n        await done.wait()\n"
    )
    assert offered_fix_titles(source, "CONC101") == []


def test_conc111_loop_fix_closes_the_iteration_that_ends_after_a_handler() -> None:
    # trio's SocketListener.accept: the iteration without a checkpoint ends
    # after the `except`; the fix inserted its checkpoint before the `return`.
    source = (
        "import trio\n\n\nasync def accept(listener):\n    while True:\n        try:\n"
        "            sock = await listener.accept()\n        except OSError:\n"
        "            pass\n        else:\n            return sock\n"
    )
    tally = sweep_module("m.py", split_lines(source), codes=["CONC111"])
    assert tally.applied and tally.failures == []


def test_a_bound_that_can_leave_a_name_unset_is_not_offered_as_safe() -> None:
    # After the bound gives up, `code` was never assigned: `log(code)` raises
    # UnboundLocalError where the original waited.
    source = (
        "import trio\n\n\nasync def close(proc, log):\n    try:\n        await trio.sleep(1)\n"
        "    finally:\n        code = await proc.wait()\n        log(code)\n"
    )
    lines = split_lines(source)
    findings = check_lines(lines, SEED_SETTINGS, "m.py", fixes=True).findings
    fixes = {f.code: f.fix for f in findings if f.fix is not None}
    assert set(fixes) == {"CONC101", "CONC102"}
    assert not fixes["CONC101"].safe and "`code`" in fixes["CONC101"].title
    assert fixes["CONC102"].safe  # the whole rest of the cleanup is inside its scope
    assert offered_fix_titles(source, "CONC101")  # and the properties hold for both


def test_a_bound_whose_name_is_used_after_the_cleanup_is_not_offered_as_safe() -> None:
    source = (
        "import trio\n\n\nasync def close(proc):\n    try:\n        await trio.sleep(1)\n"
        "    finally:\n        code = await proc.wait()\n    return code\n"
    )
    lines = split_lines(source)
    findings = check_lines(lines, SEED_SETTINGS, "m.py", fixes=True).findings
    assert [(f.code, f.fix.safe) for f in findings if f.fix is not None] == [("CONC101", False)]


def test_conc105_is_not_offered_when_the_teardown_returns() -> None:
    # A `return` in the new `finally` would swallow the exception of the `async with` body.
    source = (
        "from contextlib import asynccontextmanager\n\nimport trio\n\n\n@asynccontextmanager\n"
        "async def conn(connect):\n    c = await connect()\n    yield c\n    if c.closed:\n"
        "        return\n    c.close()\n"
    )
    assert offered_fix_titles(source, "CONC105") == []
    looped = source.replace(
        "    if c.closed:\n        return\n",
        "    for _ in range(2):\n        if c.closed:\n            break\n",
    )
    assert offered_fix_titles(looped, "CONC105") != []  # a `break` of its own loop is fine


def test_conc111_fix_closes_the_fall_through_that_ends_on_a_return_line() -> None:
    # The way out without a checkpoint is the `if` not taken, whose end is the
    # line of the `return`: the checkpoint went before the return only.
    source = (
        "import trio\n\n\nclass Pool:\n    def __init__(self):\n        self.idle = {}\n\n"
        "    async def take(self, key):\n        if key in self.idle:\n"
        "            await trio.sleep(0)\n            conn = self.idle.pop(key)\n"
        "            return conn.use()\n"
    )
    tally = sweep_module("m.py", split_lines(source), codes=["CONC111"])
    assert tally.applied and tally.failures == []
