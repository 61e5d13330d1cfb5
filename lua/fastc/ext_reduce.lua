-- lua/fastc/ext_reduce.lua — reductions and ops along a dim, 1-based.
--
--   t:sum()  t:sum(2)  t:sum({1, 3}, true)      dims (a number or a list) and keepdim
--   t:var(2, {unbiased = false, keepdim = true}) or {correction = 0}
--   t:max() -> 0-dim tensor;  t:max(2) -> values, indices (1-based)
--   t:argmax() -> flat 1-based index;  t:argmax(2, true)
--   t:sort(2, true) / t:sort({descending = true}) -> values, indices
--   t:topk(3) / t:topk(3, 1, false) -> values, indices
-- Every method is also a function: fc.sum(t, 2).
local ffi = require 'ffi'

return function(fc, Tensor, H)
  local C, wrap, cdims, cdim, raise = H.C, H.wrap, H.dims, H.dim, H.raise
  local fmt = string.format

  -- keepdim as a boolean or inside an options table ({keepdim = true})
  local function keep_flag(keepdim)
    if type(keepdim) == 'table' then keepdim = keepdim.keepdim end
    return keepdim and 1 or 0
  end

  for _, name in ipairs { 'sum', 'mean', 'prod', 'logsumexp', 'all', 'any', 'amax', 'amin' } do
    local f = C['fc_' .. name]
    Tensor[name] = function(t, dims, keepdim)
      local n, arr = cdims(t, dims)
      return wrap(f(t.p, n, arr, keep_flag(keepdim)))
    end
    fc[name] = Tensor[name]
  end

  -- t:norm(p = 2, dims, keepdim); p may be math.huge or -math.huge
  function Tensor.norm(t, p, dims, keepdim)
    if p ~= nil and type(p) ~= 'number' then raise(fmt('norm: p must be a number, got %s', type(p))) end
    local n, arr = cdims(t, dims)
    return wrap(C.fc_norm(t.p, p or 2, n, arr, keep_flag(keepdim)))
  end
  fc.norm = Tensor.norm

  -- t:var(dims, {unbiased = true, correction = , keepdim = false}); a
  -- boolean second argument is `unbiased`, as in torch.var(x, dim, unbiased, keepdim).
  local function spread(cfn, name)
    return function(t, dims, opts, keepdim)
      if type(opts) ~= 'table' then opts = { unbiased = opts, keepdim = keepdim } end
      local correction = opts.correction
      if correction == nil then correction = opts.unbiased == false and 0 or 1 end
      if type(correction) ~= 'number' then
        raise(fmt('%s: correction must be a number, got %s', name, type(correction)))
      end
      local n, arr = cdims(t, dims)
      return wrap(cfn(t.p, n, arr, correction, opts.keepdim and 1 or 0))
    end
  end
  Tensor.var, Tensor.std = spread(C.fc_var, 'var'), spread(C.fc_std, 'std')
  fc.var, fc.std = Tensor.var, Tensor.std

  local out_idx = ffi.new('fc_tensor*[1]')

  -- t:max() -> the 0-dim max; t:max(dim, keepdim) -> values, 1-based indices;
  -- t:max(other) -> the elementwise maximum
  local function extreme(dim_fn, whole, pairwise)
    return function(t, dim, keepdim)
      if dim == nil then return whole(t) end
      if H.is_tensor(dim) then return pairwise(t, dim) end
      local v = wrap(dim_fn(t.p, cdim(t, dim), keep_flag(keepdim), 1, out_idx))
      return v, wrap(out_idx[0])
    end
  end
  Tensor.max = extreme(C.fc_max_dim, Tensor.amax, function(a, b) return a:maximum(b) end)
  Tensor.min = extreme(C.fc_min_dim, Tensor.amin, function(a, b) return a:minimum(b) end)
  fc.max, fc.min = Tensor.max, Tensor.min

  -- t:argmax(dim, keepdim): 1-based; no dim: the 1-based index into the flattened tensor
  local function arg(cfn)
    return function(t, dim, keepdim)
      local d = dim == nil and C.FC_ALL_DIMS or cdim(t, dim)
      return wrap(cfn(t.p, d, keep_flag(keepdim), 1))
    end
  end
  Tensor.argmax, Tensor.argmin = arg(C.fc_argmax), arg(C.fc_argmin)
  fc.argmax, fc.argmin = Tensor.argmax, Tensor.argmin

  -- t:cumsum(dim): dim may be left out only for tensors of at most one dim
  local function cumulative(cfn, name)
    return function(t, dim)
      if dim == nil then
        if t:dim() > 1 then raise(fmt('%s: give the dim for a %d-dim tensor', name, t:dim())) end
        dim = 1
      end
      return wrap(cfn(t.p, cdim(t, dim)))
    end
  end
  Tensor.cumsum, Tensor.cumprod = cumulative(C.fc_cumsum, 'cumsum'), cumulative(C.fc_cumprod, 'cumprod')
  fc.cumsum, fc.cumprod = Tensor.cumsum, Tensor.cumprod

  -- t:sort(dim = -1, descending = false) -> values, indices; options may come
  -- as a table in place of either argument: t:sort({dim = 1, descending = true})
  function Tensor.sort(t, dim, descending)
    if type(dim) == 'table' then dim, descending = dim.dim, dim.descending end
    if type(descending) == 'table' then descending = descending.descending end
    local v = wrap(C.fc_sort(t.p, cdim(t, dim or -1), descending and 1 or 0, 1, out_idx))
    return v, wrap(out_idx[0])
  end
  function Tensor.argsort(t, dim, descending)
    local _, i = Tensor.sort(t, dim, descending)
    return i
  end

  -- t:topk(k, dim = -1, largest = true, sorted = true) -> values, indices
  -- (always sorted); options may come as a table after k.
  function Tensor.topk(t, k, dim, largest)
    if type(k) ~= 'number' or k ~= math.floor(k) then
      raise(fmt('topk: k must be an integer, got %s', tostring(k)))
    end
    if type(dim) == 'table' then dim, largest = dim.dim, dim.largest end
    if type(largest) == 'table' then largest = largest.largest end
    if largest == nil then largest = true end
    local v = wrap(C.fc_topk(t.p, k, cdim(t, dim or -1), largest and 1 or 0, 1, out_idx))
    return v, wrap(out_idx[0])
  end
  fc.sort, fc.topk, fc.argsort = Tensor.sort, Tensor.topk, Tensor.argsort
end
