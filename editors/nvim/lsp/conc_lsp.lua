-- conc-lsp for Neovim 0.11+: the config read by vim.lsp.config('conc_lsp') /
-- vim.lsp.enable('conc_lsp') when this directory is on 'runtimepath'.
--
-- Override any field from your init.lua; tables are merged, so you only write
-- what you change:
--
--   vim.lsp.config('conc_lsp', {
--     cmd = { vim.fn.expand('~/src/conc-lsp/.venv/bin/conc-lsp'), 'serve' },
--     settings = { ['conc-lsp'] = { hints = { labelStyle = 'compact' } } },
--   })
--
-- Settings are read, later winning: the server's defaults, [tool.conc-lsp] in
-- the nearest pyproject.toml, then the table below.  It is empty on purpose,
-- so that a project's pyproject.toml is not overridden by the editor: every
-- key you set here wins over the project's.  The keys and their defaults:
--
--   ['conc-lsp'] = {
--     hints = {
--       enabled = true,             -- show inlay hints at all
--       kinds = { ... },            -- all kinds; a list ({ 'await', 'async-with' }) or an
--                                   -- object ({ spawn = false }); kinds: await, async-with,
--                                   -- async-for, acm-yield, event-set, lock-release, spawn
--       labelStyle = 'arrow',       -- 'arrow' (<- finally · unshielded) or 'compact' (⇄ F U)
--       show = 'context',           -- 'context': only what changes the reader's mind (no
--                                   -- bare <- checkpoint); 'all': every checkpoint
--       maxLength = 32,             -- characters of a label (0: no cap, else at least 10);
--                                   -- the hover keeps the words cut
--     },
--     diagnostics = { enabled = true },  -- run the rules in the editor
--     select = { 'CONC' },          -- rule code prefixes to run ('ALL' for every rule)
--     ['extend-select'] = {},       -- prefixes added to select
--     ignore = {},                  -- rule code prefixes to skip, e.g. { 'CONC103' }
--     ['per-file-ignores'] = {},    -- glob = prefixes, e.g. { ['tests/*'] = { 'CONC102' } }
--     severity = {},                -- code = 'error' | 'warning' | 'information' | 'hint'
--     fixes = { ['cleanup-timeout'] = 5 },  -- seconds used by the fixes that bound a wait
--     resolve = { enabled = true, budget = 5 },  -- follow callees with jedi (background):
--                                   -- 'may checkpoint', 'no checkpoint', ...; budget: s per pass
--     python = { interpreter = '' },  -- the Python whose packages jedi reads ('' = the one
--                                   -- running conc-lsp); jedi runs it once for its paths
--     lens = 'findings',            -- code lenses (with vim.g.conc_lsp_codelens = true):
--                                   -- 'off', 'findings' (where there are some) or 'all'
--   }
--
-- (An empty Lua table would be sent as a JSON list, hence vim.empty_dict().)

---@type vim.lsp.Config
return {
  -- Any command that runs the server over stdio works, e.g.
  -- { '/path/to/.venv/bin/python', '-m', 'conc_lsp', 'serve' }.
  cmd = { 'conc-lsp', 'serve' },
  filetypes = { 'python' },
  root_markers = { 'pyproject.toml', 'setup.cfg', 'setup.py', '.git' },
  settings = { ['conc-lsp'] = vim.empty_dict() },
}
