-- examples/mnist_loop.lua — a plain training loop: the small CNN of the
-- benchmarks on Fashion-MNIST (Debian's dataset-fashion-mnist), Adam 1e-3,
-- batch 128, one epoch, then test accuracy.
--
--   build/fastlua examples/mnist_loop.lua [epochs] [seed]
local fc = require 'fastc'
local nn = fc.nn

local epochs, seed = tonumber(arg and arg[1]) or 1, tonumber(arg and arg[2]) or 0
local DATA = os.getenv('FASHION_MNIST') or '/usr/share/datasets/fashion-mnist'

-- Images as float32 [N,1,28,28] scaled to [0,1]; labels as 1-based int64.
local function load(split)
  local prefix = DATA .. '/' .. split
  local images = fc.read_idx(prefix .. '-images-idx3-ubyte.gz')
  local labels = fc.read_idx(prefix .. '-labels-idx1-ubyte.gz')
  return images:float():div(255):unsqueeze(2), labels:long() + 1
end

local function conv_bn(cin, cout)
  return nn.Sequential {
    nn.Conv2d(cin, cout, 3, { stride = 2, padding = 1, bias = false }),
    nn.BatchNorm2d(cout), nn.ReLU() }
end

local function cnn()
  return nn.Sequential {
    conv_bn(1, 16), conv_bn(16, 32), conv_bn(32, 64), conv_bn(64, 128),
    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10) }
end

local function accuracy(model, x, y)
  model:eval()
  local correct = 0
  fc.no_grad(function()
    for i = 1, x:size(1), 1000 do
      local n = math.min(1000, x:size(1) - i + 1)
      local pred = model(x:narrow(1, i, n)):argmax(2)
      correct = correct + pred:eq(y:narrow(1, i, n)):sum():item()
    end
  end)
  model:train()
  return correct / x:size(1)
end

fc.manual_seed(seed)
local xtrain, ytrain = load('train')
local xtest, ytest = load('t10k')
local model = cnn()
local opt = fc.optim.torch.Adam(model:parameters(), { lr = 1e-3 })
local BS = 128
local clock = os.clock
for epoch = 1, epochs do
  local perm = fc.randperm(xtrain:size(1))
  local t0, seen, total = clock(), 0, 0
  for i = 1, xtrain:size(1), BS do
    local n = math.min(BS, xtrain:size(1) - i + 1)
    local idx = perm:narrow(1, i, n)
    local xb, yb = xtrain:index_select(1, idx), ytrain:index_select(1, idx)
    local loss = fc.F.cross_entropy(model(xb), yb)
    opt:zero_grad()
    loss:backward()
    opt:step()
    seen, total = seen + n, total + loss:item() * n
  end
  print(('epoch %d  train loss %.4f  test accuracy %.4f  (%.1f s cpu)'):format(epoch, total / seen,
    accuracy(model, xtest, ytest), clock() - t0))
end
