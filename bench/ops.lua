-- bench/ops.lua — elementwise, reduction and per-op latency against PyTorch.
--   build/fastlua bench/ops.lua        (prints a markdown table)
local fc = require 'fastc'
local timer = dofile('bench/timer.lua')

local N = 16 * 1024 * 1024
local BYTES = 4 * N
local a, b, c = fc.randn(N), fc.randn(N), fc.randn(N)

local results = {}
local function record(name, seconds, bytes_moved)
  results[#results + 1] = { name = name, s = seconds, gbs = bytes_moved and bytes_moved / seconds / 1e9 }
end

record('add_16M', timer.median(function() local _ = a + b end, 21), 3 * BYTES)
record('chain_16M', timer.median(function() local _ = (a * b + c):relu() end, 21), 9 * BYTES)
record('sum_16M', timer.median(function() local _ = a:sum() end, 21), BYTES)

-- One tiny op, many times: the binding's overhead per call.
local x, y = fc.ones(1), fc.ones(1)
local CALLS = 200000
local per_call = timer.median(function()
  for _ = 1, CALLS do local _ = x + y end
end, 5, 1) / CALLS
record('tiny_add', per_call)

local torch = timer.torch('bench/ops.py')
print('| benchmark | fastc | GB/s | PyTorch | GB/s | fastc speed-up (×) |')
print('|---|---|---|---|---|---|')
for _, r in ipairs(results) do
  local t = torch and torch[r.name]
  local function fmt_time(s)
    if not s then return 'n/a' end
    return s < 1e-3 and ('%.2f µs'):format(s * 1e6) or ('%.2f ms'):format(s * 1e3)
  end
  local tg = t and r.gbs and ('%.1f'):format(r.gbs * r.s / t) or ''
  print(('| %s | %s | %s | %s | %s | %s |'):format(r.name, fmt_time(r.s),
    r.gbs and ('%.1f'):format(r.gbs) or '', fmt_time(t), tg, t and ('%.2f'):format(t / r.s) or 'n/a'))
end
