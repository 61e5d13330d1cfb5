-- lua/recipes/util.lua — what the recipes share: command-line options
-- (--name value, --flag, --no-flag) checked against a table of defaults,
-- the usage text, and the final report table.
local M = {}
local fmt = string.format

-- parse(args, defaults, {help = text}): options with the defaults' types
-- (numbers converted, booleans as flags); unknown names are an error.
function M.parse(args, defaults, o)
  local opts = {}
  for k, v in pairs(defaults) do opts[k] = v end
  local i = 1
  while args[i] do
    local a = args[i]
    if a == '-h' or a == '--help' then
      io.write((o and o.help) or 'no help\n')
      os.exit(0)
    end
    local neg, name = a:match('^%-%-(no%-)(.+)$')
    if not name then name = a:match('^%-%-(.+)$') end
    if not name then error(fmt('unexpected argument %q (options are --name value)', a), 0) end
    name = name:gsub('%-', '_')
    local cur = defaults[name]
    if cur == nil and not (o and o.optional and o.optional[name]) then
      error(fmt('unknown option --%s (try --help)', name), 0)
    end
    if type(cur) == 'boolean' then
      opts[name] = not neg
      i = i + 1
    else
      local v = args[i + 1]
      if v == nil then error(fmt('--%s needs a value', name), 0) end
      if type(cur) == 'number' or (o and o.numbers and o.numbers[name]) then
        local n = tonumber(v)
        if not n then error(fmt('--%s expects a number, got %q', name, v), 0) end
        v = n
      end
      opts[name] = v
      i = i + 2
    end
  end
  return opts
end

-- with_defaults(name, defaults, o): the options of a recipe's run(o), the
-- defaults filled in; an unknown key or a missing --data is an error at
-- the caller of run.
function M.with_defaults(name, defaults, o)
  local opts = {}
  for k, v in pairs(defaults) do opts[k] = v end
  for k, v in pairs(o or {}) do
    if defaults[k] == nil then error(fmt('%s: unknown option %q', name, tostring(k)), 3) end
    opts[k] = v
  end
  if opts.data == '' then error(name .. ': --data DIR is required', 3) end
  return opts
end

-- A plain text table: header row, then rows (numbers to 4 decimals).
function M.table(header, rows)
  local cells, widths = { header }, {}
  for _, r in ipairs(rows) do
    local c = {}
    for j, v in ipairs(r) do
      c[j] = type(v) == 'number' and (math.floor(v) == v and tostring(v) or fmt('%.4f', v)) or tostring(v)
    end
    cells[#cells + 1] = c
  end
  for _, r in ipairs(cells) do
    for j, v in ipairs(r) do widths[j] = math.max(widths[j] or 0, #tostring(v)) end
  end
  local lines = {}
  for i, r in ipairs(cells) do
    local parts = {}
    for j, v in ipairs(r) do parts[j] = fmt('%-' .. widths[j] .. 's', tostring(v)) end
    lines[#lines + 1] = table.concat(parts, '  ')
    if i == 1 then
      local sep = {}
      for j = 1, #r do sep[j] = string.rep('-', widths[j]) end
      lines[#lines + 1] = table.concat(sep, '  ')
    end
  end
  return table.concat(lines, '\n')
end

-- The per-epoch table the Recorder kept: {header, rows}.
function M.epoch_table(learn)
  local rec = learn.recorder
  local header = { 'epoch' }
  for _, n in ipairs(rec.metric_names or {}) do
    if n ~= 'epoch' and n ~= 'time' then header[#header + 1] = n end
  end
  local rows = {}
  for i, v in ipairs(rec.values or {}) do
    local r = { i - 1 }
    for _, x in ipairs(v) do r[#r + 1] = x end
    rows[i] = r
  end
  return header, rows
end

-- Seconds on a monotonic clock (the Learner's).
function M.now() return require('fastc').train_util.now() end

-- True when the module `name` is what `fastlua -m` runs (not a require
-- from other code): fastlua sets arg[0] to the module name.
function M.is_main(name)
  return type(arg) == 'table' and arg[0] == name
end

-- When the recipe module `name` is what `fastlua -m` runs: parses the
-- command line against R.defaults and runs R.run, printing an error as
-- "label: message" with exit status 1 instead of a traceback.
function M.main(name, R, label)
  if not M.is_main(name) then return end
  local ok, err = pcall(function() R.run(M.parse(M.cli_args(), R.defaults, { help = R.help })) end)
  if not ok then
    io.stderr:write(label, ': ', tostring(err), '\n')
    os.exit(1)
  end
end

-- The command-line arguments after the module name.
function M.cli_args()
  local out = {}
  for i = 1, #arg do out[i] = arg[i] end
  return out
end

return M
