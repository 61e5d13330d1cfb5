-- bench/xresnet_step.lua — one training step (forward, cross-entropy,
-- backward, Adam) of xresnet18 with one input channel at 28 px, fastc
-- against PyTorch (bench/xresnet_step.py) in the same run: the compute
-- behind issue 7's Fashion-MNIST time per epoch.
--
--   build/fastlua bench/xresnet_step.lua [bs=128] [size=28]
package.path = './?.lua;' .. package.path
local fc = require 'fastc'
local timer = require 'bench.timer'

local bs, size = tonumber(arg[1]) or 128, tonumber(arg[2]) or 28
fc.manual_seed(0)
local model = fc.vision.models.xresnet18 { c_in = 1, n_out = 10 }
local opt = fc.optim.torch.Adam(model:parameters(), { lr = 1e-3 })
local x = fc.randn { bs, 1, size, size }
local labels = {}
for i = 1, bs do labels[i] = (i - 1) % 10 + 1 end
local y = fc.tensor(labels, { dtype = 'int64' })

local function step()
  local loss = fc.F.cross_entropy(model(x), y)
  opt:zero_grad()
  loss:backward()
  opt:step()
end

local threads = fc.get_num_threads()
local t = timer.median(step, 10, 3)
print(string.format('xresnet18 %d px, bs %d, %d threads: fastc %.1f ms/step (%.0f images/s)', size, bs, threads,
  t * 1e3, bs / t))
local py = timer.torch('bench/xresnet_step.py', string.format('%d %d %d', bs, threads, size))
if py and py.step_seconds then
  print(string.format('  PyTorch %.1f ms/step (%.0f images/s); PyTorch time / fastc time = %.2f', py.step_seconds * 1e3,
    bs / py.step_seconds, py.step_seconds / t))
else
  print('  PyTorch: not available (/usr/bin/python3 -c "import torch" fails)')
end
