-- lua/fastc/ext_reduce.lua — reductions and ops along a dim, 1-based.
--
--   t:sum() t:sum(2) t:sum({1, 3}, true)     dims and keepdim
--   t:max() -> 0-dim;  t:max(2) -> values, indices (1-based)
--   t:sort(2, true) / t:sort({descending = true}) -> values, indices
local ffi = require 'ffi'

return function(fc, Tensor, H)
  local C, wrap, cdims, cdim = H.C, H.wrap, H.dims, H.dim

  for _, name in ipairs { 'sum', 'mean', 'prod', 'logsumexp', 'all', 'any', 'amax', 'amin' } do
    local f = C['fc_' .. name]
    Tensor[name] = function(t, dims, keepdim)
      local n, arr = cdims(t, dims)
      return wrap(f(t.p, n, arr, keepdim and 1 or 0))
    end
    fc[name] = Tensor[name]
  end

  -- t:norm(p = 2, dims, keepdim)
  function Tensor.norm(t, p, dims, keepdim)
    local n, arr = cdims(t, dims)
    return wrap(C.fc_norm(t.p, p or 2, n, arr, keepdim and 1 or 0))
  end
  fc.norm = Tensor.norm

  -- t:var(dims, {unbiased = true, correction =, keepdim = false}); a boolean
  -- second argument is `unbiased`, as in torch.var(x, dim, unbiased).
  local function spread(cfn)
    return function(t, dims, opts, keepdim)
      if type(opts) ~= 'table' then opts = { unbiased = opts, keepdim = keepdim } end
      local correction = opts.correction or (opts.unbiased == false and 0 or 1)
      local n, arr = cdims(t, dims)
      return wrap(cfn(t.p, n, arr, correction, opts.keepdim and 1 or 0))
    end
  end
  Tensor.var, Tensor.std = spread(C.fc_var), spread(C.fc_std)
  fc.var, fc.std = Tensor.var, Tensor.std

  local out_idx = ffi.new('fc_tensor*[1]')

  -- values and 1-based indices along dim, or the whole-tensor extreme
  local function extreme(dim_fn, all_fn)
    return function(t, dim, keepdim)
      if dim == nil then return all_fn(t) end
      if H.is_tensor(dim) then return dim_fn == C.fc_max_dim and t:maximum(dim) or t:minimum(dim) end
      local v = wrap(dim_fn(t.p, cdim(t, dim), keepdim and 1 or 0, 1, out_idx))
      return v, wrap(out_idx[0])
    end
  end
  Tensor.max = extreme(C.fc_max_dim, function(t) return t:amax() end)
  Tensor.min = extreme(C.fc_min_dim, function(t) return t:amin() end)
  fc.max, fc.min = Tensor.max, Tensor.min

  local function arg(cfn)
    return function(t, dim, keepdim)
      local d = dim == nil and C.FC_ALL_DIMS or cdim(t, dim)
      return wrap(cfn(t.p, d, keepdim and 1 or 0, 1))
    end
  end
  Tensor.argmax, Tensor.argmin = arg(C.fc_argmax), arg(C.fc_argmin)
  fc.argmax, fc.argmin = Tensor.argmax, Tensor.argmin

  function Tensor.cumsum(t, dim) return wrap(C.fc_cumsum(t.p, cdim(t, dim or 1))) end
  function Tensor.cumprod(t, dim) return wrap(C.fc_cumprod(t.p, cdim(t, dim or 1))) end
  fc.cumsum, fc.cumprod = Tensor.cumsum, Tensor.cumprod

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
  function Tensor.topk(t, k, dim, largest)
    if type(dim) == 'table' then dim, largest = dim.dim, dim.largest end
    if largest == nil then largest = true end
    local v = wrap(C.fc_topk(t.p, k, cdim(t, dim or -1), largest and 1 or 0, 1, out_idx))
    return v, wrap(out_idx[0])
  end
  fc.sort, fc.topk, fc.argsort = Tensor.sort, Tensor.topk, Tensor.argsort
end
