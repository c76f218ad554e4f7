"""The command line: another thin adapter over the analysis."""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from conc_lsp import __version__, config
from conc_lsp.analysis.model import HintKey, HintKind, ModuleAnalysis, Resolution, anchor_keys
from conc_lsp.analysis.parse import analyse_lines
from conc_lsp.labels import ARROW, LABEL_STYLES, label
from conc_lsp.sources import (
    SourceNotWritten,
    UndecodableSource,
    read_source_file,
    write_source,
)

if TYPE_CHECKING:
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


DEFAULT_EXCLUDES = (
    ".git",
    ".hg",
    ".venv",
    "venv",
    ".tox",
    ".nox",
    "__pycache__",
    "build",
    "dist",
    "node_modules",
    "*.egg-info",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
)


def _gitignore_patterns(directory: Path) -> list[str]:
    try:
        text = (directory / ".gitignore").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    patterns = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "!")):
            patterns.append(line.rstrip("/").lstrip("/"))
    return patterns


def _excluded(relative: Path, patterns: Sequence[str]) -> bool:
    parts = relative.parts
    text = relative.as_posix()
    for pattern in patterns:
        if "/" in pattern:
            if fnmatch.fnmatch(text, pattern) or fnmatch.fnmatch(text, f"{pattern}/*"):
                return True
        elif any(fnmatch.fnmatch(part, pattern) for part in parts):
            return True
    return False


def python_files(paths: Sequence[str], exclude: Sequence[str] = ()) -> list[Path]:
    """The Python files under ``paths``: default, configured and .gitignore excludes apply
    to folders that are walked; a file named on the command line is always taken."""
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            patterns = [*DEFAULT_EXCLUDES, *exclude, *_gitignore_patterns(path)]
            files.extend(
                sorted(
                    candidate
                    for candidate in path.rglob("*.py")
                    if not _excluded(candidate.relative_to(path), patterns)
                )
            )
        else:
            files.append(path)
    return files


