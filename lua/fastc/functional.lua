-- lua/fastc/functional.lua — fc.F: convolution (C, im2col + GEMM) and the
-- layers composed from differentiable tensor ops: pooling. Composed ops get
-- autograd for free; fused C kernels can replace any of them later without
-- changing this API (normalisation, dropout and embedding already have: ext_norm.lua).
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

  -- batch/layer/group norm, dropout and embedding: fused C kernels, in ext_norm.lua.

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
