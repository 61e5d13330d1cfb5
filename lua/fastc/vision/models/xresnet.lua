-- lua/fastc/vision/models/xresnet.lua — fastai's XResNet (the "bag of
-- tricks" ResNet-D): a stem of three 3x3 ConvLayers (32, 32, 64 channels,
-- the first with stride 2) instead of one 7x7 conv, a shortcut that
-- average-pools before its 1x1 conv instead of striding it, and the last
-- BatchNorm of every residual branch initialised to zero.
--
--   local m = fc.vision.models.xresnet50{n_out = 10, c_in = 1}
--
-- An XResNet is a Sequential: stem (3), MaxPool2d, the 4 stages, then
-- AdaptiveAvgPool2d, Flatten, Dropout(p), Linear — 12 children, so fastai's
-- cut (-4) and split (the stem, the rest of the body, the head) apply.
return function(fc)
  local nn, layers = fc.nn, fc.layers
  local models = fc.vision.models
  local ConvLayer, ResBlock = layers.ConvLayer, layers.ResBlock

  local XResNet = nn.Sequential:extend('XResNet')
  models.XResNet = XResNet

  -- XResNet(expansion, layers, {p = 0, c_in = 3, n_out = 1000,
  -- stem_szs = {32, 32, 64}, widen = 1, act_cls, ks = 3, stride = 2})
  function XResNet:init(expansion, nblocks, o)
    nn.Sequential.init(self)
    o = o or {}
    local ks, stride = o.ks or 3, o.stride or 2
    if ks % 2 == 0 then error('XResNet: kernel size has to be odd', 3) end
    local stem = { o.c_in or 3 }
    for _, s in ipairs(o.stem_szs or { 32, 32, 64 }) do stem[#stem + 1] = s end
    for i = 1, 3 do
      self:add(ConvLayer(stem[i], stem[i + 1], { ks = ks, stride = i == 1 and stride or 1, act_cls = o.act_cls }))
    end
    self:add(nn.MaxPool2d(ks, { stride = stride, padding = math.floor(ks / 2) }))
    local widen = o.widen or 1
    local szs = { math.floor(64 / expansion) }
    local base = { 64, 128, 256, 512 }
    for i = 5, #nblocks do base[i] = 256 end
    for i, v in ipairs(base) do szs[i + 1] = math.floor(v * widen) end
    for i, n in ipairs(nblocks) do
      local ni, nf = szs[i], szs[i + 1]
      local blocks = {}
      for j = 1, n do
        blocks[j] = ResBlock(expansion, j == 1 and ni or nf, nf, { stride = (j == 1 and i > 1) and stride or 1,
          act_cls = o.act_cls, ks = ks })
      end
      self:add(nn.Sequential(blocks))
    end
    self:add(nn.AdaptiveAvgPool2d(1))
    self:add(nn.Flatten())
    self:add(nn.Dropout(o.p or 0))
    self:add(nn.Linear(szs[#szs] * expansion, o.n_out or o.num_classes or 1000))
    layers.init_cnn(self)
  end

  local function xresnet(name, expansion, nblocks)
    models.register_arch(name, function(o) return XResNet(expansion, nblocks, o) end, models.xresnet_meta)
  end
  xresnet('xresnet18', 1, { 2, 2, 2, 2 })
  xresnet('xresnet34', 1, { 3, 4, 6, 3 })
  xresnet('xresnet50', 4, { 3, 4, 6, 3 })
  xresnet('xresnet101', 4, { 3, 4, 23, 3 })
  xresnet('xresnet152', 4, { 3, 8, 36, 3 })
end
