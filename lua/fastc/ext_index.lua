-- lua/fastc/ext_index.lua — joining, indexing, reordering; indices 1-based.
local ffi = require 'ffi'

return function(fc, Tensor, H)
  local C, wrap, check, cdim, raise, fmt = H.C, H.wrap, H.check, H.dim, H.raise, string.format
  local floor = math.floor

  -- An index from Lua: an int64 tensor, or a table / number of 1-based ids.
  local function index_tensor(idx)
    if H.is_tensor(idx) then return idx end
    if type(idx) == 'number' then idx = { idx } end
    if type(idx) ~= 'table' then raise(fmt('expected an index tensor or a table of indices, got %s', type(idx))) end
    return fc.tensor(idx, { dtype = 'int64' })
  end
  H.index_tensor = index_tensor

  local function first_tensor(list)
    if type(list) ~= 'table' or not H.is_tensor(list[1]) then raise('expected a non-empty list of tensors') end
    return list[1]
  end

  function fc.cat(list, dim)
    local n, arr = H.ptrs(list)
    return wrap(C.fc_cat(n, arr, cdim(first_tensor(list), dim or 1)))
  end
  function fc.stack(list, dim)
    local t = first_tensor(list)
    local n, arr = H.ptrs(list)
    return wrap(C.fc_stack(n, arr, cdim(t, dim or 1, t:dim() + 1)))
  end
  Tensor.cat = function(t, others, dim)
    local list = { t }
    for i = 1, #others do list[i + 1] = others[i] end
    return fc.cat(list, dim)
  end

  function Tensor.index_select(t, dim, idx)
    return wrap(C.fc_index_select(t.p, cdim(t, dim), index_tensor(idx).p, 1))
  end
  function Tensor.gather(t, dim, idx)
    return wrap(C.fc_gather(t.p, cdim(t, dim), index_tensor(idx).p, 1))
  end
  local function scatter_fn(cfn, inplace)
    return function(t, dim, idx, src)
      local s = H.tensor(src, t)
      if inplace then
        check(cfn(t.p, cdim(t, dim), index_tensor(idx).p, s.p, 1))
        return t
      end
      return wrap(cfn(t.p, cdim(t, dim), index_tensor(idx).p, s.p, 1))
    end
  end
  Tensor.scatter = scatter_fn(C.fc_scatter)
  Tensor.scatter_ = scatter_fn(C.fc_scatter_, true)
  Tensor.scatter_add = scatter_fn(C.fc_scatter_add)
  Tensor.scatter_add_ = scatter_fn(C.fc_scatter_add_, true)

  local function fill_value(v)
    if type(v) == 'boolean' then return v and 1 or 0 end
    if type(v) ~= 'number' then raise(fmt('masked_fill: value must be a number, got %s', type(v))) end
    return v
  end
  function Tensor.masked_fill(t, mask, v) return wrap(C.fc_masked_fill(t.p, mask.p, fill_value(v))) end
  function Tensor.masked_fill_(t, mask, v) check(C.fc_masked_fill_(t.p, mask.p, fill_value(v))); return t end
  function Tensor.masked_select(t, mask) return wrap(C.fc_masked_select(t.p, mask.p)) end
  function Tensor.nonzero(t) return wrap(C.fc_nonzero(t.p, 1)) end

  -- Class ids from 1: class c sets column c. num_classes -1 infers it.
  function fc.one_hot(idx, num_classes)
    return wrap(C.fc_one_hot(index_tensor(idx).p, num_classes or -1, 1))
  end
  Tensor.one_hot = fc.one_hot

  local function dim_list(t, dims)
    if type(dims) == 'number' then dims = { dims } end
    return H.dims(t, dims)
  end
  function Tensor.flip(t, dims)
    local n, arr = dim_list(t, dims)
    return wrap(C.fc_flip(t.p, n, arr))
  end
  function Tensor.roll(t, shifts, dims)
    if type(shifts) == 'number' then shifts = { shifts } end
    local cshifts = ffi.new('int64_t[?]', #shifts, shifts)
    if dims == nil then return wrap(C.fc_roll(t.p, 0, cshifts, nil)) end
    local n, arr = dim_list(t, dims)
    if n ~= #shifts then raise(fmt('roll: %d shifts for %d dims', #shifts, n)) end
    return wrap(C.fc_roll(t.p, n, cshifts, arr))
  end
  fc.flip, fc.roll = Tensor.flip, Tensor.roll

  -- t:split(size, dim) / t:split({sizes}, dim) and t:chunk(n, dim): lists of views.
  function Tensor.split(t, sizes, dim)
    dim = dim or 1
    local total = t:size(dim)
    local out, at = {}, 1
    if type(sizes) == 'number' then
      if sizes <= 0 or sizes ~= floor(sizes) then raise(fmt('split: size must be a positive integer, got %s', tostring(sizes))) end
      while at <= total do
        local len = math.min(sizes, total - at + 1)
        out[#out + 1] = t:narrow(dim, at, len)
        at = at + len
      end
      return out
    end
    local sum = 0
    for _, s in ipairs(sizes) do sum = sum + s end
    if sum ~= total then raise(fmt('split: sizes add up to %d but dim %d has size %d', sum, dim, total)) end
    for _, s in ipairs(sizes) do
      out[#out + 1] = t:narrow(dim, at, s)
      at = at + s
    end
    return out
  end
  function Tensor.chunk(t, n, dim)
    if n <= 0 then raise(fmt('chunk: number of chunks must be positive, got %d', n)) end
    return Tensor.split(t, math.ceil(t:size(dim or 1) / n), dim)
  end
  fc.split, fc.chunk = Tensor.split, Tensor.chunk
end
