"""The command line: another thin adapter over the analysis."""

from __future__ import annotations

import argparse
import atexit
import gc
import os
import re
import sys
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from conc_lsp import __version__, run_memo
from conc_lsp.analysis.kinds import SEVERITIES, HintKind
from conc_lsp.cli_pool import PROGRESS_VARIABLE
from conc_lsp.label_options import LABEL_STYLES

# Not `typing.TYPE_CHECKING`: importing typing costs a run the memo answers 3 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO, TextIO

    from conc_lsp import report

DESCRIPTION = """\
conc-lsp shows where trio / anyio / asyncio code can switch tasks or be
cancelled (checkpoints), and what merely looks like it could.

examples:
  conc-lsp hints examples/cache.py          the checkpoint map of a file
  conc-lsp hints --format json src/         the same, as data, for a folder
  conc-lsp check src/                       report concurrency bugs (CI, pre-commit)
  conc-lsp rule CONC101                     what a rule flags and why
  conc-lsp report examples/cache.py::_Cache the concurrency report of a class
  conc-lsp serve                            the language server, over stdio
"""


REPORT_RANGE = re.compile(r"(?P<path>.+):(?P<start>[0-9]+)(?:-(?P<end>[0-9]+))?")


def parse_report_target(spec: str) -> tuple[str, report.Target]:
    """`FILE`, `FILE:START-END` (1-based, inclusive; `FILE:LINE` for one line) or
    `FILE::QUALNAME` -> the path and the report's target."""
    # loaded only by the subcommand that needs it (start-up cost)
    from conc_lsp.report import Target

    if "::" in spec:
        path, qualname = spec.split("::", 1)
        return path, Target.function(qualname) if qualname else Target()
    match = REPORT_RANGE.fullmatch(spec)
    if match is not None and not Path(spec).exists():
        start = int(match.group("start"))
        end = int(match.group("end") or start)
        if start < 1 or end < 1:
            raise ValueError(f"lines are counted from 1: {spec!r}")
        return match.group("path"), Target.lines(start - 1, end - 1)
    return spec, Target()


