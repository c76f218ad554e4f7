"""Reading and writing source files: no byte lost (issue 13, part 1)."""

from __future__ import annotations

import errno
import os
import re
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conc_lsp import check_files, sources
from conc_lsp.cli import main
from conc_lsp.sources import (
    SourceNotWritten,
    UndecodableSource,
    decode_source,
    read_source_file,
    write_source,
)
from tests.rule_settings import SELECT_ARGUMENT

BUGGY = (
    "import trio\n\nasync def f(ev):\n    try:\n        pass\n    finally:\n"
    "        await ev.wait()\n"
)
LATIN1_WITHOUT_COOKIE = (
    b"# \xe9t\xe9\nimport trio\nasync def f(ev):\n    try:\n        pass\n    finally:\n"
    b"        await ev.wait()\n"
)
BYTE_LINES = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")


def fix(*paths: Path) -> int:
    return main(["check", "--select", SELECT_ARGUMENT, "--fix", "--no-resolve", *map(str, paths)])


def write(path: Path, data: bytes, mode: int | None = None) -> Path:
    path.write_bytes(data)
    if mode is not None:
        path.chmod(mode)
    return path


# --- decoding as Python does ---------------------------------------------------


def test_latin1_without_cookie_is_reported_and_never_rewritten(tmp_path: Path) -> None:
    path = write(tmp_path / "x.py", LATIN1_WITHOUT_COOKIE)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "conc_lsp",
            "check",
            "--select",
            SELECT_ARGUMENT,
            "--fix",
            "--no-resolve",
            "x.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert path.read_bytes() == LATIN1_WITHOUT_COOKIE
    assert result.returncode == 1
    assert "x.py:1:3: syntax error: cannot decode byte 0xe9 as UTF-8" in result.stderr
    assert "(lines 1-7 not checked)" in result.stderr
    assert "Fixed 0 findings." in result.stdout
    refused = subprocess.run(  # compile() lets bad bytes in comments pass; running does not
        [sys.executable, "x.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert refused.returncode == 1 and "SyntaxError: Non-UTF-8 code" in refused.stderr


def test_hints_and_report_refuse_an_undecodable_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "x.py", LATIN1_WITHOUT_COOKIE)
    assert main(["hints", str(path)]) == 2
    assert f"{path}:1:3: cannot decode byte 0xe9" in capsys.readouterr().err
    assert main(["report", str(path)]) == 2
    assert f"{path}:1:3: cannot decode byte 0xe9" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("data", "line", "column", "words"),
    [
        (b"x = 1\ns = '\xe9'\n", 1, 5, "as UTF-8, and no coding cookie"),
        (b"# coding: cp1252\ns = '\x81'\n", 1, 5, "as cp1252 (the encoding its coding"),
        (b"# coding: nope\nx = 1\n", 0, 0, "unknown encoding 'nope'"),
        (b"#!/bin/python\r# coding: nope\rx = 1\r", 1, 0, "unknown encoding 'nope'"),
        (b"\xef\xbb\xbf# coding: latin-1\nx = 1\n", 0, 0, "a UTF-8 BOM, but the coding cookie"),
        (b"\xef\xbb\xbfx = 1\ns = '\xe9'\n", 1, 5, "(the file starts with a UTF-8 BOM)"),
    ],
)
def test_a_file_python_cannot_decode_is_an_error_where_it_fails(
    data: bytes, line: int, column: int, words: str
) -> None:
    with pytest.raises(UndecodableSource) as raised:
        decode_source(data, Path("m.py"))
    assert (raised.value.line, raised.value.column) == (line, column)
    assert words in raised.value.reason
    with pytest.raises(SyntaxError):
        compile(data, "m.py", "exec")


@pytest.mark.parametrize(
    "data",
    [
        b"# -*- coding: latin-1 -*-\ns = '\xe9'\n",
        b"#!/usr/bin/env python\r# vim: set fileencoding=cp1252 :\rs = '\x80'\r",
        b"\xef\xbb\xbfs = '\xc3\xa9'\r\n",
        b"\xef\xbb\xbf# coding: utf-8\ns = '\xc3\xa9'",
        b"s = '\xc3\xa9'\n# coding: latin-1\n",  # a cookie after line 2 does not count
    ],
)
def test_decoding_agrees_with_python(data: bytes) -> None:
    source = decode_source(data, Path("m.py"))
    namespace: dict[str, Any] = {}
    exec(compile(data, "m.py", "exec"), namespace)
    assert namespace["s"] in source.text
    assert source.bom == data.startswith(b"\xef\xbb\xbf")


