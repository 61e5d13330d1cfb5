-- lua/fastc/vision/models/mobilenet.lua — torchvision's MobileNetV2
-- (inverted residuals with linear bottlenecks, ReLU6), with its module
-- names, so state dicts match torchvision's once Sequential positions are
-- counted from 1: features.0.0.weight there is features.1.1.weight here.
--
--   local m = fc.vision.models.mobilenet_v2{num_classes = 10, width_mult = 1}
--
-- Children: features (19 blocks), classifier (Dropout(0.2), Linear); the
-- global average pool is in forward, as in torchvision, so the body is
-- `features` (cut -1).
return function(fc)
  local nn = fc.nn
  local models = fc.vision.models
  local floor, max = math.floor, math.max

  -- torchvision's _make_divisible: v rounded to a multiple of 8, never
  -- more than 10% below v.
  local function make_divisible(v, divisor)
    divisor = divisor or 8
    local new_v = max(divisor, floor((v + divisor / 2) / divisor) * divisor)
    if new_v < 0.9 * v then new_v = new_v + divisor end
    return new_v
  end
  models.make_divisible = make_divisible

  -- Conv2dNormActivation: conv (no bias), BN, ReLU6 as a Sequential.
  local function conv_bn_act(cin, cout, ks, stride, groups, act)
    local list = { nn.Conv2d(cin, cout, ks, { stride = stride or 1, padding = floor((ks - 1) / 2), groups = groups,
      bias = false }), nn.BatchNorm2d(cout) }
    if act ~= false then list[3] = nn.ReLU6() end
    return nn.Sequential(list)
  end

  local InvertedResidual = nn.Module:extend('InvertedResidual')
  models.InvertedResidual = InvertedResidual
  function InvertedResidual:init(inp, oup, stride, expand_ratio)
    nn.Module.init(self)
    local hidden = floor(inp * expand_ratio + 0.5)
    self.use_res_connect = stride == 1 and inp == oup
    local list = {}
    if expand_ratio ~= 1 then list[#list + 1] = conv_bn_act(inp, hidden, 1) end
    list[#list + 1] = conv_bn_act(hidden, hidden, 3, stride, hidden)
    list[#list + 1] = nn.Conv2d(hidden, oup, 1, { bias = false })
    list[#list + 1] = nn.BatchNorm2d(oup)
    self.conv = nn.Sequential(list)
  end
  function InvertedResidual:forward(x)
    if self.use_res_connect then return x + self.conv(x) end
    return self.conv(x)
  end

  -- MobileNetV2{num_classes = 1000, width_mult = 1, dropout = 0.2}
  local MobileNetV2 = nn.Module:extend('MobileNetV2')
  models.MobileNetV2 = MobileNetV2
  local SETTING = { { 1, 16, 1, 1 }, { 6, 24, 2, 2 }, { 6, 32, 3, 2 }, { 6, 64, 4, 2 }, { 6, 96, 3, 1 },
    { 6, 160, 3, 2 }, { 6, 320, 1, 1 } }
  function MobileNetV2:init(o)
    nn.Module.init(self)
    o = o or {}
    local wm = o.width_mult or 1
    local input_channel = make_divisible(32 * wm)
    local last_channel = make_divisible(1280 * math.max(1, wm))
    local features = { conv_bn_act(3, input_channel, 3, 2) }
    for _, s in ipairs(SETTING) do
      local t, c, n, st = s[1], s[2], s[3], s[4]
      local out = make_divisible(c * wm)
      for i = 1, n do
        features[#features + 1] = InvertedResidual(input_channel, out, i == 1 and st or 1, t)
        input_channel = out
      end
    end
    features[#features + 1] = conv_bn_act(input_channel, last_channel, 1)
    self.features = nn.Sequential(features)
    self.classifier = nn.Sequential { nn.Dropout(o.dropout or 0.2), nn.Linear(last_channel, o.num_classes or 1000) }
    for _, m in ipairs(self:modules()) do
      if m:is_a(nn.Conv2d) then
        nn.init.kaiming_normal_(m.weight, { mode = 'fan_out' })
        if m.bias then nn.init.zeros_(m.bias) end
      elseif m:is_a(nn.Linear) then
        nn.init.normal_(m.weight, 0, 0.01)
        nn.init.zeros_(m.bias)
      end
    end
  end
  function MobileNetV2:forward(x)
    x = fc.F.adaptive_avg_pool2d(self.features(x), 1):flatten(2)
    return self.classifier(x)
  end

  models.register_arch('mobilenet_v2', function(o) return MobileNetV2(o) end, models.mobilenet_meta)
end
