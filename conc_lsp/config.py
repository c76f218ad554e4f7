"""Settings: one typed object, read from defaults, pyproject.toml and the editor.

Later sources override earlier ones, key by key.  Unknown keys and bad values
become warnings (shown to the user once), never errors.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from conc_lsp.analysis.model import HintKind
from conc_lsp.labels import ARROW, LABEL_STYLES

ALL_KINDS = frozenset(HintKind)
SECTION = "conc-lsp"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a user can configure."""

    hints_enabled: bool = True
    hint_kinds: frozenset[HintKind] = ALL_KINDS
    label_style: str = ARROW


@dataclass(slots=True)
class Loaded:
    """Settings with the warnings met while reading them."""

    settings: Settings = field(default_factory=Settings)
    warnings: list[str] = field(default_factory=list)


def _normalise(key: str) -> str:
    return key.replace("_", "-").replace(" ", "").lower()


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{_normalise(str(key))}"
        if isinstance(value, Mapping) and name != "hints.kinds":
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def apply(settings: Settings, data: Any, source: str) -> Loaded:
    """Overlay ``data`` (a mapping, possibly nested) from ``source`` on ``settings``."""
    loaded = Loaded(settings)
    if data is None:
        return loaded
    if not isinstance(data, Mapping):
        loaded.warnings.append(f"{source}: settings must be an object, got {type(data).__name__}")
        return loaded
    if SECTION in data and isinstance(data[SECTION], Mapping):
        data = data[SECTION]
    for key, value in _flatten(data).items():
        key = key.replace("labelstyle", "label-style")
        try:
            loaded.settings = _set(loaded.settings, key, value)
        except KeyError:
            loaded.warnings.append(f"{source}: unknown setting '{key}' (ignored)")
        except (TypeError, ValueError) as error:
            loaded.warnings.append(f"{source}: setting '{key}': {error} (ignored)")
    return loaded


def _set(settings: Settings, key: str, value: Any) -> Settings:
    if key == "hints.enabled":
        if not isinstance(value, bool):
            raise TypeError(f"expected true or false, got {value!r}")
        return replace(settings, hints_enabled=value)
    if key == "hints.label-style":
        if value not in LABEL_STYLES:
            raise ValueError(f"expected one of {', '.join(LABEL_STYLES)}, got {value!r}")
        return replace(settings, label_style=value)
    if key == "hints.kinds":
        return replace(settings, hint_kinds=_kinds(value))
    raise KeyError(key)


def _kinds(value: Any) -> frozenset[HintKind]:
    known = {kind.value: kind for kind in HintKind}
    if isinstance(value, Mapping):
        chosen = set(ALL_KINDS)
        for name, enabled in value.items():
            if name not in known:
                raise ValueError(f"unknown hint kind {name!r}; known: {', '.join(known)}")
            if not isinstance(enabled, bool):
                raise TypeError(f"kind {name!r}: expected true or false")
            (chosen.add if enabled else chosen.discard)(known[name])
        return frozenset(chosen)
    if isinstance(value, (list, tuple)):
        unknown = [name for name in value if name not in known]
        if unknown:
            raise ValueError(f"unknown hint kind(s) {unknown}; known: {', '.join(known)}")
        return frozenset(known[name] for name in value)
    raise TypeError(f"expected a list of kinds or an object of kind: true/false, got {value!r}")


def find_pyproject(start: Path) -> Path | None:
    """The nearest pyproject.toml at or above ``start``."""
    directory = start if start.is_dir() else start.parent
    for candidate in [directory, *directory.parents]:
        path = candidate / "pyproject.toml"
        if path.is_file():
            return path
    return None


def from_pyproject(settings: Settings, path: Path | None) -> Loaded:
    """Overlay ``[tool.conc-lsp]`` of a pyproject.toml, if there is one."""
    if path is None:
        return Loaded(settings)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        return Loaded(settings, [f"{path}: cannot read: {error}"])
    section = data.get("tool", {}).get(SECTION)
    return apply(settings, section, str(path))
