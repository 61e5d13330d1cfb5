-- bench/memory_curve.lua — resident memory over a long training run, with no
-- collectgarbage() anywhere: the binding's byte-counting GC steps must keep
-- it flat. Trains MODEL (bench/models.lua) on Fashion-MNIST, Adam 1e-3,
-- batch 128, cycling through epochs, and samples VmRSS every EVERY steps.
--   build/fastlua bench/memory_curve.lua [model=mlp] [steps=20000] [every=2000]
-- Prints a markdown table and a last line
--   "flat: yes|no  first MB  last MB  max MB  growth %"
-- where growth compares the highest RSS of the second half of the run with
-- the highest of the first half (after the first sample: warm-up).
local fc = require 'fastc'
local models = dofile('bench/models.lua')

local name = arg[1] or 'mlp'
local steps, every = tonumber(arg[2]) or 20000, tonumber(arg[3]) or 2000
local DATA = os.getenv('FASTC_DATA') or '/usr/share/datasets/fashion-mnist'

local function rss_mb()
  for line in io.lines('/proc/self/status') do
    local kb = line:match('^VmRSS:%s+(%d+)')
    if kb then return tonumber(kb) / 1024 end
  end
end

fc.manual_seed(0)
local x = fc.read_idx(DATA .. '/train-images-idx3-ubyte.gz'):float():div(255):unsqueeze(2)
local y = fc.read_idx(DATA .. '/train-labels-idx1-ubyte.gz'):long() + 1
local model = (models[name] or error('unknown model ' .. name))()
local opt = fc.optim.torch.Adam(model:parameters(), { lr = 1e-3 })
local n, bs = x:size(1), 128
local perm, pos = fc.randperm(n), 1
local samples = {}
print('| step | RSS MB | loss |')
print('|---|---|---|')
for step = 1, steps do
  if pos + bs - 1 > n then perm, pos = fc.randperm(n), 1 end
  local idx = perm:narrow(1, pos, bs)
  pos = pos + bs
  local loss = fc.F.cross_entropy(model(x:index_select(1, idx)), y:index_select(1, idx))
  opt:zero_grad()
  loss:backward()
  opt:step()
  if step % every == 0 or step == 1 then
    local mb = rss_mb()
    samples[#samples + 1] = mb
    print(('| %d | %.1f | %.4f |'):format(step, mb, loss:item()))
  end
end
local half = math.floor(#samples / 2)
local first_max, second_max = 0, 0
for i = 2, #samples do
  if i <= half then first_max = math.max(first_max, samples[i])
  else second_max = math.max(second_max, samples[i]) end
end
local growth = first_max > 0 and (second_max / first_max - 1) * 100 or 0
print(('flat: %s  first %.1f MB  last %.1f MB  max %.1f MB  growth %.1f %%'):format(
  growth < 5 and 'yes' or 'no', samples[1], samples[#samples], math.max(first_max, second_max), growth))
