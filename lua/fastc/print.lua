-- lua/fastc/print.lua — tostring(t): PyTorch's layout, Torch7's trailer.
--
--   tensor([[ 1.5000, -2.0000],
--           [ 0.2500,  3.0000]])
--   [float32 tensor, size 2x2]
--
-- Tensors over 1000 elements show the first and last 3 entries of each dim.
local ffi = require 'ffi'

return function(fc, Tensor, H)
  local fmt, floor, abs, huge = string.format, math.floor, math.abs, math.huge
  local SUMMARY_ELEMS, EDGE = 1000, 3
  local ELLIPSIS = {}

  -- Nested Lua tables of the displayed values; ELLIPSIS marks skipped ones.
  local function gather(t, summarize)
    if t:dim() == 0 then return t:item() end
    local n = t:size(1)
    local out = {}
    local function add(i)
      local row = t:select(1, i)
      out[#out + 1] = row:dim() == 0 and row:item() or gather(row, summarize)
    end
    if summarize and n > 2 * EDGE then
      for i = 1, EDGE do add(i) end
      out[#out + 1] = ELLIPSIS
      for i = n - EDGE + 1, n do add(i) end
    else
      for i = 1, n do add(i) end
    end
    return out
  end

  local function each_value(x, fn)
    if type(x) == 'table' and x ~= ELLIPSIS then
      for i = 1, #x do each_value(x[i], fn) end
    elseif x ~= ELLIPSIS then
      fn(x)
    end
  end

  -- One format for every element, chosen from the range of finite values.
  local function number_format(values, dtype)
    if dtype == 'bool' then return function(v) return v and 'true' or 'false' end end
    local is_float = dtype:match('^float') or dtype == 'bfloat16'
    if not is_float then return function(v) return fmt('%d', v) end end
    local maxa, mina, integral = 0, huge, true
    each_value(values, function(v)
      if v == v and v ~= huge and v ~= -huge then
        local a = abs(v)
        if a > maxa then maxa = a end
        if a > 0 and a < mina then mina = a end
        if v ~= floor(v) then integral = false end
      end
    end)
    local function special(v)
      if v ~= v then return 'nan' end
      if v == huge then return 'inf' end
      if v == -huge then return '-inf' end
    end
    local scientific = maxa >= 1e8 or (mina < 1e-4 and mina ~= huge) or (mina ~= huge and maxa / mina > 1e3 and not integral)
    local f = integral and not scientific and '%.0f.' or scientific and '%.4e' or '%.4f'
    return function(v) return special(v) or fmt(f, v) end
  end

  local function render(values, format, indent)
    if type(values) ~= 'table' then return format(values) end
    local leaf = type(values[1]) ~= 'table' or values[1] == ELLIPSIS
    local parts = {}
    for i = 1, #values do
      local v = values[i]
      if v == ELLIPSIS then parts[i] = '...'
      elseif leaf then parts[i] = format(v)
      else parts[i] = render(v, format, indent .. ' ') end
    end
    local sep = leaf and ', ' or (',\n' .. indent .. ' ')
    if not leaf and type(values[1][1]) == 'table' then sep = ',\n\n' .. indent .. ' ' end
    return '[' .. table.concat(parts, sep) .. ']'
  end

  -- Pads leaf numbers to one width across the whole tensor, as PyTorch does.
  local function uniform_format(values, format)
    local width = 0
    each_value(values, function(v) local s = format(v); if #s > width then width = #s end end)
    return function(v) local s = format(v); return string.rep(' ', width - #s) .. s end
  end

  local function tostring_tensor(t)
    if t.p.storage == nil then return '[freed tensor]' end
    local dtype = t.dtype
    local size = t:dim() == 0 and 'scalar' or ('size ' .. table.concat(t:size(), 'x'))
    local device = t.device == 'cpu' and '' or (', ' .. t.device)
    local trailer = fmt('[%s tensor, %s%s]', dtype, size, device)
    if t:numel() == 0 then return 'tensor([])\n' .. trailer end
    local values = gather(t, t:numel() > SUMMARY_ELEMS)
    local format = uniform_format(values, number_format(values, dtype))
    return 'tensor(' .. render(values, format, '       ') .. ')\n' .. trailer
  end

  H.mt.__tostring = tostring_tensor
  return ffi
end
