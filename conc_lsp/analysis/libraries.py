"""Which async libraries a module uses, and what its names stand for.

Only imports are read: ``import trio as t`` makes ``t.move_on_after`` resolve
to ``trio.move_on_after``; ``from trio import CancelScope as CS`` makes ``CS``
resolve to ``trio.CancelScope``.  Nothing is imported or executed.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass, field

ASYNC_LIBRARIES = ("trio", "anyio", "asyncio", "tractor")


@dataclass(frozen=True, slots=True)
class ImportFact:
    """One imported name: ``alias`` in the module stands for ``target``."""

    alias: str
    target: str  # dotted: "trio" or "trio.CancelScope"


@dataclass(slots=True)
class ImportTable:
    """Local names to the dotted names they were imported as."""

    names: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_facts(cls, facts: Iterable[ImportFact]) -> ImportTable:
        table = cls()
        for fact in facts:
            table.names[fact.alias] = fact.target
        return table

    def fingerprint(self) -> tuple[tuple[str, str], ...]:
        """A hashable summary: equal fingerprints resolve names equally."""
        return tuple(sorted(self.names.items()))

    @property
    def libraries(self) -> frozenset[str]:
        """The async libraries among the imports."""
        found = set()
        for target in self.names.values():
            root = target.split(".", 1)[0]
            if root in ASYNC_LIBRARIES:
                found.add(root)
        return frozenset(found)

    def resolve(self, node: ast.expr) -> str | None:
        """The dotted name an expression stands for, through import aliases.

        Returns None for expressions that are not plain dotted names.
        """
        parts: list[str] = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if isinstance(node, ast.Call):
            # `trio.CancelScope(...).shield` and friends: resolve the callee.
            inner = self.resolve(node.func)
            if inner is None:
                return None
            parts.append(inner)
        elif isinstance(node, ast.Name):
            parts.append(self.names.get(node.id, node.id))
        else:
            return None
        parts.reverse()
        return ".".join(parts)


def imports_of(statement: ast.stmt) -> list[ImportFact]:
    """The import facts of one import statement (empty for other statements)."""
    if isinstance(statement, ast.Import):
        facts = []
        for alias in statement.names:
            if alias.asname:
                facts.append(ImportFact(alias.asname, alias.name))
            else:
                root = alias.name.split(".", 1)[0]
                facts.append(ImportFact(root, root))
        return facts
    if isinstance(statement, ast.ImportFrom) and statement.module and not statement.level:
        return [
            ImportFact(alias.asname or alias.name, f"{statement.module}.{alias.name}")
            for alias in statement.names
            if alias.name != "*"
        ]
    return []


def last_name(dotted: str | None) -> str:
    """The final component of a dotted name ('' for None)."""
    if not dotted:
        return ""
    return dotted.rsplit(".", 1)[-1]
