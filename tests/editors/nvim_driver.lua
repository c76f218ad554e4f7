-- Drives a real headless Neovim with the repository's editors/nvim config and
-- writes what Neovim holds as JSON for tests/editors/test_neovim.py.
--
--   nvim --headless -u NONE -i NONE -n -l nvim_driver.lua MODE CONFIG_DIR WORK_DIR OUT_JSON
--
-- MODE "main": WORK_DIR holds wide.py (non-ASCII text before an await),
--   cache.py (hints.show 'all' and 'context'), fix.py (a CONC101 finding),
--   noqa.py, broken.py, lens.py and long.py.
-- MODE "missing": the server command does not exist; open two Python files
--   and record the notifications.
--
-- Every wait is bounded; a step that fails records its error and the next
-- step still runs, so the JSON always says how far it got.

local mode, config_dir, work, out = arg[1], arg[2], arg[3], arg[4]
local TIMEOUT = 15000 -- ms, per wait
local RESOLVE_TIMEOUT = 45000 -- ms: jedi's first answer (a worker process starts)

local result = { mode = mode, errors = {}, notes = {} }

-- Record every notification (the plugin's messages go through vim.notify).
vim.notify = function(message, level)
  table.insert(result.notes, { message = tostring(message), level = level or vim.log.levels.INFO })
end

-- -u NONE loads no plugin and no filetype detection: load the config as a
-- user's runtimepath would.
vim.cmd('filetype on')
vim.o.lines = 100
vim.o.columns = 200
vim.opt.runtimepath:prepend(config_dir)
vim.g.conc_lsp_codelens = true
vim.cmd('runtime! plugin/conc_lsp.lua')

local function wait_for(what, condition, timeout)
  if not vim.wait(timeout or TIMEOUT, condition, 20) then
    error('timed out waiting for ' .. what, 0)
  end
end

local write_result

local function step(name, fn)
  local started = vim.uv.hrtime()
  local ok, err = pcall(fn)
  result[name .. '_ms'] = math.floor((vim.uv.hrtime() - started) / 1e6)
  if not ok then
    table.insert(result.errors, name .. ': ' .. tostring(err))
  end
  write_result() -- after each step: a crash still leaves how far it got
end

local function client_for(buf)
  return vim.lsp.get_clients({ bufnr = buf, name = 'conc_lsp' })[1]
end

local function open(path)
  vim.cmd.edit(vim.fn.fnameescape(path))
  local buf = vim.api.nvim_get_current_buf()
  wait_for('the conc_lsp client to attach to ' .. path, function()
    local client = client_for(buf)
    return client ~= nil and client.initialized == true
  end)
  return buf
end

local function label_text(label)
  if type(label) == 'string' then
    return label
  end
  local parts = {}
  for _, part in ipairs(label) do
    table.insert(parts, part.value)
  end
  return table.concat(parts)
end

local function hints_of(buf)
  local found = {}
  for _, item in ipairs(vim.lsp.inlay_hint.get({ bufnr = buf })) do
    local hint = item.inlay_hint
    table.insert(found, {
      line = hint.position.line,
      character = hint.position.character,
      label = label_text(hint.label),
      padding_left = hint.paddingLeft == true,
    })
  end
  table.sort(found, function(a, b)
    return a.line < b.line or (a.line == b.line and a.character < b.character)
  end)
  return found
end

local function diagnostics_of(buf)
  local found = {}
  for _, d in ipairs(vim.diagnostic.get(buf)) do
    table.insert(found, {
      lnum = d.lnum,
      col = d.col,
      end_lnum = d.end_lnum,
      end_col = d.end_col,
      code = d.code,
      severity = d.severity,
      source = d.source,
      message = d.message,
    })
  end
  table.sort(found, function(a, b)
    return a.lnum < b.lnum or (a.lnum == b.lnum and tostring(a.code) < tostring(b.code))
  end)
  return found
end

local function buffer_text(buf)
  return table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), '\n') .. '\n'
end

local function stop_all()
  for _, client in ipairs(vim.lsp.get_clients()) do
    client:stop()
  end
  vim.wait(3000, function()
    return #vim.lsp.get_clients() == 0
  end, 20)
  for _, client in ipairs(vim.lsp.get_clients()) do
    client:stop(true)
  end
