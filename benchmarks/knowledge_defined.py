"""Compute the `defined` lists of the knowledge table (conc_lsp/knowledge/apis.toml).

For every entry, the dotted definition paths (module + qualname) under which a
resolver meets the public name:

* jedi's ``Name.full_name`` for ``goto(follow_imports=True)`` on the public
  name, both with ``prefer_stubs=False`` (the real module) and ``True`` (the
  typeshed stub, which differs for asyncio.Task / asyncio.Future: ``_asyncio``);
* the runtime definition: the module whose file holds the object's code, plus
  ``__qualname__``, kept only if it resolves back to the very same object.

A path shared by entries that behave differently (a base-class method reached
through two public classes) is kept only by the entry it belongs to.

    .venv/bin/python benchmarks/knowledge_defined.py            # report differences
    .venv/bin/python benchmarks/knowledge_defined.py --check    # exit 1 on a difference
    .venv/bin/python benchmarks/knowledge_defined.py --write    # update apis.toml
    ... --tractor-src /tmp/tractor-0.1.0a5                      # also tractor (jedi only)

tractor is not a dependency: without --tractor-src (a directory holding the
``tractor`` package, e.g. the unpacked sdist) its entries keep their lists.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import re
import sys
import tempfile
import tomllib
from collections.abc import Iterable
from pathlib import Path

import jedi

ROOT = Path(__file__).resolve().parent.parent
TABLE = ROOT / "conc_lsp" / "knowledge" / "apis.toml"
RUNTIME_LIBRARIES = ("trio", "anyio", "asyncio")
BEHAVIOUR_KEYS = ("await", "enter", "exit", "iteration")


def resolve(dotted: str) -> object:
    """Import the longest importable module prefix, then getattr the rest."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


def same_object(a: object, b: object) -> bool:
    a = getattr(a, "__func__", a)
    b = getattr(b, "__func__", b)
    return a is b


def _code_file(obj: object) -> str | None:
    code = getattr(obj, "__code__", None)
    if code is not None:
        return str(code.co_filename)
    if inspect.isclass(obj):
        for value in vars(obj).values():
            func = getattr(value, "__func__", getattr(value, "fget", value))
            code = getattr(func, "__code__", None)
            if code is not None:
                return str(code.co_filename)
    return None


def _module_of_file(filename: str) -> str | None:
    for name, module in list(sys.modules.items()):
        if getattr(module, "__file__", None) == filename:
            return name
    return None


def runtime_paths(name: str) -> list[str]:
    try:
        obj = resolve(name)
    except (ImportError, AttributeError):
        return []
    qualname = getattr(getattr(obj, "__func__", obj), "__qualname__", None)
    if not isinstance(qualname, str) or "<" in qualname:
        return []
    modules: list[str] = []
    filename = _code_file(getattr(obj, "__func__", obj))
    if filename is not None and (module := _module_of_file(filename)) is not None:
        modules.append(module)
    declared = getattr(getattr(obj, "__func__", obj), "__module__", None)
    if isinstance(declared, str) and declared not in modules:
        modules.append(declared)
    out: list[str] = []
    for module in modules:
        candidate = f"{module}.{qualname}"
        try:
            if same_object(resolve(candidate), obj):
                out.append(candidate)
                break
        except (ImportError, AttributeError):
            continue
    return out


class JediPaths:
    """jedi goto full names for many dotted names, one Script per name batch."""

    def __init__(self, added_sys_path: Iterable[str] = ()) -> None:
        self.scratch = Path(tempfile.gettempdir()) / "conc-lsp-knowledge-defined"
        self.project = jedi.Project(self.scratch, added_sys_path=list(added_sys_path))

    def paths(self, name: str) -> list[str]:
        top = name.split(".")[0]
        imports = sorted({top, *self._submodules(name)})
        source = "".join(f"import {m}\n" for m in imports) + name + "\n"
        line = len(imports) + 1
        script = jedi.Script(source, path=self.scratch / "probe.py", project=self.project)
        out: list[str] = []
        for prefer_stubs in (False, True):
            for found in script.goto(
                line, len(name), follow_imports=True, prefer_stubs=prefer_stubs
            ):
                full = found.full_name
                if full and full not in out:
                    out.append(full)
        return out

    @staticmethod
    def _submodules(name: str) -> list[str]:
        parts = name.split(".")
        out = []
        for i in range(2, len(parts)):
            candidate = ".".join(parts[:i])
            if parts[i - 1][:1].islower():
                out.append(candidate)
        return out


