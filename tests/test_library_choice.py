"""Which library a module runs under: imports, then its package, then usage;
unknown otherwise. CONC102 speaks level-triggered cancellation only."""

from __future__ import annotations

import ast
from pathlib import Path

from conc_lsp.analysis.flow import module_facts
from conc_lsp.analysis.library_choice import package_libraries
from conc_lsp.analysis.text import split_lines
from conc_lsp.config import Settings
from conc_lsp.diagnose import check_lines

CLEANUP = """
async def serve(conn):
    try:
        await conn.serve()
    finally:
        await conn.send_goodbye()
        conn.registry.pop(conn.id)
"""


def facts(source: str, path: str | None = None):  # type: ignore[no-untyped-def]
    lines = split_lines(source)
    return module_facts(ast.parse(source), lines, path=path)


def conc102(source: str, path: str | None = None) -> list[int]:
    result = check_lines(split_lines(source), Settings(select=("CONC102",)), path)
    return [finding.location.line + 1 for finding in result.findings]


def test_imports_decide_first() -> None:
    assert facts("import trio\n").library == "trio"
    assert facts("import tractor\n").library == "trio"
    assert facts("from anyio import Event\n").library == "anyio"
    assert facts("import asyncio\n").library == "asyncio"
    assert facts("import anyio\nimport asyncio\n").library == "anyio"


def test_no_import_no_usage_is_unknown_never_trio() -> None:
    assert facts("async def f(x):\n    await x\n").library is None
    assert conc102(CLEANUP) == []


def test_usage_tells_asyncio() -> None:
    source = "def go(loop):\n    fut = loop.create_future()\n    loop.call_soon(fut.set_result)\n"
    assert facts(source).library == "asyncio"


def test_the_package_decides_for_a_module_that_imports_nothing(tmp_path: Path) -> None:
    package = tmp_path / "pgdriver"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "compat.py").write_text("import asyncio\n\nsleep = asyncio.sleep\n")
    module = package / "connection.py"
    module.write_text(CLEANUP)
    assert package_libraries(str(module)) == {"asyncio"}
    assert facts(CLEANUP, str(module)).library == "asyncio"
    # asyncio delivers a cancellation once: the finally's await is no CONC102 hazard.
    assert conc102(CLEANUP, str(module)) == []


def test_a_trio_package_makes_the_finding(tmp_path: Path) -> None:
    package = tmp_path / "trioapp"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("import trio\n")
    (package / "sub" / "__init__.py").write_text("")
    module = package / "sub" / "conn.py"
    module.write_text(CLEANUP)
    assert facts(CLEANUP, str(module)).library == "trio"
    assert conc102(CLEANUP, str(module)) == [6]


def test_a_package_of_several_libraries_decides_nothing(tmp_path: Path) -> None:
    package = tmp_path / "both"
    package.mkdir()
    (package / "__init__.py").write_text("import trio\n")
    (package / "aio.py").write_text("import asyncio\n")
    module = package / "conn.py"
    module.write_text(CLEANUP)
    assert facts(CLEANUP, str(module)).library is None


def test_a_mixed_module_decides_per_function() -> None:
    source = (
        "import asyncio\nimport trio\n"
        "async def a(conn):\n    try:\n        await asyncio.sleep(1)\n"
        "    finally:\n        await conn.close()\n        conn.forget()\n"
        "async def t(conn):\n    try:\n        await trio.sleep(1)\n"
        "    finally:\n        await conn.close()\n        conn.forget()\n"
    )
    module = facts(source)
    assert module.library is None
    by_name = {function.name: module.library_of(function) for function in module.functions}
    assert by_name == {"a": "asyncio", "t": "trio"}
    assert conc102(source) == [13]


def test_a_library_own_package_speaks_its_semantics(tmp_path: Path) -> None:
    package = tmp_path / "anyio"
    (package / "_backends").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "_backends" / "__init__.py").write_text("")
    (package / "_backends" / "_asyncio.py").write_text("import asyncio\n")
    (package / "_backends" / "_trio.py").write_text("import trio\n")
    module = package / "stapled.py"
    module.write_text(CLEANUP)
    assert facts(CLEANUP, str(module)).library == "anyio"
