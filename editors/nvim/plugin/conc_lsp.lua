-- conc-lsp for Neovim 0.11+: starts the server for Python buffers (the config
-- is lsp/conc_lsp.lua beside this directory), turns inlay hints on where it
-- attaches, and defines :ConcAnalyse.
--
-- Options, set in init.lua (before plugins load):
--   vim.g.conc_lsp_enable = false        -- do not call vim.lsp.enable('conc_lsp')
--                                        -- (e.g. you enable it yourself)
--   vim.g.conc_lsp_inlay_hints = false   -- leave inlay hints off
--   vim.g.conc_lsp_codelens = true       -- show the server's code lenses
--                                        -- (`N checkpoints · Analyse concurrency`);
--                                        -- run one with :lua vim.lsp.codelens.run()
--
-- :ConcAnalyse            report on the whole file
-- :ConcAnalyse {qualname} report on one function, e.g. :ConcAnalyse _Cache.run_ctx
-- :'<,'>ConcAnalyse       report on the selected lines
-- The report opens in a new split (:vertical ConcAnalyse for a vertical one).

if vim.g.loaded_conc_lsp then
  return
end
vim.g.loaded_conc_lsp = true

local NAME = 'conc_lsp' -- the config's name (lsp/conc_lsp.lua) and the client's
local ERROR = vim.log.levels.ERROR

local function notify(message, level)
  vim.notify('conc-lsp: ' .. message, level or ERROR, { title = 'conc-lsp' })
end

if vim.fn.has('nvim-0.11') == 0 then
  notify('needs Neovim 0.11 or newer (this is ' .. tostring(vim.version()) .. ')')
  return
end

local group = vim.api.nvim_create_augroup('conc_lsp', { clear = true })

-- Neovim 0.11 only writes to its log file when a server's command is missing,
-- and tries again for every Python buffer: say it once, where it is seen.
local told_missing = false
vim.api.nvim_create_autocmd('FileType', {
  group = group,
  pattern = 'python',
  desc = 'conc-lsp: say once when the server command is missing',
  callback = function(args)
    if told_missing or vim.bo[args.buf].buftype ~= '' or not vim.lsp.is_enabled(NAME) then
      return
    end
    local config = vim.lsp.config[NAME]
    local cmd = config and config.cmd
    if type(cmd) == 'table' and cmd[1] and vim.fn.executable(cmd[1]) == 0 then
      told_missing = true
      notify(
        ("server not started: '%s' is not an executable on PATH. Install conc-lsp "
          .. "(pip install -e . in its clone puts it in .venv/bin), or point the config at it: "
          .. "vim.lsp.config('conc_lsp', { cmd = { '/path/to/.venv/bin/conc-lsp', 'serve' } })"):format(
          cmd[1]
        )
      )
    end
  end,
})

vim.api.nvim_create_autocmd('LspAttach', {
  group = group,
  desc = 'conc-lsp: inlay hints on (and code lenses, if asked for)',
  callback = function(args)
    local client = vim.lsp.get_client_by_id(args.data.client_id)
    if not client or client.name ~= NAME then
      return
    end
    if vim.g.conc_lsp_inlay_hints ~= false then
      vim.lsp.inlay_hint.enable(true, { bufnr = args.buf })
    end
    if vim.g.conc_lsp_codelens == true and client:supports_method('textDocument/codeLens') then
      vim.lsp.codelens.refresh({ bufnr = args.buf })
      -- one group per buffer: a restarted server does not add a second refresh
      local lens_group = vim.api.nvim_create_augroup('conc_lsp_codelens_' .. args.buf, { clear = true })
      vim.api.nvim_create_autocmd({ 'BufEnter', 'InsertLeave', 'TextChanged' }, {
        group = lens_group,
        buffer = args.buf,
        desc = 'conc-lsp: refresh code lenses',
        callback = function()
          vim.lsp.codelens.refresh({ bufnr = args.buf })
        end,
      })
    end
  end,
})

-- :ConcAnalyse ------------------------------------------------------------

local report_count = 0

