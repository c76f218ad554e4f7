#!/usr/bin/env bash
# Build the VS Code extension: editors/vscode/conc-lsp.vsix.
#
#   bash editors/vscode/build.sh [OUT.vsix]
#
# Needs node >= 20 and npm.  Installs the pinned build tools of
# package-lock.json into editors/vscode/node_modules (once; again when the lock
# changes), type-checks src/extension.ts, bundles it with vscode-languageclient
# into dist/extension.js (esbuild) and packages it with @vscode/vsce.  The last
# line printed is the .vsix.  Install it with:
#
#   code --install-extension editors/vscode/conc-lsp.vsix
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
out="$(realpath -m "${1:-$here/conc-lsp.vsix}")"
die() { echo "build.sh: $*" >&2; exit 1; }

command -v node >/dev/null || die "node is missing (node 20 or newer: https://nodejs.org or apt-get install nodejs)"
command -v npm >/dev/null || die "npm is missing"
major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$major" -ge 20 ] || die "node $major found; node 20 or newer is needed"

cd "$here"
stamp="node_modules/.conc-lsp-lock.sha256"
lock="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$lock" ]; then
    # --ignore-scripts: no dependency needs its install script to build
    # (esbuild's binary comes in its @esbuild/<platform> package; keytar, an
    # optional dependency of vsce for publishing, is not needed)
    npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2
    echo "$lock" > "$stamp"
fi
rm -rf dist
npx --no-install tsc --noEmit -p . >&2
npx --no-install esbuild src/extension.ts --bundle --platform=node --target=node18 --format=cjs \
    --external:vscode --outfile=dist/extension.js --log-level=warning >&2
npx --no-install vsce package --no-dependencies --skip-license --allow-missing-repository \
    --out "$out" >&2
echo "$out"
