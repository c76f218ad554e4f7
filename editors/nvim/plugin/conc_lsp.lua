-- conc-lsp for Neovim 0.11+: starts the server for Python buffers (the config
-- is lsp/conc_lsp.lua beside this directory), turns inlay hints on where it
-- attaches, and defines :ConcAnalyse.
--
-- Options, set in init.lua (before plugins load):
--   vim.g.conc_lsp_enable = false        -- do not call vim.lsp.enable('conc_lsp')
--                                        -- (e.g. you enable it yourself)
--   vim.g.conc_lsp_inlay_hints = false   -- leave inlay hints off
--   vim.g.conc_lsp_codelens = true       -- show the server's code lenses
--                                        -- (`N checkpoints · 1 finding · Analyse concurrency`,
--                                        -- where there are findings: the `lens` setting);
--                                        -- run one with :lua vim.lsp.codelens.run()
--
-- :ConcAnalyse            report on the whole file
-- :ConcAnalyse {qualname} report on one function, e.g. :ConcAnalyse _Cache.run_ctx
--                         (<Tab> completes the functions and classes of the buffer)
-- :'<,'>ConcAnalyse       report on the selected lines
-- The report opens in a new split (:vertical ConcAnalyse for a vertical one).
-- Its line references read `L35`: <CR> on one jumps to that line of the code;
-- the findings also go to a new quickfix list (:copen, :cnext).
--
-- Neovim 0.11 asks for the inlay hints of the whole buffer; the plugin then
-- also asks for the lines on screen, so that the server resolves those first.

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

-- The lines on screen first ------------------------------------------------

--- Asks the server for the inlay hints of the lines each window shows (the
--- answer is not used: Neovim keeps its own, of the whole buffer). The server
--- resolves the last range asked for first; this request follows Neovim's.
---@param bufnr integer
local function send_visible_range(bufnr)
  if not vim.api.nvim_buf_is_valid(bufnr) then
    return
  end
  for _, client in ipairs(vim.lsp.get_clients({ bufnr = bufnr, name = NAME })) do
    if client:supports_method('textDocument/inlayHint') then
      for _, win in ipairs(vim.fn.win_findbuf(bufnr)) do
        local first = vim.fn.line('w0', win) - 1
        local last = vim.fn.line('w$', win) -- exclusive: the start of the next line
        client:request('textDocument/inlayHint', {
          textDocument = { uri = vim.uri_from_bufnr(bufnr) },
          range = { start = { line = first, character = 0 }, ['end'] = { line = last, character = 0 } },
        }, function() end, bufnr)
      end
    end
  end
end

local visible_timers = {} ---@type table<integer, uv.uv_timer_t>

