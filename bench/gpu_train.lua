-- bench/gpu_train.lua — fastc's half of bench/gpu.sh on a CUDA device.
--   build/fastlua bench/gpu_train.lua gemm N DTYPE       -> "TFLOP/s"
--   build/fastlua bench/gpu_train.lua MODEL BATCH PX STEPS -> "samples/s"
-- MODEL: resnet (bench/models.lua, 1x28x28 Fashion-MNIST shape) or
-- resnet18 (3 x PX x PX, 1000 classes). Synthetic data made on the device,
-- SGD (momentum 0.9, fused step), float32 with TF32 on (PyTorch's defaults
-- for cuDNN convolutions; its matmuls are told to match in gpu_train.py).
-- Timing is wall clock between device synchronisations, after warm-up.
local fc = require 'fastc'
local timer = dofile('bench/timer.lua')
local models = dofile('bench/models.lua')

if not fc.cuda.is_available() then
  io.stderr:write('bench/gpu_train.lua: no usable CUDA device: ' .. tostring(fc.cuda.why_unavailable()) .. '\n')
  os.exit(2)
end
local what = arg[1]

local function gemm(n, dtype)
  local a = fc.randn(n, n, { dtype = dtype, device = 'cuda' })
  local b = fc.randn(n, n, { dtype = dtype, device = 'cuda' })
  for _ = 1, 3 do a:matmul(b) end
  fc.cuda.synchronize()
  local iters, t0 = 20, timer.now()
  for _ = 1, iters do a:matmul(b) end
  fc.cuda.synchronize()
  return 2 * n ^ 3 * iters / (timer.now() - t0) / 1e12
end

local function train(name, batch, px, steps)
  fc.manual_seed(0)
  local model, x, classes
  if name == 'resnet' then
    model, classes = models.resnet(), 10
    x = fc.randn(batch, 1, 28, 28, { device = 'cuda' })
  else
    model, classes = models.resnet18(3, 1000), 1000
    x = fc.randn(batch, 3, px, px, { device = 'cuda' })
  end
  model:cuda()
  local y = fc.randint(1, classes + 1, { batch }, { device = 'cuda' })
  local opt = fc.optim.torch.SGD(model:parameters(), { lr = 0.01, momentum = 0.9 })
  local function step()
    local loss = fc.F.cross_entropy(model(x), y)
    opt:zero_grad()
    loss:backward()
    opt:step()
    return loss
  end
  for _ = 1, 3 do step() end -- warm-up: cuDNN algorithm search, the allocator's cache
  fc.cuda.synchronize()
  local t0 = timer.now()
  for _ = 1, steps do step() end
  fc.cuda.synchronize()
  return batch * steps / (timer.now() - t0)
end

if what == 'gemm' then
  print(('%.2f'):format(gemm(tonumber(arg[2]) or 8192, arg[3] or 'float32')))
else
  print(('%.1f'):format(train(what, tonumber(arg[2]) or 256, tonumber(arg[3]) or 128, tonumber(arg[4]) or 20)))
end
