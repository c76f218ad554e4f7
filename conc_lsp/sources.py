"""Python source files read and written without losing a byte.

Reading decodes exactly as Python does: a PEP 263 coding cookie, else a UTF-8
BOM, else UTF-8; a file Python cannot decode is an error, never a text with
U+FFFD in it. What was read is kept (encoding, BOM, each line's own ending, a
digest of the bytes) so that writing fixed lines back changes only the lines
the fix changed, and never a file that changed on disk meanwhile. A write goes
to a temporary file beside the original, which replaces it only once complete.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import os
import re
import stat
import tokenize
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING

from conc_lsp.analysis.text import changed_span

if TYPE_CHECKING:
    from conc_lsp.analysis.model import SyntaxProblem

# Python ends a line at \r\n, \r or \n; the group keeps the ending in re.split.
LINE_ENDING = re.compile(r"(\r\n|\r|\n)")
BYTE_LINE_ENDING = re.compile(rb"\r\n|\r|\n")
COOKIE = re.compile(rb"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)", re.ASCII)
BLANK_OR_COMMENT = re.compile(rb"^[ \t\f]*(?:[#\r\n]|$)", re.ASCII)
UTF8_BOM = codecs.BOM_UTF8


class UndecodableSource(ValueError):
    """A file Python itself would refuse to decode; reported like a syntax error."""

    def __init__(self, path: Path, line: int, column: int, reason: str, line_count: int) -> None:
        super().__init__(f"{path}:{line + 1}:{column + 1}: {reason}")
        self.path = path
        self.line = line  # 0-based
        self.column = column  # 0-based, in code points
        self.reason = reason
        self.line_count = line_count

    def problem(self) -> SyntaxProblem:
        """The error as a syntax problem covering the whole file (none of it is read)."""
        # The model loads when a file needs it (start-up cost of a run the cache answers)
        from conc_lsp.analysis.model import SyntaxProblem

        return SyntaxProblem(self.line, self.column, self.reason, 0, self.line_count)


class SourceNotWritten(Exception):
    """The fixed text was not written; the file on disk is as it was."""


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A Python file as read, with what it takes to write it back byte for byte."""

    path: Path
    lines: tuple[str, ...]  # without their endings, as conc_lsp.analysis.text.split_lines
    endings: tuple[str, ...]  # each line's own ending; the last line has none
    encoding: str  # the codec Python decodes the file with ("utf-8" also after a BOM)
    bom: bool
    digest: bytes  # SHA-256 of the bytes read: a change on disk since then stops a write
    round_trips: bool  # encoding the text again gives the bytes read

    @property
    def text(self) -> str:
        """The decoded text (BOM left out), each line with its own ending."""
        return "".join(chain.from_iterable(zip(self.lines, (*self.endings, ""), strict=True)))


def read_source_file(path: Path) -> SourceFile:
    """Read and decode ``path``; OSError if it cannot be read, UndecodableSource
    if Python could not decode it."""
    return decode_source(path.read_bytes(), path)


def read_source(path: Path) -> str:
    """A Python file's text, decoded as Python would (coding cookie, BOM)."""
    return read_source_file(path).text


def decode_source(data: bytes, path: Path) -> SourceFile:
    """``data`` decoded as Python would decode it as the file ``path``."""
    encoding = _python_encoding(data, path)
    bom = data.startswith(UTF8_BOM)
    body = data[len(UTF8_BOM) :] if bom else data
    try:
        text = body.decode(encoding)
    except UnicodeDecodeError as error:
        line, column = _position(body, error.start, encoding)
        byte = body[error.start]
        if bom:
            why = " (the file starts with a UTF-8 BOM)"
        elif _cookie_line(data) is not None:
            why = " (the encoding its coding cookie names)"
        else:
            why = ", and no coding cookie names another encoding (PEP 263)"
        reason = f"cannot decode byte 0x{byte:02x} as {_display(encoding)}{why}"
        raise UndecodableSource(path, line, column, reason, _line_count(data)) from error
    if "\r" in text:
        parts = LINE_ENDING.split(text)
        lines, endings = tuple(parts[0::2]), tuple(parts[1::2])
    else:  # the same, five times faster
        lines = tuple(text.split("\n"))
        endings = ("\n",) * (len(lines) - 1)
    return SourceFile(
        path=path,
        lines=lines,
        endings=endings,
        encoding=encoding,
        bom=bom,
        digest=hashlib.sha256(data).digest(),
        round_trips=_encodes_to(text, encoding, body),
    )


