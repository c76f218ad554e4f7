"""The command line: another thin adapter over the analysis."""

from __future__ import annotations

import argparse
import json
import sys
import tokenize
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from conc_lsp import __version__
from conc_lsp.analysis.model import HintKind, ModuleAnalysis
from conc_lsp.analysis.parse import analyse_lines
from conc_lsp.analysis.text import split_lines
from conc_lsp.labels import ARROW, LABEL_STYLES, label

DESCRIPTION = """\
conc-lsp shows where trio / anyio / asyncio code can switch tasks or be
cancelled (checkpoints), and what merely looks like it could.

examples:
  conc-lsp hints examples/cache.py          the checkpoint map of a file
  conc-lsp hints --format json src/         the same, as data, for a folder
  conc-lsp serve                            the language server, over stdio
"""


def read_source(path: Path) -> str:
    """A Python file's text, decoded as Python would (coding cookie, BOM)."""
    with path.open("rb") as handle:
        try:
            encoding, _ = tokenize.detect_encoding(handle.readline)
        except SyntaxError:
            encoding = "utf-8"
        handle.seek(0)
        data = handle.read()
    try:
        return data.decode(encoding)
    except (LookupError, UnicodeDecodeError):
        return data.decode("utf-8", errors="replace")


def python_files(paths: Sequence[str]) -> list[Path]:
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            files.extend(
                sorted(
                    candidate
                    for candidate in path.rglob("*.py")
                    if not any(part.startswith(".") for part in candidate.relative_to(path).parts)
                )
            )
        else:
            files.append(path)
    return files


def _hints_command(arguments: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    records: list[dict[str, object]] = []
    status = 0
    kinds = set(arguments.kinds.split(",")) if arguments.kinds else None
    for path in python_files(arguments.paths):
        try:
            source = read_source(path)
        except OSError as error:
            print(f"{path}: cannot read: {error.strerror or error}", file=err)
            status = 2
            continue
        lines = split_lines(source)
        analysis: ModuleAnalysis = analyse_lines(lines)
        for problem in analysis.problems:
            print(
                f"{path}:{problem.line + 1}:{problem.column + 1}: syntax error: {problem.message}"
                f" (lines {problem.start_line + 1}-{problem.end_line} not analysed)",
                file=err,
            )
        for hint in sorted(analysis.hints, key=lambda h: (h.keyword_line, h.keyword_column)):
            if kinds is not None and hint.kind.value not in kinds:
                continue
            text = label(hint, arguments.style)
            if arguments.format == "json":
                records.append(
                    {
                        "path": str(path),
                        "line": hint.keyword_line + 1,
                        "column": hint.keyword_column,
                        "kind": hint.kind.value,
                        "label": text,
                        "function": hint.function,
                    }
                )
            else:
                source_line = lines[hint.keyword_line].strip()
                print(f"{path}:{hint.keyword_line + 1}: {source_line} {text}", file=out)
    if arguments.format == "json":
        json.dump(records, out, indent=2, ensure_ascii=False)
        out.write("\n")
    return status


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
    parser.print_help()
    return 2