# --- writing: per file errors, atomic, endings kept ----------------------------


def test_a_read_only_file_is_reported_and_the_run_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    locked = write(tmp_path / "a_locked.py", BUGGY.encode(), mode=0o444)
    other = write(tmp_path / "b_other.py", BUGGY.encode())
    assert fix(locked, other) == 2
    out, err = capsys.readouterr()
    assert locked.read_bytes() == BUGGY.encode()
    assert "move_on_after" in other.read_text(encoding="utf-8")
    assert f"{locked}: fixes not written: " in err and "Traceback" not in err
    assert f"{locked}:7:9: CONC101" in out  # its findings are still there
    assert f"{other}:7:9: CONC101" not in out
    assert "Fixed 1 finding." in out
    assert stat.S_IMODE(locked.stat().st_mode) == 0o444


def test_mixed_line_endings_stay_line_by_line(tmp_path: Path) -> None:
    before = (
        "import trio\r\n# comment\n\rasync def f(ev):\r\n    try:\n        pass\r"
        "    finally:\r\n        await ev.wait()\n\r\nx = 1\ny = 2\r\nz = 3"
    )
    path = write(tmp_path / "mixed.py", before.encode())
    fix(path)
    after = path.read_bytes().decode()
    head, tail = before.split("        await ev.wait()\n")
    assert after.startswith(head) and after.endswith("\n" + tail)
    middle = after[len(head) : len(after) - len(tail)]
    assert middle.startswith("        with trio.move_on_after(") and "await ev.wait()" in middle
    assert "\r" not in middle  # the new lines take the ending of the line they replace


def test_a_file_changed_on_disk_since_it_was_read_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "m.py", BUGGY.encode())
    edited = BUGGY.replace("pass", "print('edited meanwhile')").encode()
    real_read = check_files.read_source_file

    def read_then_edit(target: Path) -> sources.SourceFile:
        source = real_read(target)
        target.write_bytes(edited)  # someone saves the file while the check runs
        return source

    monkeypatch.setattr(check_files, "read_source_file", read_then_edit)
    assert fix(path) == 2
    assert path.read_bytes() == edited
    assert f"{path}: fixes not written: it changed on disk since it was read" in (
        capsys.readouterr().err
    )


def test_the_write_is_atomic_and_keeps_mode_bits(tmp_path: Path) -> None:
    path = write(tmp_path / "m.py", BUGGY.encode(), mode=0o751)
    link = tmp_path / "link.py"
    link.symlink_to(path.name)
    inode = path.stat().st_ino
    assert fix(link) == 0
    assert path.stat().st_ino != inode  # a new file renamed over it, not rewritten in place
    assert "move_on_after" in path.read_text(encoding="utf-8")
    assert link.is_symlink()  # the file it points to was replaced, not the link
    assert stat.S_IMODE(path.stat().st_mode) == 0o751
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.py", "m.py"]


def test_nothing_is_written_when_the_bytes_would_not_change(tmp_path: Path) -> None:
    path = write(tmp_path / "m.py", BUGGY.encode(), mode=0o640)
    source = read_source_file(path)
    assert write_source(source, source.lines) is False
    assert path.read_bytes() == BUGGY.encode()


