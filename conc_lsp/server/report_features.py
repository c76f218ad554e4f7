"""The concurrency report in the editor: code lenses and the `conc.analyse` command.

A code lens on the `def` / `class` line of every async function and class
with async methods that has findings (the ``lens`` setting: ``off``,
``findings``, ``all``) reads `3 checkpoints · 1 finding · Analyse concurrency`
and runs `conc.analyse` with ``[uri, qualname]``. The command also takes
``[uri]`` (the whole file), ``[uri, {"start": line, "end": line}]`` (0-based
lines, for a selection) and ``[uri, {"at": line}]`` (the function or class
around a line, for the cursor; the whole file outside any). It
builds the report from the open document's current text (or from a regular
``.py`` file inside the workspace folders, never anything else) in a
process of its own, within ``REPORT_SECONDS``, writes it as markdown under
``$XDG_CACHE_HOME/conc-lsp/reports/``
(``~/.cache/...`` by default), asks the client to show it with
``window/showDocument`` when the client can, and returns
``{"markdown": text, "uri": file uri of the written report}`` so that an
editor integration can show it its own way.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import stat
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInternalError, JsonRpcInvalidParams
from pygls.uris import to_fs_path

from conc_lsp.analysis.text import split_lines
from conc_lsp.config import Settings
from conc_lsp.jobs import compute_lenses, compute_report
from conc_lsp.report.render import link_from
from conc_lsp.server.diagnostics import JOB_SECONDS
from conc_lsp.server.positions import to_lsp
from conc_lsp.server.workers import JobFailed, OutOfTime
from conc_lsp.sources import UndecodableSource, read_source

if TYPE_CHECKING:  # the analysis and the rules load in the worker process only
    from conc_lsp.report import LensTarget, Target
    from conc_lsp.server.app import ConcLanguageServer

logger = logging.getLogger("conc_lsp")
COMMAND = "conc.analyse"
USAGE = (
    f"{COMMAND} takes [uri], [uri, qualname], [uri, {{'start': line, 'end': line}}] "
    "or [uri, {'at': line}] (0-based lines)"
)
KEPT_LENSES = 32  # documents whose lens data is kept
REPORT_SECONDS = 60.0  # one report: past it, its process is killed and the request fails

# uri -> ((version, settings), lens targets) for the documents seen last
_LENSES: OrderedDict[str, tuple[tuple[int | None, Settings, int], list[LensTarget]]] = OrderedDict()


# -- code lenses ---------------------------------------------------------------


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def lens_title(target: LensTarget) -> str:
    return (
        f"{_plural(target.checkpoints, 'checkpoint')} · {_plural(target.findings, 'finding')}"
        " · Analyse concurrency"
    )


async def lens_targets_of(ls: ConcLanguageServer, uri: str) -> list[LensTarget]:
    """Every lens target of an open document (cached per version and settings)."""
    document = ls.documents.get(uri)
    if document is None:
        return []
    stamp = (document.version, ls.settings, document.resolution_generation)
    cached = _LENSES.get(uri)
    if cached is not None and cached[0] == stamp:
        _LENSES.move_to_end(uri)
        return cached[1]
    path = to_fs_path(uri) if uri.startswith("file:") else None
    targets: list[LensTarget] = await ls.worker.call(
        compute_lenses,
        uri,
        list(document.lines),
        ls.settings,
        path,
        document.resolutions,
        default=[],
        timeout=JOB_SECONDS,
    )
    if document.version != stamp[0]:
        return targets  # not cached: a newer edit
    _LENSES[uri] = (stamp, targets)
    _LENSES.move_to_end(uri)
    while len(_LENSES) > KEPT_LENSES:
        _LENSES.popitem(last=False)
    return targets


def shown_lenses(targets: list[LensTarget], setting: str) -> list[LensTarget]:
    """The ``lens`` setting: ``off``, ``findings`` (where there are findings) or ``all``."""
    if setting == "off":
        return []
    if setting == "findings":
        return [target for target in targets if target.findings]
    return list(targets)


async def code_lenses(ls: ConcLanguageServer, params: types.CodeLensParams) -> list[types.CodeLens]:
    """A lens on the `def` / `class` line of async functions and classes with
    async methods: all of them, or only those with findings (the ``lens`` setting)."""
    uri = params.text_document.uri
    document = ls.documents.get(uri)
    if document is None or ls.settings.lens == "off":
        return []
    version = document.version
    targets = await lens_targets_of(ls, uri)
    if document.version != version:
        return []  # a newer edit: the client asks again
    lines = document.lines
    encoding = ls.encoding
    lenses = []
    for target in shown_lenses(targets, ls.settings.lens):
        line = target.lens_line
        if line >= len(lines):
            continue
        lenses.append(
            types.CodeLens(
                range=types.Range(
                    start=to_lsp(lines, line, 0, encoding),
                    end=to_lsp(lines, line, len(lines[line]), encoding),
                ),
                command=types.Command(
                    title=lens_title(target), command=COMMAND, arguments=[uri, target.qualname]
                ),
            )
        )
    return lenses


# -- conc.analyse --------------------------------------------------------------


def parse_arguments(arguments: list[Any]) -> tuple[str, Target | int]:
    """``[uri]``, ``[uri, qualname]``, ``[uri, {"start": n, "end": m}]`` or
    ``[uri, {"at": n}]`` (the innermost function or class around line n,
    else the whole file: returned as the line).

    Lines are 0-based; ``{"line": n}`` positions (an LSP range's ``start`` and
    ``end``) are accepted too.
    """
    # the report loads only when asked for (start-up cost)
    from conc_lsp.report import Target

    if not arguments or not isinstance(arguments[0], str) or len(arguments) > 2:
        raise JsonRpcInvalidParams(USAGE)
    uri = arguments[0]
    what = arguments[1] if len(arguments) > 1 else None
    if what is None or what == "":
        return uri, Target()
    if isinstance(what, str):
        return uri, Target.function(what)
    if isinstance(what, dict) and "at" in what:
        at = _line(what["at"])
        if at is not None and at >= 0:
            return uri, at
        raise JsonRpcInvalidParams(USAGE)
    if isinstance(what, dict):
        start, end = _line(what.get("start")), _line(what.get("end", what.get("start")))
        if start is not None and end is not None and start >= 0 and end >= 0:
            return uri, Target.lines(start, end)
    raise JsonRpcInvalidParams(USAGE)


def _line(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, dict) and isinstance(value.get("line"), int):
        return int(value["line"])
    return None


def reports_folder() -> Path:
    """``$XDG_CACHE_HOME/conc-lsp/reports`` (``~/.cache/conc-lsp/reports`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache"
    return root / "conc-lsp" / "reports"


def report_path(uri: str, name: str, target: Target) -> Path:
    """One file per document and target, so that a new report replaces the old one."""
    if target.kind == "function":
        what = target.qualname or "function"
    elif target.kind == "range" and target.start is not None and target.end is not None:
        what = f"L{target.start + 1}-{target.end + 1}"
    else:
        what = "module"
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(name).stem) or "document"
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", what)
    digest = hashlib.sha1(uri.encode("utf-8")).hexdigest()[:8]
    return reports_folder() / f"{stem}-{slug}-{digest}.md"


def report_link(source: str | None, report: Path) -> str | None:
    """The address line references link to: the source file relative to the report."""
    return None if source is None else link_from(report.parent, source)


def _display_name(ls: ConcLanguageServer, uri: str, path: str | None) -> str:
    """The document as the report calls it: relative to the workspace root if inside it."""
    if path is None:
        return uri.rsplit("/", 1)[-1] or uri
    root = ls.workspace.root_path if ls.workspace is not None else None
    if root:
        try:
            return Path(path).relative_to(root).as_posix()
        except ValueError:
            pass
    return Path(path).name


def _document_lines(ls: ConcLanguageServer, uri: str) -> list[str]:
    document = ls.documents.get(uri)
    if document is not None:
        return list(document.lines)
    path = to_fs_path(uri) if uri.startswith("file:") else None
    if path is None:
        raise JsonRpcInvalidParams(f"{COMMAND}: {uri} is not open")
    path = _workspace_file(ls, path)

    try:
        return split_lines(read_source(Path(path)))
    except (OSError, UndecodableSource) as error:
        raise JsonRpcInvalidParams(f"{COMMAND}: cannot read {path}: {error}") from error


def _workspace_file(ls: ConcLanguageServer, path: str) -> str:
    """``path`` of a document that is not open, if it is a regular ``.py`` file
    inside a workspace folder (links followed); else the request is refused (a
    FIFO would block the server; /etc/passwd is none of its business)."""
    real = Path(os.path.realpath(path))
    if not any(real.is_relative_to(folder) for folder in _workspace_folders(ls)):
        raise JsonRpcInvalidParams(
            f"{COMMAND}: {path} is not open and not inside the workspace folders"
        )
    if real.suffix != ".py":
        raise JsonRpcInvalidParams(f"{COMMAND}: {path} is not open and is not a .py file")
    try:
        mode = real.stat().st_mode
    except OSError as error:
        raise JsonRpcInvalidParams(f"{COMMAND}: cannot read {path}: {error}") from error
    if not stat.S_ISREG(mode):
        raise JsonRpcInvalidParams(f"{COMMAND}: {path} is not a regular file")
    return str(real)


def _workspace_folders(ls: ConcLanguageServer) -> list[Path]:
    workspace = ls.workspace
    if workspace is None:
        return []
    paths = [to_fs_path(folder.uri) for folder in workspace.folders.values()]
    paths.append(workspace.root_path)
    return [Path(os.path.realpath(path)) for path in paths if path]


async def _target_at(ls: ConcLanguageServer, uri: str, line: int) -> Target:
    """The innermost async function or class around ``line``, else the whole file."""
    # the report loads only when asked for (start-up cost)
    from conc_lsp.report import Target

    around = [target for target in await lens_targets_of(ls, uri) if target.contains(line)]
    if not around:
        return Target()
    return Target.function(max(around, key=lambda target: target.lens_line).qualname)


async def analyse(ls: ConcLanguageServer, arguments: list[Any]) -> dict[str, str]:
    """Build the report, write it, ask the client to show it, and return it."""
    # the report loads only when asked for (start-up cost)
    from conc_lsp.report import TargetNotFound

    uri, what = parse_arguments(arguments)
    lines = _document_lines(ls, uri)
    target = await _target_at(ls, uri, what) if isinstance(what, int) else what
    path = to_fs_path(uri) if uri.startswith("file:") else None
    name = _display_name(ls, uri, path)
    try:
        opened = ls.documents.get(uri)
        resolutions = opened.resolutions if opened is not None else None
        markdown = await ls.worker.reports.run(
            compute_report,
            uri,
            lines,
            ls.settings,
            path,
            target,
            name,
            report_link(path, report_path(uri, name, target)),
            resolutions,
            timeout=REPORT_SECONDS,
        )
    except TargetNotFound as error:
        raise JsonRpcInvalidParams(f"{COMMAND}: {error}") from error
    except OutOfTime as error:
        raise JsonRpcInternalError(
            f"{COMMAND}: the report took too long (over {REPORT_SECONDS:.0f} s) and was stopped"
        ) from error
    except JobFailed as error:
        raise JsonRpcInternalError(f"{COMMAND}: the analysis worker failed ({error})") from error
    written = report_path(uri, name, target)
    try:
        written.parent.mkdir(parents=True, exist_ok=True)
        written.write_text(markdown, encoding="utf-8")
    except OSError as error:
        raise JsonRpcInternalError(f"{COMMAND}: cannot write {written}: {error}") from error
    report_uri = written.as_uri()
    if ls.capability(lambda caps: caps.window.show_document.support):  # type: ignore[union-attr]
        ls.window_show_document(types.ShowDocumentParams(uri=report_uri, take_focus=True))
    return {"markdown": markdown, "uri": report_uri}
