"""Which lines can hold a hint: the analyzer walks only the statements whose
lines hold one of the hint keywords."""

from __future__ import annotations

import bisect
import re
from itertools import accumulate

# A statement can hold a hint only if one of these words is on its lines.
KEYWORDS = re.compile(
    r"\b(?:await|async|yield|set|release|start_soon|create_task|ensure_future|shield)\b"
)


def keyword_line_counts(text: str, line_starts: list[int]) -> list[int]:
    """Prefix counts of lines holding a hint keyword (index = 1-based line)."""
    flags = bytearray(len(line_starts) + 1)
    last_line = -1
    for match in KEYWORDS.finditer(text):
        line = bisect.bisect_right(line_starts, match.start())
        if line != last_line:
            flags[line] = 1
            last_line = line
    return list(accumulate(flags))


def line_starts_of(lines: list[str]) -> list[int]:
    """Offsets of each line's start in ``"\\n".join(lines)``."""
    return list(accumulate((len(line) + 1 for line in lines[:-1]), initial=0))
