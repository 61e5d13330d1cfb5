-- lua/fastc/vision/models/resnet.lua — torchvision's ResNet (v1.5: the
-- bottleneck strides in its 3x3 conv), laid out so state-dict names and
-- shapes match torchvision's once Sequential positions are counted from 1
-- (layer1.0.conv1.weight there is layer1.1.conv1.weight here; see
-- fc.vision.models.torchvision_keys).
--
--   local m = fc.vision.models.resnet18{num_classes = 10}
--   m:load_state_dict(fc.load('resnet18.safetensors'))  -- tools/convert_torchvision.py
--
-- Children in torchvision's order: conv1, bn1, relu, maxpool, layer1..4,
-- avgpool, fc — so fastai's cut (-2) and split (first 6 children, the rest
-- of the body, the head) apply unchanged.
return function(fc)
  local nn = fc.nn
  local models = fc.vision.models

  local function conv3x3(cin, cout, stride, groups)
    return nn.Conv2d(cin, cout, 3, { stride = stride or 1, padding = 1, bias = false, groups = groups })
  end
  local function conv1x1(cin, cout, stride)
    return nn.Conv2d(cin, cout, 1, { stride = stride or 1, bias = false })
  end

  -- BN then ReLU in one fused pass when the module is a plain BatchNorm2d.
  local bn_relu = models.bn_relu

  local BasicBlock = nn.Module:extend('BasicBlock')
  models.BasicBlock = BasicBlock
  BasicBlock.expansion = 1
  function BasicBlock:init(inplanes, planes, stride, downsample)
    nn.Module.init(self)
    self.conv1 = conv3x3(inplanes, planes, stride)
    self.bn1 = nn.BatchNorm2d(planes)
    self.relu = nn.ReLU()
    self.conv2 = conv3x3(planes, planes)
    self.bn2 = nn.BatchNorm2d(planes)
    if downsample then self.downsample = downsample end
  end
  function BasicBlock:forward(x)
    local out = bn_relu(self.bn1, self.conv1(x), self.relu)
    out = self.bn2(self.conv2(out))
    local identity = self.downsample and self.downsample(x) or x
    return (out + identity):relu()
  end

  local Bottleneck = nn.Module:extend('Bottleneck')
  models.Bottleneck = Bottleneck
  Bottleneck.expansion = 4
  function Bottleneck:init(inplanes, planes, stride, downsample)
    nn.Module.init(self)
    self.conv1 = conv1x1(inplanes, planes)
    self.bn1 = nn.BatchNorm2d(planes)
    self.conv2 = conv3x3(planes, planes, stride)
    self.bn2 = nn.BatchNorm2d(planes)
    self.conv3 = conv1x1(planes, planes * 4)
    self.bn3 = nn.BatchNorm2d(planes * 4)
    self.relu = nn.ReLU()
    if downsample then self.downsample = downsample end
  end
  function Bottleneck:forward(x)
    local out = bn_relu(self.bn1, self.conv1(x), self.relu)
    out = bn_relu(self.bn2, self.conv2(out), self.relu)
    out = self.bn3(self.conv3(out))
    local identity = self.downsample and self.downsample(x) or x
    return (out + identity):relu()
  end

  -- ResNet(block, layers, {num_classes = 1000, zero_init_residual = false}):
  -- torchvision's initialisation (kaiming_normal_ fan_out for convs, BN
  -- weight 1 and bias 0, PyTorch's default for fc).
  local ResNet = nn.Module:extend('ResNet')
  models.ResNet = ResNet
  function ResNet:init(block, layers, o)
    nn.Module.init(self)
    o = o or {}
    local inplanes = 64
    self.conv1 = nn.Conv2d(3, 64, 7, { stride = 2, padding = 3, bias = false })
    self.bn1 = nn.BatchNorm2d(64)
    self.relu = nn.ReLU()
    self.maxpool = nn.MaxPool2d(3, { stride = 2, padding = 1 })
    local function make_layer(planes, blocks, stride)
      local downsample
      if stride ~= 1 or inplanes ~= planes * block.expansion then
        downsample = nn.Sequential { conv1x1(inplanes, planes * block.expansion, stride),
          nn.BatchNorm2d(planes * block.expansion) }
      end
      local list = { block(inplanes, planes, stride, downsample) }
      inplanes = planes * block.expansion
      for _ = 2, blocks do list[#list + 1] = block(inplanes, planes, 1) end
      return nn.Sequential(list)
    end
    self.layer1 = make_layer(64, layers[1], 1)
    self.layer2 = make_layer(128, layers[2], 2)
    self.layer3 = make_layer(256, layers[3], 2)
    self.layer4 = make_layer(512, layers[4], 2)
    self.avgpool = nn.AdaptiveAvgPool2d(1)
    self.fc = nn.Linear(512 * block.expansion, o.num_classes or 1000)
    for _, m in ipairs(self:modules()) do
      if m:is_a(nn.Conv2d) then
        nn.init.kaiming_normal_(m.weight, { mode = 'fan_out', nonlinearity = 'relu' })
      end
    end
    if o.zero_init_residual then
      for _, m in ipairs(self:modules()) do
        local last = m:is_a(Bottleneck) and m.bn3 or m:is_a(BasicBlock) and m.bn2
        if last then nn.init.zeros_(last.weight) end
      end
    end
  end
  function ResNet:forward(x)
    x = self.maxpool(bn_relu(self.bn1, self.conv1(x), self.relu))
    x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
    return self.fc(self.avgpool(x):flatten(2))
  end

  local function resnet(name, block, layers)
    models.register_arch(name, function(o) return ResNet(block, layers, o) end, models.resnet_meta)
  end
  resnet('resnet18', BasicBlock, { 2, 2, 2, 2 })
  resnet('resnet34', BasicBlock, { 3, 4, 6, 3 })
  resnet('resnet50', Bottleneck, { 3, 4, 6, 3 })
  resnet('resnet101', Bottleneck, { 3, 4, 23, 3 })
  resnet('resnet152', Bottleneck, { 3, 8, 36, 3 })
end
