-- tests/lua/vision_models_spec.lua — the model zoo against torchvision's
-- numbers (pasted from torchvision 0.14: parameter counts, resnet18's
-- state-dict names and shapes, MobileNetV2's buffers), fastai's xresnet
-- structure and zero-init, and the layers the U-Net is built from
-- (pixel_shuffle and nearest interpolate against PyTorch's outputs).
local fc = require 'fastc'
local M, layers = fc.vision.models, fc.layers

local function count(m)
  local n = 0
  for _, p in ipairs(m:parameters()) do n = n + p:numel() end
  return n
end
local function shape(t) return table.concat(t:size(), 'x') end
-- each architecture built once (random init of 25M weights takes a while)
local built = {}
local function model(name)
  built[name] = built[name] or M[name]()
  return built[name]
end
local function nkeys(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

-- torchvision resnet18().state_dict(): name=shape ('' for the 0-d counters)
local RESNET18 = [[conv1.weight=64x3x7x7 bn1.weight=64 bn1.bias=64 bn1.running_mean=64 bn1.running_var=64
bn1.num_batches_tracked= layer1.0.conv1.weight=64x64x3x3 layer1.0.bn1.weight=64 layer1.0.bn1.bias=64
layer1.0.bn1.running_mean=64 layer1.0.bn1.running_var=64 layer1.0.bn1.num_batches_tracked=
layer1.0.conv2.weight=64x64x3x3 layer1.0.bn2.weight=64 layer1.0.bn2.bias=64 layer1.0.bn2.running_mean=64
layer1.0.bn2.running_var=64 layer1.0.bn2.num_batches_tracked= layer1.1.conv1.weight=64x64x3x3 layer1.1.bn1.weight=64
layer1.1.bn1.bias=64 layer1.1.bn1.running_mean=64 layer1.1.bn1.running_var=64 layer1.1.bn1.num_batches_tracked=
layer1.1.conv2.weight=64x64x3x3 layer1.1.bn2.weight=64 layer1.1.bn2.bias=64 layer1.1.bn2.running_mean=64
layer1.1.bn2.running_var=64 layer1.1.bn2.num_batches_tracked= layer2.0.conv1.weight=128x64x3x3
layer2.0.bn1.weight=128 layer2.0.bn1.bias=128 layer2.0.bn1.running_mean=128 layer2.0.bn1.running_var=128
layer2.0.bn1.num_batches_tracked= layer2.0.conv2.weight=128x128x3x3 layer2.0.bn2.weight=128 layer2.0.bn2.bias=128
layer2.0.bn2.running_mean=128 layer2.0.bn2.running_var=128 layer2.0.bn2.num_batches_tracked=
layer2.0.downsample.0.weight=128x64x1x1 layer2.0.downsample.1.weight=128 layer2.0.downsample.1.bias=128
layer2.0.downsample.1.running_mean=128 layer2.0.downsample.1.running_var=128
layer2.0.downsample.1.num_batches_tracked= layer2.1.conv1.weight=128x128x3x3 layer2.1.bn1.weight=128
layer2.1.bn1.bias=128 layer2.1.bn1.running_mean=128 layer2.1.bn1.running_var=128 layer2.1.bn1.num_batches_tracked=
layer2.1.conv2.weight=128x128x3x3 layer2.1.bn2.weight=128 layer2.1.bn2.bias=128 layer2.1.bn2.running_mean=128
layer2.1.bn2.running_var=128 layer2.1.bn2.num_batches_tracked= layer3.0.conv1.weight=256x128x3x3
layer3.0.bn1.weight=256 layer3.0.bn1.bias=256 layer3.0.bn1.running_mean=256 layer3.0.bn1.running_var=256
layer3.0.bn1.num_batches_tracked= layer3.0.conv2.weight=256x256x3x3 layer3.0.bn2.weight=256 layer3.0.bn2.bias=256
layer3.0.bn2.running_mean=256 layer3.0.bn2.running_var=256 layer3.0.bn2.num_batches_tracked=
layer3.0.downsample.0.weight=256x128x1x1 layer3.0.downsample.1.weight=256 layer3.0.downsample.1.bias=256
layer3.0.downsample.1.running_mean=256 layer3.0.downsample.1.running_var=256
layer3.0.downsample.1.num_batches_tracked= layer3.1.conv1.weight=256x256x3x3 layer3.1.bn1.weight=256
layer3.1.bn1.bias=256 layer3.1.bn1.running_mean=256 layer3.1.bn1.running_var=256 layer3.1.bn1.num_batches_tracked=
layer3.1.conv2.weight=256x256x3x3 layer3.1.bn2.weight=256 layer3.1.bn2.bias=256 layer3.1.bn2.running_mean=256
layer3.1.bn2.running_var=256 layer3.1.bn2.num_batches_tracked= layer4.0.conv1.weight=512x256x3x3
layer4.0.bn1.weight=512 layer4.0.bn1.bias=512 layer4.0.bn1.running_mean=512 layer4.0.bn1.running_var=512
layer4.0.bn1.num_batches_tracked= layer4.0.conv2.weight=512x512x3x3 layer4.0.bn2.weight=512 layer4.0.bn2.bias=512
layer4.0.bn2.running_mean=512 layer4.0.bn2.running_var=512 layer4.0.bn2.num_batches_tracked=
layer4.0.downsample.0.weight=512x256x1x1 layer4.0.downsample.1.weight=512 layer4.0.downsample.1.bias=512
layer4.0.downsample.1.running_mean=512 layer4.0.downsample.1.running_var=512
layer4.0.downsample.1.num_batches_tracked= layer4.1.conv1.weight=512x512x3x3 layer4.1.bn1.weight=512
layer4.1.bn1.bias=512 layer4.1.bn1.running_mean=512 layer4.1.bn1.running_var=512 layer4.1.bn1.num_batches_tracked=
layer4.1.conv2.weight=512x512x3x3 layer4.1.bn2.weight=512 layer4.1.bn2.bias=512 layer4.1.bn2.running_mean=512
layer4.1.bn2.running_var=512 layer4.1.bn2.num_batches_tracked= fc.weight=1000x512 fc.bias=1000]]

describe('torchvision-compatible models', function()
  it('have torchvision parameter counts', function()
    -- sum(p.numel() for p in torchvision.models.X().parameters())
    assert.are.equal(11689512, count(model('resnet18')))
    assert.are.equal(21797672, count(model('resnet34')))
    assert.are.equal(25557032, count(model('resnet50')))
    assert.are.equal(3504872, count(model('mobilenet_v2')))
  end)

  it('give resnet18 the state-dict names and shapes of torchvision (positions from 1)', function()
    local want = {}
    for k, s in RESNET18:gmatch('(%S+)=(%S*)') do want[k] = s end
    assert.are.equal(122, nkeys(want))
    local ours = M.to_torchvision_keys(model('resnet18'):state_dict())
    assert.are.equal(122, nkeys(ours))
    for k, s in pairs(want) do
      assert.is_not_nil(ours[k], k)
      assert.are.equal(s, shape(ours[k]), k)
    end
    local sd = model('resnet18'):state_dict()
    assert.is_not_nil(sd['layer2.1.downsample.1.weight']) -- torchvision's layer2.0.downsample.0.weight
    assert.are.equal('int64', sd['layer1.2.bn2.num_batches_tracked'].dtype)
    assert.are.equal(0, sd['bn1.num_batches_tracked']:dim())
  end)

  it('give mobilenet_v2 torchvision names, shapes and buffers', function()
    local sd = M.to_torchvision_keys(model('mobilenet_v2'):state_dict())
    local n, counters = 0, 0
    for k in pairs(sd) do
      n = n + 1
      if k:match('num_batches_tracked$') then counters = counters + 1 end
    end
    assert.are.equal(314, n)   -- len(mobilenet_v2().state_dict())
    assert.are.equal(52, counters)
    local want = { ['features.0.0.weight'] = '32x3x3x3', ['features.0.1.running_mean'] = '32',
      ['features.1.conv.0.0.weight'] = '32x1x3x3', ['features.1.conv.1.weight'] = '16x32x1x1',
      ['features.2.conv.0.0.weight'] = '96x16x1x1', ['features.2.conv.1.0.weight'] = '96x1x3x3',
      ['features.17.conv.2.weight'] = '320x960x1x1', ['features.18.0.weight'] = '1280x320x1x1',
      ['features.18.1.running_var'] = '1280', ['classifier.1.weight'] = '1000x1280', ['classifier.1.bias'] = '1000' }
    for k, s in pairs(want) do assert.are.equal(s, shape(sd[k]), k) end
  end)

  it('map torchvision names to ours and back', function()
    local sd = { ['layer1.0.downsample.0.weight'] = 1, ['features.10.conv.0.1.bias'] = 2, ['fc.weight'] = 3 }
    local ours = M.torchvision_keys(sd)
    assert.are.same({ ['layer1.1.downsample.1.weight'] = 1, ['features.11.conv.1.2.bias'] = 2, ['fc.weight'] = 3 }, ours)
    assert.are.same(sd, M.to_torchvision_keys(ours))
  end)

  it('classify small images into num_classes', function()
    local x = fc.randn(2, 3, 40, 48)
    local m = M.resnet18 { num_classes = 7 }
    m:eval()
    assert.are.same({ 2, 7 }, fc.no_grad(function() return m(x) end):size())
    for _, a in ipairs { 'mobilenet_v2', 'xresnet18', 'resnet50' } do
      local y = fc.no_grad(function() return model(a):eval()(x) end)
      assert.are.same({ 2, 1000 }, y:size(), a)
    end
  end)

  it('fuse BN and ReLU exactly as bn then relu', function()
    local m = model('resnet18')
    m:eval()
    local x = fc.randn(1, 3, 32, 32)
    local fused = fc.no_grad(function() return m(x) end)
    local bn1, relu = m.bn1, m.relu
    local h = fc.no_grad(function() return relu(bn1(m.conv1(x))) end)
    local plain_bn = fc.no_grad(function() return fc.F.batch_norm(m.conv1(x), bn1.running_mean, bn1.running_var,
      { weight = bn1.weight, bias = bn1.bias, training = false }):relu() end)
    assert.is_true((h - plain_bn):abs():max():item() < 1e-6)
    assert.are.same({ 1, 1000 }, fused:size())
  end)
end)

describe('xresnet', function()
  it('has a 3-conv stem, avg-pool shortcuts and zero-initialised last BNs', function()
    local m = model('xresnet18')
    assert.are.equal(12, m:len())
    for i, c in ipairs { { 3, 32, 2 }, { 32, 32, 1 }, { 32, 64, 1 } } do
      local conv = m[i][1]
      assert.are.same({ c[1], c[2], 3, c[3] }, { conv.in_channels, conv.out_channels, conv.kernel_size[1], conv.stride[1] })
      assert.is_nil(conv.bias)
      assert.is_true(m[i][2]:is_a(fc.nn.BatchNorm2d))
      assert.is_true(m[i][3]:is_a(fc.nn.ReLU))
    end
    assert.is_true(m[4]:is_a(fc.nn.MaxPool2d))
    local blocks = 0
    for _, mod in ipairs(m:modules()) do
      if mod:is_a(layers.ResBlock) then
        blocks = blocks + 1
        local path = mod.convpath
        local last = path[path:len()]
        assert.are.equal(0, last[2].weight:abs():sum():item())  -- BatchZero
        assert.are.equal(2, last:len())                          -- no activation in the last conv
        assert.are.equal(path[1][2].weight:numel(), path[1][2].weight:sum():item()) -- other BNs start at 1
        assert.are.equal(0, path[1][2].bias:abs():sum():item())  -- init_cnn zeroes biases
      end
    end
    assert.are.equal(8, blocks)
    -- stage 2's first block: AvgPool2d(2, ceil_mode) then a 1x1 ConvLayer without activation
    local id = m[6][1].idpath
    assert.is_true(id[1]:is_a(fc.nn.AvgPool2d))
    assert.are.equal(2, id[1].kernel_size)
    assert.is_true(id[1].ceil_mode)
    assert.are.same({ 64, 128, 1 }, { id[2][1].in_channels, id[2][1].out_channels, id[2][1].kernel_size[1] })
    assert.are.equal(2, id[2]:len())
    -- a residual block starts as its shortcut: zero BN, so block(x) = relu(x)
    m:eval()
    local blk = m[5][1]
    local x = fc.randn(2, 64, 8, 8)
    local y = fc.no_grad(function() return blk(x) end)
    assert.is_true((y - x:relu()):abs():max():item() < 1e-6)
  end)

  it('counts torchvision resnet18 plus the stem difference, and xresnet50 bottlenecks', function()
    -- the 3x3 stem (3*32 + 32*32 + 32*64)*9 weights + 2*(32+32+64) BN params
    -- replaces conv1 (64*3*49) and bn1 (2*64)
    local stem = (3 * 32 + 32 * 32 + 32 * 64) * 9 + 2 * (32 + 32 + 64)
    assert.are.equal(11689512 + stem - 64 * 3 * 49 - 128, count(model('xresnet18')))
    -- xresnet50: resnet50 with the same stem change (its shortcut convs equal torchvision's downsample)
    assert.are.equal(25557032 + stem - 64 * 3 * 49 - 128, count(model('xresnet50')))
    assert.are.equal(2048, model('xresnet50')[12].in_features)
    assert.are.equal(16 * 4, model('xresnet50')[5][1].convpath[1][1].in_channels)
  end)
end)

describe('vision layers', function()
  it('pixel_shuffle matches PyTorch', function()
    local x = fc.arange(0, 16):float():reshape(1, 4, 2, 2)
    -- F.pixel_shuffle(torch.arange(16.).reshape(1,4,2,2), 2).flatten()
    assert.are.same({ 0, 4, 1, 5, 8, 12, 9, 13, 2, 6, 3, 7, 10, 14, 11, 15 }, fc.F.pixel_shuffle(x, 2):reshape(-1):totable())
    assert.has_error(function() fc.F.pixel_shuffle(fc.zeros(1, 3, 2, 2), 2) end,
      'pixel_shuffle: 3 channels are not divisible by the upscale factor squared (4)')
  end)

  it('interpolate (nearest) matches PyTorch, with a gradient', function()
    local y = fc.arange(0, 9):float():reshape(1, 1, 3, 3)
    assert.are.same({ 0, 0, 1, 2, 0, 0, 1, 2, 3, 3, 4, 5, 3, 3, 4, 5, 6, 6, 7, 8 },
      fc.F.interpolate(y, { 5, 4 }):reshape(-1):totable())
    local z = fc.arange(0, 25):float():reshape(1, 1, 5, 5):requires_grad_()
    local out = fc.F.interpolate(z, { 3, 2 })
    assert.are.same({ 0, 2, 5, 7, 15, 17 }, out:reshape(-1):totable())
    out:sum():backward()
    assert.are.equal(6, z.grad:sum():item())
    assert.has_error(function() fc.F.interpolate(y, { 2, 2 }, { mode = 'bilinear' }) end)
  end)

  it('ICNR gives each PixelShuffle group one kernel', function()
    local ps = layers.PixelShuffle_ICNR(6, 5)
    local w = ps[1][1].weight
    assert.are.same({ 20, 6, 1, 1 }, w:size())
    for c = 0, 4 do
      for j = 2, 4 do assert.are.same(w[c * 4 + 1]:totable(), w[c * 4 + j]:totable()) end
    end
    assert.is_true((w[1] - w[5]):abs():sum():item() > 0)
    assert.are.equal(0, ps[1][1].bias:abs():sum():item())
    local y = ps(fc.randn(2, 6, 3, 4))
    assert.are.same({ 2, 5, 6, 8 }, y:size())
  end)

  it('SigmoidRange, MergeLayer and ResizeToOrig', function()
    local s = layers.SigmoidRange(-1, 3)
    assert.is_true(math.abs(s(fc.tensor({ 0.0 })):item() - 1) < 1e-6)
    local seq = layers.SequentialEx { fc.nn.Conv2d(2, 3, 3, { stride = 2, padding = 1 }), layers.ResizeToOrig(),
      layers.MergeLayer { dense = true } }
    assert.are.same({ 1, 5, 7, 9 }, seq(fc.randn(1, 2, 7, 9)):size())
  end)
end)

describe('DynamicUnet', function()
  local function tiny_encoder()
    return fc.nn.Sequential { layers.ConvLayer(3, 8, { stride = 2 }), layers.ConvLayer(8, 8),
      layers.ConvLayer(8, 16, { stride = 2 }), layers.ConvLayer(16, 32, { stride = 2 }) }
  end

  it('hooks the encoder where its size changes and gives back the input size', function()
    local enc = tiny_encoder()
    assert.are.same({ 2, 3 }, M.size_change_idxs(M.model_sizes(enc, { 32, 32 })))
    local unet = M.DynamicUnet(enc, 5, { 32, 32 })
    -- encoder, BN, ReLU, middle conv, 2 UnetBlocks, PixelShuffle_ICNR, ResizeToOrig, MergeLayer, ResBlock, ConvLayer
    assert.are.equal(11, unet:len())
    assert.is_true(unet[5]:is_a(M.UnetBlock) and unet[6]:is_a(M.UnetBlock))
    -- block 1: 32 channels up to 16, with 16 hooked: 32 -> 32; the last: 32 -> 16, with 8 hooked: 24 -> 12
    assert.are.same({ 32, 32 }, { unet[5].conv1[1].in_channels, unet[5].conv2[1].out_channels })
    assert.are.same({ 24, 12 }, { unet[6].conv1[1].in_channels, unet[6].conv2[1].out_channels })
    assert.are.equal(12 + 3, unet[10].convpath[1][1].in_channels)
    assert.are.same({ 15, 5 }, { unet[11][1].in_channels, unet[11][1].out_channels })
    for _, size in ipairs { { 32, 32 }, { 36, 44 } } do
      local y = unet(fc.randn(2, 3, size[1], size[2]))
      assert.are.same({ 2, 5, size[1], size[2] }, y:size())
    end
    -- gradients reach the encoder through the hooked features
    local y = unet(fc.randn(1, 3, 32, 32))
    y:sum():backward()
    assert.is_not_nil(enc[1][1].weight.grad)
  end)

  it('builds on a resnet body (fastai layout) with the input size out', function()
    local body = fc.vision.create_body('resnet18')
    local unet = M.DynamicUnet(body, 3, { 32, 32 })
    local ups = {}
    for _, m in ipairs(unet:children()) do
      if m:is_a(M.UnetBlock) then ups[#ups + 1] = m.conv2[1].out_channels end
    end
    assert.are.same({ 512, 384, 256, 96 }, ups)
    local y = unet(fc.randn(2, 3, 32, 32))
    assert.are.same({ 2, 3, 32, 32 }, y:size())
  end)
end)
