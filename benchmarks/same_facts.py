"""The flow walker's facts of every module, as text: run it with two builds
and diff the outputs (a change to the walker must not change a fact).

Prints, for each function of each file: its qualified name, class, async and
acm flags, then every event, loop and scope. Node identities are printed as
positions and the walker's block ids by their order of first use in the
function, so that two processes (and two walk orders) compare equal.

    python benchmarks/same_facts.py PATH [PATH ...] > facts.txt
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from conc_lsp.analysis.events import Event, FunctionFacts
from conc_lsp.analysis.flow import module_facts
from conc_lsp.diagnose import module_tree
from conc_lsp.sources import UndecodableSource, read_source_file


def where(node: ast.AST) -> str:
    line = getattr(node, "lineno", "?")
    column = getattr(node, "col_offset", "?")
    return f"{type(node).__name__}@{line}:{column}"


def describe(event: Event, blocks: dict[int, int], nodes: dict[int, str]) -> str:
    def block(number: int) -> int:
        return blocks.setdefault(number, len(blocks)) if number else -1

    path = tuple((nodes.get(node, "?"), branch) for node, branch in event.path)
    return (
        f"  {event.kind.value} {event.location} {event.context} path={path}"
        f" order={event.order} guards={sorted(event.guards)} node={where(event.node)}"
        f" state={event.state} owner={event.owner} key={event.key} method={event.method}"
        f" receiver={event.receiver} callee={event.callee} awaited={event.awaited}"
        f" exit={event.exit} removal={event.removal} default={event.has_default}"
        f" augmented={event.augmented} argument={event.argument} arguments={event.arguments}"
        f" handler={block(event.handler)} cleanup={block(event.cleanup_block)}"
        f" entry={block(event.entry_block)}"
    )


def dump(function: FunctionFacts) -> list[str]:
    nodes = {id(node): where(node) for node in ast.walk(function.node)}
    blocks: dict[int, int] = {}
    out = [
        f"{function.qualname} class={function.class_name} async={function.is_async}"
        f" acm={function.is_acm}"
    ]
    out.extend(describe(event, blocks, nodes) for event in function.events)
    out.extend(
        f"  loop {loop.location} {loop.state} {[e.order for e in loop.checkpoints]}"
        for loop in function.loops
    )
    out.extend(
        f"  scope {scope.location} {scope.name} {scope.checkpoints}" for scope in function.scopes
    )
    return out


def main() -> int:
    for argument in sys.argv[1:]:
        root = Path(argument)
        files = sorted(root.rglob("*.py")) if root.is_dir() else [root]
        for path in files:
            try:
                lines = list(read_source_file(path).lines)
            except (OSError, UndecodableSource):
                continue
            tree, _ = module_tree(lines)
            facts = module_facts(tree, lines, path=str(path))
            print(f"# {path} classes={sorted(facts.classes)} globals={sorted(facts.state_globals)}")
            for function in facts.functions:
                print("\n".join(dump(function)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