--- send_visible_range once things settle (after Neovim's own request).
---@param bufnr integer
local function visible_soon(bufnr)
  local timer = visible_timers[bufnr]
  if timer == nil then
    timer = assert(vim.uv.new_timer())
    visible_timers[bufnr] = timer
  end
  timer:stop()
  timer:start(80, 0, vim.schedule_wrap(function()
    send_visible_range(bufnr)
  end))
end

vim.api.nvim_create_autocmd('LspNotify', {
  group = group,
  desc = 'conc-lsp: the lines on screen after each change',
  callback = function(args)
    local method = args.data.method
    local client = vim.lsp.get_client_by_id(args.data.client_id)
    if client and client.name == NAME and (method == 'textDocument/didOpen' or method == 'textDocument/didChange') then
      visible_soon(args.buf)
    end
  end,
})

vim.api.nvim_create_autocmd({ 'WinScrolled', 'BufWinEnter' }, {
  group = group,
  desc = 'conc-lsp: the lines on screen after a scroll',
  callback = function(args)
    if #vim.lsp.get_clients({ bufnr = args.buf, name = NAME }) > 0 then
      visible_soon(args.buf)
    end
  end,
})

vim.api.nvim_create_autocmd('BufWipeout', {
  group = group,
  callback = function(args)
    local timer = visible_timers[args.buf]
    if timer then
      visible_timers[args.buf] = nil
      timer:stop()
      timer:close()
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

--- The line reference (`L35`) under the cursor, else the first on the line.
---@return integer?
local function reference_at_cursor()
  local line = vim.api.nvim_get_current_line()
  local col = vim.api.nvim_win_get_cursor(0)[2] + 1
  local first
  for start, number, finish in line:gmatch('()L(%d+)()') do
    local before = start > 1 and line:sub(start - 1, start - 1) or ''
    if not before:match('[%w_]') then
      first = first or tonumber(number)
      if start <= col and col < finish then
        return tonumber(number)
      end
    end
  end
  return first
end

--- <CR> in a report: the code at that line, in a window showing it (or a new split).
---@param source integer the code's buffer
local function jump_to_reference(source)
  local number = reference_at_cursor()
  if number == nil then
    return
  end
  if not vim.api.nvim_buf_is_valid(source) then
    notify('the code of this report is no longer open')
    return
  end
  local target = vim.fn.win_findbuf(source)[1]
  if target then
    vim.api.nvim_set_current_win(target)
  else
    vim.cmd('split')
    vim.api.nvim_win_set_buf(0, source)
  end
  local last = vim.api.nvim_buf_line_count(source)
  vim.api.nvim_win_set_cursor(0, { math.min(number, last), 0 })
  vim.cmd('normal! ^')
end

--- The findings of a report (its race-trace headings) as a new quickfix list.
---@param lines string[]
---@param source integer
---@param title string
local function findings_to_quickfix(lines, source, title)
  local items = {}
  for _, text in ipairs(lines) do
    local code, name, number = text:match('^#### %d+%. (CONC%d+) (.-) at L(%d+)$')
    if code then
      table.insert(items, { bufnr = source, lnum = tonumber(number), col = 1, text = code .. ' ' .. name })
    end
  end
  if #items > 0 then
    vim.fn.setqflist({}, ' ', { title = 'conc-lsp: ' .. title, items = items })
  end
end

--- Shows the report in a new scratch split.
---@param markdown string
---@param uri string
---@param mods string command modifiers (:vertical, :tab, ...)
---@param source integer the buffer of the code
local function show_report(markdown, uri, mods, source)
  -- plain `L35` references: <CR> follows them (the server writes links for previews)
  markdown = markdown:gsub('%[L(%d+)%]%(<?[^)]*#L%d+>?%)', 'L%1')
  local lines = vim.split(markdown, '\n', { plain = true })
  vim.cmd((mods ~= '' and mods .. ' ' or '') .. 'new')
  local buf = vim.api.nvim_get_current_buf()
  vim.bo[buf].buftype = 'nofile'
  vim.bo[buf].bufhidden = 'wipe'
  vim.bo[buf].swapfile = false
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
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
  vim.b[buf].conc_lsp_source = source
  vim.keymap.set('n', '<CR>', function()
    jump_to_reference(source)
  end, { buffer = buf, desc = 'conc-lsp: go to the line of the code this reference names' })
  findings_to_quickfix(lines, source, lines[1] and lines[1]:gsub('^#+%s*', '') or 'report')
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
      local uri = type(result.uri) == 'string' and result.uri or arguments[1]
      show_report(result.markdown, uri, mods, bufnr)
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
  -- Neovim 0.11 has no handler for workspace/codeLens/refresh (sent when the
  -- `lens` setting changes): the plugin says it has one, below.
  capabilities = { workspace = { codeLens = { refreshSupport = true } } },
  handlers = {
    ['workspace/codeLens/refresh'] = function(_, _, ctx)
      if vim.g.conc_lsp_codelens == true then
        for _, bufnr in ipairs(vim.lsp.get_buffers_by_client_id(ctx.client_id)) do
          vim.lsp.codelens.refresh({ bufnr = bufnr })
        end
      end
      return vim.NIL
    end,
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

--- The qualified names of the buffer's functions and classes, as the report
--- names them (`Class.method`, `outer.<locals>.inner`), for completion.
---@param bufnr integer
---@return string[]
local function qualified_names(bufnr)
  local names, stack = {}, {} ---@type string[], {indent: integer, name: string, def: boolean}[]
  for _, line in ipairs(vim.api.nvim_buf_get_lines(bufnr, 0, -1, false)) do
    local indent, rest = line:match('^(%s*)(%S.*)$')
    if rest and not rest:match('^#') then
      local width = #indent
      while #stack > 0 and stack[#stack].indent >= width do
        table.remove(stack)
      end
      local keyword, name = rest:match('^async%s+(def)%s+([%a_][%w_]*)')
      if not keyword then
        keyword, name = rest:match('^(def)%s+([%a_][%w_]*)')
      end
      if not keyword then
        keyword, name = rest:match('^(class)%s+([%a_][%w_]*)')
      end
      if keyword then
        local parts = {}
        for _, outer in ipairs(stack) do
          table.insert(parts, outer.name)
          if outer.def then
            table.insert(parts, '<locals>')
          end
        end
        table.insert(parts, name)
        table.insert(names, table.concat(parts, '.'))
        table.insert(stack, { indent = width, name = name, def = keyword == 'def' })
      end
    end
  end
  return names
end

vim.api.nvim_create_user_command('ConcAnalyse', analyse, {
  nargs = '?',
  range = true,
  complete = function(lead)
    return vim.tbl_filter(function(name)
      return vim.startswith(name, lead)
    end, qualified_names(vim.api.nvim_get_current_buf()))
  end,
  desc = 'conc-lsp: concurrency report for the file, a function (qualname) or the selected lines',
})

if vim.g.conc_lsp_enable ~= false then
  vim.lsp.enable(NAME)
end
