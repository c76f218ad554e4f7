"""Line splitting, column conversion and settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from conc_lsp import config
from conc_lsp.analysis.model import HintKind
from conc_lsp.analysis.text import (
    codepoint_to_units,
    split_lines,
    units_to_codepoint,
    utf8_to_codepoint,
)


def test_split_lines_only_at_python_line_breaks() -> None:
    text = "a\fb\u2028c\x85d\x1ce\r\nf\rg\nh\n"
    assert split_lines(text) == ["a\fb\u2028c\x85d\x1ce", "f", "g", "h", ""]
    assert len(text.splitlines()) > 4  # what str.splitlines would have done


@pytest.mark.parametrize(
    ("line", "column"),
    [("abc", 2), ("é🐍x", 2), ("漢字 await", 3), ("🐍🐍", 1), ("", 0)],
)
def test_columns_round_trip(line: str, column: int) -> None:
    for encoding in ("utf-8", "utf-16", "utf-32"):
        units = codepoint_to_units(line, column, encoding)
        assert units_to_codepoint(line, units, encoding) == column
    assert codepoint_to_units(line, column, "utf-8") == len(line[:column].encode("utf-8"))
    assert codepoint_to_units(line, column, "utf-16") == len(line[:column].encode("utf-16-le")) // 2
    assert utf8_to_codepoint(line, len(line[:column].encode("utf-8"))) == column


def test_units_inside_a_character_round_down_and_past_end_clamps() -> None:
    assert units_to_codepoint("🐍x", 1, "utf-16") == 0  # half a surrogate pair
    assert units_to_codepoint("é", 1, "utf-8") == 0  # half a UTF-8 sequence
    assert units_to_codepoint("ab", 99, "utf-16") == 2
    assert units_to_codepoint("ab", -3, "utf-16") == 0


def test_settings_from_nested_and_flat_keys() -> None:
    loaded = config.apply(
        config.Settings(),
        {"conc-lsp": {"hints": {"enabled": False, "labelStyle": "compact", "kinds": ["await"]}}},
        "test",
    )
    assert loaded.warnings == []
    assert loaded.settings == config.Settings(
        hints_enabled=False, hint_kinds=frozenset({HintKind.AWAIT}), label_style="compact"
    )
    flat = config.apply(config.Settings(), {"hints.kinds": {"spawn": False}}, "test")
    assert flat.settings.hint_kinds == config.ALL_KINDS - {HintKind.SPAWN}


def test_unknown_and_bad_settings_warn_and_keep_the_rest() -> None:
    loaded = config.apply(
        config.Settings(),
        {"hints": {"enabled": "yes", "labelStyle": "fancy", "kinds": ["awaits"]}, "colour": 1},
        "editor",
    )
    assert loaded.settings == config.Settings()
    text = "\n".join(loaded.warnings)
    assert "unknown setting 'colour'" in text
    assert "'hints.enabled'" in text and "'hints.labelStyle'" in text
    assert "unknown hint kind" in text
    assert config.apply(config.Settings(), ["not", "a", "mapping"], "x").warnings


def test_pyproject_section(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.conc-lsp.hints]\nlabel-style = "compact"\nunknown = 1\n', encoding="utf-8"
    )
    nested = tmp_path / "src" / "pkg"
    nested.mkdir(parents=True)
    found = config.find_pyproject(nested)
    assert found == tmp_path / "pyproject.toml"
    loaded = config.from_pyproject(config.Settings(), found)
    assert loaded.settings.label_style == "compact"
    assert any("hints.unknown" in warning for warning in loaded.warnings)
    (tmp_path / "pyproject.toml").write_text("[tool.conc-lsp\n", encoding="utf-8")
    broken = config.from_pyproject(config.Settings(), found)
    assert broken.settings == config.Settings() and "cannot read" in broken.warnings[0]