end

write_result = function()
  local file = assert(io.open(out, 'w'))
  file:write(vim.json.encode(result))
  file:close()
end

if mode == 'missing' then
  step('missing', function()
    vim.lsp.config('conc_lsp', { cmd = { 'conc-lsp-not-installed-here', 'serve' } })
    vim.cmd.edit(vim.fn.fnameescape(work .. '/a.py'))
    vim.cmd.edit(vim.fn.fnameescape(work .. '/b.py'))
    vim.cmd.split(vim.fn.fnameescape(work .. '/a.py'))
    vim.wait(300, function()
      return false
    end, 20)
    result.filetype = vim.bo.filetype
    result.clients = #vim.lsp.get_clients()
  end)
  write_result()
  stop_all()
  vim.cmd('qall!')
end

-- The client's settings, sent as a user's vim.lsp.config would have them
-- (the server asks Neovim to fetch the hints and lenses again).
local function set_settings(buf, settings)
  local client = client_for(buf)
  client.settings = { ['conc-lsp'] = settings }
  client:notify('workspace/didChangeConfiguration', { settings = client.settings })
end

-- The hints once `changed(hints)` holds and they have stopped changing for
-- a while (a refresh may follow: more answers, resolved labels).
local function settled_hints(buf, what, changed)
  wait_for(what, function()
    return changed(hints_of(buf))
  end)
  local last, stable_since = vim.json.encode(hints_of(buf)), vim.uv.now()
  wait_for('stable inlay hints', function()
    local now = vim.json.encode(hints_of(buf))
    if now ~= last then
      last, stable_since = now, vim.uv.now()
    end
    return vim.uv.now() - stable_since >= 500
  end)
  return hints_of(buf)
end

local wide_buf, fix_buf

