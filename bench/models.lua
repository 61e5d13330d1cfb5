-- bench/models.lua — the three benchmark models, defined like their
-- PyTorch twins in bench/models.py (same layers, same default init).
local fc = require 'fastc'
local nn = fc.nn

local M = {}

local function conv_bn(cin, cout, stride)
  return nn.Sequential { nn.Conv2d(cin, cout, 3, { stride = stride, padding = 1, bias = false }),
    nn.BatchNorm2d(cout), nn.ReLU() }
end

local Block = nn.Module:extend('Block')
function Block:init(cin, cout, stride)
  nn.Module.init(self)
  self.c1 = nn.Conv2d(cin, cout, 3, { stride = stride, padding = 1, bias = false })
  self.b1 = nn.BatchNorm2d(cout)
  self.c2 = nn.Conv2d(cout, cout, 3, { padding = 1, bias = false })
  self.b2 = nn.BatchNorm2d(cout)
  if stride ~= 1 or cin ~= cout then
    self.short = nn.Sequential { nn.Conv2d(cin, cout, 1, { stride = stride, bias = false }), nn.BatchNorm2d(cout) }
  end
end
function Block:forward(x)
  local y = self.b1(self.c1(x)):relu()
  y = self.b2(self.c2(y))
  return (y + (self.short and self.short(x) or x)):relu()
end

function M.mlp()
  return nn.Sequential { nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10) }
end

function M.cnn()
  return nn.Sequential { conv_bn(1, 16, 2), conv_bn(16, 32, 2), conv_bn(32, 64, 2), conv_bn(64, 128, 2),
    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10) }
end

function M.resnet()
  local layers, cin = { conv_bn(1, 32, 1) }, 32
  for _, s in ipairs { { 32, 1 }, { 64, 2 }, { 128, 2 } } do
    layers[#layers + 1] = Block(cin, s[1], s[2])
    layers[#layers + 1] = Block(s[1], s[1], 1)
    cin = s[1]
  end
  layers[#layers + 1] = nn.AdaptiveAvgPool2d(1)
  layers[#layers + 1] = nn.Flatten()
  layers[#layers + 1] = nn.Linear(128, 10)
  return nn.Sequential(layers)
end

-- ResNet-18's shape (torchvision's resnet18 layers: 7x7 stem, max pool,
-- four stages of two basic blocks, 64 to 512 channels), for bench/gpu.
function M.resnet18(cin, classes)
  local layers = { nn.Conv2d(cin or 3, 64, 7, { stride = 2, padding = 3, bias = false }), nn.BatchNorm2d(64), nn.ReLU(),
    nn.MaxPool2d(3, { stride = 2, padding = 1 }) }
  local c = 64
  for _, s in ipairs { { 64, 1 }, { 128, 2 }, { 256, 2 }, { 512, 2 } } do
    layers[#layers + 1] = Block(c, s[1], s[2])
    layers[#layers + 1] = Block(s[1], s[1], 1)
    c = s[1]
  end
  layers[#layers + 1] = nn.AdaptiveAvgPool2d(1)
  layers[#layers + 1] = nn.Flatten()
  layers[#layers + 1] = nn.Linear(512, classes or 1000)
  return nn.Sequential(layers)
end

return M
