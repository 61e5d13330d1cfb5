-- lua/fastc/vision/models/unet.lua — fastai's DynamicUnet: a U-Net built
-- around any encoder (a Sequential body from create_body). A dummy pass
-- finds the encoder children after which the feature map shrinks; hooks
-- on them keep their outputs, and each UnetBlock upsamples the decoder
-- path by two with PixelShuffle_ICNR, concatenates the hooked features
-- (through a BatchNorm) and runs two 3x3 ConvLayers.
--
--   local body = fc.vision.create_body('resnet34', {pretrained = false})
--   local unet = fc.vision.models.DynamicUnet(body, 2, {128, 128})
--   unet(x)  -- [N, 2, 128, 128] for x [N, 3, 128, 128]
--
-- As in fastai the decoder's ConvLayers have no norm layer (norm_type
-- false); the last stage adds the input back (MergeLayer dense) and a
-- ResBlock. Blur and self-attention are not provided.
return function(fc)
  local nn, layers = fc.nn, fc.layers
  local models = fc.vision.models
  local floor = math.floor
  local ConvLayer, PixelShuffle_ICNR = layers.ConvLayer, layers.PixelShuffle_ICNR

  -- The input channels of a model: its first Conv2d's.
  local function in_channels(m)
    for _, sub in ipairs(m:modules()) do
      if sub:is_a(nn.Conv2d) then return sub.in_channels end
    end
    error('in_channels: no Conv2d in the model', 2)
  end
  models.in_channels = in_channels

  local function hw(size) return type(size) == 'number' and { size, size } or { size[1], size[2] } end

  -- dummy_eval(m, {h, w}): m in eval mode on one uniform(-1, 1) image.
  local function dummy_eval(m, size)
    size = hw(size or { 64, 64 })
    local x = fc.empty(1, in_channels(m), size[1], size[2]):uniform_(-1, 1)
    m:eval()
    return fc.no_grad(function() return m(x) end)
  end
  models.dummy_eval = dummy_eval

  -- The output size of each child of a Sequential on a dummy input.
  function models.model_sizes(m, size)
    local sizes, handles = {}, {}
    for i, child in ipairs(m:children()) do
      handles[i] = child:register_forward_hook(function(_, _, out) sizes[i] = out:size() end)
    end
    local ok, err = pcall(dummy_eval, m, size)
    for _, h in ipairs(handles) do h.remove() end
    if not ok then error(err, 0) end
    return sizes
  end

  -- ---- UnetBlock ---------------------------------------------------------------

  local UnetBlock = nn.Module:extend('UnetBlock')
  models.UnetBlock = UnetBlock
  -- UnetBlock(up_in_c, x_in_c, hook, {final_div = true, act_cls, init})
  function UnetBlock:init(up_in_c, x_in_c, hook, o)
    nn.Module.init(self)
    o = o or {}
    rawset(self, 'hook', hook)
    local half = floor(up_in_c / 2)
    self.shuf = PixelShuffle_ICNR(up_in_c, half, { act_cls = o.act_cls })
    self.bn = layers.BatchNorm(x_in_c)
    local ni = half + x_in_c
    local nf = o.final_div == false and floor(ni / 2) or ni
    self.conv1 = ConvLayer(ni, nf, { act_cls = o.act_cls, norm_type = false })
    self.conv2 = ConvLayer(nf, nf, { act_cls = o.act_cls, norm_type = false })
    self.relu = nn.ReLU()
    layers.apply_init(self.conv1, o.init)
    layers.apply_init(self.conv2, o.init)
  end
  function UnetBlock:forward(up_in)
    local s = rawget(self, 'hook').stored
    local up_out = self.shuf(up_in)
    if s:size(3) ~= up_out:size(3) or s:size(4) ~= up_out:size(4) then
      up_out = fc.F.interpolate(up_out, { s:size(3), s:size(4) })
    end
    local cat_x = self.relu(fc.cat({ up_out, self.bn(s) }, 2))
    return self.conv2(self.conv1(cat_x))
  end

  -- ---- DynamicUnet -----------------------------------------------------------------

  -- Positions i (1-based) where child i's output is wider than child i+1's.
  local function size_change_idxs(sizes)
    local out = {}
    for i = 1, #sizes - 1 do
      if sizes[i][#sizes[i]] ~= sizes[i + 1][#sizes[i + 1]] then out[#out + 1] = i end
    end
    return out
  end
  models.size_change_idxs = size_change_idxs

  local DynamicUnet = layers.SequentialEx:extend('DynamicUnet')
  models.DynamicUnet = DynamicUnet
  -- DynamicUnet(encoder, n_out, img_size, {last_cross = true, bottle =
  -- false, y_range, act_cls, init = kaiming_normal_})
  function DynamicUnet:init(encoder, n_out, img_size, o)
    nn.Sequential.init(self)
    o = o or {}
    if o.blur or o.self_attention then error('DynamicUnet: blur and self_attention are not implemented', 3) end
    img_size = hw(img_size)
    local sizes = models.model_sizes(encoder, img_size)
    local idxs = {}
    for _, i in ipairs(size_change_idxs(sizes)) do table.insert(idxs, 1, i) end
    local enc_children = encoder:children()
    local hooked = {}
    for k, i in ipairs(idxs) do hooked[k] = enc_children[i] end
    rawset(self, 'sfs', fc.hook_outputs(hooked, { detach = false }))
    local x = dummy_eval(encoder, img_size)
    local ni = sizes[#sizes][2]
    local middle_conv = nn.Sequential { ConvLayer(ni, ni * 2, { act_cls = o.act_cls, norm_type = false }),
      ConvLayer(ni * 2, ni, { act_cls = o.act_cls, norm_type = false }) }
    middle_conv:eval()
    x = fc.no_grad(function() return middle_conv(x) end)
    for _, m in ipairs({ encoder, layers.BatchNorm(ni), nn.ReLU(), middle_conv }) do self:add(m) end
    for k, idx in ipairs(idxs) do
      local block = UnetBlock(x:size(2), sizes[idx][2], self.sfs.hooks[k], { final_div = k ~= #idxs,
        act_cls = o.act_cls, init = o.init })
      block:eval()
      self:add(block)
      x = fc.no_grad(function() return block(x) end)
    end
    ni = x:size(2)
    if img_size[1] ~= sizes[1][3] or img_size[2] ~= sizes[1][4] then
      self:add(PixelShuffle_ICNR(ni, ni, { act_cls = o.act_cls }))
    end
    self:add(layers.ResizeToOrig())
    local last_res
    if o.last_cross ~= false then
      self:add(layers.MergeLayer { dense = true })
      ni = ni + in_channels(encoder)
      last_res = layers.ResBlock(1, ni, o.bottle and floor(ni / 2) or ni, { act_cls = o.act_cls, norm_type = false })
      self:add(last_res)
    end
    self:add(ConvLayer(ni, n_out, { ks = 1, act_cls = false, norm_type = false }))
    layers.apply_init(middle_conv, o.init)
    if last_res then layers.apply_init(last_res, o.init) end
    if o.y_range then self:add(layers.SigmoidRange(o.y_range[1], o.y_range[2])) end
    self:train()
  end
end