-- 1. Inlay hints, with non-ASCII text before an await: the whole map
-- (hints.show = 'all'; by default the file's bare checkpoints have none).
step('hints', function()
  wide_buf = open(work .. '/wide.py')
  result.filetype = vim.bo[wide_buf].filetype
  result.offset_encoding = client_for(wide_buf).offset_encoding
  result.inlay_hints_enabled = vim.lsp.inlay_hint.is_enabled({ bufnr = wide_buf })
  set_settings(wide_buf, { hints = { show = 'all' } })
  result.hints = settled_hints(wide_buf, 'inlay hints', function(hints)
    return #hints > 0
  end)
  result.wide_lines = vim.api.nvim_buf_get_lines(wide_buf, 0, -1, false)
end)

-- 1b. hints.show: 'all' (set above), then the default ('context') on the same file.
step('show', function()
  local buf = open(work .. '/cache.py')
  vim.api.nvim_win_set_cursor(0, { 66, 0 })
  vim.cmd('normal! zz')
  result.show_all = settled_hints(buf, 'inlay hints', function(hints)
    return #hints > 0
  end)
  set_settings(buf, vim.empty_dict())
  result.show_context = settled_hints(buf, 'fewer hints', function(hints)
    return #hints > 0 and #hints < #result.show_all
  end)
  result.show_lines = vim.api.nvim_buf_get_lines(buf, 0, -1, false)
end)

-- 2. Diagnostics (pulled by Neovim 0.11) and 3. a quick fix applied through
-- vim.lsp.buf.code_action, as a user's mapping would.
step('fix', function()
  fix_buf = open(work .. '/fix.py')
  wait_for('CONC101 diagnostics', function()
    for _, d in ipairs(vim.diagnostic.get(fix_buf)) do
      if d.code == 'CONC101' then
        return true
      end
    end
    return false
  end)
  result.diagnostics = diagnostics_of(fix_buf)
  local target
  for _, d in ipairs(vim.diagnostic.get(fix_buf)) do
    if d.code == 'CONC101' then
      target = d
    end
  end
  vim.api.nvim_win_set_cursor(0, { target.lnum + 1, target.col })
  local before = vim.api.nvim_buf_get_changedtick(fix_buf)
  local offered = {}
  vim.lsp.buf.code_action({
    apply = true,
    context = { only = { 'quickfix' } },
    filter = function(action)
      table.insert(offered, action.title)
      if action.title:sub(-#'(CONC101)') ~= '(CONC101)' then
        return false -- the fix, not "Disable CONC101 for this line"
      end
      for _, d in ipairs(action.diagnostics or {}) do
        if d.code == 'CONC101' then
          return true
        end
      end
      return false
    end,
  })
  wait_for('the quick fix to change the buffer', function()
    return vim.api.nvim_buf_get_changedtick(fix_buf) ~= before
  end)
  -- let a multi-edit workspace edit finish, then read the text
  vim.wait(100, function()
    return false
  end, 20)
  result.offered_actions = offered
  result.fixed_text = buffer_text(fix_buf)
  result.fixed_modified = vim.bo[fix_buf].modified
  -- the finding goes away once Neovim pulls diagnostics for the new text
  wait_for('CONC101 to go after the fix', function()
    for _, d in ipairs(vim.diagnostic.get(fix_buf)) do
      if d.code == 'CONC101' then
        return false
      end
    end
    return true
  end)
  result.diagnostics_after_fix = diagnostics_of(fix_buf)
end)

-- 4. :ConcAnalyse: whole file, a function by qualname, a range.  Either a
-- report buffer opens or exactly one error notification appears per call.
step('analyse', function()
  vim.api.nvim_set_current_buf(wide_buf)
  vim.cmd('silent! only')
  local client = client_for(wide_buf)
  local sent = {}
  local request = client.request
  client.request = function(self, method, params, ...)
    if method == 'workspace/executeCommand' then
      table.insert(sent, vim.deepcopy(params))
    end
    return request(self, method, params, ...)
  end
  result.capabilities_commands = vim.tbl_get(
    client.server_capabilities,
    'executeCommandProvider',
    'commands'
  ) or {}
  result.analyse = {}
  local uri = vim.uri_from_bufnr(wide_buf)
  local runs = {
    'ConcAnalyse',
    'ConcAnalyse modern',
    '5,8ConcAnalyse',
    -- what vim.lsp.codelens.run() does with the server's "Analyse" lens
    function()
      client:exec_cmd({ title = 'Analyse', command = 'conc.analyse', arguments = { uri, 'modern' } })
    end,
  }
  for _, command in ipairs(runs) do
    vim.api.nvim_set_current_buf(wide_buf)
    vim.cmd('silent! only')
    local notes_before = #result.notes
    local buffers_before = #vim.api.nvim_list_bufs()
    if type(command) == 'function' then
      command()
      command = 'exec_cmd'
    else
      vim.cmd(command)
    end
    wait_for('a report or a message from :' .. command, function()
      return #result.notes > notes_before or #vim.api.nvim_list_bufs() > buffers_before
    end)
    -- a second message would come right after the first: give it the chance
    vim.wait(200, function()
      return false
    end, 20)
    local run = { command = command, notes = vim.list_slice(result.notes, notes_before + 1) }
    run.window_files = {}
    for _, win in ipairs(vim.api.nvim_tabpage_list_wins(0)) do
      local name = vim.api.nvim_buf_get_name(vim.api.nvim_win_get_buf(win))
      table.insert(run.window_files, name:match('^%a[%w+.-]*://') and name or vim.fn.fnamemodify(name, ':t'))
    end
    table.sort(run.window_files)
    local buf = vim.api.nvim_get_current_buf()
    if buf ~= wide_buf then
      run.report = {
        lines = vim.api.nvim_buf_get_lines(buf, 0, -1, false),
        filetype = vim.bo[buf].filetype,
        buftype = vim.bo[buf].buftype,
        bufhidden = vim.bo[buf].bufhidden,
        swapfile = vim.bo[buf].swapfile,
        modified = vim.bo[buf].modified,
        name = vim.api.nvim_buf_get_name(buf),
        windows = #vim.api.nvim_tabpage_list_wins(0),
      }
    end
    table.insert(result.analyse, run)
  end
  client.request = nil -- back to the class method
  result.analyse_sent = sent
  result.wide_uri = vim.uri_from_bufnr(wide_buf)
end)

local function lenses_of(buf)
  local found = {}
  for _, lens in ipairs(vim.lsp.codelens.get(buf)) do
    table.insert(found, {
      line = lens.range.start.line,
      title = lens.command and lens.command.title,
      command = lens.command and lens.command.command,
      arguments = lens.command and lens.command.arguments,
    })
  end
  table.sort(found, function(a, b)
    return a.line < b.line
  end)
  return found
end

local function has_code_at(buf, code, lnum)
  for _, d in ipairs(vim.diagnostic.get(buf)) do
    if d.code == code and (lnum == nil or d.lnum == lnum) then
      return true
    end
  end
  return false
end

-- 5. The `lens` setting: default "findings", then "all", then "off" (the
-- server asks Neovim to fetch the lenses again: workspace/codeLens/refresh).
step('lens', function()
  local buf = open(work .. '/lens.py')
  result.lens_uri = vim.uri_from_bufnr(buf)
  wait_for('code lenses', function()
    return #vim.lsp.codelens.get(buf) > 0
  end)
  result.lenses_default = lenses_of(buf)
  set_settings(buf, { lens = 'all' })
  wait_for('a lens on every async function', function()
    return #vim.lsp.codelens.get(buf) == 2
  end)
  result.lenses_all = lenses_of(buf)
  set_settings(buf, { lens = 'off' })
  wait_for('no lens', function()
    return #vim.lsp.codelens.get(buf) == 0
  end)
  result.lenses_off = lenses_of(buf)
  set_settings(buf, vim.empty_dict())
  result.completion = vim.fn.getcompletion('ConcAnalyse ', 'cmdline')
  result.completion_q = vim.fn.getcompletion('ConcAnalyse q', 'cmdline')
end)

-- 6. "Disable CONC101 for this line" applied through vim.lsp.buf.code_action.
step('noqa', function()
  local buf = open(work .. '/noqa.py')
  wait_for('CONC101 diagnostics', function()
    return has_code_at(buf, 'CONC101')
  end)
  local target
  for _, d in ipairs(vim.diagnostic.get(buf)) do
    if d.code == 'CONC101' then
      target = d
    end
  end
  vim.api.nvim_win_set_cursor(0, { target.lnum + 1, target.col })
  local before = vim.api.nvim_buf_get_changedtick(buf)
  local offered = {}
  vim.lsp.buf.code_action({
    apply = true,
    context = { only = { 'quickfix' } },
    filter = function(action)
      table.insert(offered, action.title)
      return action.title == 'Disable CONC101 for this line'
    end,
  })
  wait_for('the noqa action to change the buffer', function()
    return vim.api.nvim_buf_get_changedtick(buf) ~= before
  end)
  result.noqa_offered = offered
  result.noqa_text = buffer_text(buf)
  wait_for('CONC101 to go after the noqa comment', function()
    return not has_code_at(buf, 'CONC101')
  end)
  result.noqa_diagnostics_after = diagnostics_of(buf)
end)

-- 7. A syntax error typed in the function: its diagnostic stays, one line lower.
step('syntax', function()
  local buf = open(work .. '/broken.py')
  wait_for('CONC101 on line 13', function()
    return has_code_at(buf, 'CONC101', 12)
  end)
  vim.api.nvim_buf_set_lines(buf, 10, 10, false, { '        x = (' })
  wait_for('CONC101 moved to line 14 while the function does not parse', function()
    return has_code_at(buf, 'CONC101', 13)
  end)
  -- the server has answered for the broken text: nothing else arrives later
  vim.wait(1000, function()
    return false
  end, 50)
  result.syntax_diagnostics = diagnostics_of(buf)
  result.syntax_text = buffer_text(buf)
  vim.api.nvim_buf_set_lines(buf, 10, 11, false, {})
  wait_for('CONC101 back on line 13', function()
    return has_code_at(buf, 'CONC101', 12)
  end)
  result.syntax_diagnostics_fixed = diagnostics_of(buf)
end)

-- 8. :ConcAnalyse's references: plain `L13`, <CR> jumps, the quickfix list.
step('report_links', function()
  local buf = vim.fn.bufnr(work .. '/broken.py')
  vim.api.nvim_set_current_buf(buf)
  vim.cmd('silent! only')
  local buffers_before = #vim.api.nvim_list_bufs()
  vim.cmd('ConcAnalyse')
  wait_for('the report', function()
    return #vim.api.nvim_list_bufs() > buffers_before
  end)
  local report = vim.api.nvim_get_current_buf()
  local lines = vim.api.nvim_buf_get_lines(report, 0, -1, false)
  result.links_report = lines
  local quickfix = vim.fn.getqflist({ title = 1, items = 1 })
  result.links_quickfix = { title = quickfix.title, items = {} }
  for _, item in ipairs(quickfix.items) do
    table.insert(result.links_quickfix.items, { bufnr = item.bufnr, lnum = item.lnum, text = item.text })
  end
  result.links_source_buf = buf
  local heading
  for index, line in ipairs(lines) do
    if line:match('^#### 1%. CONC101') then
      heading = index
    end
  end
  vim.api.nvim_win_set_cursor(0, { heading, 0 })
  vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes('<CR>', true, false, true), 'x', false)
  result.links_jump = {
    buffer_is_source = vim.api.nvim_get_current_buf() == buf,
    line = vim.api.nvim_win_get_cursor(0)[1],
    windows = #vim.api.nvim_tabpage_list_wins(0),
  }
end)

-- 9. The lines on screen: after Neovim's whole-buffer request, the plugin asks
-- for the visible range (the server resolves the last range asked first).
step('visible', function()
  vim.cmd('silent! only')
  local ranges = {}
  local client = client_for(vim.api.nvim_get_current_buf())
  local request = client.request
  client.request = function(self, method, params, ...)
    if method == 'textDocument/inlayHint' then
      table.insert(ranges, { params.range.start.line, params.range['end'].line })
    end
    return request(self, method, params, ...)
  end
  vim.cmd('20split ' .. vim.fn.fnameescape(work .. '/long.py'))
  local buf = vim.api.nvim_get_current_buf()
  local function visible()
    return { vim.fn.line('w0') - 1, vim.fn.line('w$') }
  end
  local function last_is_visible()
    local last = ranges[#ranges]
    return last ~= nil and last[1] == visible()[1] and last[2] == visible()[2]
  end
  wait_for('a request for the lines on screen', last_is_visible)
  result.visible_on_open = { ranges = vim.deepcopy(ranges), visible = visible(), lines = vim.api.nvim_buf_line_count(buf) }
  vim.cmd('normal! 200Gzt')
  -- WinScrolled fires from the main loop, which a headless `-l` script does
  -- not run: fire it as the main loop would after that scroll
  vim.api.nvim_exec_autocmds('WinScrolled', { pattern = tostring(vim.api.nvim_get_current_win()) })
  wait_for('a request for the lines on screen after a scroll', last_is_visible)
  result.visible_after_scroll = { ranges = vim.deepcopy(ranges), visible = visible() }
  client.request = nil
end)

-- 10. A resolved label survives an edit elsewhere: a function added above
-- moves the line down, and every hint Neovim holds for it afterwards is the
-- resolved one (never the plain label while the server works again).
step('resolved_edit', function()
  vim.cmd('silent! only')
  local buf = open(work .. '/resolved.py')
  local line = 11 -- `await helper()` (0-based)
  local function labels_at(lnum)
    local found = {}
    for _, hint in ipairs(hints_of(buf)) do
      if hint.line == lnum then
        table.insert(found, hint.label)
      end
    end
    return table.concat(found, ' | ')
  end
  wait_for('the resolved label', function()
    return labels_at(line):find('<- no checkpoint', 1, true) == 1
  end, RESOLVE_TIMEOUT)
  result.resolved_before = labels_at(line)
  local added = { '', '', 'async def other(ev: trio.Event) -> None:', '    await ev.wait()' }
  vim.api.nvim_buf_set_lines(buf, 2, 2, false, added)
  local moved = line + #added
  local seen, last, since = {}, nil, vim.uv.now()
  wait_for('the hints of the edited text, settled', function()
    local now = labels_at(moved)
    if now ~= '' and now ~= seen[#seen] then
      table.insert(seen, now)
    end
    if now ~= last then
      last, since = now, vim.uv.now()
    end
    return now ~= '' and vim.uv.now() - since >= 1500
  end, RESOLVE_TIMEOUT)
  result.resolved_seen_after_edit = seen
  result.resolved_text = buffer_text(buf)
end)

write_result()
stop_all()
vim.cmd('qall!')