class _HalfWritten:
    """A file stream whose disk fills up halfway through the write."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def __enter__(self) -> _HalfWritten:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stream.close()

    def write(self, data: bytes) -> int:
        self.stream.write(data[: len(data) // 2])
        self.stream.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


@pytest.mark.parametrize("failing", ["create", "write", "replace"])
def test_a_failure_mid_write_leaves_the_original_intact(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    failing: str,
) -> None:
    path = write(tmp_path / "m.py", BUGGY.encode())

    def no_space(*arguments: object, **keywords: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    if failing == "create":
        monkeypatch.setattr(tempfile, "mkstemp", no_space)  # sources imports it when writing
    elif failing == "write":
        real_fdopen = os.fdopen
        monkeypatch.setattr(
            sources.os, "fdopen", lambda *a, **k: _HalfWritten(real_fdopen(*a, **k))
        )
    else:
        monkeypatch.setattr(sources.os, "replace", no_space)
    assert fix(path) == 2
    assert path.read_bytes() == BUGGY.encode()
    assert [p.name for p in tmp_path.iterdir()] == ["m.py"]  # no temporary file left
    err = capsys.readouterr().err
    assert f"{path}: fixes not written: " in err and os.strerror(errno.ENOSPC) in err


def test_text_a_codec_cannot_hold_is_not_written(tmp_path: Path) -> None:
    data = b"# coding: latin-1\nx = '\xe9'\n"
    path = write(tmp_path / "m.py", data)
    source = read_source_file(path)
    with pytest.raises(SourceNotWritten, match="which iso-8859-1 cannot encode"):
        write_source(source, ["# coding: latin-1", "x = '\u20ac'", ""])
    assert path.read_bytes() == data


# --- the property: every byte outside a fix's edit is unchanged ----------------

ENCODINGS = {
    "utf-8": ("", b"", "caf\u00e9 \u2192 \U0001f40d"),
    "utf-8-bom": ("", b"\xef\xbb\xbf", "caf\u00e9 \u2192 \U0001f40d"),
    "latin-1": ("# -*- coding: latin-1 -*-", b"", "caf\u00e9 \u00b5 \u00ff"),
    "cp1252": ("# vim: set fileencoding=cp1252 :", b"", "caf\u00e9 \u20ac \u2019"),
}
CODECS = {"utf-8": "utf-8", "utf-8-bom": "utf-8", "latin-1": "latin-1", "cp1252": "cp1252"}
ENDING = st.sampled_from(["\r\n", "\n", "\r"])


def program(cookie: str, words: str, cookie_second: bool) -> list[str]:
    head = ["#!/usr/bin/env python", cookie] if cookie_second else [cookie]
    return [
        *(line for line in head if line),
        f"# {words}",
        "import trio",
        "",
        "",
        "async def f(ev: trio.Event) -> None:",
        f"    note = '{words}'",
        "    try:",
        "        pass",
        "    finally:",
        f"        await ev.wait()  # {words}",
        "",
        "",
        f"WORDS = '{words}'",
    ]


@st.composite
def sources_to_fix(draw: st.DrawFn) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(ENCODINGS)))
    cookie, bom, words = ENCODINGS[name]
    lines = program(cookie, words, draw(st.booleans()))
    if draw(st.booleans()):
        endings = [draw(ENDING)] * len(lines)
    else:
        endings = draw(st.lists(ENDING, min_size=len(lines), max_size=len(lines)))
    if draw(st.booleans()):  # no line ending at the end of the file
        endings[-1] = ""
    text = "".join(line + ending for line, ending in zip(lines, endings, strict=True))
    return name, bom + text.encode(CODECS[name])


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(sources_to_fix())
def test_fix_changes_no_byte_outside_its_edit(
    capsys: pytest.CaptureFixture[str], case: tuple[str, bytes]
) -> None:
    name, before = case
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.py"
        path.write_bytes(before)
        assert fix(path) != 2
        after = path.read_bytes()
    capsys.readouterr()
    old = BYTE_LINES.findall(before)
    new = BYTE_LINES.findall(after)
    (edited,) = [i for i, line in enumerate(old) if b"await ev.wait()" in line]
    assert new[:edited] == old[:edited]  # each line with its own ending, BOM included
    assert new[len(new) - (len(old) - edited - 1) :] == old[edited + 1 :]
    changed = b"".join(new[edited : len(new) - (len(old) - edited - 1)])
    text = changed.decode(CODECS[name])
    assert "move_on_after(" in text and "await ev.wait()  # " + ENCODINGS[name][2] in text
    own_endings = set(re.findall(rb"\r\n|\r|\n", before))
    assert set(re.findall(rb"\r\n|\r|\n", changed)) <= own_endings  # no ending invented
    compile(after, "m.py", "exec")
