-- bench/conv_layers.lua — median time of conv2d forward + backward (input,
-- weight and bias gradients) for the benchmark CNN's four layers and the
-- ResNet's distinct 3x3 shapes, batch 128, float32; the best of 20 runs.
--   build/fastlua bench/conv_layers.lua
-- The kernel behind it is chosen by the environment:
--   FASTC_CONV_BACKEND=im2col   im2col + OpenBLAS instead of oneDNN
--   FASTC_DNNL_LAYOUT=any       oneDNN's blocked layouts (+ reorders)
local fc = require 'fastc'
local timer = dofile('bench/timer.lua')

-- name, Cin, Cout, H (=W), stride
local layers = {
  { 'cnn1', 1, 16, 28, 2 }, { 'cnn2', 16, 32, 14, 2 }, { 'cnn3', 32, 64, 7, 2 }, { 'cnn4', 64, 128, 4, 2 },
  { 'res32', 32, 32, 28, 1 }, { 'res64s2', 32, 64, 28, 2 }, { 'res64', 64, 64, 14, 1 },
  { 'res128', 128, 128, 7, 1 },
}
-- The fastest of `reps` runs, in wall-clock and in process CPU seconds: on a
-- shared machine the minimum is the number least disturbed by other work,
-- and with FASTC_NUM_THREADS=1 the CPU time is the work itself, however
-- loaded the machine is.
local function best(fn, reps)
  fn()
  local wall, cpu = math.huge, math.huge
  for _ = 1, reps do
    local t0, c0 = timer.now(), os.clock()
    fn()
    wall, cpu = math.min(wall, timer.now() - t0), math.min(cpu, os.clock() - c0)
  end
  return wall, cpu
end

fc.manual_seed(0)
local total, total_cpu = 0, 0
for _, l in ipairs(layers) do
  local name, cin, cout, hw, stride = l[1], l[2], l[3], l[4], l[5]
  local x = fc.randn(128, cin, hw, hw):requires_grad_()
  local w = (fc.randn(cout, cin, 3, 3) * 0.1):requires_grad_()
  local b = fc.zeros(cout):requires_grad_()
  local y0 = fc.F.conv2d(x, w, b, { stride = stride, padding = 1 })
  local g = fc.randn(y0:size())
  local function step()
    local y = fc.F.conv2d(x, w, b, { stride = stride, padding = 1 })
    y:backward(g)
    x.grad, w.grad, b.grad = nil, nil, nil
  end
  local fwd, fwd_cpu = best(function() fc.F.conv2d(x, w, b, { stride = stride, padding = 1 }) end, 20)
  local both, both_cpu = best(step, 20)
  total, total_cpu = total + both, total_cpu + both_cpu
  print(('%-8s [128,%d,%d,%d] -> %d  fwd %.3f ms (cpu %.3f)  fwd+bwd %.3f ms (cpu %.3f)'):format(name, cin, hw, hw,
    cout, fwd * 1e3, fwd_cpu * 1e3, both * 1e3, both_cpu * 1e3))
end
print(('total fwd+bwd %.3f ms (cpu %.3f)'):format(total * 1e3, total_cpu * 1e3))
