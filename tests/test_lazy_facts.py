"""A function's facts are walked on first use, and the default rules ask only
for the functions that can matter (issue 15, item 1: `check` in one pass).

The findings themselves are guarded by the snapshots, the negatives and
``benchmarks/same_output.py``; these tests pin down the pieces that make the
shortcut sound: the list of functions (order, names, classes), the text the
name search reads (NFKC, as the parser reads names), and that a module whose
functions name nothing a default rule looks for is never walked.
"""

from __future__ import annotations

import gc
from pathlib import Path

from conc_lsp.analysis.events import ModuleFacts
from conc_lsp.analysis.flow import module_facts
from conc_lsp.analysis.locks import LOCK_WORDS, is_lock_text
from conc_lsp.analysis.text import split_lines
from conc_lsp.cli_pool import one_file
from conc_lsp.config import Settings
from conc_lsp.diagnose import check_lines, module_tree
from conc_lsp.sources import LINE_ENDING, decode_source
from tests.rule_settings import SEED_SETTINGS


def facts_of(text: str) -> ModuleFacts:
    lines = split_lines(text)
    tree, _ = module_tree(lines)
    return module_facts(tree, lines)


OUTLINE = """\
import trio

async def outer(lock):
    def first():
        def inner():
            pass
    for item in range(3):
        async def in_loop():
            pass
    match lock:
        case 1:
            def in_case():
                pass
    class Local:
        def method(self):
            pass
        for x in ():
            def hidden(self):
                pass
    try:
        pass
    except Exception:
        def in_handler():
            pass

class Top:
    if True:
        def shown(self):
            global COUNT
    while False:
        def not_listed(self):
            class InLoop:
                pass

for _ in ():
    def module_loop():
        pass
    class AtLoop:
        pass

async def last():
    pass
"""


def test_functions_are_listed_in_the_walkers_order_with_their_names() -> None:
    facts = facts_of(OUTLINE)
    assert [(f.qualname, f.class_name) for f in facts.functions] == [
        ("outer", None),
        ("outer.<locals>.first", None),
        ("outer.<locals>.first.<locals>.inner", None),
        ("outer.<locals>.in_loop", None),
        ("outer.<locals>.in_case", None),
        ("outer.<locals>.Local.method", "Local"),
        ("outer.<locals>.in_handler", None),
        ("Top.shown", "Top"),
        ("last", None),
    ]
    # Classes and `global`s count wherever they stand, as before.
    assert facts.classes == {"Local", "Top", "InLoop", "AtLoop"}
    assert "COUNT" in facts.state_globals


def test_a_function_is_walked_once_on_first_use() -> None:
    facts = facts_of("import trio\n\nasync def f(ev):\n    await trio.sleep(1)\n    ev.set()\n")
    (function,) = facts.functions
    assert function.walk is not None  # nothing walked yet
    events = function.events
    assert function.walk is None
    assert [event.kind.value for event in events] == ["call", "checkpoint", "call"]
    assert function.events is events  # not walked again


def test_a_module_naming_nothing_the_default_rules_look_for_is_not_walked() -> None:
    text = (
        "import trio\n\n"
        "class Cache:\n"
        "    def __init__(self):\n"
        "        self.values = {}\n\n"
        "    async def get(self, key):\n"
        "        await trio.sleep(0)\n"
        "        return self.values.pop(key)\n\n"
        "async def main():\n"
        "    async with trio.open_nursery() as nursery:\n"
        "        nursery.start_soon(Cache().get, 1)\n"
    )
    lines = split_lines(text)
    result = check_lines(lines, Settings())  # the default rules
    assert result.facts is not None
    assert [f.qualname for f in result.facts.functions if f.walk is None] == []
    # The other rules read every function.
    every = check_lines(lines, SEED_SETTINGS)
    assert every.facts is not None
    assert all(f.walk is None for f in every.facts.functions)


def test_lock_names_are_found_in_any_case_and_as_the_parser_normalises_them() -> None:
    text = (
        "class Pool:\n"
        "    def plain(self, key):\n"
        "        del self.values[key]\n\n"
        "    def camel(self, key):\n"
        "        self.HostLocks.pop(key)\n\n"
        "    def fullwidth(self, key):\n"
        "        self.\uff4c\uff4f\uff43\uff4bs.pop(key)  # NFKC: `locks`\n\n"
        "    def clock(self, key):\n"
        "        self.clock.pop(key)\n"
    )
    facts = facts_of(text)
    found = facts.functions_naming(LOCK_WORDS, is_lock_text)
    assert [f.name for f in found] == ["camel", "fullwidth"]
    (fullwidth,) = [f for f in facts.functions if f.name == "fullwidth"]
    assert [event.state for event in fullwidth.events if event.removal] == ["Pool.locks"]
    among = facts.functions_naming(LOCK_WORDS, is_lock_text, facts.functions[:2])
    assert [f.name for f in among] == ["camel"]


def test_a_text_without_carriage_returns_splits_as_the_regex_does() -> None:
    text = "import trio\n\nasync def f():\n    await trio.sleep(0)\n\n"
    source = decode_source(text.encode(), Path("x.py"))
    parts = LINE_ENDING.split(text)
    assert source.lines == tuple(parts[0::2])
    assert source.endings == tuple(parts[1::2])


def test_only_a_function_opening_a_timeout_scope_is_walked_for_its_scopes() -> None:
    facts = facts_of(
        "import trio\n"
        "from trio import move_on_after as bounded\n\n"
        "def reads(path):\n"
        "    with open(path) as handle, trio.CancelScope() as scope:\n"
        "        return handle.read()\n\n"
        "async def waits(event):\n"
        "    with bounded(5):\n"
        "        await event.wait()\n"
    )
    reads, waits = facts.functions
    assert reads.scopes == [] and reads.walk is not None  # no deadline: no scope, no walk
    (scope,) = waits.scopes
    assert waits.walk is None and scope.checkpoints == 1


def test_a_modules_facts_are_freed_without_the_cyclic_collector() -> None:
    """Facts, walked or not, hold no cycle: dropped, they and their tree go at
    once (a function not walked yet used to, through its walk, a method of the
    walker: 800 MB of cycles over 681k lines when the collector was off)."""
    text = (Path(__file__).parent / "fixtures" / "hints" / "contexts.py").read_text(
        encoding="utf-8"
    )
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        facts = facts_of(text)
        first = facts.functions[0].events  # one walked, the others not
        assert first and facts.functions[1].walk is not None
        del facts, first
        assert gc.collect() == 0
    finally:
        if enabled:
            gc.enable()


def test_one_file_at_a_time_collects_once_and_leaves_the_collector_as_it_was() -> None:
    """The command line's per-file step (cli_pool.one_file) turns the collector
    off while a file is checked and back to what it was after."""
    seen: list[bool] = []

    def work(job: str, path: Path) -> str:
        seen.append(gc.isenabled())
        return f"{job}:{path.name}"

    for enabled in (True, False):
        (gc.enable if enabled else gc.disable)()
        try:
            assert one_file(work, "job", Path("a.py")) == "job:a.py"
            assert gc.isenabled() is enabled
        finally:
            gc.enable()
    assert seen == [False, False]
