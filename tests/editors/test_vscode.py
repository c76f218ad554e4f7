"""conc-lsp in a real VS Code, with the repository's own extension.

VS Code is code-server 4.100.3 (VS Code 1.100.3 served to a browser) in
Debian's Chromium, driven through playwright-core by ``vscode_driver.js``, as a
person would: the packaged ``.vsix`` (``editors/vscode/build.sh``) installed
into a fresh profile, a copy of a fixture opened from quick open, the hints
and squiggles waited for, a setting changed in settings.json, the quick fix
chosen with Ctrl+. and the arrow keys and saved with Ctrl+S, and
``conc-lsp: Analyse concurrency`` run from the command palette.  A second
profile has no server at all.  Screenshots of every step are kept under
``tests/editors/artifacts/vscode/`` (git-ignored).

The editor comes from ``tests/editors/install_code_server.sh`` (pinned,
cached under ``~/.cache/conc-lsp-editors``), which ``.ci/run`` runs before
pytest.  Without it the tests fail; ``CONC_LSP_SKIP_EDITOR_TESTS=1`` turns that
failure into a skip, for machines that cannot install it.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from conc_lsp import config
from conc_lsp.analysis.parse import analyse_lines
from conc_lsp.analysis.text import split_lines
from conc_lsp.labels import (
    ARROW,
    COMPACT,
    DEFAULT_MAX_LENGTH,
    LABEL_STYLES,
    SHOW_ALL,
    SHOW_CONTEXT,
    SHOW_MODES,
    is_shown,
    label,
)
from tests.rule_settings import SEED_PYPROJECT

REPO = Path(__file__).resolve().parents[2]
EXTENSION = REPO / "editors" / "vscode"
HERE = Path(__file__).resolve().parent
DRIVER = HERE / "vscode_driver.js"
INSTALLER = HERE / "install_code_server.sh"
ARTIFACTS = HERE / "artifacts" / "vscode"
FIX_INPUT = REPO / "tests" / "fixtures" / "fixes" / "conc101_trio.input.py"
FIX_EXPECTED = REPO / "tests" / "fixtures" / "fixes" / "conc101_trio.expected.py"
EXAMPLE = REPO / "examples" / "cache.py"  # the docs' file: hints.show side by side
EXAMPLE_LINE = 66  # the line put in the middle of the view: the example's second half
RESOLVED = """import trio


async def helper() -> None:
    print("never yields")


async def main(ev: trio.Event) -> None:
    try:
        await ev.wait()
    finally:
        await helper()