def _python_encoding(data: bytes, path: Path) -> str:
    """The codec Python picks for ``data``: tokenize's own rules, read with
    Python's line endings (a cookie on the second line of a CR-only file counts)."""
    try:
        encoding, _ = tokenize.detect_encoding(_LineReader(data))
    except SyntaxError as error:
        raise _bad_declaration(data, path, error.msg) from error
    return "utf-8" if encoding == "utf-8-sig" else encoding


class _LineReader:
    """``readline`` over bytes that, like Python's tokenizer, ends lines at
    \\r\\n, \\r and \\n (a binary file's readline only knows \\n)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def __call__(self) -> bytes:
        match = BYTE_LINE_ENDING.search(self.data, self.offset)
        end = match.end() if match else len(self.data)
        line = self.data[self.offset : end]
        self.offset = end
        return line


def _bad_declaration(data: bytes, path: Path, message: str) -> UndecodableSource:
    """Why tokenize refused the file's first lines, where, and in words."""
    count = _line_count(data)
    body = data[len(UTF8_BOM) :] if data.startswith(UTF8_BOM) else data
    cookie_line = _cookie_line(data)
    if cookie_line is None:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as error:
            line, column = _position(body, error.start, "utf-8")
            reason = (
                f"cannot decode byte 0x{body[error.start]:02x} as UTF-8, and no coding "
                "cookie names another encoding (PEP 263)"
            )
            return UndecodableSource(path, line, column, reason, count)
        return UndecodableSource(path, 0, 0, f"cannot decode: {message}", count)
    name = _cookie_name(data, cookie_line)
    if message.startswith("unknown encoding"):
        reason = f"cannot decode: the coding cookie names an unknown encoding {name!r}"
    elif data.startswith(UTF8_BOM):
        reason = f"cannot decode: a UTF-8 BOM, but the coding cookie names {name!r}"
    else:
        reason = f"cannot decode: {message} (coding cookie {name!r})"
    return UndecodableSource(path, cookie_line, 0, reason, count)


def _first_lines(data: bytes) -> list[bytes]:
    reader = _LineReader(data[len(UTF8_BOM) :] if data.startswith(UTF8_BOM) else data)
    return [reader(), reader()]


def _cookie_line(data: bytes) -> int | None:
    """Which of the first two lines holds a PEP 263 coding cookie, if one does."""
    first, second = _first_lines(data)
    if COOKIE.match(first):
        return 0
    if BLANK_OR_COMMENT.match(first) and COOKIE.match(second):
        return 1
    return None


def _cookie_name(data: bytes, line: int) -> str:
    match = COOKIE.match(_first_lines(data)[line])
    return match.group(1).decode("ascii") if match else ""


def _position(body: bytes, offset: int, encoding: str) -> tuple[int, int]:
    """The 0-based line and code-point column of byte ``offset`` (all before it decodes)."""
    breaks = list(BYTE_LINE_ENDING.finditer(body, 0, offset))
    start = breaks[-1].end() if breaks else 0
    return len(breaks), len(body[start:offset].decode(encoding, errors="replace"))


def _line_count(data: bytes) -> int:
    """Lines as an editor numbers them (a final line ending starts no new line)."""
    breaks = len(BYTE_LINE_ENDING.findall(data))
    return breaks if data.endswith((b"\n", b"\r")) else breaks + 1


def _display(encoding: str) -> str:
    return "UTF-8" if encoding == "utf-8" else encoding


