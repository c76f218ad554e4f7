"""Callees found by the module's own tree (``analysis/resolve_local.py``) and
checkpoints resolved only when a rule reads them (``resolve_demand.py``)."""

from __future__ import annotations

import ast
from pathlib import Path

import parso.cache
import pytest

from conc_lsp.analysis import resolve
from conc_lsp.analysis.model import HintKey, Verdict
from conc_lsp.analysis.parse import analyse_lines
from conc_lsp.analysis.resolve import Resolver, keyed_hints
from conc_lsp.analysis.resolve_cache import Entry, _entry_from, _entry_to
from conc_lsp.analysis.resolve_local import local_callee, local_names
from conc_lsp.analysis.resolve_process import resolve_document
from conc_lsp.analysis.text import split_lines
from conc_lsp.config import Settings
from conc_lsp.diagnose import check_lines
from conc_lsp.resolve_demand import resolve_for_rules

MODULE = """\
import trio

async def helper():
    print("no checkpoint")

async def twice():
    pass

twice = None

@decorated
async def wrapped():
    pass

class Client:
    async def _send(self):
        print("buffered")

    async def _later(self):
        await trio.sleep(0)

    async def run(self):
        await self._send()
        await self._later()
        await self._inherited()
        await helper()
        await twice()
        await wrapped()

    def sync(self):
        async def inner():
            await self._send()
        return inner
"""


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONC_LSP_CACHE_DIR", str(tmp_path / "cache"))


def callees(text: str) -> dict[str, str | None]:
    """The text of each awaited call -> the qualname its local callee has (None: ask jedi)."""
    tree = ast.parse(text)
    names = local_names(tree)
    found: dict[str, str | None] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Await):
            callee = local_callee(names, node.value)
            found[ast.unparse(node.value)] = callee[1] if callee else None
    return found


