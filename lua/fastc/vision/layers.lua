-- lua/fastc/vision/layers.lua — the building blocks fastai's vision models
-- share (fastai's layers.py and torch_core's init helpers), written over
-- fc.nn: ConvLayer, ResBlock, LinBnDrop, SigmoidRange, PixelShuffle,
-- PixelShuffle_ICNR, MergeLayer, ResizeToOrig, plus fc.F.pixel_shuffle and
-- fc.F.interpolate (nearest) composed from existing tensor ops.
--
-- Norm types are strings: 'batch' (BatchNorm, weight 1, bias 1e-3),
-- 'batch_zero' (weight 0: the last BN of a residual branch starts the block
-- as the identity) or false/nil for none. fastai's NormType names
-- ('Batch', 'BatchZero') are accepted too.
return function(fc)
  local nn, F = fc.nn, fc.F
  local fmt, floor, sqrt = string.format, math.floor, math.sqrt
  local layers = fc.layers or {}
  fc.layers = layers

  local NORM = { batch = 'batch', Batch = 'batch', batch_zero = 'batch_zero', BatchZero = 'batch_zero' }
  local function norm_of(nt, what)
    if nt == nil or nt == false then return nil end
    local n = NORM[nt]
    if not n then error(fmt("%s: norm_type must be 'batch', 'batch_zero' or false, got %s", what, tostring(nt)), 4) end
    return n
  end

  -- ---- functional pieces -----------------------------------------------------------

  -- pixel_shuffle(x, r): [N, C*r*r, H, W] -> [N, C, H*r, W*r]; output pixel
  -- (h*r + i, w*r + j) of channel c is input channel c*r*r + i*r + j.
  function F.pixel_shuffle(x, r)
    if x:dim() ~= 4 then error(fmt('pixel_shuffle: expected a 4-d input, got %d dims', x:dim()), 2) end
    local n, c, h, w = x:size(1), x:size(2), x:size(3), x:size(4)
    if c % (r * r) ~= 0 then
      error(fmt('pixel_shuffle: %d channels are not divisible by the upscale factor squared (%d)', c, r * r), 2)
    end
    local oc = c / (r * r)
    return x:reshape(n, oc, r, r, h, w):permute(1, 2, 5, 3, 6, 4):reshape(n, oc, h * r, w * r)
  end

  -- The source rows for PyTorch's 'nearest' resize of n to m pixels:
  -- floor(i * n / m), 1-based.
  local function nearest_index(n, m)
    local idx = {}
    for i = 0, m - 1 do idx[i + 1] = math.min(floor(i * n / m), n - 1) + 1 end
    return fc.tensor(idx, { dtype = 'int64' })
  end

  -- interpolate(x, {h, w}, {mode = 'nearest'}) for [N, C, H, W]: PyTorch's
  -- nearest mode, through two index_selects (so it has a gradient).
  function F.interpolate(x, size, o)
    local mode = (o and o.mode) or 'nearest'
    if mode ~= 'nearest' then error(fmt("interpolate: only mode 'nearest' is implemented, got %s", mode), 2) end
    if x:dim() ~= 4 then error(fmt('interpolate: expected a 4-d input, got %d dims', x:dim()), 2) end
    local oh, ow = size[1], size[2]
    if type(size) == 'number' then oh, ow = size, size end
    local h, w = x:size(3), x:size(4)
    if oh ~= h then x = x:index_select(3, nearest_index(h, oh)) end
    if ow ~= w then x = x:index_select(4, nearest_index(w, ow)) end
    return x
  end

  -- ---- init helpers (fastai's init_default, cond_init, apply_init, init_cnn) --

  local function is_norm(m)
    return m:is_a(nn.BatchNorm1d) or m:is_a(nn.BatchNorm2d) or (nn.LayerNorm and m:is_a(nn.LayerNorm)) or
      (nn.GroupNorm and m:is_a(nn.GroupNorm))
  end
  layers.is_norm = is_norm

  -- func(weight) and a zero bias, on a module with its own weight.
  local function init_default(m, func)
    local params = rawget(m, '_parameters')
    if func and params.weight then func(params.weight) end
    if params.bias then fc.no_grad(function() params.bias:fill_(0) end) end
    return m
  end
  layers.init_default = init_default

  -- apply_init(m, func = kaiming_normal_): init_default on every module
  -- that is not a norm layer.
  function layers.apply_init(m, func)
    func = func or nn.init.kaiming_normal_
    for _, sub in ipairs(m:modules()) do
      if not is_norm(sub) then init_default(sub, func) end
    end
    return m
  end

  -- fastai's init_cnn: kaiming_normal_ on conv and linear weights, every
  -- bias (norm layers' too) zero.
  function layers.init_cnn(m)
    for _, sub in ipairs(m:modules()) do
      local params = rawget(sub, '_parameters')
      if params.bias then fc.no_grad(function() params.bias:fill_(0) end) end
      if sub:is_a(nn.Conv2d) or sub:is_a(nn.Conv1d) or sub:is_a(nn.Linear) then
        nn.init.kaiming_normal_(params.weight)
      end
    end
    return m
  end

  -- ---- small modules ----------------------------------------------------------------

  if not nn.ReLU6 then
    local ReLU6 = nn.Module:extend('ReLU6')
    nn.ReLU6 = ReLU6
    function ReLU6:forward(x) return x:clamp(0, 6) end
  end

  local PixelShuffle = nn.Module:extend('PixelShuffle')
  nn.PixelShuffle = PixelShuffle
  function PixelShuffle:init(r)
    nn.Module.init(self)
    self.upscale_factor = r
  end
  function PixelShuffle:forward(x) return F.pixel_shuffle(x, self.upscale_factor) end
  function PixelShuffle:extra_repr() return 'upscale_factor=' .. self.upscale_factor end

  -- SigmoidRange(low, high): sigmoid scaled to (low, high).
  local SigmoidRange = nn.Module:extend('SigmoidRange')
  layers.SigmoidRange = SigmoidRange
  function SigmoidRange:init(low, high)
    nn.Module.init(self)
    if type(low) == 'table' then low, high = low[1], low[2] end
    self.low, self.high = low, high
  end
  function SigmoidRange:forward(x) return x:sigmoid() * (self.high - self.low) + self.low end
  function SigmoidRange:extra_repr() return fmt('low=%g, high=%g', self.low, self.high) end

  -- MergeLayer{dense = false}: adds (or with dense, concatenates along the
  -- channels) the input the enclosing SequentialEx received.
  local MergeLayer = nn.Module:extend('MergeLayer')
  layers.MergeLayer = MergeLayer
  MergeLayer.needs_orig = true
  function MergeLayer:init(o)
    nn.Module.init(self)
    self.dense = (type(o) == 'table' and o.dense) or o == true
  end
  function MergeLayer:forward(x, orig)
    if self.dense then return fc.cat({ x, orig }, 2) end
    return x + orig
  end

  -- ResizeToOrig: nearest-resizes to the enclosing SequentialEx's input size.
  local ResizeToOrig = nn.Module:extend('ResizeToOrig')
  layers.ResizeToOrig = ResizeToOrig
  ResizeToOrig.needs_orig = true
  function ResizeToOrig:forward(x, orig)
    if orig:size(3) ~= x:size(3) or orig:size(4) ~= x:size(4) then
      x = F.interpolate(x, { orig:size(3), orig:size(4) })
    end
    return x
  end

  -- SequentialEx: a Sequential whose layers marked needs_orig also get the
  -- input of the whole sequence (fastai keeps it as x.orig).
  local SequentialEx = nn.Sequential:extend('SequentialEx')
  layers.SequentialEx = SequentialEx
  function SequentialEx:forward(x)
    local orig = x
    for _, m in ipairs(self:children()) do
      if m.needs_orig then x = m(x, orig) else x = m(x) end
    end
    return x
  end

  -- ---- BatchNorm, ConvLayer, LinBnDrop ---------------------------------------------

  -- fastai's BatchNorm(nf, {ndim = 2, norm_type = 'batch'}): bias 1e-3,
  -- weight 1 (0 for 'batch_zero').
  function layers.BatchNorm(nf, o)
    o = o or {}
    local cls = (o.ndim == 1) and nn.BatchNorm1d or nn.BatchNorm2d
    local bn = cls(nf, { momentum = o.momentum, eps = o.eps })
    fc.no_grad(function()
      bn.bias:fill_(1e-3)
      bn.weight:fill_(norm_of(o.norm_type, 'BatchNorm') == 'batch_zero' and 0 or 1)
    end)
    return bn
  end

  local function make_act(act_cls)
    if act_cls == nil then return nn.ReLU() end
    if act_cls == false then return nil end
    if type(act_cls) == 'table' and rawget(act_cls, '__name') then return act_cls() end
    if type(act_cls) == 'function' then return act_cls() end
    return act_cls
  end

  -- ConvLayer(ni, nf, {ks = 3, stride = 1, padding = (ks-1)/2, bias,
  -- groups = 1, norm_type = 'batch', bn_1st = true, act_cls = nn.ReLU (false:
  -- none), init = 'auto', bias_std = 0.01, xtra}): conv, then BN and the
  -- activation (BN first by default). The conv has a bias only without a
  -- BN. 'auto' init: kaiming_uniform_ before a ReLU, else PyTorch's default.
  local ConvLayer = nn.Sequential:extend('ConvLayer')
  layers.ConvLayer = ConvLayer
  function ConvLayer:init(ni, nf, o)
    nn.Sequential.init(self)
    o = o or {}
    local ks = o.ks or 3
    local stride = o.stride or 1
    local padding = o.padding or floor((ks - 1) / 2)
    local norm = norm_of(o.norm_type == nil and 'batch' or o.norm_type, 'ConvLayer')
    local bias = o.bias
    if bias == nil then bias = norm == nil end
    local conv = nn.Conv2d(ni, nf, ks, { stride = stride, padding = padding, bias = bias, groups = o.groups })
    local act = make_act(o.act_cls)
    if conv.bias and o.bias_std ~= false then
      local std = o.bias_std == nil and 0.01 or o.bias_std
      fc.no_grad(function()
        if std ~= 0 then conv.bias:normal_(0, std) else conv.bias:fill_(0) end
      end)
    end
    local init = o.init == nil and 'auto' or o.init
    if init == 'auto' then init = (act and act:is_a(nn.ReLU)) and nn.init.kaiming_uniform_ or nil end
    if init then init(conv.weight) end
    self:add(conv)
    local act_bn = {}
    if act then act_bn[#act_bn + 1] = act end
    if norm then act_bn[#act_bn + 1] = layers.BatchNorm(nf, { norm_type = norm }) end
    if o.bn_1st ~= false and #act_bn == 2 then act_bn = { act_bn[2], act_bn[1] } end
    for _, m in ipairs(act_bn) do self:add(m) end
    if o.xtra then self:add(o.xtra) end
  end

  -- LinBnDrop(n_in, n_out, {bn = true, p = 0, act, lin_first = false}): a
  -- list of layers (BatchNorm1d, Dropout, Linear, act) that create_head
  -- splices into its Sequential, as fastai's `layers += LinBnDrop(...)`.
  -- The Linear has a bias only without a BN.
  function layers.lin_bn_drop(n_in, n_out, o)
    o = o or {}
    local bn = o.bn ~= false
    local p = o.p or 0
    local out = {}
    if bn then out[#out + 1] = layers.BatchNorm(o.lin_first and n_out or n_in, { ndim = 1 }) end
    if p ~= 0 then out[#out + 1] = nn.Dropout(p) end
    local lin = { nn.Linear(n_in, n_out, { bias = not bn }) }
    if o.act then lin[#lin + 1] = o.act end
    if o.lin_first then
      for i = #lin, 1, -1 do table.insert(out, 1, lin[i]) end
    else
      for _, m in ipairs(lin) do out[#out + 1] = m end
    end
    return out
  end
  function layers.LinBnDrop(n_in, n_out, o) return nn.Sequential(layers.lin_bn_drop(n_in, n_out, o)) end

  -- ---- ResBlock ------------------------------------------------------------------------

  -- ResBlock(expansion, ni, nf, {stride = 1, groups = 1, norm_type = 'batch',
  -- act_cls, ks = 3, pool_first = true}): fastai's residual block (the
  -- xresnet one): convpath of two 3x3 ConvLayers (expansion 1) or a
  -- 1x1-3x3-1x1 bottleneck, its last BN zero-initialised; idpath an average
  -- pool (stride 2, ceil_mode) then a 1x1 ConvLayer when the shape changes.
  local ResBlock = nn.Module:extend('ResBlock')
  layers.ResBlock = ResBlock
  function ResBlock:init(expansion, ni, nf, o)
    nn.Module.init(self)
    o = o or {}
    local stride, groups, ks = o.stride or 1, o.groups or 1, o.ks or 3
    local norm = norm_of(o.norm_type == nil and 'batch' or o.norm_type, 'ResBlock')
    local norm2 = norm == 'batch' and 'batch_zero' or norm or false
    local nh2 = o.nh2 or nf
    local nh1 = o.nh1 or nh2
    nf, ni = nf * expansion, ni * expansion
    local k0 = { norm_type = norm or false, act_cls = o.act_cls }
    local function with(t, extra)
      local r = {}
      for k, v in pairs(t) do r[k] = v end
      for k, v in pairs(extra) do r[k] = v end
      return r
    end
    local k1 = { norm_type = norm2, act_cls = false }
    local convpath
    if expansion == 1 then
      convpath = { ConvLayer(ni, nh2, with(k0, { ks = ks, stride = stride, groups = groups })),
        ConvLayer(nh2, nf, with(k1, { ks = ks })) }
    else
      convpath = { ConvLayer(ni, nh1, with(k0, { ks = 1 })),
        ConvLayer(nh1, nh2, with(k0, { ks = ks, stride = stride, groups = groups })),
        ConvLayer(nh2, nf, with(k1, { ks = 1 })) }
    end
    self.convpath = nn.Sequential(convpath)
    local idpath = {}
    if ni ~= nf then idpath[#idpath + 1] = ConvLayer(ni, nf, { ks = 1, act_cls = false }) end
    if stride ~= 1 then
      local pool = nn.AvgPool2d(stride, { ceil_mode = true })
      if o.pool_first == false then idpath[#idpath + 1] = pool else table.insert(idpath, 1, pool) end
    end
    self.idpath = nn.Sequential(idpath)
    self.act = make_act(o.act_cls) or nn.Identity()
  end
  function ResBlock:forward(x) return self.act(self.convpath(x) + self.idpath(x)) end

  -- ---- PixelShuffle_ICNR -----------------------------------------------------------

  -- icnr_init(w, scale = 2): w is [nf*scale^2, ni, kh, kw]; each group of
  -- scale^2 output channels that PixelShuffle spreads over one block gets
  -- the same kaiming_normal_ kernel, so the upsampled output starts free of
  -- checkerboard artefacts (Aitken et al. 2017).
  function layers.icnr_init(w, scale, init)
    scale, init = scale or 2, init or nn.init.kaiming_normal_
    local co, ci, kh, kw = w:size(1), w:size(2), w:size(3), w:size(4)
    local s2 = scale * scale
    local k = init(fc.zeros(co / s2, ci, kh, kw))
    local idx = {}
    for c = 1, co do idx[c] = floor((c - 1) / s2) + 1 end
    fc.no_grad(function() w:copy_(k:index_select(1, fc.tensor(idx, { dtype = 'int64' }))) end)
    return w
  end

  -- PixelShuffle_ICNR(ni, nf = ni, {scale = 2, norm_type = false, act_cls,
  -- blur = false}): a 1x1 ConvLayer to nf*scale^2 channels (ICNR init, zero
  -- bias) then PixelShuffle(scale). fastai's default weight norm is not
  -- provided (DynamicUnet uses none); blur (a one-pixel shift and 2x2
  -- average) is not provided either.
  local PixelShuffle_ICNR = nn.Sequential:extend('PixelShuffle_ICNR')
  layers.PixelShuffle_ICNR = PixelShuffle_ICNR
  function PixelShuffle_ICNR:init(ni, nf, o)
    nn.Sequential.init(self)
    o = o or {}
    nf = nf or ni
    local scale = o.scale or 2
    if o.blur then error('PixelShuffle_ICNR: blur is not implemented', 3) end
    local conv = ConvLayer(ni, nf * scale * scale, { ks = 1, norm_type = o.norm_type or false, act_cls = o.act_cls,
      bias_std = 0 })
    layers.icnr_init(conv[1].weight, scale)
    self:add(conv)
    self:add(PixelShuffle(scale))
  end

  for _, k in ipairs { 'ConvLayer', 'ResBlock', 'SigmoidRange', 'PixelShuffle_ICNR', 'MergeLayer', 'SequentialEx',
    'LinBnDrop', 'BatchNorm', 'ResizeToOrig', 'icnr_init', 'init_cnn', 'apply_init' } do
    if fc[k] == nil then fc[k] = layers[k] end
  end
  return layers
end