def _hints_command(arguments: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    records: list[dict[str, object]] = []
    status = 0
    kinds = set(arguments.kinds.split(",")) if arguments.kinds else None
    resolver = _resolver_for(arguments, None, err) if arguments.resolve else None
    for path in python_files(arguments.paths):
        try:
            lines = list(read_source_file(path).lines)
        except OSError as error:
            print(f"{path}: cannot read: {error.strerror or error}", file=err)
            status = 2
            continue
        except UndecodableSource as error:
            print(f"{error} (file not analysed)", file=err)
            status = 2
            continue
        analysis: ModuleAnalysis = analyse_lines(lines)
        resolved = resolver.resolve(lines, path) if resolver is not None else {}
        for problem in analysis.problems:
            print(
                f"{path}:{problem.line + 1}:{problem.column + 1}: syntax error: {problem.message}"
                f" (lines {problem.start_line + 1}-{problem.end_line} not analysed)",
                file=err,
            )
        keys = anchor_keys(analysis.hints) if resolved else {}
        for hint in sorted(analysis.hints, key=lambda h: (h.keyword_line, h.keyword_column)):
            if kinds is not None and hint.kind.value not in kinds:
                continue
            key = keys.get((hint.line, hint.column, hint.kind))
            found = resolved.get(key) if key is not None else None
            text = label(hint, arguments.style, found)
            if arguments.format == "json":
                records.append(
                    {
                        "path": str(path),
                        "line": hint.keyword_line + 1,
                        "column": hint.keyword_column,
                        "kind": hint.kind.value,
                        "label": text,
                        "function": hint.function,
                        **(
                            {"verdict": found.verdict.value, "callee": found.callee}
                            if found is not None
                            else {}
                        ),
                    }
                )
            else:
                source_line = lines[hint.keyword_line].strip()
                print(f"{path}:{hint.keyword_line + 1}: {source_line} {text}", file=out)
    if arguments.format == "json":
        json.dump(records, out, indent=2, ensure_ascii=False)
        out.write("\n")
    return status


class _CliResolver:
    """jedi resolution for the command line: one resolver for the whole run."""

    def __init__(self, root: Path, interpreter: str, budget: float) -> None:
        # loaded only by the subcommand that needs it (start-up cost)
        from conc_lsp.analysis.resolve import Resolver

        self.resolver = Resolver(str(root), interpreter or None)
        self.budget = budget

    def resolve(self, lines: list[str], path: Path) -> dict[HintKey, Resolution]:
        result = self.resolver.resolve_lines(lines, str(path.resolve()), self.budget)
        return result.resolutions


def _resolver_for(
    arguments: argparse.Namespace, settings: config.Settings | None, err: TextIO
) -> _CliResolver | None:
    """The resolver asked for (--resolve / the settings), or None, with a warning
    when the chosen interpreter cannot be used."""
    start = Path(arguments.paths[0]).resolve() if arguments.paths else Path.cwd()
    pyproject = config.find_pyproject(start)
    root = pyproject.parent if pyproject else (start if start.is_dir() else start.parent)
    interpreter = arguments.python or (settings.python_interpreter if settings else "")
    budget = settings.resolve_budget * 60 if settings else 300.0  # per file, generous
    try:
        return _CliResolver(root, interpreter, budget)
    except Exception as error:  # noqa: BLE001 - jedi's errors for a bad interpreter vary
        print(f"conc-lsp: warning: cannot resolve callees with {interpreter!r}: {error}", file=err)
        return None


def _settings_for(paths: Sequence[str], err: TextIO) -> config.Settings:
    start = Path(paths[0]).resolve() if paths else Path.cwd()
    loaded = config.from_pyproject(config.Settings(), config.find_pyproject(start))
    for warning in loaded.warnings:
        print(f"conc-lsp: warning: {warning}", file=err)
    return loaded.settings


def _check_command(arguments: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    # loaded only by the subcommand that needs it (start-up cost)
    from conc_lsp import check_output

    # loaded only by the subcommand that needs it (start-up cost)
    from conc_lsp.diagnose import check_lines, fix_lines

    settings = _settings_for(arguments.paths, err)
    overrides: dict[str, object] = {}
    if arguments.select:
        overrides["select"] = arguments.select.split(",")
    if arguments.ignore:
        overrides["ignore"] = list(settings.ignore) + arguments.ignore.split(",")
    if overrides:
        loaded = config.apply(settings, overrides, "command line")
        if loaded.warnings:
            for warning in loaded.warnings:
                print(f"conc-lsp: error: {warning.removesuffix(' (ignored)')}", file=err)
            return 2
        settings = loaded.settings
    results: list[check_output.FileResult] = []
    failed = False  # a file could not be read or its fixes could not be written
    fixed_total = 0
    # loaded only by the subcommand that needs it (start-up cost)
    from conc_lsp.rules import all_rules

    useful = any(
        rule.uses_resolution and settings.rule_enabled(rule.code, opt_in=rule.opt_in)
        for rule in all_rules().values()
    )
    # By default only when an enabled rule reads the results: jedi costs time.
    wants = useful and settings.resolve_enabled if arguments.resolve is None else arguments.resolve
    resolver = _resolver_for(arguments, settings, err) if wants else None
    for path in python_files(arguments.paths, settings.exclude):
        try:
            source = read_source_file(path)
        except OSError as error:
            print(f"{path}: cannot read: {error.strerror or error}", file=err)
            failed = True
            continue
        except UndecodableSource as error:  # like a syntax error; never fixed
            results.append(check_output.FileResult(str(path), [], [error.problem()]))
            continue
        lines = list(source.lines)
        resolutions = resolver.resolve(lines, path) if resolver is not None else None
        if arguments.fix or arguments.unsafe_fixes:
            fixed, applied, result = fix_lines(
                lines,
                settings,
                str(path),
                unsafe=arguments.unsafe_fixes,
                resolutions=resolutions,
            )
            if applied:
                try:
                    write_source(source, fixed)
                except SourceNotWritten as error:
                    print(f"{path}: fixes not written: {error}", file=err)
                    failed = True
                    # The file keeps every finding: report those, not the fixed text's.
                    result = check_lines(
                        lines, settings, str(path), fixes=True, resolutions=resolutions
                    )
                else:
                    fixed_total += applied
        else:
            result = check_lines(
                lines,
                settings,
                str(path),
                fixes=arguments.format in ("json", "sarif"),
                resolutions=resolutions,
            )
        for message in result.rule_errors:
            print(f"{path}: internal error: {message}", file=err)
        results.append(check_output.FileResult(str(path), result.findings, result.problems))
    if arguments.statistics:
        text = check_output.statistics(results)
    elif arguments.format == "json":
        text = check_output.as_json(results)
    elif arguments.format == "sarif":
        text = check_output.sarif(results)
    elif arguments.format == "github":
        text = check_output.github(results)
    else:
        text = check_output.text(results)
        found = sum(len(result.findings) for result in results)
        broken = sum(1 for result in results if result.problems)
        files = f"{len(results)} file{'s' if len(results) != 1 else ''}"
        summary = f"Found {found} finding{'s' if found != 1 else ''} in {files}"
        if broken:
            summary += f" ({broken} with syntax errors)"
        text = f"{text}\n{summary}." if text else "All checks passed."
        if arguments.fix or arguments.unsafe_fixes:
            text += f"\nFixed {fixed_total} finding{'s' if fixed_total != 1 else ''}."
            fixable = sum(
                1
                for result in results
                for finding in result.findings
                if finding.fix is not None and not finding.fix.safe
            )
            if fixable and not arguments.unsafe_fixes:
                text += f" {fixable} more with --unsafe-fixes."
    if text:
        print(text, file=out)
    if failed:
        return 2
    dirty = any(result.findings or result.problems for result in results)
    return 1 if dirty else 0


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
    from conc_lsp.report import TargetNotFound, build_report, render_markdown, to_json

    # loaded only by the subcommand that needs it (start-up cost)
    from conc_lsp.report.build import progress_printer

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
    settings = _settings_for([name], err)
    if arguments.select:
        try:
            settings = replace(settings, select=config.parse_codes(arguments.select.split(",")))
        except ValueError as error:
            print(f"conc-lsp: error: {error}", file=err)
            return 2
    link = None if arguments.no_links else path.resolve().as_uri()
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
        parts += ["", f"## {rule.code} {rule.name}", "", body]
    return "\n".join(parts) + "\n"


PYTHON_HELP = (
    "the Python whose installed packages jedi reads (it is run once to ask for its "
    "paths); default: the one running conc-lsp"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    hints.add_argument("--style", choices=LABEL_STYLES, default=ARROW, help="label style")
    hints.add_argument(
        "--kinds",
        metavar="KIND,...",
        help="only these kinds: " + ", ".join(kind.value for kind in HintKind),
    )
    hints.add_argument(
        "--resolve",
        action="store_true",
        help="follow each callee with jedi: 'may checkpoint', 'no checkpoint', ... (slower)",
    )
    hints.add_argument("--python", metavar="PATH", default="", help=PYTHON_HELP)
    check = commands.add_parser(
        "check",
        help="report concurrency bugs (exit 1 when something is found)",
        description="Check files and folders for the concurrency bug patterns "
        "(output: 'path:line:col: CODE message', like ruff).",
    )
    check.add_argument("paths", nargs="*", default=["."], metavar="PATH", help="files or folders")
    check.add_argument("--format", choices=("text", "json", "sarif", "github"), default="text")
    check.add_argument(
        "--select", metavar="CODES", help="only these rules (prefixes, comma-separated)"
    )
    check.add_argument("--ignore", metavar="CODES", help="skip these rules (prefixes)")
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
        "--no-links", action="store_true", help="plain `L12` line references, no file links"
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    arguments = parser.parse_args(argv)
    if arguments.command == "serve":
        from conc_lsp.server.app import serve  # pygls loads only for the server

        serve(arguments.tcp)
        return 0
    if arguments.command == "hints":
        if arguments.kinds:
            known = {kind.value for kind in HintKind}
            unknown = set(arguments.kinds.split(",")) - known
            if unknown:
                parser.error(f"unknown kind(s): {', '.join(sorted(unknown))}")
        try:
            return _hints_command(arguments, sys.stdout, sys.stderr)
        except BrokenPipeError:
            return 0
    if arguments.command == "check":
        try:
            return _check_command(arguments, sys.stdout, sys.stderr)
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
