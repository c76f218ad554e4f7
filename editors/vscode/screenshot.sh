#!/usr/bin/env bash
# Regenerate docs/vscode.png: a real VS Code (code-server 4.100.3 in Chromium,
# driven by tests/editors/vscode_driver.js as the tests drive it) with this
# repository's extension, packaged by build.sh and installed into a fresh
# profile, on examples/cache.py: the checkpoint hints, and the CONC101 finding
# in `serve_peers` with its message.
#
#   editors/vscode/screenshot.sh [--show all] [OUT.png]
#
# VS Code's own settings are its defaults (inlay hints cut at 43 characters:
# the server's labels fit); the hints are the server's default map
# (hints.show = "context"), or every checkpoint with `--show all`, which writes
# docs/vscode-all.png unless OUT.png is given.
#
# Needs: the test editor (bash tests/editors/install_code_server.sh: code-server,
# Chromium, Playwright; cached) and the server in .venv
# (python3 -m venv .venv && .venv/bin/pip install -e .).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
repo="$(cd "$here/../.." && pwd -P)"
show=context
if [ "${1:-}" = "--show" ]; then
    show="${2:?--show needs context or all}"
    shift 2
fi
case "$show" in
    context) default_out="$repo/docs/vscode.png" ;;
    all) default_out="$repo/docs/vscode-all.png" ;;
    *) echo "screenshot.sh: --show context or --show all" >&2; exit 2 ;;
esac
out="$(realpath -m "${1:-$default_out}")"
die() { echo "screenshot.sh: $*" >&2; exit 1; }

install="$(bash "$repo/tests/editors/install_code_server.sh" --where)" \
    || die "no test editor: run bash tests/editors/install_code_server.sh"
chromium=""
for candidate in /usr/lib/chromium/chromium /usr/bin/chromium; do
    [ -x "$candidate" ] && { chromium="$candidate"; break; }
done
[ -n "$chromium" ] || die "no chromium: run bash tests/editors/install_code_server.sh"
server="$repo/.venv/bin/conc-lsp"
[ -x "$server" ] || die "no server: python3 -m venv .venv && .venv/bin/pip install -e ."

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
vsix="$(bash "$here/build.sh" "$tmp/conc-lsp.vsix" 2>"$tmp/build.log" | tail -1)" \
    || { cat "$tmp/build.log" >&2; die "build.sh failed"; }

# A user's project: the example in a folder named like the repository.
mkdir -p "$tmp/conc-lsp"
cp "$repo/examples/cache.py" "$tmp/conc-lsp/cache.py"
# CONC101 is opt-in: the project selects it (the finding the picture shows)
printf '[tool.conc-lsp]\nextend-select = ["CONC101"]\n' > "$tmp/conc-lsp/pyproject.toml"
# (check exits 1 when it finds something, as here)
line="$({ "$server" check "$tmp/conc-lsp/cache.py" || true; } | grep -m1 ' CONC101 ' | cut -d: -f2)"
[ -n "$line" ] || die "examples/cache.py has no CONC101 finding any more: pick another line"

python3 - "$tmp/config.json" <<PY
import json, sys
json.dump({
    "mode": "screenshot", "install": "$install", "chromium": "$chromium", "vsix": "$vsix",
    "server": "$server", "home": "$tmp/home", "work": "$tmp/conc-lsp", "file": "cache.py",
    "line": int("$line"), "picture": "$tmp/vscode.png", "out": "$tmp/result.json",
    "shots": None, "viewport": {"width": 1400, "height": 860}, "hide_sidebar": True,
    "settings": {
        "editor.stickyScroll.enabled": False,
        **({"conc-lsp.hints.show": "all"} if "$show" == "all" else {}),
    },
}, open(sys.argv[1], "w"))
PY
node "$repo/tests/editors/vscode_driver.js" "$tmp/config.json"
python3 - "$tmp/result.json" <<'PY' || die "the driver failed (above)"
import json, sys
result = json.load(open(sys.argv[1]))
if result["errors"]:
    sys.exit("\n".join(result["errors"]))
if not any("\u200a<- " in line for line in result.get("lines", [])):
    sys.exit("no hints in view")
PY
mkdir -p "$(dirname "$out")"
cp "$tmp/vscode.png" "$out"
echo "wrote $out"
