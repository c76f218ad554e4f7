"""downlevel's quick check (issue 15: a broken 5,000-line function paid 16-25 ms
of scan per failed parse) never skips text that the scan would rewrite."""

from __future__ import annotations

from pathlib import Path

import pytest

from conc_lsp.analysis.downlevel import _rewritten, downlevel

TEXTS = [
    "def f[T](x: T) -> T:\n    return x\n",
    "class C[T]:\n    pass\n",
    "async def g  [T, *Ts, **P](x): ...\n",
    "type Alias = list[int]\n",
    "    type Pair[T] = tuple[T, T]\n",
    'x = f"{a["key"]}"\n',
    "x = rf'{a['key']}'\n",
    'x = F"{a!r:>{width}}" + f"{b}"\n',
    'x = f"{a\\n}"\n',
    "x = elif'{x}'\n",
    "type = 3\nprint(type)\n",
    "def plain(x):\n    return x[0]\n",
    "x = (\n",
    "# def f[T]: a comment\n",
]


@pytest.mark.parametrize("text", TEXTS)
def test_quick_check_agrees_with_the_scan(text: str) -> None:
    assert downlevel(text) == _rewritten(text)


def test_quick_check_agrees_on_the_fixtures() -> None:
    fixtures = Path(__file__).parent / "fixtures"
    checked = 0
    for path in sorted(fixtures.rglob("*.py")):
        text = path.read_text("utf-8")
        assert downlevel(text) == _rewritten(text), path
        checked += 1
    assert checked > 10
