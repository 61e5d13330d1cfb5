-- lua/fastc/functional.lua — fc.F: convolution (C: oneDNN for float32, im2col +
-- GEMM for float64) and pooling (C: runtime/ops_pool.c). Normalisation,
-- dropout and embedding are fused C kernels too, bound in ext_norm.lua.
return function(fc, Tensor, H)
  local C, wrap, raise, fmt = H.C, H.wrap, H.raise, string.format
  local ffi = require 'ffi'
  local F = fc.F or {}
  fc.F = F

  local function pair(v, name)
    if type(v) == 'number' then return v, v end
    if type(v) == 'table' and #v == 2 then return v[1], v[2] end
    raise(fmt('%s must be a number or a {h, w} pair', name))
  end
  local function ints2(a, b) return ffi.new('int[2]', a, b) end

  -- F.conv2d(x, w, b, {stride=1, padding=0, dilation=1, groups=1})
  function F.conv2d(x, w, b, opts)
    opts = opts or {}
    local s = ints2(pair(opts.stride or 1, 'stride'))
    local p = ints2(pair(opts.padding or 0, 'padding'))
    local d = ints2(pair(opts.dilation or 1, 'dilation'))
    return wrap(C.fc_conv2d(x.p, w.p, b and b.p or nil, s, p, d, opts.groups or 1))
  end
  function F.conv1d(x, w, b, opts)
    opts = opts or {}
    return wrap(C.fc_conv1d(x.p, w.p, b and b.p or nil, opts.stride or 1, opts.padding or 0,
      opts.dilation or 1, opts.groups or 1))
  end
  -- F.conv_transpose2d(x, w, b, {stride=1, padding=0, output_padding=0, dilation=1, groups=1});
  -- w is [Cin, Cout/groups, kh, kw] as in PyTorch
  function F.conv_transpose2d(x, w, b, opts)
    opts = opts or {}
    local s = ints2(pair(opts.stride or 1, 'stride'))
    local p = ints2(pair(opts.padding or 0, 'padding'))
    local op = ints2(pair(opts.output_padding or 0, 'output_padding'))
    local d = ints2(pair(opts.dilation or 1, 'dilation'))
    return wrap(C.fc_conv_transpose2d(x.p, w.p, b and b.p or nil, s, p, op, d, opts.groups or 1))
  end

  -- batch/layer/group norm, dropout and embedding: fused C kernels, in ext_norm.lua.

  -- ---- pooling (C kernels: runtime/ops_pool.c) ----------------------------
  -- Inputs are [N,C,H,W] or [C,H,W]. Kernel, stride, padding and dilation
  -- are a number or an {h, w} pair. Indices are 1-based flat positions
  -- within each input plane (PyTorch's 0-based ones + 1).
  local pool_idx = ffi.new('fc_tensor*[1]')

  local function int_pair(v, what, op)
    local a, b
    if type(v) == 'number' then a, b = v, v
    elseif type(v) == 'table' and v[3] == nil then a, b = v[1], v[2] end
    if type(a) ~= 'number' or type(b) ~= 'number' then
      raise(fmt('%s: %s must be a number or an {h, w} pair, got %s', op, what, tostring(v)))
    end
    for _, n in ipairs({ a, b }) do
      if n ~= math.floor(n) or math.abs(n) >= 2 ^ 31 then
        raise(fmt('%s: %s must be whole numbers, got %s', op, what, tostring(n)))
      end
    end
    return ffi.new('int[2]', a, b)
  end
  local function pool_input(x, op)
    if not H.is_tensor(x) then raise(fmt('%s: expected a tensor input, got %s', op, type(x))) end
    return x
  end

  -- F.max_pool2d(x, kernel, {stride = kernel, padding = 0, dilation = 1,
  --   ceil_mode = false, return_indices = false}) -> values[, indices]
  function F.max_pool2d(x, kernel, opts)
    opts = opts or {}
    local op = 'max_pool2d'
    pool_input(x, op)
    local k = int_pair(kernel, 'kernel size', op)
    local s = int_pair(opts.stride or kernel, 'stride', op)
    local p = int_pair(opts.padding or 0, 'padding', op)
    local d = int_pair(opts.dilation or 1, 'dilation', op)
    local want = opts.return_indices and pool_idx or nil
    local v = wrap(C.fc_max_pool2d(x.p, k, s, p, d, opts.ceil_mode and 1 or 0, want, 1))
    if want then return v, wrap(pool_idx[0]) end
    return v
  end

  -- F.avg_pool2d(x, kernel, {stride = kernel, padding = 0, ceil_mode = false,
  --   count_include_pad = true})
  function F.avg_pool2d(x, kernel, opts)
    opts = opts or {}
    local op = 'avg_pool2d'
    pool_input(x, op)
    local k = int_pair(kernel, 'kernel size', op)
    local s = int_pair(opts.stride or kernel, 'stride', op)
    local p = int_pair(opts.padding or 0, 'padding', op)
    return wrap(C.fc_avg_pool2d(x.p, k, s, p, opts.ceil_mode and 1 or 0,
      opts.count_include_pad == false and 0 or 1))
  end

  -- Output size: a number or {h, w}; a nil entry keeps the input's size
  -- (PyTorch's None), so {nil, 1} pools each row to one column.
  local function output_size(x, size, op)
    local h, w
    if type(size) == 'number' then h, w = size, size
    elseif type(size) == 'table' and size[3] == nil then h, w = size[1], size[2]
    else raise(fmt('%s: output size must be a number or an {h, w} pair, got %s', op, tostring(size))) end
    if x:dim() >= 2 then h, w = h or x:size(-2), w or x:size(-1) end
    for _, n in ipairs({ h or 1, w or 1 }) do
      if type(n) ~= 'number' or n ~= math.floor(n) or math.abs(n) >= 2 ^ 53 then
        raise(fmt('%s: output size must be whole numbers, got %s', op, tostring(n)))
      end
    end
    return ffi.new('int64_t[2]', h or 1, w or 1)
  end

  -- F.adaptive_avg_pool2d(x, size)
  function F.adaptive_avg_pool2d(x, size)
    local op = 'adaptive_avg_pool2d'
    pool_input(x, op)
    return wrap(C.fc_adaptive_avg_pool2d(x.p, output_size(x, size, op)))
  end

  -- F.adaptive_max_pool2d(x, size, {return_indices = false}) -> values[, indices]
  function F.adaptive_max_pool2d(x, size, opts)
    local op = 'adaptive_max_pool2d'
    pool_input(x, op)
    local want = opts and opts.return_indices and pool_idx or nil
    local v = wrap(C.fc_adaptive_max_pool2d(x.p, output_size(x, size, op), want, 1))
    if want then return v, wrap(pool_idx[0]) end
    return v
  end
end
