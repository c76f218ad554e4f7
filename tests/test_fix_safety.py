"""Fixes that are safe when they say so (issue 13, part 2): the names a fix
uses exist, the library is the function's, a bound is never defeated, and no
new finding appears."""

from __future__ import annotations

import ast

from conc_lsp.analysis.text import split_lines
from conc_lsp.diagnose import check_lines, fix_lines
from tests.fix_properties import EVERY_RULE, sweep_module
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
    of them, applied alone, keeps every property."""
    lines = split_lines(source)
    tally = sweep_module("m.py", lines, codes=[code])
    assert [(f.broken, f.detail) for f in tally.failures] == []
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
