-- lua/fastc/slice.lua — fc.slice: a learning-rate range spread over
-- parameter groups (fastai's `slice(lo, hi)` for discriminative rates).
--
--   fc.slice(1e-3)        the last group gets 1e-3, every other 1e-4
--   fc.slice(1e-5, 1e-3)  geometric steps from 1e-5 (first) to 1e-3 (last)
--
-- fc.slice_values(v, n) turns a number, a per-group list or a slice into a
-- list of n values; optimizers use it in set_hyper.
return function(fc)
  local fmt = string.format
  local Slice = {}
  Slice.__index = Slice
  Slice.__tostring = function(s)
    return s.start and fmt('slice(%g, %g)', s.start, s.stop) or fmt('slice(%g)', s.stop)
  end

  function fc.slice(a, b)
    if b == nil then
      if type(a) ~= 'number' then error('fc.slice: expected a number', 2) end
      return setmetatable({ stop = a }, Slice)
    end
    if type(a) ~= 'number' or type(b) ~= 'number' then error('fc.slice: expected two numbers', 2) end
    return setmetatable({ start = a, stop = b }, Slice)
  end

  function fc.is_slice(v) return getmetatable(v) == Slice end

  -- n values from start to stop, each a constant multiple of the last.
  function fc.even_mults(start, stop, n)
    if n == 1 then return { stop } end
    local step = (stop / start) ^ (1 / (n - 1))
    local out = {}
    for i = 0, n - 1 do out[i + 1] = start * step ^ i end
    return out
  end

  function fc.slice_values(v, n, what)
    what = what or 'value'
    if type(v) == 'number' then
      local out = {}
      for i = 1, n do out[i] = v end
      return out
    end
    if fc.is_slice(v) then
      if v.start then return fc.even_mults(v.start, v.stop, n) end
      local out = {}
      for i = 1, n - 1 do out[i] = v.stop / 10 end
      out[n] = v.stop
      return out
    end
    if type(v) == 'table' then
      if #v ~= n then
        error(fmt('%s: got %d values for %d parameter groups', what, #v, n), 3)
      end
      local out = {}
      for i = 1, n do out[i] = v[i] end
      return out
    end
    error(fmt('%s: expected a number, a list or an fc.slice, got %s', what, type(v)), 3)
  end
end
