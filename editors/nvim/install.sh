#!/usr/bin/env bash
# Install conc-lsp's Neovim config (Neovim 0.11+) into
# ${XDG_CONFIG_HOME:-~/.config}/nvim:
#
#   lsp/conc_lsp.lua      the server config (vim.lsp.config / vim.lsp.enable)
#   plugin/conc_lsp.lua   starts it for Python files, inlay hints, :ConcAnalyse
#
# as symlinks to this clone (a `git pull` updates them), or copies with --copy.
# When `conc-lsp` is not on PATH but this clone's .venv has it, the server
# command is pinned to that one in after/lsp/conc_lsp.lua.
#
#   editors/nvim/install.sh [--copy] [--force]
#   editors/nvim/install.sh --uninstall
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
clone="$(cd "$here/../.." && pwd -P)"
target="${XDG_CONFIG_HOME:-$HOME/.config}/nvim"
mode=link
force=0
for arg in "$@"; do
    case "$arg" in
        --copy) mode=copy ;;
        --force) force=1 ;;
        --uninstall) mode=uninstall ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install.sh: unknown option '$arg' (see --help)" >&2; exit 2 ;;
    esac
done

files=(lsp/conc_lsp.lua plugin/conc_lsp.lua)
pin="$target/after/lsp/conc_lsp.lua"
pin_mark="-- written by conc-lsp's editors/nvim/install.sh"

if [ "$mode" = uninstall ]; then
    for file in "${files[@]}"; do
        dest="$target/$file"
        if [ -L "$dest" ] || { [ -f "$dest" ] && cmp -s "$here/$file" "$dest"; }; then
            rm -f "$dest" && echo "removed $dest"
        fi
    done
    if [ -f "$pin" ] && head -n 1 "$pin" | grep -qF -- "$pin_mark"; then
        rm -f "$pin" && echo "removed $pin"
    fi
    exit 0
fi

for file in "${files[@]}"; do
    src="$here/$file"
    dest="$target/$file"
    mkdir -p "$(dirname "$dest")"
    # Never overwrite a file of the user's own unless asked to.
    if [ -e "$dest" ] && [ ! -L "$dest" ] && [ "$force" = 0 ] && ! cmp -s "$src" "$dest"; then
        echo "install.sh: $dest exists and differs from $src; not replaced (use --force)" >&2
        exit 1
    fi
    rm -f "$dest"
    if [ "$mode" = copy ]; then
        cp "$src" "$dest"
        echo "copied    $dest"
    else
        ln -s "$src" "$dest"
        echo "linked    $dest -> $src"
    fi
done

if command -v conc-lsp >/dev/null 2>&1; then
    echo "server:   $(command -v conc-lsp) (on PATH)"
    if [ -f "$pin" ] && head -n 1 "$pin" | grep -qF -- "$pin_mark"; then
        rm -f "$pin" && echo "removed   $pin (conc-lsp is on PATH now)"
    fi
elif [ -x "$clone/.venv/bin/conc-lsp" ]; then
    mkdir -p "$(dirname "$pin")"
    if [ -e "$pin" ] && ! head -n 1 "$pin" | grep -qF -- "$pin_mark"; then
        echo "install.sh: $pin is your own; set cmd = { '$clone/.venv/bin/conc-lsp', 'serve' } there" >&2
    else
        cat > "$pin" <<EOF
$pin_mark
-- conc-lsp is not on PATH: use the one in the clone's virtual environment.
return { cmd = { '$clone/.venv/bin/conc-lsp', 'serve' } }
EOF
        echo "server:   $clone/.venv/bin/conc-lsp (pinned in $pin)"
    fi
else
    echo "server:   conc-lsp is not installed yet; install it, then run this again:" >&2
    echo "          python3 -m venv '$clone/.venv' && '$clone/.venv/bin/pip' install -e '$clone'" >&2
fi

nvim_version="$(nvim --version 2>/dev/null | head -n 1 || true)"
case "$nvim_version" in
    "NVIM v0.1"[1-9]*|"NVIM v0."[2-9][0-9]*|"NVIM v"[1-9]*) ;;
    "") echo "note:     no nvim on PATH; this config needs Neovim 0.11+" >&2 ;;
    *) echo "note:     $nvim_version found; this config needs Neovim 0.11+" >&2 ;;
esac
echo "done: open a Python file in Neovim (try: nvim $clone/examples/cache.py)"
