"""jedi and parso, set up for the resolver: the environment whose packages jedi
reads, and a faster name lookup by position in parso (the same answers)."""

from __future__ import annotations

import os
import pickle
import sys
import time
import warnings
from typing import Any


def _name_of_position(self: Any, position: tuple[int, int]) -> Any:
    """parso's ``get_name_of_position``, skipping the children whose range
    cannot hold ``position``: the same answer, without walking the whole
    module for every lookup (it was half the time of resolving a 3,000-line
    file: jedi looks up each checkpoint's callee by position)."""
    # jedi loads only when resolving (start-up cost)
    from parso.tree import Leaf

    for child in self.children:
        if child.start_pos > position:
            break
        if isinstance(child, Leaf):
            if child.type == "name" and position <= child.end_pos:
                return child
        elif position <= child.end_pos:
            found = child.get_name_of_position(position)
            if found is not None:
                return found
    return None


def speed_up_parso() -> None:
    # jedi loads only when resolving (start-up cost)
    from parso.python.tree import PythonMixin

    if PythonMixin.get_name_of_position is not _name_of_position:
        PythonMixin.get_name_of_position = _name_of_position  # type: ignore[method-assign]
    tolerate_broken_cache()
    # jedi warns on stderr for each module of the workspace it cannot import
    # by name ("Module src.trio._abc not importable"): noise in a CLI's output.
    warnings.filterwarnings("ignore", message=r"Module \S+ not importable in path")


def tolerate_broken_cache() -> None:
    """A pickle in parso's cache (~/.cache/jedi) that another process left
    half-written, or is writing right now, is a cache miss, not an EOFError
    that fails every inference of that file."""
    # jedi loads only when resolving (start-up cost)
    import parso.cache

    load = parso.cache._load_from_file_system
    if getattr(load, "tolerant", False):
        return

    def tolerant(*arguments: Any, **keywords: Any) -> Any:
        try:
            return load(*arguments, **keywords)  # type: ignore[no-untyped-call]
        except (EOFError, pickle.UnpicklingError, ValueError, AttributeError):
            return None

    tolerant.tolerant = True  # type: ignore[attr-defined]
    parso.cache._load_from_file_system = tolerant


def forget_parsed(path: str) -> None:
    """Drop parso's in-memory tree of one file (kept for diff parsing, never evicted)."""
    # jedi loads only when resolving (start-up cost)
    import parso.cache

    for trees in parso.cache.parser_cache.values():
        for key in [key for key in trees if str(key) == path]:
            del trees[key]


def make_environment(interpreter: str | None) -> Any:
    """jedi's view of an interpreter: the configured one, else our own (in process)."""
    # jedi loads only when resolving (start-up cost)
    import jedi

    if interpreter:
        # The user chose it: jedi runs it once to read its sys.path.
        return jedi.create_environment(interpreter, safe=False)
    return jedi.InterpreterEnvironment()


def environment_key(environment: Any, root: str) -> list[str]:
    """What jedi's answers depend on besides the files read: the interpreter,
    the workspace, and each package folder's mtime (it changes when a package
    is installed, upgraded or removed)."""
    try:
        sys_path = [str(entry) for entry in environment.get_sys_path()]
    except Exception:  # noqa: BLE001 - an interpreter that cannot say: no reuse across runs
        return [repr(os.getpid()), repr(time.time())]
    # Not the folder of the running script or the working folder: the same
    # packages are read whether conc-lsp runs as `conc-lsp` or `python -m`.
    ours = {"", os.getcwd(), os.path.dirname(os.path.abspath(sys.argv[0] or "."))}
    parts = [str(getattr(environment, "executable", "")), root]
    for entry in sys_path:
        if entry in ours:
            continue
        try:
            parts.append(f"{entry}:{os.stat(entry).st_mtime_ns}")
        except OSError:
            parts.append(entry)
    return parts


def one_inference_state(script: Any, shared: Any) -> Any:
    """Make ``script`` infer with ``shared`` (jedi's caches of inferred modules
    and values), the state of the first script of a pass: builtins, typing and
    the libraries are inferred once per pass, not once per file read. Returns
    the state now in use. Dynamic parameter search (jedi looks for every call
    of a function to guess its parameters: most of the time of resolving in a
    large workspace, and no verdict changes with it) is off."""
    if shared is None:
        shared = script._inference_state
        shared.do_dynamic_params_search = False
    else:
        script._inference_state = shared
    return shared