"""
SKIP_VARIABLE = "CONC_LSP_SKIP_EDITOR_TESTS"
CHROMIUM = (Path("/usr/lib/chromium/chromium"), Path("/usr/bin/chromium"))
BUILD_TIMEOUT = 300  # seconds: the first build installs the extension's npm tools
RUN_TIMEOUT = 300  # seconds for one driver run; its own waits are much shorter
EXTENSION_ID = "conc-lsp.conc-lsp-0.1.0"

# conc_lsp.config.Settings field -> the setting the extension contributes
# (without the `conc-lsp.` prefix).  `exclude` is for `conc-lsp check` only.
SERVER_SETTINGS = {
    "hints_enabled": "hints.enabled",
    "hint_kinds": "hints.kinds",
    "label_style": "hints.labelStyle",
    "hints_show": "hints.show",
    "hints_max_length": "hints.maxLength",
    "diagnostics_enabled": "diagnostics.enabled",
    "select": "select",
    "ignore": "ignore",
    "per_file_ignores": "per-file-ignores",
    "severity": "severity",
    "cleanup_timeout": "fixes.cleanup-timeout",
    "resolve_enabled": "resolve.enabled",
    "resolve_budget": "resolve.budget",
    "resolve_memory_limit": "resolve.memory-limit",
    "python_interpreter": "python.interpreter",
    "lens": "lens",
}
NOT_IN_THE_EDITOR = {"exclude", "force_exclude", "fail_on"}  # `conc-lsp check` only
EXTRA_SERVER_KEYS = {"extend-select"}  # no field of its own: it extends `select`
CLIENT_ONLY_KEYS = {"path", "interpreter", "trace.server"}


def manifest() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXTENSION / "package.json").read_text(encoding="utf-8"))
    return data


def contributed() -> dict[str, dict[str, Any]]:
    properties = manifest()["contributes"]["configuration"]["properties"]
    assert all(key.startswith("conc-lsp.") for key in properties)
    return {key.removeprefix("conc-lsp."): spec for key, spec in properties.items()}


# -- the extension's manifest against the server (no editor needed) ------------


def test_settings_mirror_the_server() -> None:
    settings = contributed()
    assert {field.name for field in fields(config.Settings)} == (
        set(SERVER_SETTINGS) | NOT_IN_THE_EDITOR
    ), "a server setting is missing from SERVER_SETTINGS (and maybe from package.json)"
    server_keys = set(SERVER_SETTINGS.values()) | EXTRA_SERVER_KEYS
    assert set(settings) == server_keys | CLIENT_ONLY_KEYS

    defaults: dict[str, Any] = {}
    for key in sorted(server_keys):
        spec = settings[key]
        assert spec.get("markdownDescription") or spec.get("description"), key
        assert "default" in spec, key
        target = defaults
        *parents, last = key.split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[last] = spec["default"]
    # VS Code's defaults, sent as they are, are the server's defaults: nothing
    # unknown, nothing refused, nothing different.
    loaded = config.apply(config.Settings(), {config.SECTION: defaults}, "package.json")
    assert loaded.warnings == []
    assert loaded.settings == config.Settings()

    # every value the manifest allows is one the server accepts
    kinds = settings["hints.kinds"]["properties"]
    assert set(kinds) == {kind.value for kind in config.ALL_KINDS}
    assert settings["hints.labelStyle"]["enum"] == list(LABEL_STYLES)
    assert settings["hints.show"]["enum"] == list(SHOW_MODES)
    assert settings["lens"]["enum"] == list(config.LENS_CHOICES)
    assert settings["severity"]["additionalProperties"]["enum"] == list(config.SEVERITIES)
    for key, value in [
        ("hints.kinds", {"spawn": False}),
        ("hints.labelStyle", "compact"),
        ("hints.show", "all"),
        ("hints.maxLength", 0),
        ("select", ["CONC1"]),
        ("extend-select", ["CONC401"]),
        ("ignore", ["CONC103"]),
        ("per-file-ignores", {"tests/*": ["CONC102"]}),
        ("severity", {"CONC101": "error"}),
        ("fixes.cleanup-timeout", 2.5),
        ("resolve.enabled", False),
        ("resolve.budget", 1),
        ("resolve.memory-limit", 512),
        ("python.interpreter", "/usr/bin/python3"),
        ("lens", "all"),
    ]:
        *parents, last = key.split(".")
        data: dict[str, Any] = {last: value}
        for part in reversed(parents):
            data = {part: data}
        changed = config.apply(config.Settings(), data, "test")
        assert changed.warnings == [], key
        assert changed.settings != config.Settings(), key


def test_extension_sends_every_server_setting() -> None:
    """The keys the extension reads and sends are the contributed server keys."""
    source = (EXTENSION / "src" / "extension.ts").read_text(encoding="utf-8")
    match = re.search(r"export const SERVER_KEYS = \[(.*?)\];", source, re.S)
    assert match is not None
    sent = re.findall(r"'([^']+)'", match.group(1))
    assert sorted(sent) == sorted(set(contributed()) - CLIENT_ONLY_KEYS)


def test_manifest_commands_and_pins() -> None:
    data = manifest()
    commands = {item["command"]: item["title"] for item in data["contributes"]["commands"]}
    assert commands["conc-lsp.analyse"] == "Analyse concurrency"
    assert commands["conc-lsp.restart"] == "Restart server"
    assert data["activationEvents"] == ["onLanguage:python"]
    for section in ("dependencies", "devDependencies"):
        for name, version in data[section].items():
            assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{name} is not pinned: {version}"
    assert data["devDependencies"]["@vscode/vsce"].startswith("3.")  # vsce 4 needs node 22
    assert (EXTENSION / "package-lock.json").is_file()


# -- the real editor -------------------------------------------------------------


def unavailable(message: str) -> None:
    if os.environ.get(SKIP_VARIABLE) == "1":
        pytest.skip(f"{message}; skipped because {SKIP_VARIABLE}=1")
    pytest.fail(f"{message}, or set {SKIP_VARIABLE}=1 to skip the editor tests", pytrace=False)


@pytest.fixture(scope="module")
def editor() -> dict[str, str]:
    """The cached code-server install, Chromium and node."""
    node = shutil.which("node")
    if node is None:
        unavailable("node is missing (the VS Code tests need node 20)")
    where = subprocess.run(
        ["bash", str(INSTALLER), "--where"], capture_output=True, text=True, timeout=60, check=False
    )
    if where.returncode != 0:
        unavailable(
            f"the test VS Code (code-server) is not installed: run bash {INSTALLER} "
            f"({where.stderr.strip()})"
        )
    chromium = next((path for path in CHROMIUM if os.access(path, os.X_OK)), None)
    if chromium is None:
        unavailable(f"chromium is missing: run bash {INSTALLER}")
    return {"install": where.stdout.strip(), "chromium": str(chromium), "node": str(node)}


@pytest.fixture(scope="module")
def vsix(editor: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The extension, built and packaged by the documented script."""
    out = tmp_path_factory.mktemp("vsix") / "conc-lsp.vsix"
    done = subprocess.run(
        ["bash", str(EXTENSION / "build.sh"), str(out)],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1] == str(out)
    assert out.stat().st_size > 10_000
    return out