def _encodes_to(text: str, encoding: str, body: bytes) -> bool:
    try:
        return text.encode(encoding) == body
    except UnicodeEncodeError:
        return False


def join_lines(source: SourceFile, lines: Sequence[str]) -> str:
    """``lines`` (the file's lines after a fix) joined so that every line outside
    the changed ones keeps its own ending; a changed or new line takes the ending
    of the old line in its place, else that of the nearest old line."""
    old = source.lines
    endings = source.endings
    first, old_end, new_end = changed_span(old, lines)
    nearest = _nearest_ending(endings, old_end)
    parts: list[str] = []
    for index, line in enumerate(lines):
        parts.append(line)
        if index == len(lines) - 1:
            break  # the last line ends the file as it did: with no ending
        if index >= new_end:  # unchanged, after the edit
            parts.append(endings[index - new_end + old_end])
        elif index < len(endings) and (index < first or index < old_end):
            parts.append(endings[index])  # unchanged before the edit, or a changed line
        else:
            parts.append(nearest)
    return "".join(parts)


def _nearest_ending(endings: Sequence[str], at: int) -> str:
    """The ending of the old line nearest before line ``at``, else after it, else \\n."""
    before = range(min(at, len(endings)) - 1, -1, -1)
    after = range(at, len(endings))
    for index in chain(before, after):
        return endings[index]
    return "\n"


def write_source(source: SourceFile, lines: Sequence[str]) -> bool:
    """Write ``lines`` over the file read as ``source``: atomically, with its
    encoding, BOM, mode bits and the endings of the lines a fix left alone.
    False when the bytes would be the same (nothing is written).

    Raises SourceNotWritten (the file is left as it was) when it is read-only,
    changed on disk since it was read, cannot hold the new text in its
    encoding, or any step of the write fails.
    """
    if not source.round_trips:
        raise SourceNotWritten(
            f"its {source.encoding} bytes do not survive decoding and encoding again"
        )
    text = join_lines(source, lines)
    try:
        body = text.encode(source.encoding)
    except UnicodeEncodeError as error:
        character = error.object[error.start : error.end]
        raise SourceNotWritten(
            f"the fixed text has {character!r}, which {source.encoding} cannot encode"
        ) from error
    data = (UTF8_BOM if source.bom else b"") + body
    target = Path(os.path.realpath(source.path))  # replace a link's file, not the link
    try:
        current = target.read_bytes()
    except OSError as error:
        raise SourceNotWritten(f"cannot read it again: {error.strerror or error}") from error
    if hashlib.sha256(current).digest() != source.digest:
        raise SourceNotWritten("it changed on disk since it was read")
    if current == data:
        return False
    try:
        _replace(target, data)
    except OSError as error:
        raise SourceNotWritten(error.strerror or str(error)) from error
    return True


def _replace(target: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``target``, flush it to disk,
    then rename it over ``target``: a reader sees the old or the new file,
    never a part of one, and a failure leaves the old one."""
    status = target.stat()
    mode = stat.S_IMODE(status.st_mode)
    # Root may write anything, and a rename needs no write access to the file:
    # honour the file's own bits as its owner's intent.
    if not os.access(target, os.W_OK) or not mode & 0o222:
        raise SourceNotWritten(f"read-only (mode {mode:o})")
    import tempfile  # only when a fix is written (start-up cost)

    try:
        handle, temporary = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=".conc-lsp-tmp"
        )
    except OSError as error:
        reason = error.strerror or str(error)
        raise SourceNotWritten(f"cannot create a file beside it: {reason}") from error
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)
        if (status.st_uid, status.st_gid) != (os.geteuid(), os.getegid()):
            try:
                os.chown(temporary, status.st_uid, status.st_gid)
            except PermissionError as error:
                raise SourceNotWritten(
                    "owned by another user or group, which a new file could not keep"
                ) from error
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _sync_folder(target.parent)


def _sync_folder(folder: Path) -> None:
    """Flush the rename itself to disk (some systems cannot; the file is written)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)