def _report_command(arguments: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    # loaded only by the subcommand that needs it (start-up cost)
    import json
    from dataclasses import replace  # start-up cost, as above

    from conc_lsp import config  # start-up cost, as above
    from conc_lsp.cli_check import settings_for  # start-up cost, as above
    from conc_lsp.report import TargetNotFound, build_report, render_markdown, to_json
    from conc_lsp.report.build import progress_printer  # start-up cost, as above
    from conc_lsp.report.render import link_from  # start-up cost, as above
    from conc_lsp.sources import UndecodableSource, read_source_file  # start-up cost, as above

    try:
        name, target = parse_report_target(arguments.target)
    except ValueError as error:
        print(f"conc-lsp: error: {error}", file=err)
        return 2
    path = Path(name)
    try:
        lines = list(read_source_file(path).lines)
    except OSError as error:
        print(f"{path}: cannot read: {error.strerror or error}", file=err)
        return 2
    except UndecodableSource as error:
        print(error, file=err)
        return 2
    settings = settings_for([name], err)
    if arguments.select:
        try:
            settings = replace(settings, select=config.parse_codes(arguments.select.split(",")))
        except ValueError as error:
            print(f"conc-lsp: error: {error}", file=err)
            return 2
    # Relative to the current folder, where a report written to stdout is
    # usually kept (`conc-lsp report src/x.py > report.md`).
    link = None if arguments.no_links else link_from(Path.cwd(), name)
    try:
        result = build_report(
            lines,
            target,
            settings=settings,
            path=name,
            name=name,
            link=link,
            progress=progress_printer(err),
        )
    except TargetNotFound as error:
        print(f"conc-lsp: error: {path}: {error}", file=err)
        return 2
    if arguments.format == "json":
        json.dump(to_json(result), out, indent=2, ensure_ascii=False)
        out.write("\n")
    else:
        out.write(render_markdown(result))
    return 0


def _rule_command(arguments: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    # loaded only by the subcommand that needs it (start-up cost)
    from conc_lsp.rules import all_rules, find_rule

    if arguments.docs:
        print(rules_markdown(), file=out, end="")
        return 0
    if arguments.all or not arguments.code:
        for rule in all_rules().values():
            print(
                f"{rule.code}  {rule.name:<32} {rule.severity.value:<12} {rule.summary}", file=out
            )
        return 0
    found = find_rule(arguments.code)
    if found is None:
        print(f"conc-lsp: error: unknown rule {arguments.code!r}", file=err)
        return 2
    print(found.doc, file=out)
    return 0


def rules_markdown() -> str:
    """docs/rules.md, generated from the rules' docstrings."""
    # loaded only by the subcommand that needs it (start-up cost)
    from conc_lsp.rules import all_rules

    rules = all_rules()
    parts = [
        "# conc-lsp rules",
        "",
        "Generated from the rule modules' docstrings by `conc-lsp rule --docs`; "
        "do not edit by hand.",
        "",
        "| code | name | default severity |",
        "|---|---|---|",
    ]
    parts += [
        f"| [{rule.code}](#{rule.code.lower()}-{rule.name}) | {rule.name} | {rule.severity.value}"
        f"{' (opt-in)' if rule.opt_in else ''} |"
        for rule in rules.values()
    ]
    for rule in rules.values():
        body = rule.doc.partition("\n")[2].strip().replace("\n## ", "\n### ")
        if body.startswith("## "):
            body = "#" + body
        parts += ["", f"## {rule.code} {rule.name}", ""]
        if rule.opt_in:
            parts += [f"*Opt-in* ({rule.opt_in_reason}): select it by code or `ALL`.", ""]
        parts.append(body)
    return "\n".join(parts) + "\n"


PYTHON_HELP = (
    "the Python whose installed packages jedi reads (it is run once to ask for its "
    "paths); default: the one running conc-lsp"
)


def _jobs(text: str) -> int:
    try:
        jobs = int(text)
    except ValueError:
        jobs = -1
    if jobs < 0:
        raise argparse.ArgumentTypeError(f"expected a number of processes, got {text!r}")
    return jobs


def _add_run_arguments(command: argparse.ArgumentParser, *, cache: bool) -> None:
    """--jobs and --progress (and the cache's options) of the commands that read many files."""
    command.add_argument(
        "-j",
        "--jobs",
        type=_jobs,
        default=0,
        metavar="N",
        help="processes to use (default 0: one per core); the output is the same",
    )
    command.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a progress line on stderr (default: on a terminal, for runs over a second; "
        "CONC_LSP_PROGRESS=1 or 0 forces it on or off)",
    )
    if not cache:
        return
    command.add_argument(
        "--no-cache",
        action="store_true",
        help="neither read nor write the results cache (.conc_lsp_cache/)",
    )
    command.add_argument(
        "--cache-dir",
        metavar="PATH",
        help="the results cache's folder (default: $CONC_LSP_CACHE_DIR, else "
        ".conc_lsp_cache/ beside pyproject.toml)",
    )


TCP_ADDRESS = re.compile(r"(?P<host>.*):(?P<port>[0-9]{1,5})")


def _serve(tcp: str | None, err: TextIO) -> int:
    """The language server; a bad TCP address is one line on stderr, not a traceback."""
    address: tuple[str, int] | None = None
    if tcp is not None:
        match = TCP_ADDRESS.fullmatch(tcp)
        if match is None or int(match.group("port")) > 65535:
            print(f"conc-lsp: error: --tcp expects HOST:PORT (port 0-65535), got {tcp!r}", file=err)
            return 2
        address = (match.group("host").strip("[]") or "127.0.0.1", int(match.group("port")))
    try:
        return _load_and_serve(address, tcp, err)
    except KeyboardInterrupt:  # Ctrl-C before the session began (the session catches its own)
        return 1  # LSP's code for an end without `shutdown`


def _own_stdin() -> BinaryIO:
    """The server's input: a reader of its own over a copy of stdin's descriptor.

    The server reads in a daemon thread, which may still wait in a read when the
    session ends (Ctrl-C, an error). Were it reading `sys.stdin`, the interpreter's
    exit would close that, wait for the read's lock, and abort; a reader of its
    own is left alone."""
    try:
        return os.fdopen(os.dup(sys.stdin.fileno()), "rb")
    except (OSError, ValueError):  # no usable stdin (closed, or not a file)
        return sys.stdin.buffer


def _load_and_serve(address: tuple[str, int] | None, tcp: str | None, err: TextIO) -> int:
    from conc_lsp.server import early_init  # for `serve` only (start-up cost)

    stdin = None if address else _own_stdin()
    early = None if stdin is None else early_init.answer_initialize(stdin, sys.stdout.buffer)
    # Loading the server (lsprotocol's thousand classes) makes no garbage: the cyclic
    # collector would only traverse it again and again, a tenth of the time to answer
    # `initialize`. Loaded, it stays for good: frozen out of the collector's passes.
    gc.disable()
    try:
        from conc_lsp.server.app import serve  # pygls loads only for the server (start-up cost)

        gc.freeze()
    finally:
        gc.enable()
    try:
        serve(f"{address[0]}:{address[1]}" if address else None, early, stdin)
    except OSError as error:  # cannot bind: address in use, unknown host, ...
        print(f"conc-lsp: error: cannot listen on {tcp}: {error.strerror or error}", file=err)
        return 1
    return 0


def _help_width() -> int:
    """The width argparse gives its help (``shutil.get_terminal_size().columns - 2``),
    found without importing shutil, which loads bz2, lzma and zlib (start-up cost)."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return (columns or 80) - 2


class _Parser(argparse.ArgumentParser):
    """argparse's parser (its subcommands' too), with the help width given."""

    def _get_formatter(self) -> argparse.HelpFormatter:
        return self.formatter_class(prog=self.prog, width=_help_width())  # type: ignore[call-arg]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="conc-lsp",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"conc-lsp {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the language server (stdio by default)")
    serve.add_argument("--stdio", action="store_true", help="talk over stdin/stdout (default)")
    serve.add_argument("--tcp", metavar="HOST:PORT", help="listen on a TCP address instead")

    hints = commands.add_parser(
        "hints",
        help="print the checkpoint map of Python files",
        description="Print every checkpoint and look-alike, one line each: "
        "'path:LINE: <source line> <- checkpoint'.",
    )
    hints.add_argument("paths", nargs="+", metavar="PATH", help="files or folders")
    hints.add_argument("--format", choices=("text", "json"), default="text")
    hints.add_argument(
        "--style",
        choices=LABEL_STYLES,
        help="label style (default: hints.label-style of pyproject.toml, else arrow)",
    )
    hints.add_argument(
        "--kinds",
        metavar="KIND,...",
        help="only these kinds (default: hints.kinds of pyproject.toml, else all): "
        + ", ".join(kind.value for kind in HintKind),
    )
    hints.add_argument(
        "--resolve",
        action="store_true",
        help="follow each callee with jedi: 'may checkpoint', 'no checkpoint', ... (slower)",
    )
    hints.add_argument(
        "--show",
        choices=("all", "context"),
        default="all",
        help="all: every hint (default); context: only what the editor shows by default",
    )
    hints.add_argument(
        "--max-length",
        type=int,
        default=0,
        metavar="N",
        help="cut labels to N characters, as the editor does (default: 0, no cap)",
    )
    hints.add_argument("--python", metavar="PATH", default="", help=PYTHON_HELP)
    _add_run_arguments(hints, cache=False)
    check = commands.add_parser(
        "check",
        help="report concurrency bugs (exit 1 when something is found)",
        description="Check files and folders for the concurrency bug patterns "
        "(output: 'path:line:col: CODE [severity] message', like ruff).",
    )
    check.add_argument("paths", nargs="*", default=["."], metavar="PATH", help="files or folders")
    check.add_argument("--format", choices=("text", "json", "sarif", "github"), default="text")
    check.add_argument(
        "--select", metavar="CODES", help="only these rules (prefixes, comma-separated)"
    )
    check.add_argument("--extend-select", metavar="CODES", help="add these rules (prefixes)")
    check.add_argument("--ignore", metavar="CODES", help="skip these rules (prefixes)")
    check.add_argument(
        "--fail-on",
        choices=SEVERITIES,
        help="the least severity whose findings fail the run (exit 1); default: the "
        "fail-on setting, else warning (information and hint findings are shown, "
        "but pass)",
    )
    check.add_argument(
        "--force-exclude",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="apply the excludes to files named on the command line too (for pre-commit)",
    )
    check.add_argument("--statistics", action="store_true", help="print counts per rule")
    check.add_argument("--fix", action="store_true", help="apply the safe fixes in place")
    check.add_argument(
        "--resolve",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="follow callees with jedi (default: when a rule that uses it, CONC111, is "
        "selected and the 'resolve.enabled' setting is on)",
    )
    check.add_argument("--python", metavar="PATH", default="", help=PYTHON_HELP)
    check.add_argument(
        "--unsafe-fixes", action="store_true", help="apply the unsafe fixes too (implies --fix)"
    )
    _add_run_arguments(check, cache=True)

    report_parser = commands.add_parser(
        "report",
        help="the concurrency report of a file, a line range or a function / class",
        description="The six-part concurrency analysis of the conc-anal procedure: shared "
        "state, checkpoints, race traces, classification and fixes, in markdown "
        "(line references link to the file) or JSON.",
    )
    report_parser.add_argument(
        "target",
        metavar="FILE[:START-END | ::QUALNAME]",
        help="a file, lines of it (1-based, inclusive) or a function or class by its "
        "qualified name (`cache.py::_Cache.run_ctx`)",
    )
    report_parser.add_argument("--format", choices=("markdown", "json"), default="markdown")
    report_parser.add_argument(
        "--no-links",
        action="store_true",
        help="plain `L12` line references, no links to the file (by default they link "
        "relative to the current folder: `[L12](src/x.py#L12)`)",
    )
    report_parser.add_argument(
        "--select", metavar="CODES", help="the rules whose findings it traces (comma-separated)"
    )

    rule = commands.add_parser("rule", help="explain a rule (`conc-lsp rule CONC101`)")
    rule.add_argument(
        "code", nargs="?", help="a code (CONC101) or name (unbounded-wait-in-cleanup)"
    )
    rule.add_argument("--all", action="store_true", help="list every rule")
    rule.add_argument("--docs", action="store_true", help="print docs/rules.md")
    return parser


def _check_memo(arguments: argparse.Namespace) -> Path | None:
    """Where this `check` run is recorded and may be replayed from (run_memo), or
    None for a run that writes files, resolves, shows progress or has no cache."""
    if arguments.no_cache or arguments.fix or arguments.unsafe_fixes or arguments.resolve:
        return None
    if arguments.progress or os.environ.get(PROGRESS_VARIABLE) == "1":
        return None
    return run_memo.memo_path(arguments.paths, arguments.cache_dir)


@cache
def _freeze_at_exit() -> None:
    """At exit, what is left leaves the cyclic garbage collector: its last passes
    would traverse every class and module a short command loaded (about a tenth of
    a one-file `check`), only for the process to end and free it all anyway."""
    atexit.register(gc.freeze)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    arguments = parser.parse_args(argv)
    if arguments.command == "serve":
        return _serve(arguments.tcp, sys.stderr)
    _freeze_at_exit()
    if arguments.command == "hints":
        if arguments.kinds:
            known = {kind.value for kind in HintKind}
            unknown = set(arguments.kinds.split(",")) - known
            if unknown:
                parser.error(f"unknown kind(s): {', '.join(sorted(unknown))}")
        # the hint collector loads only for this command (start-up cost)
        from conc_lsp.cli_hints import hints_command

        try:
            return hints_command(arguments, sys.stdout, sys.stderr)
        except BrokenPipeError:
            return 0
    if arguments.command == "check":
        try:
            memo = _check_memo(arguments)
            if memo is not None:
                replayed = run_memo.replay(arguments, memo, sys.stdout, sys.stderr)
                if replayed is not None:
                    return replayed
            # the checks, the cache and the pool load only for this command (start-up cost)
            from conc_lsp.cli_check import check_command

            return check_command(arguments, sys.stdout, sys.stderr, memo)
        except BrokenPipeError:
            return 0
    if arguments.command == "rule":
        return _rule_command(arguments, sys.stdout, sys.stderr)
    if arguments.command == "report":
        try:
            return _report_command(arguments, sys.stdout, sys.stderr)
        except BrokenPipeError:
            return 0
    parser.print_help()
    return 2
