-- bench/pool.lua — pooling on [128,64,14,14] float32 against PyTorch
-- (bench/pool.py, same work, 2 threads); prints a markdown table whose last
-- column is PyTorch time / fastc time.
--   build/fastlua bench/pool.lua [threads]   (default 2)
local fc = require 'fastc'
local F = fc.F
local timer = dofile('bench/timer.lua')

local threads = tonumber(arg and arg[1]) or 2
fc.set_num_threads(threads)
fc.manual_seed(0)
local x = fc.randn(128, 64, 14, 14)
local xg = x:clone():requires_grad_()

local function fwd_bwd(f)
  local g = fc.ones(f(x):size())
  return function()
    xg.grad = nil
    f(xg):backward(g)
  end
end

local cases = {
  { 'max2x2', function() return F.max_pool2d(x, 2) end },
  { 'max3x3s2p1', function() return F.max_pool2d(x, 3, { stride = 2, padding = 1 }) end },
  { 'avg2x2', function() return F.avg_pool2d(x, 2) end },
  { 'avg3x3s1p1', function() return F.avg_pool2d(x, 3, { stride = 1, padding = 1, count_include_pad = false }) end },
  { 'global_avg', function() return F.adaptive_avg_pool2d(x, 1) end },
  { 'global_max', function() return F.adaptive_max_pool2d(x, 1) end },
  { 'adaptive_avg5', function() return F.adaptive_avg_pool2d(x, 5) end },
  { 'max2x2_fwd_bwd', fwd_bwd(function(t) return F.max_pool2d(t, 2) end) },
  { 'max3x3s2p1_fwd_bwd', fwd_bwd(function(t) return F.max_pool2d(t, 3, { stride = 2, padding = 1 }) end) },
  { 'avg3x3s1p1_fwd_bwd', fwd_bwd(function(t) return F.avg_pool2d(t, 3, { stride = 1, padding = 1 }) end) },
  { 'global_avg_fwd_bwd', fwd_bwd(function(t) return F.adaptive_avg_pool2d(t, 1) end) },
}

local results = {}
for i, c in ipairs(cases) do results[i] = { name = c[1], s = timer.median(c[2], 31) } end

local torch = timer.torch('bench/pool.py', tostring(threads))
local function ms(s) return s and ('%.3f ms'):format(s * 1e3) or 'n/a' end
print(('| pooling, [128,64,14,14] float32, %d thread(s) | fastc | PyTorch | fastc speed-up (×) |'):format(threads))
print('|---|---|---|---|')
for _, r in ipairs(results) do
  local t = torch and torch[r.name]
  print(('| %s | %s | %s | %s |'):format(r.name, ms(r.s), ms(t), t and ('%.2f'):format(t / r.s) or 'n/a'))
end
