-- bench/norm.lua — batch_norm forward + backward on [128,64,14,14] float32
-- (training: batch statistics, running stats updated, weight and bias):
-- the fused C kernels against the Lua composition they replaced and
-- against PyTorch (bench/norm.py).
--   build/fastlua bench/norm.lua [threads] [cpu]   (default 2 threads, wall clock)
-- On a shared, loaded machine a 2-thread parallel region waits whenever
-- the other thread is descheduled, and wall-clock times count the time
-- other processes ran: `1 cpu` times one thread by the CPU time this
-- process used (both sides), which such load barely moves.
local fc = require 'fastc'
local timer = dofile('bench/timer.lua')
local F = fc.F
local threads = tonumber(arg and arg[1]) or 2
local cpu_clock = arg and arg[2] == 'cpu'
fc.set_num_threads(threads)
if cpu_clock then timer.use_cpu_clock() end

-- The composition fc.F.batch_norm was before issue 3 (mean, var, then
-- broadcast arithmetic; autograd through each op).
local function composed_batch_norm(x, rm, rv, opts)
  local eps, momentum = opts.eps or 1e-5, opts.momentum or 0.1
  local dims, shape = { 1 }, { 1, x:size(2) }
  for d = 3, x:dim() do dims[#dims + 1], shape[#shape + 1] = d, 1 end
  local mean = x:mean(dims, true)
  local var = x:var(dims, { correction = 0, keepdim = true })
  local n = x:numel() / x:size(2)
  fc.no_grad(function()
    rm:mul_(1 - momentum):add_(mean:view(-1) * momentum)
    rv:mul_(1 - momentum):add_(var:view(-1) * (momentum * n / math.max(n - 1, 1)))
  end)
  local y = (x - mean) * (var + eps):rsqrt()
  return y * opts.weight:view(shape) + opts.bias:view(shape)
end

fc.manual_seed(0)
local C = 64
local x = fc.randn(128, C, 14, 14):requires_grad_()
local g = fc.randn(128, C, 14, 14)
local w, b = fc.ones(C):requires_grad_(), fc.zeros(C):requires_grad_()
local rm, rv = fc.zeros(C), fc.ones(C)

-- Outputs and gradients are freed at once (t:free()), as PyTorch's
-- refcounting does: otherwise each call writes to memory the GC has not yet
-- handed back, which is cold in cache and costs as much as the kernel.
local function drop_grads()
  for _, t in ipairs { x, w, b } do
    if t.grad then t.grad:free() end
    t.grad = nil
  end
end
local function step(bn, opts)
  return function()
    drop_grads()
    local y = bn(x, rm, rv, opts)
    y:backward(g)
    y:free()
  end
end
local function forward(bn, opts)
  return function() fc.no_grad(function() bn(x, rm, rv, opts):free() end) end
end

local train = { weight = w, bias = b, training = true }
local eval = { weight = w, bias = b, training = false }
local eval_relu = { weight = w, bias = b, training = false, act = 'relu' }
local results = {
  { 'bn_train_fwd_bwd', timer.median(step(F.batch_norm, train), 21),
    timer.median(step(composed_batch_norm, train), 11) },
  { 'bn_train_fwd', timer.median(forward(F.batch_norm, train), 21),
    timer.median(forward(composed_batch_norm, train), 11) },
  { 'bn_eval_fwd', timer.median(forward(F.batch_norm, eval), 21) },
  { 'bn_relu_eval_fwd', timer.median(forward(F.batch_norm, eval_relu), 21),
    timer.median(forward(function(...) return F.batch_norm(...):relu() end, eval), 21) },
}

local torch = timer.torch('bench/norm.py', tostring(threads) .. (cpu_clock and ' cpu' or ''))
local function ms(s) return s and ('%.2f ms'):format(s * 1e3) or 'n/a' end
print('| [128,64,14,14] float32, ' .. threads .. ' thread(s), ' .. (cpu_clock and 'CPU time' or 'wall clock') .. ' | fastc fused | fastc before (composed) | PyTorch 1.13 | vs before (×) | vs PyTorch (×) |')
print('|---|---|---|---|---|---|')
for _, r in ipairs(results) do
  local t = torch and torch[r[1]]
  print(('| %s | %s | %s | %s | %s | %s |'):format(r[1], ms(r[2]), ms(r[3]), ms(t),
    r[3] and ('%.2f'):format(r[3] / r[2]) or '', t and ('%.2f'):format(t / r[2]) or 'n/a'))
end
print('(×: the other time / fastc fused; above 1 means fused fastc is faster. '
  .. 'bn_relu_eval_fwd "before": batch_norm then relu, unfused.)')
