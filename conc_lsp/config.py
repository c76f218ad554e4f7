"""Settings: one typed object, read from defaults, pyproject.toml and the editor.

Later sources override earlier ones, key by key.  Unknown keys and bad values
become warnings (shown to the user once), never errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from fnmatch import fnmatch
from pathlib import Path, PurePath
from typing import Any

from conc_lsp.analysis.kinds import SEVERITIES, HintKind
from conc_lsp.label_options import ARROW, DEFAULT_MAX_LENGTH, LABEL_STYLES, SHOW_CONTEXT, SHOW_MODES
from conc_lsp.project import find_pyproject as find_pyproject

ALL_KINDS = frozenset(HintKind)
# Rules that are off unless selected by code: pedantic for most code bases,
# like flake8-async's ASYNC910 (`extend-select = ["CONC111"]` turns it on).
SECTION = "conc-lsp"
MIN_LABEL_LENGTH = 10  # a shorter cap would leave "<- check…"
LENS_CHOICES = ("off", "findings", "all")


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a user can configure."""

    hints_enabled: bool = True
    hint_kinds: frozenset[HintKind] = ALL_KINDS
    label_style: str = ARROW
    hints_show: str = SHOW_CONTEXT  # "context": what changes the reader's mind; "all"
    hints_max_length: int = DEFAULT_MAX_LENGTH  # characters of a label; 0: no cap
    diagnostics_enabled: bool = True
    select: tuple[str, ...] = ("CONC",)  # code prefixes, as in ruff
    ignore: tuple[str, ...] = ()
    per_file_ignores: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (glob, prefixes)
    severity: tuple[tuple[str, str], ...] = ()  # (code, level) overrides
    exclude: tuple[str, ...] = ()  # extra globs for `conc-lsp check`
    force_exclude: bool = False  # `exclude` applies to files named on the command line too
    fail_on: str = "warning"  # the least severity whose findings make `check` exit 1
    cleanup_timeout: float = 5.0  # seconds, for the fixes that bound a wait
    resolve_enabled: bool = True  # follow callees with jedi (background, editor and check)
    resolve_budget: float = 5.0  # seconds of jedi work per document and pass
    resolve_memory_limit: int = 1024  # MB the resolver process may use; 0: no cap
    python_interpreter: str = ""  # whose packages jedi reads; "" = the server's own
    lens: str = "findings"  # code lenses: "off", "findings" (where there are some), "all"

    def rule_enabled(self, code: str, path: str | None = None, *, opt_in: bool = False) -> bool:
        """Whether a rule runs (for ``path``, honouring per-file ignores).

        ``ALL`` selects every rule. An opt-in rule runs only when selected by
        ``ALL``, its own code or a prefix of it longer than the rule family (like
        ``CONC11``), not by ``CONC``."""
        wanted = (
            [prefix for prefix in self.select if len(prefix) >= len(code) - 1]
            if opt_in
            else self.select
        )
        if "ALL" not in self.select and not any(code.startswith(prefix) for prefix in wanted):
            return False
        ignored = list(self.ignore)
        if path is not None:
            for pattern, prefixes in self.per_file_ignores:
                if _glob_match(path, pattern):
                    ignored.extend(prefixes)
        return not any(code.startswith(prefix) for prefix in ignored)

    def severity_of(self, code: str, default: str) -> str:
        """The level set for ``code``: by the longest prefix of it that has one."""
        level, longest = default, -1
        for prefix, chosen in self.severity:
            matches = prefix == "ALL" or code.startswith(prefix)
            length = 0 if prefix == "ALL" else len(prefix)
            if matches and length > longest:
                level, longest = chosen, length
        return level

    def fails(self, severity: str) -> bool:
        """Whether a finding of ``severity`` makes `conc-lsp check` fail."""
        return SEVERITIES.index(severity) <= SEVERITIES.index(self.fail_on)


@dataclass(slots=True)
class Loaded:
    """Settings with the warnings met while reading them."""

    settings: Settings = field(default_factory=Settings)
    warnings: list[str] = field(default_factory=list)


def _normalise(key: str) -> str:
    return key.replace("_", "-").replace(" ", "").lower()


_TABLE_KEYS = frozenset({"hints.kinds", "per-file-ignores"})


def _flatten(
    data: Mapping[str, Any], prefix: str = "", written: str = ""
) -> dict[str, tuple[str, Any]]:
    """Normalised dotted key -> (the key as the user wrote it, value)."""
    flat: dict[str, tuple[str, Any]] = {}
    for key, value in data.items():
        name = f"{prefix}{_normalise(str(key))}"
        original = f"{written}{key}"
        # `severity` is flattened too: each entry is checked (and warned about) alone
        if isinstance(value, Mapping) and name not in _TABLE_KEYS:
            flat.update(_flatten(value, f"{name}.", f"{original}."))
        else:
            flat[name] = (original, value)
    return flat


def apply(settings: Settings, data: Any, source: str) -> Loaded:
    """Overlay ``data`` (a mapping, possibly nested) from ``source`` on ``settings``."""
    loaded = Loaded(settings)
    if data is None:
        return loaded
    if isinstance(data, list) and not data:
        return loaded  # an empty Lua table arrives as [] (Neovim): no settings
    if not isinstance(data, Mapping):
        loaded.warnings.append(f"{source}: settings must be an object, got {type(data).__name__}")
        return loaded
    if SECTION in data and isinstance(data[SECTION], Mapping):
        data = data[SECTION]
    for key, (written, value) in _flatten(data).items():
        key = key.replace("labelstyle", "label-style").replace("cleanuptimeout", "cleanup-timeout")
        key = key.replace("memorylimit", "memory-limit").replace("maxlength", "max-length")
        key = key.replace("failon", "fail-on").replace("forceexclude", "force-exclude")
        try:
            loaded.settings = _set(loaded.settings, key, value)
        except KeyError:
            loaded.warnings.append(f"{source}: unknown setting '{written}' (ignored)")
        except (TypeError, ValueError) as error:
            loaded.warnings.append(f"{source}: setting '{written}': {error} (ignored)")
    return loaded


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {value!r}")
    return value