def jedi_questions(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The lines of the expressions jedi is asked to infer, from now on."""
    asked: list[int] = []
    infer = Resolver._infer

    def counted(self: Resolver, key: str, source: object, expression: ast.expr) -> object:
        asked.append(expression.lineno)
        return infer(self, key, source, expression)  # type: ignore[arg-type]

    monkeypatch.setattr(Resolver, "_infer", counted)
    return asked


def test_plain_callees_of_the_module_are_found_by_its_tree() -> None:
    assert callees(MODULE) == {
        "self._send()": "Client._send",
        "self._later()": "Client._later",
        "self._inherited()": None,  # not defined by the class itself
        "helper()": "helper",
        "twice()": None,  # bound twice
        "wrapped()": None,  # decorated: what runs is what the decorator returns
        "trio.sleep(0)": None,
    }


def test_a_method_assigned_on_the_instance_or_a_star_import_goes_to_jedi() -> None:
    assigned = MODULE + "\nclient = Client()\nclient._send = print\n"
    assert callees(assigned)["self._send()"] is None
    starred = "from somewhere import *\n" + MODULE
    assert callees(starred)["helper()"] is None
    assert callees(starred)["self._send()"] == "Client._send"


def test_local_callees_resolve_without_jedi(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "client.py"
    path.write_text(MODULE, encoding="utf-8")
    lines = split_lines(MODULE)
    resolver = Resolver(str(tmp_path))
    asked = jedi_questions(monkeypatch)
    result = resolver.resolve_lines(lines, str(path), budget=60)
    assert result.complete
    by_line = {
        hint.keyword_line + 1: result.resolutions.get(key)
        for key, hint in keyed_hints(analyse_lines(lines).hints).items()
    }
    assert by_line[23] is not None and by_line[23].verdict is Verdict.NEVER  # self._send()
    assert by_line[24] is not None and by_line[24].verdict is Verdict.ALWAYS  # self._later()
    assert by_line[26] is not None and by_line[26].verdict is Verdict.NEVER  # helper()
    assert by_line[32] is not None and by_line[32].verdict is Verdict.NEVER  # in inner()
    # jedi was asked about the others only (and trio.sleep inside _later)
    assert sorted(set(asked)) == [20, 25, 27, 28]


DEMAND = """\
import trio

async def log_only():
    print("x")

async def work():
    await log_only()
    await trio.sleep(1)
    with trio.move_on_after(1):
        await log_only()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(work)
"""


def demand_app(folder: Path) -> tuple[Path, list[str], dict[int, HintKey]]:
    """DEMAND written to ``folder``: its path, lines and checkpoint keys by 1-based line."""
    path = folder / "app.py"
    path.write_text(DEMAND, encoding="utf-8")
    lines = split_lines(DEMAND)
    keys = {
        hint.keyword_line + 1: key for key, hint in keyed_hints(analyse_lines(lines).hints).items()
    }
    return path, lines, keys


def test_only_the_checkpoints_a_rule_reads_are_resolved(tmp_path: Path) -> None:
    path, lines, keys = demand_app(tmp_path)
    settings = Settings()  # the default rules: CONC110 reads the timeout's body
    found = resolve_for_rules(Resolver(str(tmp_path)), lines, str(path), settings, 60.0)
    assert found.complete
    assert keys[10] in found.attempted and keys[11] in found.attempted  # the body, the async with
    assert keys[7] not in found.attempted and keys[8] not in found.attempted  # read by no rule
    everything = Resolver(str(tmp_path), cache=False).resolve_lines(lines, str(path), 60.0)
    for chosen in (Settings(), Settings(select=("ALL",))):
        some = resolve_for_rules(Resolver(str(tmp_path), cache=False), lines, str(path), chosen, 60)
        assert check_lines(lines, chosen, str(path), resolutions=some.resolutions).findings == (
            check_lines(lines, chosen, str(path), resolutions=everything.resolutions).findings
        )
    # CONC111 reads every checkpoint of a trio module's functions
    every = resolve_for_rules(
        Resolver(str(tmp_path)), lines, str(path), Settings(select=("ALL",)), 60.0
    )
    assert {keys[7], keys[8], keys[10], keys[11]} <= every.attempted


def test_a_document_cached_for_fewer_checkpoints_is_resolved_further(tmp_path: Path) -> None:
    path, lines, keys = demand_app(tmp_path)
    first = Resolver(str(tmp_path)).resolve_lines(lines, str(path), 60.0, wanted={keys[10]})
    assert first.attempted == {keys[10]}
    again = Resolver(str(tmp_path)).resolve_lines(lines, str(path), 60.0, wanted={keys[10]})
    assert again.cached and again.resolutions == first.resolutions
    more = Resolver(str(tmp_path)).resolve_lines(lines, str(path), 60.0, wanted={keys[7]})
    assert not more.cached and {keys[7], keys[10]} <= more.attempted
    whole = Resolver(str(tmp_path)).resolve_lines(lines, str(path), 60.0)
    assert not whole.cached and len(whole.attempted) == whole.total == len(keys)


def test_the_checkpoints_a_pass_looked_at_survive_the_disk() -> None:
    key = ("work", "await", "log_only", 0)
    entry = Entry(resolutions={}, attempted={key})
    assert _entry_from(_entry_to(entry)).attempted == {key}
    assert _entry_from(_entry_to(Entry(resolutions={}))).attempted is None
    assert entry.covers({key}) and not entry.covers(None) and not entry.covers({(*key[:3], 1)})
    assert Entry(resolutions={}).covers(None) and not Entry().covers({key})


def test_the_servers_resolver_lets_a_finished_document_go(tmp_path: Path) -> None:
    path = tmp_path / "app.py"
    path.write_text(DEMAND, encoding="utf-8")
    lines = split_lines(DEMAND)
    try:
        found, stats = resolve_document(str(tmp_path), "", str(path), lines, 60.0, None)
        assert stats["complete"] and found
        resolver = resolve._RESOLVERS[(str(tmp_path), "")]
        assert str(path) not in resolver._sources and resolver._state is None
        trees = [key for cache in parso.cache.parser_cache.values() for key in cache]
        assert str(path) not in {str(key) for key in trees}
        again, stats = resolve_document(str(tmp_path), "", str(path), lines, 60.0, None)
        assert stats["cached"] and again == found  # from the disk, nothing inferred
    finally:
        resolve._RESOLVERS.clear()


def test_a_function_imported_from_a_module_of_the_package_is_followed_by_its_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "app"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "sub" / "__init__.py").write_text("", encoding="utf-8")
    (package / "helpers.py").write_text(
        "async def log_only():\n    print('x')\n\nasync def log_twice():\n    print('y')\n\n"
        "log_twice = None\n",
        encoding="utf-8",
    )
    text = (
        "from ..helpers import log_only, log_twice\n\n"
        "async def main():\n    await log_only()\n    await log_twice()\n"
    )
    path = package / "sub" / "main.py"
    path.write_text(text, encoding="utf-8")
    asked = jedi_questions(monkeypatch)
    lines = split_lines(text)
    result = Resolver(str(tmp_path)).resolve_lines(lines, str(path), budget=60)
    by_line = {
        hint.keyword_line + 1: result.resolutions.get(key)
        for key, hint in keyed_hints(analyse_lines(lines).hints).items()
    }
    assert by_line[4] is not None and by_line[4].verdict is Verdict.NEVER
    assert asked == [5]  # log_twice is bound twice in its module: jedi decides
