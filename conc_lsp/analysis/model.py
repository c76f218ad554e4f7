"""The small data types the analysis speaks in.

Positions are 0-based lines and code-point columns; converting them to an
editor's encoding is the adapters' job.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

# Re-exported: the analysis speaks of them as part of its model.
from conc_lsp.analysis.kinds import CHECKPOINT_KINDS as CHECKPOINT_KINDS
from conc_lsp.analysis.kinds import HintKind as HintKind
from conc_lsp.analysis.kinds import Severity as Severity


class Shield(enum.Enum):
    """Whether an enclosing cancel scope shields a checkpoint."""

    NO = "no"
    YES = "yes"
    MAYBE = "maybe"  # shield=<runtime value>: we do not guess


@dataclass(frozen=True, slots=True)
class Context:
    """Where a checkpoint sits, as far as cancellation is concerned."""

    shielded: Shield = Shield.NO
    bounded: bool = False
    in_finally: bool = False
    in_except: str | None = None  # the handler's exception text; "" for bare except
    acm_teardown: bool = False
    in_aexit: bool = False  # __aexit__ / aclose

    @property
    def on_cleanup_path(self) -> bool:
        """finally, except, acm teardown or __aexit__: code that runs while unwinding."""
        return self.in_finally or self.in_except is not None or self.acm_teardown or self.in_aexit


EMPTY_CONTEXT = Context()


class Verdict(enum.StrEnum):
    """How surely a construct (or a call of a function) checkpoints."""

    ALWAYS = "always"  # every path checkpoints
    SOMETIMES = "sometimes"  # some path returns without a checkpoint
    NEVER = "never"  # no path checkpoints
    MAY_NOT_YIELD = "may-not-yield"  # a library fast path returns without yielding
    UNKNOWN = "unknown"  # not resolved: read as a checkpoint, as before resolution
    # Internal to the resolver: a recursive call of a function being analysed,
    # the start of the fixpoint (returns only after a checkpoint, but brings
    # none of its own). Never shown.
    ASSUMED = "assumed"

    @property
    def guaranteed(self) -> bool:
        """Counts as a checkpoint on every path (unknown ones give the benefit of the doubt)."""
        return self in (Verdict.ALWAYS, Verdict.UNKNOWN, Verdict.ASSUMED)

    @property
    def possible(self) -> bool:
        return self not in (Verdict.NEVER, Verdict.ASSUMED)


@dataclass(frozen=True, slots=True)
class Resolution:
    """What resolving a checkpoint's callee found out (see ``analysis/resolve.py``)."""

    verdict: Verdict
    callee: str  # the name it resolved: "helper", "trio.sleep", "asyncio.Lock.acquire"
    reason: str  # short, for the label: "returns at L40 without one"
    chain: tuple[str, ...] = ()  # the steps behind the verdict, for hover
    enter: Verdict | None = None  # async with: each side on its own
    exit: Verdict | None = None
    # may-not-yield: the library whose fast path returns without yielding
    # ("asyncio", "anyio"; "" if unknown or another verdict).
    fast_path: str = ""


# A checkpoint hint's identity across edits elsewhere in the file: its
# function, kind, code and rank among the same (function, kind, code).
HintKey = tuple[str, str, str, int]


# Where a hint is in one version of the text: its label's position and kind.
Anchor = tuple[int, int, "HintKind"]


def anchor_keys(hints: Iterable[Hint]) -> dict[Anchor, HintKey]:
    """The key of each hint of a document (all of them: ranks count in text order)."""
    seen: dict[tuple[str, str, str], int] = {}
    keys: dict[Anchor, HintKey] = {}
    for hint in sorted(hints, key=lambda hint: (hint.line, hint.column)):
        base = (hint.function, hint.kind.value, hint.code)
        rank = seen.get(base, 0)
        seen[base] = rank + 1
        keys[(hint.line, hint.column, hint.kind)] = (*base, rank)
    return keys


@dataclass(frozen=True, slots=True)
class Hint:
    """A checkpoint or a look-alike, anchored where its label goes.

    ``line``/``column`` is the end of the construct (where the label is
    shown); ``keyword_*`` is the span of the keyword (``await``,
    ``async with``, ``async for``, ``yield``, or the method name of a
    look-alike call) that hover explains.
    """

    kind: HintKind
    line: int
    column: int
    keyword_line: int
    keyword_column: int
    keyword_end_column: int
    function: str
    context: Context
    code: str  # short source text of the construct, e.g. "lock.acquire()"
    waits_for_children: bool = False
    bounded_call: bool = False  # the awaited call carries its own timeout
    releases_on_exit: bool = False  # `async with lock:` leaves without a checkpoint
    in_async_function: bool = True  # False: a look-alike in a sync function (a callback)

    def shifted(self, lines: int, columns: int = 0) -> Hint:
        """The same hint moved by ``lines`` (and ``columns`` on its own line)."""
        # Direct construction: dataclasses.replace is several times slower,
        # and this runs for every hint of every request.
        return Hint(
            self.kind,
            self.line + lines,
            self.column + columns,
            self.keyword_line + lines,
            self.keyword_column,
            self.keyword_end_column,
            self.function,
            self.context,
            self.code,
            self.waits_for_children,
            self.bounded_call,
            self.releases_on_exit,
            self.in_async_function,
        )


@dataclass(frozen=True, slots=True)
class SyntaxProblem:
    """A region that does not parse."""

    line: int
    column: int
    message: str
    start_line: int  # first line of the region that could not be analysed
    end_line: int  # exclusive


@dataclass(slots=True)
class ModuleAnalysis:
    """Everything the analysis knows about one module version."""

    hints: list[Hint]
    libraries: frozenset[str]
    problems: list[SyntaxProblem]
    stale_hints: int = 0  # hints carried from an older parse through the edits


@dataclass(frozen=True, slots=True)
class Location:
    """A 0-based, code-point range."""

    line: int
    column: int
    end_line: int
    end_column: int


@dataclass(frozen=True, slots=True)
class Related:
    """Another line a finding involves (the checkpoint in the window, the setter...)."""

    location: Location
    message: str


@dataclass(frozen=True, slots=True)
class TextEdit:
    """Replace the text between two (line, code-point column) positions."""

    start: tuple[int, int]
    end: tuple[int, int]
    text: str


@dataclass(frozen=True, slots=True)
class Fix:
    """A quick fix: what it does, whether it keeps behaviour, and its edits."""

    title: str
    safe: bool  # True: only the bug changes; False: behaviour changes on purpose
    edits: tuple[TextEdit, ...]


@dataclass(frozen=True, slots=True)
class Finding:
    """A rule's verdict on one place in the code."""

    code: str
    name: str
    message: str
    location: Location
    severity: Severity
    function: str
    related: tuple[Related, ...] = ()
    fix: Fix | None = None
