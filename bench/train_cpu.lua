-- bench/train_cpu.lua — train one model for one epoch of Fashion-MNIST (in
-- memory), Adam 1e-3, batch 128, and print "samples_per_s peak_rss_mb acc".
--   build/fastlua bench/train_cpu.lua MODEL [max_steps] [seed]
-- bench/train_cpu.sh runs every model here and in PyTorch and prints ratios.
local fc = require 'fastc'
local timer = dofile('bench/timer.lua')
local models = dofile('bench/models.lua')

local name, max_steps, seed = arg[1], tonumber(arg[2]) or 0, tonumber(arg[3]) or 0
local DATA = '/usr/share/datasets/fashion-mnist'

local function load(split)
  local x = fc.read_idx(DATA .. '/' .. split .. '-images-idx3-ubyte.gz'):float():div(255):unsqueeze(2)
  local y = fc.read_idx(DATA .. '/' .. split .. '-labels-idx1-ubyte.gz'):long() + 1
  return x, y
end

local function peak_rss_mb()
  for line in io.lines('/proc/self/status') do
    local kb = line:match('^VmHWM:%s+(%d+)')
    if kb then return tonumber(kb) / 1024 end
  end
end

fc.manual_seed(seed)
local xtr, ytr = load('train')
local xte, yte = load('t10k')
local make = models[name] or error('unknown model ' .. tostring(name))
local model = make()
local opt = fc.optim.torch.Adam(model:parameters(), { lr = 1e-3 })
local perm = fc.randperm(xtr:size(1))
local seen, step, t0 = 0, 0, timer.now()
for i = 1, xtr:size(1), 128 do
  local n = math.min(128, xtr:size(1) - i + 1)
  local idx = perm:narrow(1, i, n)
  local loss = fc.F.cross_entropy(model(xtr:index_select(1, idx)), ytr:index_select(1, idx))
  opt:zero_grad()
  loss:backward()
  opt:step()
  seen, step = seen + n, step + 1
  if max_steps > 0 and step >= max_steps then break end
end
local rate = seen / (timer.now() - t0)
model:eval()
local correct = 0
fc.no_grad(function()
  for i = 1, xte:size(1), 1000 do
    local pred = model(xte:narrow(1, i, 1000)):argmax(2)
    correct = correct + pred:eq(yte:narrow(1, i, 1000)):sum():item()
  end
end)
print(('%.1f %.1f %.4f'):format(rate, peak_rss_mb(), correct / xte:size(1)))