def _filter_jedi(name: str, paths: list[str]) -> list[str]:
    """Keep jedi paths that name a definition in the library (or its C core)."""
    top = name.split(".")[0]
    kept = []
    for path in paths:
        head = path.split(".")[0]
        if head in (top, f"_{top}"):
            kept.append(path)
    return kept


def compute(
    entries: list[dict[str, object]], tractor_src: str | None
) -> dict[str, list[str] | None]:
    """name -> defined list (None: leave the entry as it is)."""
    jedi_paths = JediPaths([tractor_src] if tractor_src else [])
    raw: dict[str, list[str] | None] = {}
    for entry in entries:
        name = str(entry["name"])
        top = name.split(".")[0]
        if top == "tractor" and not tractor_src:
            raw[name] = None
            continue
        found = _filter_jedi(name, jedi_paths.paths(name))
        if top in RUNTIME_LIBRARIES:
            found += [p for p in runtime_paths(name) if p not in found]
        raw[name] = [p for p in found if p != name]
    behaviour = {str(e["name"]): tuple(e.get(k) for k in BEHAVIOUR_KEYS) for e in entries}
    for name, paths in raw.items():
        if paths is None:
            continue
        for path in list(paths):
            reason = _inherited_problem(path, name, behaviour)
            if reason:
                paths.remove(path)
                print(f"note: {path} not claimed by {name}: {reason}")
    return raw


def _is_class_like(segment: str) -> bool:
    return segment.lstrip("_")[:1].isupper()


def _tail(dotted: str) -> tuple[str, ...]:
    """The qualname part: from the first class-like segment, else the last segment."""
    parts = dotted.split(".")
    start = next((i for i in range(1, len(parts)) if _is_class_like(parts[i])), len(parts) - 1)
    return tuple(parts[start:])


def _inherited_problem(path: str, name: str, behaviour: dict[str, tuple[object, ...]]) -> str:
    """Why entry `name` must not claim `path`, or '' if it may.

    A path with the entry's own qualname, or a plain function (a re-export under
    another name), is the entry's own. A method or class under another class's
    qualname is a base-class definition: the entry may claim it only if the
    base's own entry behaves the same, or the base class is private (reachable
    only through the public subclasses); otherwise a resolver meeting the base
    definition through another subclass would read the wrong behaviour.
    """
    tail = _tail(path)
    if tail == _tail(name) or not any(_is_class_like(p) for p in tail):
        return ""
    top = path.split(".")[0].lstrip("_")
    owners = [n for n in behaviour if n.split(".")[0] == top and _tail(n) == tail]
    if len(owners) == 1:
        owner = owners[0]
        if behaviour[owner] != behaviour[name]:
            return f"it belongs to {owner}, which behaves differently"
        return ""
    if tail[0].startswith("_"):
        return ""
    return "a public base definition without an entry of its own"


_NAME = re.compile(r'^name = "([^"]+)"$')


def rewrite(text: str, defined: dict[str, list[str] | None]) -> str:
    out: list[str] = []
    current: str | None = None
    for line in text.splitlines():
        if match := _NAME.match(line):
            current = match.group(1)
        if (
            line.startswith("defined = ")
            and current is not None
            and defined.get(current) is not None
        ):
            continue
        out.append(line)
        if line.startswith("source = ") and current is not None:
            paths = defined.get(current)
            if paths:
                out.append("defined = [" + ", ".join(f'"{p}"' for p in paths) + "]")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if apis.toml is out of date")
    mode.add_argument("--write", action="store_true", help="update apis.toml in place")
    parser.add_argument("--tractor-src", help="directory holding the tractor package (jedi only)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    text = TABLE.read_text(encoding="utf-8")
    entries = tomllib.loads(text)["api"]
    defined = compute(entries, args.tractor_src)
    new_text = rewrite(text, defined)
    changed = [
        (str(e["name"]), e.get("defined", []), defined[str(e["name"])])
        for e in entries
        if defined[str(e["name"])] is not None
        and list(e.get("defined", [])) != defined[str(e["name"])]
    ]
    for name, old, new in changed:
        print(f"{name}: {old} -> {new}")
    print(f"{len(entries)} entries, {len(changed)} out of date")
    if args.write and new_text != text:
        TABLE.write_text(new_text, encoding="utf-8")
        print(f"wrote {TABLE.relative_to(ROOT)}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
