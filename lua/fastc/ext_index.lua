-- lua/fastc/ext_index.lua — joining, indexing, reordering; every dim and
-- index 1-based.
--
--   fc.cat({a, b}, 2)           fc.stack({a, b})          dims default to 1
--   t:index_select(1, {3, 1})   t:gather(2, idx)          indices: int64/int32 tensors or Lua tables
--   t:scatter(2, idx, src)      t:scatter_add_(2, idx, 1) src a tensor or a number
--   t:masked_fill(mask, 0)      t:masked_select(mask)     masks: bool tensors or tables of booleans
--   t:nonzero()                 fc.one_hot({2, 1}, 3)     1-based coordinates and class ids
--   t:flip(1, 2)  t:roll(1, 2)  t:split(2)  t:chunk(3, 2) split/chunk give Lua lists of views
local ffi = require 'ffi'

return function(fc, Tensor, H)
  local C, wrap, check, cdim, raise = H.C, H.wrap, H.check, H.dim, H.raise
  local is_tensor, fmt, floor, type = H.is_tensor, string.format, math.floor, type

  -- An index from Lua: an int64/int32 tensor, a (nested) table of 1-based
  -- integers, or one integer.
  local function index_tensor(idx, op)
    if is_tensor(idx) then return idx end
    if type(idx) == 'number' then idx = { idx } end
    if type(idx) ~= 'table' then
      raise(fmt('%s: index must be an int64 tensor or a table of integers, got %s', op, type(idx)))
    end
    return fc.tensor(idx, { dtype = 'int64' })
  end
  H.index_tensor = index_tensor

  local function mask_tensor(mask, op)
    if is_tensor(mask) then return mask end
    if type(mask) == 'table' or type(mask) == 'boolean' then return fc.tensor(mask, { dtype = 'bool' }) end
    raise(fmt('%s: mask must be a bool tensor or a table of booleans, got %s', op, type(mask)))
  end

  -- The tensor a list's dim refers to: the first that is not a 1-D empty one
  -- (those join anything, as in PyTorch).
  local function reference(list, op)
    if type(list) ~= 'table' or is_tensor(list) or list[1] == nil then
      raise(fmt('%s: expects a non-empty Lua list of tensors', op))
    end
    for i = 1, #list do
      local t = list[i]
      if is_tensor(t) and not (t.p.ndim == 1 and t.p.numel == 0) then return t end
    end
    return list[1]
  end

  -- ---- joining -------------------------------------------------------------

  function fc.cat(list, dim)
    local ref = reference(list, 'cat')
    local n, arr = H.ptrs(list)
    return wrap(C.fc_cat(n, arr, is_tensor(ref) and cdim(ref, dim or 1) or 0))
  end
  fc.concat, fc.concatenate = fc.cat, fc.cat

  -- The new dim goes at `dim` of the result (1..ndim+1, or negative).
  function fc.stack(list, dim)
    local ref = reference(list, 'stack')
    local n, arr = H.ptrs(list)
    return wrap(C.fc_stack(n, arr, cdim(ref, dim or 1, ref.p.ndim + 1)))
  end

  -- ---- index tensors ---------------------------------------------------------

  function Tensor.index_select(t, dim, idx)
    return wrap(C.fc_index_select(t.p, cdim(t, dim), index_tensor(idx, 'index_select').p, 1))
  end

  function Tensor.gather(t, dim, idx)
    return wrap(C.fc_gather(t.p, cdim(t, dim), index_tensor(idx, 'gather').p, 1))
  end

  -- src: a tensor of t's dtype shaped at least like the index, or a number
  -- (or boolean) written at every index.
  local function scatter_fn(cfn, op, inplace)
    return function(t, dim, idx, src)
      if src == nil then raise(fmt('%s: expects src (a tensor or a number)', op)) end
      local d, i, s = cdim(t, dim), index_tensor(idx, op), H.tensor(src, t)
      if inplace then
        check(cfn(t.p, d, i.p, s.p, 1))
        return t
      end
      return wrap(cfn(t.p, d, i.p, s.p, 1))
    end
  end
  Tensor.scatter = scatter_fn(C.fc_scatter, 'scatter')
  Tensor.scatter_ = scatter_fn(C.fc_scatter_, 'scatter_', true)
  Tensor.scatter_add = scatter_fn(C.fc_scatter_add, 'scatter_add')
  Tensor.scatter_add_ = scatter_fn(C.fc_scatter_add_, 'scatter_add_', true)

  -- ---- masks -------------------------------------------------------------------

  local function fill_value(v, op)
    if type(v) == 'boolean' then return v and 1 or 0 end
    if is_tensor(v) then
      if v.p.numel ~= 1 then raise(fmt('%s: value must be a number or a one-element tensor, got shape %s', op, tostring(v:size()))) end
      local x = v:item()
      if type(x) == 'boolean' then return x and 1 or 0 end
      return x
    end
    if type(v) ~= 'number' then raise(fmt('%s: value must be a number, got %s', op, type(v))) end
    return v
  end

  function Tensor.masked_fill(t, mask, v)
    return wrap(C.fc_masked_fill(t.p, mask_tensor(mask, 'masked_fill').p, fill_value(v, 'masked_fill')))
  end
  function Tensor.masked_fill_(t, mask, v)
    check(C.fc_masked_fill_(t.p, mask_tensor(mask, 'masked_fill_').p, fill_value(v, 'masked_fill_')))
    return t
  end
  function Tensor.masked_select(t, mask)
    return wrap(C.fc_masked_select(t.p, mask_tensor(mask, 'masked_select').p))
  end

  -- An [n, ndim] int64 tensor of 1-based coordinates; with {as_tuple = true}
  -- a Lua list of ndim 1-D tensors, one per dim.
  function Tensor.nonzero(t, opts)
    local coords = wrap(C.fc_nonzero(t.p, 1))
    if not (opts and opts.as_tuple) then return coords end
    local out = {}
    if t.p.ndim == 0 then return { fc.ones(coords:size(1), { dtype = 'int64' }) } end -- as 1-D
    for d = 1, t.p.ndim do out[d] = coords:select(2, d) end
    return out
  end
  function Tensor.argwhere(t) return Tensor.nonzero(t) end

  -- Class ids from 1: class c sets column c. num_classes -1 (or nil) infers
  -- it from the largest id.
  function fc.one_hot(idx, num_classes)
    return wrap(C.fc_one_hot(index_tensor(idx, 'one_hot').p, num_classes or -1, 1))
  end
  Tensor.one_hot = fc.one_hot

  -- ---- reordering ------------------------------------------------------------

  -- dims as a list, or as several arguments: t:flip({1, 2}) or t:flip(1, 2)
  local function dim_list(t, op, first, ...)
    if first == nil then raise(fmt('%s: expects dims', op)) end
    local dims = first
    if type(first) == 'number' then dims = { first, ... } end
    if type(dims) ~= 'table' then raise(fmt('%s: dims must be numbers or a list, got %s', op, type(first))) end
    return H.dims(t, dims)
  end

  function Tensor.flip(t, ...)
    local n, arr = dim_list(t, 'flip', ...)
    return wrap(C.fc_flip(t.p, n, arr))
  end
  Tensor.fliplr = function(t) return Tensor.flip(t, 2) end
  Tensor.flipud = function(t) return Tensor.flip(t, 1) end

  -- t:roll(shift) rolls the flattened tensor; t:roll(shifts, dims) with a
  -- number or a list each, as many shifts as dims.
  function Tensor.roll(t, shifts, dims)
    if type(shifts) == 'number' then shifts = { shifts } end
    if type(shifts) ~= 'table' or #shifts == 0 then
      raise(fmt('roll: shifts must be a number or a list of numbers, got %s', type(shifts)))
    end
    for i = 1, #shifts do
      if type(shifts[i]) ~= 'number' or shifts[i] ~= floor(shifts[i]) then
        raise(fmt('roll: shifts must be integers, got %s', tostring(shifts[i])))
      end
    end
    local cshifts = ffi.new('int64_t[?]', #shifts, shifts)
    if dims == nil then
      if #shifts ~= 1 then raise(fmt('roll: %d shifts but no dims; give dims, or one shift to roll the flattened tensor', #shifts)) end
      return wrap(C.fc_roll(t.p, 0, cshifts, nil))
    end
    local n, arr = H.dims(t, dims)
    if n ~= #shifts then raise(fmt('roll: %d shifts for %d dims; give one shift per dim', #shifts, n)) end
    return wrap(C.fc_roll(t.p, n, cshifts, arr))
  end

  -- ---- splitting into views --------------------------------------------------

  local function is_count(x) return type(x) == 'number' and x == floor(x) and x >= 0 end

  -- t:split(size, dim): views of `size` along dim (the last one shorter);
  -- t:split({sizes}, dim): views of those sizes, which must add up to the dim.
  function Tensor.split(t, sizes, dim)
    dim = dim or 1
    if t.p.ndim == 0 then raise('split: a 0-dim tensor has no dim to split') end
    local total = t:size(dim)
    local out, at = {}, 1
    if type(sizes) == 'number' then
      if not is_count(sizes) then raise(fmt('split: size must be a non-negative integer, got %s', tostring(sizes))) end
      if sizes == 0 and total ~= 0 then raise(fmt('split: size 0 is only valid for an empty dim, but dim %d has size %d', dim, total)) end
      repeat -- an empty dim still gives one (empty) piece, as in PyTorch
        local len = math.min(sizes, total - at + 1)
        out[#out + 1] = t:narrow(dim, at, len)
        at = at + len
      until at > total
      return out
    end
    if type(sizes) ~= 'table' then raise(fmt('split: expects a size or a list of sizes, got %s', type(sizes))) end
    local sum = 0
    for i, s in ipairs(sizes) do
      if not is_count(s) then raise(fmt('split: sizes must be non-negative integers, got %s at position %d', tostring(s), i)) end
      sum = sum + s
    end
    if sum ~= total then
      raise(fmt('split: sizes {%s} add up to %d but dim %d has size %d', table.concat(sizes, ', '), sum, dim, total))
    end
    for _, s in ipairs(sizes) do
      out[#out + 1] = t:narrow(dim, at, s)
      at = at + s
    end
    return out
  end

  -- n pieces of equal size ceil(size / n) along dim (fewer when they run out).
  function Tensor.chunk(t, n, dim)
    dim = dim or 1
    if type(n) ~= 'number' or n ~= floor(n) or n < 1 then
      raise(fmt('chunk: the number of chunks must be a positive integer, got %s', tostring(n)))
    end
    if t.p.ndim == 0 then raise('chunk: a 0-dim tensor has no dim to split') end
    local total = t:size(dim)
    if total == 0 then -- n empty pieces, as in PyTorch
      local sizes = {}
      for i = 1, n do sizes[i] = 0 end
      return Tensor.split(t, sizes, dim)
    end
    return Tensor.split(t, math.ceil(total / n), dim)
  end

  -- the functional forms: fc.gather(t, 2, idx) as t:gather(2, idx)
  for _, name in ipairs({ 'index_select', 'gather', 'scatter', 'scatter_', 'scatter_add', 'scatter_add_',
                          'masked_fill', 'masked_fill_', 'masked_select', 'nonzero', 'argwhere', 'flip',
                          'fliplr', 'flipud', 'roll', 'split', 'chunk' }) do
    fc[name] = Tensor[name]
  end
end
