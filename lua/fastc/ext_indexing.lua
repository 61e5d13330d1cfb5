-- lua/fastc/ext_indexing.lua — t[i], t[{...}] and their assignments, #t.
--
-- Torch7's rules, 1-based: t[i] selects along the first dim (a number for a
-- 1-D tensor); t[{i, {a, b}, {}}] selects, takes the inclusive range a..b,
-- or keeps a whole dim; {a, b, step} strides; negative positions count from
-- the end. A bool tensor key masks, an int64 tensor key picks rows.
local ffi = require 'ffi'

return function(fc, Tensor, H)
  local C, wrap, raise, cdim = H.C, H.wrap, H.raise, H.dim
  local floor, fmt = math.floor, string.format

  local props = {
    dtype = function(t) return H.dtype_names[t.p.dtype] end,
    device = function(t)
      local d = t.p.device
      return d.type == C.FC_CPU and 'cpu' or 'cuda:' .. d.index
    end,
    ndim = function(t) return t.p.ndim end,
    is_cuda = function(t) return t.p.device.type == C.FC_CUDA end,
  }
  H.props = props
  H.setters = {}

  -- Position p (1-based, negative from the end) as a 0-based offset in 0..size.
  local function position(p, size, what)
    if type(p) ~= 'number' or p ~= floor(p) then raise(fmt('%s must be an integer, got %s', what, tostring(p))) end
    if p < 0 then p = size + p + 1 end
    return p - 1
  end

  local function range_view(t, d, spec)
    local cd = cdim(t, d)
    local size = tonumber(t.p.shape[cd])
    local a = spec[1] and position(spec[1], size, 'range start') or 0
    local b = size - 1
    if spec[2] then b = position(spec[2], size, 'range end') elseif spec[1] then b = a end
    local step = spec[3] or 1
    if a < 0 or a > size or b >= size or b < a - 1 then
      raise(fmt('index range {%s, %s} out of bounds for dim %d of size %d', tostring(spec[1]),
        tostring(spec[2]), d, size))
    end
    return wrap(C.fc_slice(t.p, cd, a, b + 1, step))
  end

  -- Applies a table key; returns a view (and whether every dim was a number).
  local function table_view(t, key)
    local n = table.maxn(key)
    if n > t.p.ndim then
      raise(fmt('too many indices (%d) for a %d-dim tensor', n, t.p.ndim))
    end
    local r, d, all_numbers = t, 1, n == t.p.ndim
    for i = 1, n do
      local s = key[i]
      if type(s) == 'number' then
        r = r:select(d, s)
      elseif type(s) == 'table' then
        r = range_view(r, d, s)
        d = d + 1
        all_numbers = false
      else
        raise(fmt('index %d must be a number or a {start, end} table, got %s', i, type(s)))
      end
    end
    return r, all_numbers
  end

  local function get(t, k)
    local tk = type(k)
    if tk == 'number' then
      if t.p.ndim == 0 then raise('cannot index a 0-dim tensor; use t:item()') end
      local row = t:select(1, k)
      if t.p.ndim == 1 then return row:item() end
      return row
    elseif tk == 'table' then
      local v, scalar = table_view(t, k)
      if scalar then return v:item() end
      return v
    elseif H.is_tensor(k) then
      if k.p.dtype == C.FC_BOOL then return t:masked_select(k) end
      return t:index_select(1, k)
    end
    raise(fmt('cannot index a tensor with a %s', tk))
  end

  local function assign(view, v)
    if type(v) == 'number' or type(v) == 'boolean' then view:fill_(v) else view:copy_(v) end
  end

  local mt = H.mt
  mt.__index = function(t, k)
    local m = Tensor[k]
    if m ~= nil then return m end
    local prop = props[k]
    if prop then return prop(t) end
    if type(k) == 'string' then return nil end
    return get(t, k)
  end

  mt.__newindex = function(t, k, v)
    local tk = type(k)
    if tk == 'number' then
      if t.p.ndim == 0 then raise('cannot index a 0-dim tensor; use t:fill_(v)') end
      assign(t:select(1, k), v)
    elseif tk == 'table' then
      assign((table_view(t, k)), v)
    elseif H.is_tensor(k) and k.p.dtype == C.FC_BOOL and type(v) == 'number' then
      t:masked_fill_(k, v)
    elseif tk == 'string' and H.setters[k] then
      H.setters[k](t, v)
    else
      raise(fmt('cannot assign to a tensor at a %s key %s', tk, tostring(k)))
    end
  end

  mt.__len = function(t)
    if t.p.ndim == 0 then raise('#t of a 0-dim tensor') end
    return tonumber(t.p.shape[0])
  end
  return ffi
end
