-- bench/amp.lua — one training step (forward, loss, backward, Adam step) of
-- the benchmark MLP and CNN on a random batch of 128 Fashion-MNIST-shaped
-- images, in float32 and under bfloat16 autocast, fastc beside PyTorch's CPU
-- autocast (bench/amp.py) in the same run. Prints a markdown table of median
-- milliseconds per step and the ratios.
--   build/fastlua bench/amp.lua [threads] [reps] [cpu]
-- `1 20 cpu` times one thread by its CPU time: steadier on a shared machine.
local fc = require 'fastc'
local timer = dofile('bench/timer.lua')
local models = dofile('bench/models.lua')

local threads, reps, cpu_clock = tonumber(arg[1]) or 2, tonumber(arg[2]) or 20, arg[3] == 'cpu'
fc.set_num_threads(threads)
if cpu_clock then timer.use_cpu_clock() end

local function step_fn(name, autocast)
  fc.manual_seed(0)
  local model = models[name]()
  local opt = fc.optim.torch.Adam(model:parameters(), { lr = 1e-3 })
  local x, y = fc.randn(128, 1, 28, 28), fc.randint(1, 11, { 128 })
  local scope = autocast and fc.autocast { dtype = 'bf16' }
  return function()
    local loss
    if scope then
      loss = scope(function() return fc.F.cross_entropy(model(x), y) end)
    else
      loss = fc.F.cross_entropy(model(x), y)
    end
    opt:zero_grad()
    loss:backward()
    opt:step()
  end
end

local torch = timer.torch('bench/amp.py', threads .. ' ' .. reps .. (cpu_clock and ' cpu' or '')) or {}
print(string.format('%d thread(s), batch 128, median %s of %d steps; ratio = PyTorch time / fastc time', threads,
  cpu_clock and 'CPU time' or 'wall clock', reps))
print()
print('| model | fastc fp32 ms | fastc bf16 ms | fastc bf16/fp32 | PyTorch fp32 ms | PyTorch bf16 ms | PyTorch bf16/fp32 | ratio fp32 | ratio bf16 |')
print('|---|---|---|---|---|---|---|---|---|')
for _, name in ipairs { 'mlp', 'cnn' } do
  local f32 = timer.median(step_fn(name, false), reps) * 1e3
  local b16 = timer.median(step_fn(name, true), reps) * 1e3
  local t32, t16 = torch[name .. '_fp32'], torch[name .. '_bf16']
  local function ms(v) return v and string.format('%.2f', v * 1e3) or 'n/a' end
  local function ratio(a, b) return (a and b) and string.format('%.2f', a / b) or 'n/a' end
  print(string.format('| %s | %.2f | %.2f | %.2f | %s | %s | %s | %s | %s |', name, f32, b16, b16 / f32, ms(t32), ms(t16),
    ratio(t16, t32), ratio(t32 and t32 * 1e3, f32), ratio(t16 and t16 * 1e3, b16)))
end
