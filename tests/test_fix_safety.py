"""Fixes that are safe when they say so (issue 13, part 2): the names a fix
uses exist, the library is the function's, a bound is never defeated, and no
new finding appears."""

from __future__ import annotations

import ast

from conc_lsp.analysis.text import split_lines
from conc_lsp.diagnose import check_lines, fix_lines
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
