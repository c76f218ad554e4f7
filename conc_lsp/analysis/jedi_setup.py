"""jedi and parso, set up for the resolver: the environment whose packages jedi
reads, and a faster name lookup by position in parso (the same answers)."""

from __future__ import annotations

import pickle
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


def make_environment(interpreter: str | None) -> Any:
    """jedi's view of an interpreter: the configured one, else our own (in process)."""
    # jedi loads only when resolving (start-up cost)
    import jedi

    if interpreter:
        # The user chose it: jedi runs it once to read its sys.path.
        return jedi.create_environment(interpreter, safe=False)
    return jedi.InterpreterEnvironment()
