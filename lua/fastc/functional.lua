-- lua/fastc/functional.lua — fc.F: convolution (C: oneDNN, im2col + GEMM) and the
-- layers composed from differentiable tensor ops: batch/layer/group norm,
-- dropout, embedding, pooling. Composed ops get autograd for free; fused C
-- kernels can replace any of them later without changing this API.
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

  -- Per-channel statistics over every dim but the channel dim (2).
  local function channel_dims(x)
    local dims = { 1 }
    for d = 3, x:dim() do dims[#dims + 1] = d end
    return dims
  end
  local function channel_shape(x)
    local s = { 1, x:size(2) }
    for _ = 3, x:dim() do s[#s + 1] = 1 end
    return s
  end

  -- F.batch_norm(x, running_mean, running_var, {weight, bias, training, momentum=0.1, eps=1e-5})
  function F.batch_norm(x, rm, rv, opts)
    opts = opts or {}
    if x:dim() < 2 then raise(fmt('batch_norm: expected [N,C,...] input, got shape %s', tostring(x:size()))) end
    local eps, momentum = opts.eps or 1e-5, opts.momentum or 0.1
    local shape, mean, var = channel_shape(x), nil, nil
    if opts.training or not rm then
      local dims = channel_dims(x)
      mean = x:mean(dims, true)
      var = x:var(dims, { correction = 0, keepdim = true })
      if rm and opts.training then
        local n = x:numel() / x:size(2)
        fc.no_grad(function()
          rm:mul_(1 - momentum):add_(mean:view(-1) * momentum)
          rv:mul_(1 - momentum):add_(var:view(-1) * (momentum * n / math.max(n - 1, 1)))
        end)
      end
    else
      mean, var = rm:view(shape), rv:view(shape)
    end
    local y = (x - mean) * (var + eps):rsqrt()
    if opts.weight then y = y * opts.weight:view(shape) end
    if opts.bias then y = y + opts.bias:view(shape) end
    return y
  end

  -- F.layer_norm(x, normalized_shape, {weight, bias, eps=1e-5}): over the last dims.
  function F.layer_norm(x, shape, opts)
    opts = opts or {}
    local k = type(shape) == 'table' and #shape or 1
    local dims = {}
    for d = x:dim() - k + 1, x:dim() do dims[#dims + 1] = d end
    local mean = x:mean(dims, true)
    local var = x:var(dims, { correction = 0, keepdim = true })
    local y = (x - mean) * (var + (opts.eps or 1e-5)):rsqrt()
    if opts.weight then y = y * opts.weight end
    if opts.bias then y = y + opts.bias end
    return y
  end

  function F.group_norm(x, groups, opts)
    opts = opts or {}
    local n, c = x:size(1), x:size(2)
    if c % groups ~= 0 then raise(fmt('group_norm: %d groups do not divide %d channels', groups, c)) end
    local g = x:reshape(n, groups, -1)
    local mean = g:mean(3, true)
    local var = g:var(3, { correction = 0, keepdim = true })
    local y = ((g - mean) * (var + (opts.eps or 1e-5)):rsqrt()):view(x:size())
    local shape = channel_shape(x)
    if opts.weight then y = y * opts.weight:view(shape) end
    if opts.bias then y = y + opts.bias:view(shape) end
    return y
  end

  -- F.dropout(x, {p=0.5, training=true}): inverted dropout, Philox mask.
  function F.dropout(x, opts)
    opts = opts or {}
    local p = opts.p or 0.5
    if p < 0 or p > 1 then raise(fmt('dropout: p must be in [0, 1], got %g', p)) end
    if opts.training == false or p == 0 then return x end
    if p == 1 then return x * 0 end
    local mask = fc.no_grad(function() return fc.empty(x:size(), { dtype = x.dtype }):bernoulli_(1 - p) end)
    return x * mask * (1 / (1 - p))
  end

  -- F.embedding(indices, weight, {padding_idx}): rows of weight, 1-based ids;
  -- the padding row passes no gradient.
  function F.embedding(idx, weight, opts)
    opts = opts or {}
    idx = H.index_tensor(idx)
    local rows = weight:index_select(1, idx:reshape(-1))
    local shape = idx:size()
    shape[#shape + 1] = weight:size(2)
    local y = rows:view(shape)
    if opts.padding_idx then
      local keep = idx:ne(opts.padding_idx):unsqueeze(-1)
      y = fc.where(keep, y, y:detach())
    end
    return y
  end

  -- Pools whose windows tile the input exactly (kernel = stride, no padding)
  -- reshape to [N, C, oh, kh, ow, kw] and reduce; other settings are refused.
  local function tiles(x, kh, kw, name)
    local n, c, h, w = x:size(1), x:size(2), x:size(3), x:size(4)
    if h % kh ~= 0 or w % kw ~= 0 then
      raise(fmt('%s: windows %dx%d must tile the %dx%d input exactly (general pooling is not implemented yet)',
        name, kh, kw, h, w))
    end
    return x:reshape(n, c, h / kh, kh, w / kw, kw)
  end
  local function check_simple(opts, kh, kw, name)
    local sh, sw = pair(opts.stride or { kh, kw }, 'stride')
    local ph, pw = pair(opts.padding or 0, 'padding')
    if sh ~= kh or sw ~= kw or ph ~= 0 or pw ~= 0 or opts.ceil_mode or (opts.dilation and opts.dilation ~= 1) then
      raise(fmt('%s: only stride = kernel without padding or dilation is implemented yet', name))
    end
  end
  function F.avg_pool2d(x, kernel, opts)
    opts = opts or {}
    local kh, kw = pair(kernel, 'kernel')
    check_simple(opts, kh, kw, 'avg_pool2d')
    return tiles(x, kh, kw, 'avg_pool2d'):mean({ 4, 6 })
  end
  function F.max_pool2d(x, kernel, opts)
    opts = opts or {}
    local kh, kw = pair(kernel, 'kernel')
    check_simple(opts, kh, kw, 'max_pool2d')
    return tiles(x, kh, kw, 'max_pool2d'):amax({ 4, 6 })
  end
  function F.adaptive_avg_pool2d(x, size)
    local oh, ow = pair(size, 'output size')
    return tiles(x, x:size(3) / oh, x:size(4) / ow, 'adaptive_avg_pool2d'):mean({ 4, 6 })
  end
  function F.adaptive_max_pool2d(x, size)
    local oh, ow = pair(size, 'output size')
    return tiles(x, x:size(3) / oh, x:size(4) / ow, 'adaptive_max_pool2d'):amax({ 4, 6 })
  end
end
