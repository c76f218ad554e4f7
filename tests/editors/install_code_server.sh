#!/usr/bin/env bash
# Install the VS Code that tests/editors/test_vscode.py drives, pinned and
# cached outside the repository:
#
#   code-server 4.100.3 (VS Code 1.100.3 served to a browser; the last release
#     that runs on node 20) and playwright-core 1.64.1, from npm, exactly as
#     locked in tests/editors/code-server/package-lock.json; code-server's
#     native modules are rebuilt from source on this machine;
#   Debian's chromium (the browser Playwright drives), and the build
#     dependencies of the native modules.
#
#   bash tests/editors/install_code_server.sh          # install (fast when cached)
#   bash tests/editors/install_code_server.sh --where  # print the install folder, or exit 1
#
# The install goes into ${CONC_LSP_EDITORS_CACHE:-${XDG_CACHE_HOME:-~/.cache}/conc-lsp-editors}/
# under a name that changes with the lock file, node's major version and this
# recipe, and is only used once complete.  The last line printed is the folder.
# Debian packages need root (or sudo); a missing one is installed at the
# version below, or at Debian's current version when the archive has moved on
# (a security update), with a warning.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
spec="$here/code-server"
recipe=1 # bump when the steps below change what gets installed
cache="${CONC_LSP_EDITORS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/conc-lsp-editors}"

# Debian bookworm packages: what the editor runs with, what its native modules
# build with.  build-essential, pkg-config and libx11-dev come with this kind
# of machine.
runtime_packages=(
    "chromium=156.0.8078.108-1~deb12u1"
)
build_packages=(
    "build-essential=12.9"
    "pkg-config=1.8.1-1"
    "libkrb5-dev=1.20.1-2+deb12u5"
    "libx11-dev=2:1.8.4-2+deb12u2"
    "libxkbfile-dev=1:1.1.0-1"
    "libsecret-1-dev=0.20.5-3"
    "ripgrep=13.0.0-4+b2"
)
# @vscode/ripgrep's postinstall downloads this file from GitHub, which is out
# of reach here; it is made from Debian's rg and put where it looks first.
ripgrep_cache="vscode-ripgrep-cache-1.15.11"
ripgrep_tarball="ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz"

die() { echo "install_code_server.sh: $*" >&2; exit 1; }
say() { echo "install_code_server.sh: $*" >&2; }

command -v node >/dev/null || die "node is missing (node 20 is needed for code-server 4.100.3)"
command -v npm >/dev/null || die "npm is missing"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" = 20 ] || die "node $node_major found; code-server 4.100.3 needs node 20"

key="$(cat "$spec/package.json" "$spec/package-lock.json" <(echo "recipe=$recipe node=$node_major") \
    | sha256sum | cut -c1-12)"
dest="$cache/code-server-4.100.3-$key"

complete() {
    [ -f "$dest/.complete" ] && [ -x "$dest/node_modules/.bin/code-server" ] \
        && [ -f "$dest/node_modules/playwright-core/package.json" ]
}
chromium_binary() {
    for candidate in /usr/lib/chromium/chromium /usr/bin/chromium; do
        [ -x "$candidate" ] && { echo "$candidate"; return 0; }
    done
    return 1
}

if [ "${1:-}" = "--where" ]; then
    complete && chromium_binary >/dev/null && { echo "$dest"; exit 0; }
    echo "the test editor is not installed: run bash $here/install_code_server.sh" >&2
    exit 1
fi
[ $# -eq 0 ] || die "usage: install_code_server.sh [--where]"

missing() { # the packages of "$@" (name=version) that are not installed
    local spec name
    for spec in "$@"; do
        name="${spec%%=*}"
        dpkg-query -W -f='${Status}' "$name" 2>/dev/null | grep -q "ok installed" || echo "$spec"
    done
}

apt_install() {
    local wanted=() spec name version available
    mapfile -t wanted < <(missing "$@")
    [ ${#wanted[@]} -gt 0 ] || return 0
    local sudo=()
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null || die "needs root to install: apt-get install ${wanted[*]}"
        sudo=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    [ -n "$(ls /var/lib/apt/lists/*_Packages* 2>/dev/null)" ] || "${sudo[@]}" apt-get update -qq
    local chosen=()
    for spec in "${wanted[@]}"; do
        name="${spec%%=*}" version="${spec#*=}"
        available="$(apt-cache madison "$name" 2>/dev/null | awk -F'|' '{gsub(/ /, "", $2); print $2}')"
        if grep -qxF "$version" <<<"$available"; then
            chosen+=("$spec")
        else
            say "warning: Debian no longer has $name $version; installing its current version"
            chosen+=("$name")
        fi
    done
    say "apt-get install ${chosen[*]}"
    local log
    log="$(mktemp)"
    if ! "${sudo[@]}" apt-get install -y -q --no-install-recommends "${chosen[@]}" >"$log" 2>&1; then
        # the package lists may be stale: refresh them once
        "${sudo[@]}" apt-get update -qq >>"$log" 2>&1 || true
        "${sudo[@]}" apt-get install -y -q --no-install-recommends "${chosen[@]}" >>"$log" 2>&1 \
            || { cat "$log" >&2; rm -f "$log"; die "apt-get install ${chosen[*]} failed"; }
    fi
    rm -f "$log"
}

apt_install "${runtime_packages[@]}"
chromium_binary >/dev/null || die "chromium was not installed"

if complete; then
    say "cached: $dest"
    echo "$dest"
    exit 0
fi

apt_install "${build_packages[@]}"
mkdir -p "$cache"
# Built in place (node-gyp's output is not meant to move); .complete marks it usable.
rm -rf "$dest"
mkdir -p "$dest/tmp/$ripgrep_cache"
cp "$spec/package.json" "$spec/package-lock.json" "$dest/"
rg="$(command -v rg)" || die "rg is missing (Debian package ripgrep)"
tar -czf "$dest/tmp/$ripgrep_cache/$ripgrep_tarball" -C "$(dirname "$rg")" rg

say "npm ci in $dest (code-server rebuilds its native modules: a few minutes)"
export npm_config_unsafe_perm=true npm_config_yes=true npm_config_fund=false
export npm_config_audit=false npm_config_update_notifier=false npm_config_loglevel=error
if [ -f /usr/include/node/node.h ]; then
    export npm_config_nodedir=/usr # node's own headers: node-gyp downloads none
fi
(cd "$dest" && TMPDIR="$dest/tmp" npm ci >&2) || die "npm ci failed (see above)"
# (code-server writes a default config on its first run: into the scratch folder)
version="$(XDG_CONFIG_HOME="$dest/tmp" XDG_DATA_HOME="$dest/tmp" \
    "$dest/node_modules/.bin/code-server" --version 2>/dev/null | grep -m1 '^4\.' || true)"
[[ "$version" == "4.100.3 "* ]] || die "code-server does not run: '$version'"
rm -rf "$dest/tmp"
touch "$dest/.complete"
# Older installs (another lock or recipe) are not used any more.
find "$cache" -mindepth 1 -maxdepth 1 -name 'code-server-*' ! -name "$(basename "$dest")" \
    -exec rm -rf {} +
say "installed: $dest ($version)"
echo "$dest"