def server() -> Path:
    """This repository's server: .venv's conc-lsp (or this interpreter's)."""
    candidates = (REPO / ".venv" / "bin" / "conc-lsp", Path(sys.executable).parent / "conc-lsp")
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return candidate
    pytest.fail("no conc-lsp next to this Python: pip install -e '.[test]'")


def drive(editor: dict[str, str], settings: dict[str, Any], name: str) -> dict[str, Any]:
    """Run the driver in a fresh profile; screenshots in tests/editors/artifacts/vscode/NAME."""
    shots = ARTIFACTS / name
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    home = Path(settings["home"])
    out = home.parent / f"{name}.json"
    settings = {
        **settings,
        "install": editor["install"],
        "chromium": editor["chromium"],
        "shots": str(shots),
        "out": str(out),
    }
    config_file = home.parent / f"{name}-config.json"
    config_file.write_text(json.dumps(settings), encoding="utf-8")
    try:
        done = subprocess.run(
            [editor["node"], str(DRIVER), str(config_file)],
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"the VS Code driver ran over {RUN_TIMEOUT} s: {error.stderr!r}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert out.exists(), f"the driver wrote no result: {done.stderr}"
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    result["stderr"] = done.stderr
    result["shots"] = shots
    print(f"VS Code screenshots ({name}): {shots}")
    return result


@pytest.fixture(scope="module")
def session(
    editor: dict[str, str], vsix: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """One VS Code session on a copy of a fixture, in a project whose
    pyproject.toml ignores CONC102."""
    root = tmp_path_factory.mktemp("vscode")
    work = root / "project"
    work.mkdir()
    (work / ".git").mkdir()
    shutil.copyfile(FIX_INPUT, work / "fix.py")
    shutil.copyfile(FIX_INPUT, work / "noqa.py")
    shutil.copyfile(FIX_INPUT, work / "syntax.py")
    shutil.copyfile(EXAMPLE, work / "cache.py")
    (work / "resolved.py").write_text(RESOLVED, encoding="utf-8")
    # CONC101 is opt-in (precision on real code below 0.8): the project selects it.
    (work / "pyproject.toml").write_text(SEED_PYPROJECT + 'ignore = ["CONC102"]\n')
    result = drive(
        editor,
        {
            "mode": "test",
            "vsix": str(vsix),
            "server": str(server()),
            "home": str(root / "home"),
            "work": str(work),
            "file": "fix.py",
            "expected": str(FIX_EXPECTED),
            "noqa": "noqa.py",
            "syntax": "syntax.py",
            "show": "cache.py",
            "show_line": EXAMPLE_LINE,
            "resolved": "resolved.py",
        },
        "session",
    )
    result["work"] = work
    result["home"] = root / "home"
    return result


@pytest.fixture(scope="module")
def missing(
    editor: dict[str, str], vsix: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """A profile with no conc-lsp anywhere: not on PATH, no conc-lsp.path."""
    root = tmp_path_factory.mktemp("vscode-missing")
    work = root / "project"
    work.mkdir()
    (work / "a.py").write_text("async def f():\n    pass\n")
    (work / "b.py").write_text("async def g():\n    pass\n")
    broken = root / "broken-conc-lsp"
    broken.write_text('#!/bin/sh\necho "conc-lsp: broken on purpose" >&2\nexit 3\n')
    broken.chmod(0o755)
    path = os.pathsep.join(
        folder
        for folder in os.environ.get("PATH", "").split(os.pathsep)
        if folder and not (Path(folder) / "conc-lsp").exists()
    )
    return drive(
        editor,
        {
            "mode": "missing",
            "vsix": str(vsix),
            "server": None,
            "home": str(root / "home"),
            "work": str(work),
            "file": "a.py",
            "second": "b.py",
            "broken": str(broken),
            "path_env": path,
        },
        "missing",
    )


def check_steps(result: dict[str, Any], *steps: str) -> None:
    failed = [error for error in result["errors"] if error.split(":", 1)[0] in (*steps, "driver")]
    assert failed == [], (
        f"{failed}\nscreenshots: {result['shots']}\nextension log:\n{result.get('output')}\n"
        f"driver:\n{result['stderr'][-3000:]}\ncode-server:\n{result.get('code_server_log')}"
    )
    for step in steps:
        assert step in result["steps"], result["steps"]


def hinted(line: str, label: str) -> str:
    """The line without the hint VS Code shows in it (after a hair space)."""
    assert f"\u200a{label}" in line, f"no {label!r} in {line!r}"
    return line.replace(f"\u200a{label}", "", 1)


def expected_labels(path: Path, show: str, style: str = ARROW) -> dict[int, list[str]]:
    """0-based line -> the labels the server shows before any resolution."""
    found: dict[int, list[str]] = {}
    for hint in analyse_lines(split_lines(path.read_text(encoding="utf-8"))).hints:
        if is_shown(hint, show=show):
            text = label(hint, style, max_length=DEFAULT_MAX_LENGTH)
            found.setdefault(hint.line, []).append(text)
    return found


def shown_labels(source: list[str], lines: list[dict[str, Any]]) -> dict[int, list[str]]:
    """1-based line -> the hints VS Code shows in it: the text around the
    line's own, each hint after its hair space (paddingLeft)."""
    found: dict[int, list[str]] = {}
    for line in lines:
        number, text = line["number"], line["text"]
        assert isinstance(number, int), lines
        own = source[number - 1] if number <= len(source) else ""
        start = 0
        while start < min(len(own), len(text)) and own[start] == text[start]:
            start += 1
        end = 0
        while end < len(own) - start and own[-1 - end] == text[-1 - end]:
            end += 1
        inserted = text[start : len(text) - end]
        labels = [part for part in inserted.split("\u200a") if part]
        assert inserted.startswith("\u200a") or not inserted, (number, text)
        if labels:
            found[number] = labels
    return found


def test_vsix_installed_in_a_fresh_profile(session: dict[str, Any]) -> None:
    check_steps(session, "open")
    assert "successfully installed" in session["install"]
    assert session["extensions"] == [EXTENSION_ID]


def test_hints_squiggles_and_lenses(session: dict[str, Any]) -> None:
    check_steps(session, "open", "hints")
    source = FIX_INPUT.read_text(encoding="utf-8").splitlines()
    lines = session["lines"]
    assert len(lines) >= len(source)
    # Every line as in the file, the hints inside the two awaits' lines.
    # hints.show = "context" (the default): the bare checkpoint of the serve
    # has no hint, the wait in `finally` has its context
    wait = next(i for i, text in enumerate(source) if "wait_for_no_more_peers" in text)
    assert expected_labels(FIX_INPUT, SHOW_CONTEXT) == {wait: ["<- finally · unshielded"]}
    assert hinted(lines[wait], "<- finally · unshielded") == source[wait]
    others = [i for i in range(len(source)) if i != wait]
    assert [lines[i] for i in others] == [source[i] for i in others]
    assert session["squiggles"] >= 1
    # pyproject.toml ignores CONC102: the extension did not override it with
    # VS Code's default `ignore: []`
    assert session["problems"] == "Warnings: 1"
    assert len(session["codelenses"]) == 1
    assert session["codelenses"][0].endswith("1 finding · Analyse concurrency")


def test_a_changed_setting_reaches_the_server(session: dict[str, Any]) -> None:
    check_steps(session, "settings")
    source = FIX_INPUT.read_text(encoding="utf-8").splitlines()
    lines = session["lines_compact"]
    # hints.show is "all" since the step before: the serve's bare checkpoint too
    expected = expected_labels(FIX_INPUT, SHOW_ALL, COMPACT)
    assert len(expected) == 2
    for number, (shown,) in expected.items():
        assert hinted(lines[number], shown) == source[number]
    assert not any("<-" in line for line in lines)
    # pyproject.toml still applies: the same problems as before the change
    # (fix.py's one warning and cache.py's, opened by the step before)
    assert session["problems_after_settings"] == session["show_problems"]


def test_hints_show_context_and_all_side_by_side(session: dict[str, Any]) -> None:
    """The same lines of examples/cache.py with hints.show = "context" (the
    default) and "all", at VS Code's default inlayHints.maximumLength (43)."""
    check_steps(session, "show")
    source = EXAMPLE.read_text(encoding="utf-8").splitlines()
    context, every = session["show_context"], session["show_all"]
    assert [line["number"] for line in context] == [line["number"] for line in every]
    in_view = {line["number"] for line in context}
    assert EXAMPLE_LINE in in_view
    shown_context = shown_labels(source, context)
    shown_all = shown_labels(source, every)
    # fewer hints by default, every one of them also in "all"
    assert sum(map(len, shown_context.values())) < sum(map(len, shown_all.values()))
    assert set(shown_context) <= set(shown_all)
    # a bare checkpoint: only in "all"
    bare = [number for number, labels in shown_all.items() if "<- checkpoint" in labels]
    assert bare, shown_all
    assert not any("<- checkpoint" in labels for labels in shown_context.values())
    # what the analysis shows by default (before resolution) is on screen
    expected = {n + 1 for n in expected_labels(EXAMPLE, SHOW_CONTEXT)} & in_view
    assert expected and expected <= set(shown_context), (expected, shown_context)
    assert shown_context[79] == ["<- finally · unshielded"]  # the seed's bug, whole
    # the server's cap, under VS Code's own: nothing cut by VS Code
    labels = [text for found in (shown_context, shown_all) for on in found.values() for text in on]
    assert all(len(text) <= DEFAULT_MAX_LENGTH for text in labels), labels


def test_quick_fix_with_the_keyboard(session: dict[str, Any]) -> None:
    check_steps(session, "problem", "quickfix")
    assert "unbounded" in session["problem"]
    assert "CONC101" in session["problem"]
    assert session["problem_cursor"] == "Ln 13, Col 9"  # F8 put the cursor on the finding
    # the fix and its "Disable for this line"; CONC102's: ignored by pyproject.toml
    assert session["actions"] == [session["chosen"], "Disable CONC101 for this line"]
    assert session["chosen"].endswith("(CONC101)")
    assert "trio.move_on_after(5, shield=True)" in session["chosen"]
    assert (session["work"] / "fix.py").read_text(encoding="utf-8") == FIX_EXPECTED.read_text(
        encoding="utf-8"
    )
    assert session["squiggles_after_fix"] == 0
    # `lens: "all"` (set with the label style): the lens stays with no finding
    assert len(session["codelenses_after_fix"]) == 1
    assert session["codelenses_after_fix"][0].endswith("0 findings · Analyse concurrency")


def test_analyse_concurrency_shows_the_report_beside_the_code(session: dict[str, Any]) -> None:
    check_steps(session, "analyse")
    headings = session["report_headings"]
    assert headings[0] == "H2 Concurrency analysis: async_main"  # the function at the cursor
    for part in ("Shared state", "Checkpoints", "Race trace", "Classification", "Fixes"):
        assert f"H3 {part}" in headings
    reports = session["reports"]
    assert len(reports) == 1 and reports[0].endswith(".md"), reports
    written = session["home"] / "cache" / "conc-lsp" / "reports" / reports[0]
    assert written.read_text(encoding="utf-8").startswith("## Concurrency analysis: `async_main`")
    # a rendered preview beside the code, and the raw markdown not opened too
    assert session["groups"] == 2
    assert session["tabs"][0] == "fix.py"
    assert [tab for tab in session["tabs"] if reports[0] in tab] == [
        f"Preview {reports[0]}, Editor Group 2"
    ]


def test_analyse_concurrency_of_the_selected_lines(session: dict[str, Any]) -> None:
    check_steps(session, "analyse_selection")
    # the selection's report (0-based lines 8-10 sent), beside the code again
    assert "H2 Concurrency analysis: fix.py:9-11" in session["selection_headings"]
    previews = [tab for tab in session["selection_tabs"] if tab.startswith("Preview ")]
    assert any(tab.startswith("Preview fix-L9-11-") for tab in previews), previews
    assert all(tab.endswith(".md, Editor Group 2") for tab in previews)
    assert not [tab for tab in session["selection_tabs"] if ".md" in tab and tab not in previews]


def test_a_report_link_opens_the_line(session: dict[str, Any]) -> None:
    """A line reference in the report's preview is a link the preview follows:
    relative to the report, `#L13` (a `file:` link would be shown as text)."""
    check_steps(session, "report_link")
    href = session["report_link_href"]
    # after the quick fix, the wait is on line 14
    assert href.endswith("fix.py#L14") and not href.startswith("file:"), href
    assert session["report_link_cursor"].startswith("Ln 14, ")
    assert (session["report_link_editor"] or "").startswith("fix.py")


def test_disable_for_this_line(session: dict[str, Any]) -> None:
    check_steps(session, "noqa")
    assert "Disable CONC101 for this line" in session["noqa_actions"]
    lines = FIX_INPUT.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[12] = lines[12].rstrip("\n") + "  # noqa: CONC101\n"
    assert session["noqa_saved"] == "".join(lines)
    ast.parse(session["noqa_saved"])
    assert session["noqa_squiggles_after"] == 0


def test_diagnostics_survive_a_syntax_error(session: dict[str, Any]) -> None:
    check_steps(session, "syntax")
    wait = "await ipc_server.wait_for_no_more_peers()"
    assert any(wait in line for line in session["syntax_before"]), session["syntax_before"]
    assert any("    x =" in line for line in session["syntax_lines"])
    # the function does not parse: its warning stays, on the wait's new line
    assert any(wait in line for line in session["syntax_during"]), session["syntax_during"]


def test_the_lens_setting_off(session: dict[str, Any]) -> None:
    check_steps(session, "lens_off")
    assert session["codelenses_off"] == []


def test_resolved_labels_survive_an_edit_elsewhere(session: dict[str, Any]) -> None:
    """jedi finds that `helper` never yields (compact: `∅ F U` instead of
    `⇄ F U`); a function typed above moves the await down, and its label never
    goes back to the plain one while the server answers for the new text."""
    check_steps(session, "resolved_edit")
    assert session["resolved_before"] == "∅ F U"
    assert session["resolved_seen_after_edit"] == ["∅ F U"]
    lines = session["resolved_lines"]
    assert any(line.startswith("async def other(ev): await ev.wait()") for line in lines), lines


def test_restart_server(session: dict[str, Any]) -> None:
    check_steps(session, "restart")
    assert session["starts_before_restart"] == 1
    assert session["starts_after_restart"] == 2
    # the new server has the document, edits included: a hint on the new line
    line = next(text for text in session["lines_after_restart"] if "await ev.wait()" in text)
    assert hinted(line, "⇄").strip() == "await ev.wait()"


def test_no_message_when_all_is_well(session: dict[str, Any]) -> None:
    check_steps(
        session,
        *("open", "hints", "show", "settings", "problem", "quickfix", "analyse", "report_link"),
        *("analyse_selection", "restart", "noqa", "syntax", "lens_off", "resolved_edit"),
    )
    assert session["toasts"] == []


def test_screenshots_of_every_step(session: dict[str, Any]) -> None:
    shots = sorted(path.name for path in session["shots"].glob("*.png"))
    assert shots == [
        "01-hints-and-squiggles.png",
        "02-show-context.png",
        "03-show-all.png",
        "04-compact-hints.png",
        "05-problem.png",
        "06-quick-fix-menu.png",
        "07-fixed-and-saved.png",
        "08-report.png",
        "09-report-link-followed.png",
        "10-report-of-selection.png",
        "11-after-restart.png",
        "12-disable-for-this-line.png",
        "13-diagnostics-through-a-syntax-error.png",
        "14-resolved-label.png",
        "15-resolved-label-after-an-edit.png",
    ], session["shots"]
    for name in shots:
        assert (session["shots"] / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_server_gives_one_message(missing: dict[str, Any]) -> None:
    check_steps(missing, "message", "open_settings")
    assert len(missing["toasts"]) == 1, missing["toasts"]
    toast = missing["toasts"][0]
    assert (
        "conc-lsp: cannot start the server: `conc-lsp` not found. "
        "Install it (pip install conc-lsp) or set conc-lsp.path." in toast
    )
    assert "Open Settings" in toast and "Show Log" in toast
    # its button opens the settings at conc-lsp.path
    assert missing["settings_search"] == "conc-lsp.path"
    assert missing["settings_shown"][0] == "Conc-lsp: Path"


def test_broken_server_gives_one_message(missing: dict[str, Any]) -> None:
    check_steps(missing, "broken")
    assert len(missing["broken_toasts"]) == 1, missing["broken_toasts"]
    toast = missing["broken_toasts"][0]
    assert "conc-lsp: cannot start the server: the server did not start" in toast
    assert "exit code 3: conc-lsp: broken on purpose" in toast
    assert "couldn't create connection" not in toast