def _choice(value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"expected one of {', '.join(choices)}, got {value!r}")
    return str(value)


def _set(settings: Settings, key: str, value: Any) -> Settings:
    if key == "hints.enabled":
        return replace(settings, hints_enabled=_flag(value))
    if key == "hints.label-style":
        return replace(settings, label_style=_choice(value, LABEL_STYLES))
    if key == "hints.show":
        return replace(settings, hints_show=_choice(value, SHOW_MODES))
    if key == "hints.max-length":
        characters = isinstance(value, int) and not isinstance(value, bool)
        if not characters or not (value == 0 or value >= MIN_LABEL_LENGTH):
            raise ValueError(
                f"expected a number of characters (at least {MIN_LABEL_LENGTH}; 0: no cap), "
                f"got {value!r}"
            )
        return replace(settings, hints_max_length=value)
    if key == "hints.kinds":
        return replace(settings, hint_kinds=_kinds(value))
    if key == "diagnostics.enabled":
        return replace(settings, diagnostics_enabled=_flag(value))
    if key in ("select", "ignore", "extend-select"):
        codes = _codes(value)
        if key == "extend-select":
            return replace(settings, select=settings.select + codes)
        if key == "select":
            return replace(settings, select=codes)
        return replace(settings, ignore=codes)
    if key == "fixes.cleanup-timeout":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ValueError(f"expected a positive number of seconds, got {value!r}")
        return replace(settings, cleanup_timeout=float(value))
    if key == "resolve.enabled":
        return replace(settings, resolve_enabled=_flag(value))
    if key == "resolve.budget":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ValueError(f"expected a positive number of seconds, got {value!r}")
        return replace(settings, resolve_budget=float(value))
    if key == "resolve.memory-limit":
        megabytes = isinstance(value, int) and not isinstance(value, bool)
        if not megabytes or not (value == 0 or value >= 100):
            raise ValueError(f"expected megabytes (at least 100; 0: no cap), got {value!r}")
        return replace(settings, resolve_memory_limit=value)
    if key == "python.interpreter":
        if not isinstance(value, str):
            raise TypeError(f"expected a path to a python executable, got {value!r}")
        return replace(settings, python_interpreter=value.strip())
    if key == "exclude":
        return replace(settings, exclude=tuple(_strings(value)))
    if key == "lens":
        return replace(settings, lens=_choice(value, LENS_CHOICES))
    if key == "force-exclude":
        return replace(settings, force_exclude=_flag(value))
    if key == "fail-on":
        return replace(settings, fail_on=_choice(value, SEVERITIES))
    if key.startswith("per-file-ignores"):
        table = value if key == "per-file-ignores" else {key.split(".", 1)[1]: value}
        if not isinstance(table, Mapping):
            raise TypeError("expected a table of glob = [codes]")
        entries = tuple((str(glob), _codes(codes)) for glob, codes in table.items())
        return replace(settings, per_file_ignores=settings.per_file_ignores + entries)
    if key.startswith("severity"):
        table = value if key == "severity" else {key.split(".", 1)[1].upper(): value}
        if not isinstance(table, Mapping):
            raise TypeError("expected a table of CODE = level")
        overrides = dict(settings.severity)
        for code, level in table.items():
            code = str(code).upper()
            _check_code(code)
            if level not in SEVERITIES:
                raise ValueError(f"{code}: expected one of {', '.join(SEVERITIES)}, got {level!r}")
            overrides[code] = level
        return replace(settings, severity=tuple(sorted(overrides.items())))
    raise KeyError(key)


def _glob_match(path: str, pattern: str) -> bool:

    pure = PurePath(path)
    return fnmatch(path, pattern) or fnmatch(pure.name, pattern) or pure.match(pattern)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        return list(value)
    raise TypeError(f"expected a list of strings, got {value!r}")


def _check_code(code: str) -> None:
    # the rules load only when a code is checked (start-up cost)
    from conc_lsp.rules import known_codes

    if code in ("ALL", "CONC"):
        return
    if not any(known.startswith(code) for known in known_codes()):
        raise ValueError(f"unknown rule code {code!r}: no rule starts with it")


def parse_codes(value: Any) -> tuple[str, ...]:
    """Rule code prefixes from a list of strings (ValueError for an unknown one)."""
    return _codes(value)


def _codes(value: Any) -> tuple[str, ...]:
    codes = []
    for item in _strings(value):
        code = item.strip().upper()
        _check_code(code)
        codes.append(code)
    return tuple(codes)


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


def from_pyproject(settings: Settings, path: Path | None) -> Loaded:
    """Overlay ``[tool.conc-lsp]`` of a pyproject.toml, if there is one."""
    if path is None:
        return Loaded(settings)
    import tomllib  # only when there is a pyproject.toml to read (start-up cost)

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        return Loaded(settings, [f"{path}: cannot read: {error}"])
    section = data.get("tool", {}).get(SECTION)
    loaded = apply(settings, section, str(path))
    if loaded.settings.python_interpreter != settings.python_interpreter:
        # jedi would run that program: a workspace file must not choose it.
        loaded.settings = replace(loaded.settings, python_interpreter=settings.python_interpreter)
        loaded.warnings.append(
            f"{path}: 'python.interpreter' is ignored in pyproject.toml (it would run a "
            "program the workspace chose); set it in the editor or with --python"
        )
    return loaded