--- Shows the report in a new scratch split.
---@param markdown string
---@param uri string
---@param mods string command modifiers (:vertical, :tab, ...)
local function show_report(markdown, uri, mods)
  vim.cmd((mods ~= '' and mods .. ' ' or '') .. 'new')
  local buf = vim.api.nvim_get_current_buf()
  vim.bo[buf].buftype = 'nofile'
  vim.bo[buf].bufhidden = 'wipe'
  vim.bo[buf].swapfile = false
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, vim.split(markdown, '\n', { plain = true }))
  vim.bo[buf].filetype = 'markdown'
  vim.bo[buf].modified = false
  vim.bo[buf].modifiable = false
  -- named after the report (the server also saves it as a file: `uri`)
  local name = 'conc-analyse://' .. vim.fn.fnamemodify(vim.uri_to_fname(uri), ':t')
  if not pcall(vim.api.nvim_buf_set_name, buf, name) then
    report_count = report_count + 1
    pcall(vim.api.nvim_buf_set_name, buf, ('%s (%d)'):format(name, report_count))
  end
  vim.b[buf].conc_lsp_report_uri = uri
end

local COMMAND = 'conc.analyse'
local pending = {} ---@type table<integer, integer> client id -> conc.analyse requests in flight

--- Asks the server for a report and shows it in a split; any error is one message.
---@param client vim.lsp.Client
---@param bufnr integer
---@param arguments table [uri], [uri, qualname] or [uri, {start=, end=}]
---@param mods string
local function request_report(client, bufnr, arguments, mods)
  local params = { command = COMMAND, arguments = arguments }
  pending[client.id] = (pending[client.id] or 0) + 1
  local ok = client:request('workspace/executeCommand', params, function(err, result)
    pending[client.id] = math.max((pending[client.id] or 1) - 1, 0)
    if err then
      local message = type(err) == 'table' and tostring(err.message) or tostring(err)
      if message:find(COMMAND, 1, true) and (message:find('not defined') or message:find('not found')) then
        message = 'the server has no conc.analyse command (update conc-lsp)'
      end
      notify((':ConcAnalyse failed: %s'):format(message))
    elseif type(result) ~= 'table' or type(result.markdown) ~= 'string' then
      notify(':ConcAnalyse failed: the server sent no report (' .. vim.inspect(result) .. ')')
    else
      show_report(result.markdown, type(result.uri) == 'string' and result.uri or arguments[1], mods)
    end
  end, bufnr)
  if not ok then
    pending[client.id] = math.max(pending[client.id] - 1, 0)
    notify(':ConcAnalyse failed: the server is not running')
  end
end

-- While a report is on its way the server also asks to open the copy it saved
-- (window/showDocument), which would replace the code in the current window:
-- the split is enough.  Other showDocument requests go to Neovim's handler.
vim.lsp.config(NAME, {
  handlers = {
    ['window/showDocument'] = function(err, params, ctx, config)
      if (pending[ctx.client_id] or 0) > 0 and type(params) == 'table' and not params.external then
        return { success = true }
      end
      return vim.lsp.handlers['window/showDocument'](err, params, ctx, config)
    end,
  },
})

-- The server's code lenses run conc.analyse too (vim.lsp.codelens.run()):
-- the report then opens the same way.
vim.lsp.commands[COMMAND] = function(command, ctx)
  local client = vim.lsp.get_client_by_id(ctx.client_id)
  if client then
    request_report(client, ctx.bufnr, command.arguments or { vim.uri_from_bufnr(ctx.bufnr) }, '')
  end
end

local function analyse(opts)
  local bufnr = vim.api.nvim_get_current_buf()
  local client = vim.lsp.get_clients({ bufnr = bufnr, name = NAME })[1]
  if not client then
    notify(':ConcAnalyse: the server is not attached to this buffer (is it a Python file? see :checkhealth vim.lsp)')
    return
  end
  local arguments = { vim.uri_from_bufnr(bufnr) }
  if opts.range > 0 and opts.args ~= '' then
    notify(':ConcAnalyse: give a range or a function name, not both')
    return
  elseif opts.range > 0 then
    arguments[2] = { start = opts.line1 - 1, ['end'] = opts.line2 - 1 }
  elseif opts.args ~= '' then
    arguments[2] = opts.args
  end
  request_report(client, bufnr, arguments, opts.mods or '')
end

vim.api.nvim_create_user_command('ConcAnalyse', analyse, {
  nargs = '?',
  range = true,
  desc = 'conc-lsp: concurrency report for the file, a function (qualname) or the selected lines',
})

if vim.g.conc_lsp_enable ~= false then
  vim.lsp.enable(NAME)
end
