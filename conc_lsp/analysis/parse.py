"""Parsing a module in top-level pieces, so edits and syntax errors stay local.

A module is kept as consecutive *chunks* of lines, one per top-level
statement (with the comments and blank lines that follow it).  A chunk that
parses on its own parses the same way inside the module, so after an edit
only the chunks the edit touched are parsed again: for a 10,000-line file a
keystroke costs a parse of one function, not of the file.

A chunk that does not parse (the user is typing) is *broken*: it is split
again at the lines that look like statement starts and each piece is
parsed alone, methods of a class included; what still does not parse keeps
the hints of its last good parse, moved through the edits.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from conc_lsp import log
from conc_lsp.analysis.chunks import (
    Chunk,
    absolute_problem,
    body_indent,
    class_group,
    class_name_of,
    dedented,
    first_code_line,
    joined,
    may_close_below,
    merged,
    move_hint,
    owner_of,
    with_method_pieces,
)
from conc_lsp.analysis.collector import Collector
from conc_lsp.analysis.fragments import (
    PARSE_ERRORS,
    parse_fragment,
    statement_first_line,
    syntax_problem,
    top_level_imports,
)
from conc_lsp.analysis.keywords import keyword_line_counts, line_starts_of
from conc_lsp.analysis.libraries import ImportFact, ImportTable
from conc_lsp.analysis.model import Hint, ModuleAnalysis
from conc_lsp.analysis.recovery import Recovery, _Parsed
from conc_lsp.analysis.statement_edit import (
    RecordingCollector,
    attach_states,
    edit_statement,
    kept_statements,
    resolve_problem,
    settle_chunk,
    settle_statement_edits,
)


class Analyzer(Recovery):
    """The analysis of one document, kept up to date through edits."""

    def __init__(self, lines: list[str], *, keep_trees: bool = False) -> None:
        """``keep_trees``: long functions keep their tree for statement edits
        (statement_edit.py), for a document that will be edited."""
        self.lines = lines
        self.keep_trees = keep_trees
        self.chunks: list[Chunk] = [Chunk(0, len(lines), dirty=True)]
        self.table = ImportTable()

    # -- edits ---------------------------------------------------------------

    def apply_edit(
        self,
        start: tuple[int, int],
        end: tuple[int, int],
        new_lines: list[str],
        lines_after: list[str],
    ) -> None:
        """Record that the text between ``start`` and ``end`` became ``new_lines``.

        Positions are (line, code-point column) in the text before the edit;
        ``lines_after`` is the whole text after it.
        """
        start_line, end_line = start[0], end[0]
        delta = (len(new_lines) - 1) - (end_line - start_line)
        chunks = self.chunks
        first = self._chunk_index(start_line)
        last = self._chunk_index(end_line)
        carried_state = None
        if first == last:  # inside one statement of a long function: a cheap edit
            done, carried_state = edit_statement(
                chunks, first, start, end, new_lines, lines_after, self.table
            )
            if done:
                self.lines = lines_after
                return
        touched = chunks[first : last + 1]
        for chunk in touched:  # parse.py carries the hints it had
            settle_chunk(chunk)
        merged_start = touched[0].start
        merged_length = sum(chunk.length for chunk in touched) + delta
        carried: list[Hint] = []
        for chunk in touched:
            for hint in chunk.hints:
                moved = move_hint(hint, chunk.start, start, end, new_lines)
                if moved is not None:
                    carried.append(moved.shifted(chunk.start - merged_start))
        merged = Chunk(
            merged_start,
            max(merged_length, 0),
            hints=carried,
            imports=[fact for chunk in touched for fact in chunk.imports],
            dirty=True,
            stale=len(carried),
            statements=carried_state,
        )
        if all(
            chunk.indent == touched[0].indent and chunk.prefix == touched[0].prefix
            for chunk in touched
        ):
            merged.indent, merged.prefix = touched[0].indent, touched[0].prefix
        for chunk in chunks[last + 1 :]:
            chunk.start += delta
        chunks[first : last + 1] = [merged]
        self.lines = lines_after
        self._fix_coverage()

    def _chunk_index(self, line: int) -> int:
        chunks = self.chunks
        low, high = 0, len(chunks) - 1
        while low < high:
            middle = (low + high + 1) // 2
            if chunks[middle].start <= line:
                low = middle
            else:
                high = middle - 1
        return low

    def _fix_coverage(self) -> None:
        """Keep the invariant: chunks cover every line exactly once."""
        total = len(self.lines)
        chunks = [chunk for chunk in self.chunks if chunk.length > 0] or [Chunk(0, 0, dirty=True)]
        chunks[0].start = 0
        position = 0
        for chunk in chunks:
            chunk.start = position
            position += chunk.length
        if position != total:
            chunks[-1].length += total - position
            chunks[-1].dirty = True
        self.chunks = chunks

    # -- analysis ------------------------------------------------------------

    def analysis(self) -> ModuleAnalysis:
        """Bring every chunk up to date and return the module's analysis."""
        self.refresh()
        for chunk in self.chunks:
            resolve_problem(chunk, self.lines, keep_state=True)
        problems = [
            absolute_problem(chunk.problem, chunk.start)
            for chunk in self.chunks
            if chunk.problem is not None
        ]
        return ModuleAnalysis(
            hints=list(self.hints_between(0, len(self.lines))),
            libraries=self.table.libraries,
            problems=problems,
            stale_hints=sum(chunk.stale for chunk in self.chunks),
        )

    def hints_between(self, first_line: int, end_line: int) -> Iterator[Hint]:
        """Hints anchored on lines first_line <= line < end_line, in order."""
        self.refresh()
        chunks = self.chunks
        index = self._chunk_index(first_line) if chunks else 0
        for chunk in chunks[index:]:
            if chunk.start >= end_line:
                break
            for hint in chunk.hints:
                line = hint.line + chunk.start
                if first_line <= line < end_line:
                    yield hint.shifted(chunk.start)

    def refresh(self, heal: int = 3) -> None:
        """Parse the dirty chunks again (``heal``: how many more passes may heal pieces)."""
        if not settle_statement_edits(self.chunks, self.lines):
            return
        parsed: list[_Parsed] = []
        new_chunks: list[Chunk] = []
        chunks = self.chunks
        index = 0

        def add(pieces: list[_Parsed | Chunk]) -> None:
            for piece in pieces:
                if isinstance(piece, _Parsed):
                    parsed.append(piece)
                    new_chunks.append(Chunk(piece.start, piece.length, dirty=True))
                else:
                    new_chunks.append(piece)

        def take_back(line: int) -> None:
            """Undo what was added for lines >= ``line`` (they join a wider region)."""
            while new_chunks and new_chunks[-1].start >= line:
                new_chunks.pop()
            parsed[:] = [region for region in parsed if region.start < line]

        while index < len(chunks):
            chunk = chunks[index]
            if not chunk.dirty:
                new_chunks.append(chunk)
                index += 1
                continue
            if chunk.indent:
                # A method parsed apart from its broken class.
                region = self._try_parse(
                    chunk.start, chunk.end, indent=chunk.indent, prefix=chunk.prefix
                )
                if region is not None:
                    add([region])
                    index += 1
                    continue
                low, high = class_group(chunks, index)
                # The header may have joined the chunk above it (it is no
                # header any more): then the group starts after that chunk,
                # so that no two chunks cover the same line.
                first = chunks[low].start
                for previous in reversed(new_chunks):
                    if previous.end <= first:
                        break
                    if previous.start < first:
                        first = previous.end
                        break
                while chunks[low].start < first:
                    low += 1
                take_back(first)
                group = merged(chunks[low : high + 1])
                region = self._try_parse(group.start, group.end)
                add([region] if region is not None else self._recover(group))
                index = high + 1
                continue
            # Try the chunk alone, then with its neighbours: an edit can join
            # two statements (a new `else:`) or change indentation.
            tried = self._parse_with_neighbours(chunks, index, new_chunks)
            if tried is not None:
                region, consumed_before, consumed_after = tried
                if consumed_before:
                    take_back(region.start)
                # A broken chunk just above (a decorator left alone) may parse
                # with the region now: then it heals.
                while new_chunks and new_chunks[-1].problem is not None:
                    wider = self._try_parse(new_chunks[-1].start, region.start + region.length)
                    if wider is None:
                        break
                    take_back(wider.start)
                    region = wider
                add([region])
                index += 1 + consumed_after
                continue
            header = self._class_header(chunks, index)
            add([header] if header is not None else self._recover(chunk))
            index += 1

        # Imports first: names resolve through the whole module's imports.
        region_imports = {id(region): top_level_imports(region.tree) for region in parsed}
        # A broken chunk keeps the imports of its last good parse, so that a
        # typo in the import block does not re-resolve the whole module.
        facts = [
            fact
            for chunk in new_chunks
            if not chunk.dirty or chunk.problem is not None
            for fact in chunk.imports
        ]
        facts += [fact for imports in region_imports.values() for fact in imports]
        self.table = ImportTable.from_facts(facts)
        fingerprint = self.table.fingerprint()

        results: dict[int, list[Chunk]] = {}
        for region in parsed:
            results[region.start] = self._collect(region, region_imports[id(region)], fingerprint)
        final: list[Chunk] = []
        for chunk in new_chunks:
            if chunk.dirty and chunk.problem is None and chunk.start in results:
                final.extend(results.pop(chunk.start))
            elif chunk.problem is not None:
                chunk.dirty = False
                final.append(chunk)
            else:
                if chunk.table_fingerprint != fingerprint:
                    final.extend(self._recollect(chunk, fingerprint))
                else:
                    final.append(chunk)
        self.chunks = final
        self._fix_coverage()
        for chunk in self.chunks:
            chunk.dirty = False
        # A broken piece heals when what made it broken changed beside it: a
        # class header left broken while its methods were (chunks of their
        # own, fine now) parses with a stand-in body; a stray `@acm` parses
        # with the code just parsed again below it.
        fresh = [(region.start, region.start + region.length) for region in parsed]
        healable = [
            chunk
            for position, chunk in enumerate(self.chunks)
            if chunk.problem is not None
            and (
                self._class_header(self.chunks, position) is not None
                or self._joins_fresh_neighbour(position, fresh)
            )
        ]
        # A stray decorator heals into what it decorates, fresh or not.
        decorated = {
            position: last
            for position, chunk in enumerate(self.chunks)
            if chunk.problem is not None and (last := self._decorated(position)) is not None
        }
        if (healable or decorated) and heal > 0:
            for chunk in healable:
                chunk.problem, chunk.dirty = None, True
            self.chunks = joined(self.chunks, decorated)
            self.refresh(heal - 1)
            return
        # Two far-apart broken chunks can close each other (a `"""` typed at
        # the top and one at the bottom): then the whole text parses, and the
        # pieces must give way to it. One broken chunk alone cannot, unless
        # it is an orphaned class piece (below).
        self._orphan_stray_methods()
        broken = [chunk for chunk in self.chunks if chunk.problem is not None]
        # A broken piece of a class that lost track of its indentation (it
        # starts indented but is kept as a top-level chunk) cannot heal on its
        # own either: the whole text decides.
        orphaned = any(
            not chunk.indent and first_code_line(self.lines, chunk)[:1] in (" ", "\t")
            for chunk in broken
        )
        # A string left open in one chunk may close in a chunk below that
        # parses alone (its `"""` in a comment or a string there).
        closing = any(may_close_below(self.lines, chunk) for chunk in broken)
        if len(broken) >= 2 or orphaned or closing:
            try:
                parse_fragment(self.lines)
            except PARSE_ERRORS:
                return
            self.chunks = [Chunk(0, len(self.lines), dirty=True)]
            self.refresh()

    def _parse_with_neighbours(
        self, chunks: list[Chunk], index: int, done: list[Chunk]
    ) -> tuple[_Parsed, int, int] | None:
        chunk = chunks[index]
        before = done[-1] if done else None
        after = chunks[index + 1] if index + 1 < len(chunks) else None
        has_before = before is not None and (before.problem is not None or not before.dirty)
        # A broken neighbour that parses together with this chunk heals (a
        # stray `@acm` left alone by a `'''` typed and deleted): try that first.
        options: list[tuple[int, int]] = []
        if before is not None and before.problem is not None:
            options.append((1, 0))
        if after is not None and after.problem is not None:
            options.append((0, 1))
        options += [(0, 0), (1, 0), (0, 1), (1, 1)]
        options = [
            (take_before, take_after)
            for take_before, take_after in dict.fromkeys(options)
            if (has_before or not take_before) and (after is not None or not take_after)
        ]
        # A class whose methods are chunks of their own joins whole.
        last_after = with_method_pieces(chunks, index + 1)
        for take_before, take_after in options:
            start = done[-1].start if take_before else chunk.start
            end = chunks[last_after].end if take_after else chunk.end
            region = self._try_parse(start, end)
            if region is not None:
                return region, take_before, (last_after - index) if take_after else 0
        return None

    def _orphan_stray_methods(self) -> None:
        """Method pieces that no longer follow their class (a statement typed
        at column 0 between its methods) become broken top-level pieces: they
        are orphaned, and the whole text decides when they heal."""
        open_class: str | None = None  # the prefix of the methods that may follow
        for chunk in self.chunks:
            lines = self.lines[chunk.start : chunk.end]
            if chunk.indent:
                if chunk.prefix != open_class:
                    chunk.indent = chunk.prefix = ""
                    chunk.problem = syntax_problem(lines, 0)
                    chunk.stale = len(chunk.hints)
            elif first_code_line(self.lines, chunk):
                name = class_name_of(lines)
                open_class = f"{name}." if name else None

    def _joins_fresh_neighbour(self, position: int, fresh: list[tuple[int, int]]) -> bool:
        """The broken chunk parses with the chunk above or below it (a class with
        its method pieces; for a method piece, its class) and that neighbour
        was just parsed again."""
        chunks = self.chunks

        def is_fresh(chunk: Chunk) -> bool:
            return any(start <= chunk.start < end for start, end in fresh)

        if chunks[position].indent:  # a method piece: its whole class decides
            low, high = class_group(chunks, position)
            return any(map(is_fresh, chunks[low : high + 1])) and (
                self._try_parse(chunks[low].start, chunks[high].end) is not None
            )
        below = position + 1
        if below < len(chunks):
            last = with_method_pieces(chunks, below)
            if any(map(is_fresh, chunks[below : last + 1])) and (
                self._try_parse(chunks[position].start, chunks[last].end) is not None
            ):
                return True
        above = chunks[position - 1] if position > 0 else None
        return (
            above is not None
            and not above.indent
            and is_fresh(above)
            and self._try_parse(above.start, chunks[position].end) is not None
        )

    def _decorated(self, position: int) -> int | None:
        """A broken chunk of decorators alone (left apart while what it decorated
        was broken) that parses with the definition below it, past blank lines:
        the index of that definition's last chunk (its method pieces included)."""
        chunks = self.chunks
        chunk = chunks[position]
        code = [
            stripped
            for line in self.lines[chunk.start : chunk.end]
            if (stripped := line.strip()) and not stripped.startswith("#")
        ]
        if not code or not all(line.startswith("@") for line in code):
            return None
        last = position + 1
        while last < len(chunks) and not first_code_line(self.lines, chunks[last]):
            last += 1
        if last >= len(chunks) or chunks[last].problem is not None:
            return None
        last = with_method_pieces(chunks, last)
        return last if self._try_parse(chunk.start, chunks[last].end) is not None else None

    def _class_header(self, chunks: list[Chunk], index: int) -> _Parsed | None:
        """A class header whose methods follow as chunks of their own, parsed
        with a stand-in body (alone it would be broken, and stay so)."""
        chunk = chunks[index]
        following = None
        for candidate in chunks[index + 1 :]:  # past blank lines kept apart
            if first_code_line(self.lines, candidate):
                following = candidate
                break
        name = class_name_of(self.lines[chunk.start : chunk.end])
        if following is None or not following.indent or following.prefix != f"{name}.":
            return None
        return self._try_parse(chunk.start, chunk.end, suffix=(f"{following.indent}pass",))

    def _try_parse(
        self,
        start: int,
        end: int,
        indent: str = "",
        prefix: str = "",
        suffix: tuple[str, ...] = (),
    ) -> _Parsed | None:
        lines = dedented(self.lines[start:end], indent)
        if lines is None:
            return None
        try:
            tree = parse_fragment([*lines, *suffix] if suffix else lines)
        except PARSE_ERRORS:
            return None
        return _Parsed(start, end - start, tree, lines, indent, prefix)

    def _collect(
        self, region: _Parsed, imports: list[ImportFact], fingerprint: tuple[tuple[str, str], ...]
    ) -> list[Chunk]:
        """Collect a parsed region's hints and split it into statement chunks."""
        text = "\n".join(region.lines)
        counts = keyword_line_counts(text, line_starts_of(region.lines))
        body = region.tree.body
        if region.indent or len(body) <= 1:
            starts = [0]
        else:
            starts = [0] + [statement_first_line(statement) for statement in body[1:]]
        kept = (
            kept_statements(region.tree, region.indent, starts, region.length)
            if self.keep_trees
            else []
        )
        collector = (RecordingCollector if kept else Collector)(
            region.lines,
            self.table,
            counts,
            column_offset=len(region.indent),
            prefix=region.prefix,
        )
        try:
            hints = collector.collect(region.tree)
        except RecursionError:
            kept = []
            # Nested deeper than Python's stack: keep the hints found so far.
            hints = collector.hints
            log.warning(
                "lines %d-%d nest too deeply: their hints stop after %d",
                region.start + 1,
                region.start + region.length,
                len(hints),
            )
        chunks: list[Chunk] = []
        for position, start in enumerate(starts):
            end = starts[position + 1] if position + 1 < len(starts) else region.length
            chunks.append(
                Chunk(
                    region.start + start,
                    end - start,
                    table_fingerprint=fingerprint,
                    indent=region.indent,
                    prefix=region.prefix,
                )
            )
        statement_imports: dict[int, list[ImportFact]] = {}
        for statement in body:
            found = top_level_imports(ast.Module(body=[statement], type_ignores=[]))
            if found:
                owner = owner_of(starts, statement_first_line(statement))
                statement_imports.setdefault(owner, []).extend(found)
        for owner, found in statement_imports.items():
            chunks[owner].imports = found
        for hint in hints:
            owner = owner_of(starts, hint.keyword_line)
            chunk = chunks[owner]
            chunk.hints.append(hint.shifted(region.start - chunk.start))
        if kept:
            attach_states(region.tree, region.lines, counts, region.indent, chunks, kept)
        return chunks

    def _recollect(self, chunk: Chunk, fingerprint: tuple[tuple[str, str], ...]) -> list[Chunk]:
        suffix: tuple[str, ...] = ()
        lines = self.lines[chunk.start : chunk.end]
        if chunk.prefix == "" and class_name_of(lines):
            # A class header whose methods are chunks of their own.
            suffix = (f"{body_indent(lines) or '    '}pass",)
        region = self._try_parse(
            chunk.start, chunk.end, indent=chunk.indent, prefix=chunk.prefix, suffix=suffix
        )
        if region is None:  # cannot happen for a chunk that parsed; stay safe
            return [chunk]
        return self._collect(region, top_level_imports(region.tree), fingerprint)


def analyse_lines(lines: list[str]) -> ModuleAnalysis:
    """Analyse a whole text given as lines (the command line's entry point)."""
    return Analyzer(lines).analysis()
