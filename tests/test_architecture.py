"""The shape of the package: no import cycles, no import hidden in a function
without a reason, no oversized module, the analysis free of LSP types, and
every registered rule a complete unit (docs, report story, category, effort)."""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from pathlib import Path

import pytest

from conc_lsp import docs
from conc_lsp.analysis.flow import module_facts
from conc_lsp.rules import all_rules, scaffold
from conc_lsp.rules.base import EFFORTS, Rule
from conc_lsp.rules.index import RULES

PACKAGE = Path(__file__).parent.parent / "conc_lsp"
MAX_LINES = 620
# Words that say why an import waits for its function (start-up cost).
DEFERRED_REASON = re.compile(r"start-up|startup|loads only|only when|lazily|first use", re.I)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _top_level_imports(path: Path) -> set[str]:
    """The conc_lsp modules a module imports when it is imported (not under
    `if TYPE_CHECKING:`, not inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.If):
                test = ast.unparse(node.test)
                if "TYPE_CHECKING" not in test:
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{anchor}.{base}" if base else anchor
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)

    visit(tree.body)
    return {module for module in found if module in MODULES and module != name}


def _graph() -> dict[str, set[str]]:
    graph = {}
    for name, path in MODULES.items():
        edges = _top_level_imports(path)
        # Importing a.b.c runs a/__init__ and a/b/__init__ first (a module's own
        # packages are already running when it is imported: no edge to them).
        for target in list(edges):
            parts = target.split(".")
            edges.update(".".join(parts[:i]) for i in range(2, len(parts)))
        own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        graph[name] = {edge for edge in edges if edge in MODULES and edge != name} - own
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle() -> None:
    assert _cycles(_graph()) == []


def test_imports_inside_functions_say_why() -> None:
    unexplained = []
    for name, path in MODULES.items():
        lines = path.read_text(encoding="utf-8").split("\n")
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for inner in ast.walk(node):
                if isinstance(inner, (ast.Import, ast.ImportFrom)):
                    line = lines[inner.lineno - 1]
                    before = lines[inner.lineno - 2]
                    if not DEFERRED_REASON.search(line + before):
                        unexplained.append(f"{name}:{inner.lineno}: {line.strip()}")
    assert unexplained == []


def test_no_oversized_module() -> None:
    sizes = {
        name: len(path.read_text(encoding="utf-8").split("\n")) for name, path in MODULES.items()
    }
    assert {name: size for name, size in sizes.items() if size > MAX_LINES} == {}


def test_the_analysis_speaks_no_lsp() -> None:
    graph = _graph()
    pure = [name for name in graph if not name.startswith(("conc_lsp.server", "conc_lsp.cli"))]
    for name in pure:
        source = MODULES[name].read_text(encoding="utf-8")
        assert not re.search(r"^\s*(from|import) (pygls|lsprotocol)", source, re.M), name


@pytest.mark.parametrize("code", sorted(all_rules()))
def test_rule_is_a_complete_unit(code: str) -> None:
    rule = all_rules()[code]
    for section in (
        "## What it does",
        "## Why is this bad?",
        "## Example",
        "## Use instead",
        "## Fix",
    ):
        assert section in rule.doc, section
    assert rule.doc.split("\n", 1)[0] == f"{rule.code} {rule.name}"
    assert rule.summary and rule.use_instead
    assert rule.category and rule.explanation and rule.sketch_title
    assert rule.effort in EFFORTS
    assert isinstance(rule.rank, (int, float))
    # Its part of the report: a race trace and the words of its fix.
    assert type(rule).trace is not Rule.trace, "no race trace"
    assert type(rule).words is not Rule.words, "no fix wording"
    assert (Path(__file__).parent / "fixtures" / "rules" / f"{code.lower()}.py").exists()


def test_rule_codes_and_ranks_are_unique() -> None:
    rules = list(all_rules().values())
    assert len({rule.name for rule in rules}) == len(rules)
    assert len({rule.rank for rule in rules}) == len(rules)


def test_the_rule_index_names_every_rule_and_its_opt_in() -> None:
    """conc_lsp/rules/index.py lets a run load only the rules it runs: it must
    say what the rules say (else rewrite it from the expected table below)."""
    expected = {
        code: (type(rule).__module__.split(".")[2], rule.opt_in)
        for code, rule in all_rules().items()
    }
    assert expected == RULES, f"RULES: dict[str, tuple[str, bool]] = {expected!r}"
    assert list(RULES) == sorted(RULES)


def test_scaffold_writes_a_rule_the_registry_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scaffold, "RULES", tmp_path)
    monkeypatch.setattr(scaffold, "FIXTURES", tmp_path)
    index = tmp_path / "index.py"
    index.write_text((PACKAGE / "rules" / "index.py").read_text(encoding="utf-8"), "utf-8")
    module_path, fixture, _index = scaffold.scaffold("CONC299", "lock-held-across-yield")
    assert module_path.name == "conc299_lock_held_across_yield.py" and fixture.exists()
    (table,) = [
        node.value
        for node in ast.parse(index.read_text(encoding="utf-8")).body
        if isinstance(node, ast.AnnAssign) and node.value is not None
    ]
    rows = ast.literal_eval(table)
    assert isinstance(rows, dict) and list(rows) == sorted(rows)
    assert rows["CONC299"] == ("conc299_lock_held_across_yield", False)
    assert {code: row for code, row in rows.items() if code != "CONC299"} == RULES
    spec = importlib.util.spec_from_file_location("scaffolded", module_path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "scaffolded", module)  # dataclasses look it up
    spec.loader.exec_module(module)
    rule = module.RULE
    assert isinstance(rule, Rule) and rule.code == "CONC299"
    assert rule.doc.startswith("CONC299 lock-held-across-yield")
    source = "import trio\nasync def f():\n    await trio.sleep(1)\n"
    assert list(rule.check(module_facts(ast.parse(source), source.split("\n")))) == []
    with pytest.raises(FileExistsError):
        scaffold.scaffold("CONC299", "again")


def test_readme_tables_are_generated_from_the_rules() -> None:
    text = docs.README.read_text(encoding="utf-8")
    assert docs.with_tables(text) == text, "README.md is stale: run `python -m conc_lsp.docs`"


@pytest.mark.parametrize("code", sorted(all_rules()))
def test_a_rule_documents_the_fixes_it_offers(code: str) -> None:
    rule = all_rules()[code]
    offers_fix = type(rule).fix is not Rule.fix
    assert offers_fix == bool(rule.fixes_offered)
    assert all(safety in ("safe", "unsafe") for _, safety in rule.fixes_offered)


@pytest.mark.parametrize("code", sorted(all_rules()))
def test_an_opt_in_rule_says_why(code: str) -> None:
    rule = all_rules()[code]
    assert bool(rule.opt_in) == bool(rule.opt_in_reason), "opt-in rules give their reason"
