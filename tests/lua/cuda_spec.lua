-- tests/lua/cuda_spec.lua — the CUDA backend from Lua.
--
-- Everywhere: fc.cuda says whether CUDA can be used; without a device,
-- is_available() is false with the reason, moving a tensor raises it, and
-- the CPU build behaves as before.
-- Where a device is usable: every op of the plugin against the CPU result
-- on fresh random inputs, gradients, optimizer steps and a short training
-- run whose loss curve must match the CPU's. Without one these print
-- "skipped" (make test-gpu too); FASTC_REQUIRE_GPU=1 makes that a failure.
-- In `make test` the device cases also run once, in a child fastlua,
-- against the host-memory fake plugin (tests/c/fake_cuda_plugin.c), so the
-- spec itself and the core's CUDA paths are exercised on any machine.
local fc = require 'fastc'
local S = dofile('tests/lua/support.lua')
local has = S.has
-- its own err_of: the pcall must run here for errors to name this file's lines
local function err_of(f, ...)
  local ok, e = pcall(f, ...)
  assert.is_false(ok, 'expected an error')
  return tostring(e)
end
local F = fc.F

local available = fc.cuda.is_available()
local why = fc.cuda.why_unavailable()
local on_fake = available and fc.cuda.info():find('fake', 1, true) ~= nil

describe('fc.cuda', function()
  it('says whether CUDA can be used, and why not', function()
    assert.is_boolean(available)
    assert.is_number(fc.cuda.device_count())
    if available then
      assert.is_nil(why)
      assert.is_true(fc.cuda.device_count() >= 1)
    else
      assert.is_string(why)
      assert.truthy(#why > 10)
      assert.equal(0, fc.cuda.device_count())
      assert.equal(why, fc.cuda.info())
    end
  end)

  it('without a device, moving a tensor raises the reason', function()
    if available then return end
    local e = err_of(function() return fc.ones(2, 3):cuda() end)
    has(e, 'cuda_spec.lua:') -- the user's line, not fastc's
    has(e, 'CUDA backend is not loaded')
    has(e, why)
    has(err_of(function() return fc.zeros(2, { device = 'cuda' }) end), 'CUDA backend is not loaded')
    has(err_of(function() return fc.ones(2):to('cuda:0') end), why)
    local model = fc.nn.Linear(3, 2)
    has(err_of(function() model:cuda() end), 'CUDA backend is not loaded')
    has(err_of(fc.cuda.memory_stats), 'CUDA is not available')
    fc.cuda.empty_cache() -- nothing cached, nothing to do
    fc.cuda.synchronize()
  end)

  it('leaves the CPU build as it was', function()
    local a = fc.tensor({ { 1, 2 }, { 3, 4.5 } })
    assert.same({ { 2, 4 }, { 6, 9 } }, (a * 2):totable())
    assert.equal('cpu', a.device)
    assert.is_false(a.is_cuda)
    assert.same(a:totable(), a:cpu():totable())
    local m = fc.nn.Linear(3, 2)
    assert.equal(m, m:cpu())
  end)

  it('switches TF32 and reports the previous setting', function()
    local before = fc.backends.allow_tf32(false)
    assert.is_true(before)
    assert.is_false(fc.cuda.allow_tf32())
    assert.is_false(fc.backends.allow_tf32(true))
    assert.is_true(fc.cuda.allow_tf32())
  end)

  it('refuses device names it does not know', function()
    has(err_of(fc.cuda.synchronize, 'gpu0'), 'expected a device number or "cuda:N"')
  end)
end)

-- ---- on a device ---------------------------------------------------------------

local function close(a, b, tol)
  if a ~= a and b ~= b then return true end
  return a == b or math.abs(a - b) <= tol * (1 + math.abs(b))
end

-- The GPU result (moved back) holds the CPU's values within tol.
local function matches(gpu, cpu, tol, what)
  assert.equal('cuda:0', gpu.device, what)
  assert.same(cpu:size(), gpu:size(), what)
  assert.equal(cpu.dtype, gpu.dtype, what)
  local g, c = gpu:cpu():double():reshape(-1):totable(), cpu:double():reshape(-1):totable()
  for i = 1, #c do
    if not close(g[i], c[i], tol) then
      error(string.format('%s: element %d is %.9g on the GPU, %.9g on the CPU', what or '', i, g[i], c[i]), 2)
    end
  end
end

-- Trains the model make_model() builds with make_opt on the batch make_batch()
-- gives for `steps` steps, once on each device; the GPU's losses must follow
-- the CPU's within tol, and the CPU run must learn.
local function same_loss_curve(steps, tol, make_model, make_opt, make_batch)
  local function run(dev)
    local model = make_model()
    if dev == 'cuda' then model:cuda() end
    local opt = make_opt(model:parameters())
    local X, Y = make_batch()
    X, Y = X:to(dev), Y:to(dev)
    local losses = {}
    for step = 1, steps do
      local loss = F.cross_entropy(model(X), Y)
      opt:zero_grad()
      loss:backward()
      opt:step()
      losses[step] = loss:item()
    end
    return losses
  end
  local cpu, gpu = run('cpu'), run('cuda')
  assert.truthy(cpu[steps] < cpu[1] * 0.8, 'the CPU run should learn')
  for i = 1, steps do
    assert.truthy(close(gpu[i], cpu[i], tol), string.format('step %d: %g on the GPU, %g on the CPU', i, gpu[i], cpu[i]))
  end
end

local TOL = { float32 = 1e-5, float64 = 1e-12, float16 = 2e-3, bfloat16 = 1.6e-2 }

describe('on the GPU', function()
  if not available then
    if os.getenv('FASTC_REQUIRE_GPU') == '1' then
      it('needs a usable CUDA device', function() error('make test-gpu: ' .. why) end)
    else
      print('cuda_spec: GPU cases skipped: ' .. why)
    end
    return
  end
  setup(function() fc.backends.allow_tf32(false) end)
  teardown(function() fc.backends.allow_tf32(true) end)

  it('moves tensors of every dtype both ways', function()
    for _, dt in ipairs { 'float32', 'float64', 'float16', 'bfloat16', 'int64', 'int32', 'uint8', 'bool' } do
      local c = fc.tensor({ { 1, 0, 1 }, { 0, 1, 1 } }, { dtype = dt })
      local g = c:cuda()
      assert.equal('cuda:0', g.device)
      assert.is_true(g.is_cuda)
      assert.same(c:totable(), g:cpu():totable())
      assert.same(c:totable(), c:to('cuda:0'):totable()) -- printing and totable read through
    end
    local t = fc.randn(4, 5):t() -- strided: made contiguous on the way
    assert.same(t:totable(), t:cuda():cpu():totable())
  end)

  it('creates on the device what the CPU creates', function()
    matches(fc.zeros(3, 4, { device = 'cuda' }), fc.zeros(3, 4), 0)
    matches(fc.full({ 2, 3 }, 2.5, { device = 'cuda:0' }), fc.full({ 2, 3 }, 2.5), 0)
    matches(fc.arange(1, 10, 0.5, { device = 'cuda' }), fc.arange(1, 10, 0.5), 0)
    matches(fc.eye(3, { device = 'cuda' }), fc.eye(3), 0)
    fc.manual_seed(11)
    local c = fc.randn(5, 6)
    fc.manual_seed(11)
    matches(fc.randn(5, 6, { device = 'cuda' }), c, 0) -- the same Philox stream
  end)

  it('runs every binary op with broadcasting and type promotion', function()
    for _, dt in ipairs { 'float32', 'float64', 'float16', 'bfloat16' } do
      local a, b = fc.randn(4, 1, 6):to(dt), fc.randn(5, 1):to(dt)
      local pos = a:abs() + 0.5
      local ga, gb, gpos = a:cuda(), b:cuda(), pos:cuda()
      for _, op in ipairs { 'add', 'sub', 'mul', 'div', 'maximum', 'minimum', 'eq', 'ne', 'lt', 'le', 'gt', 'ge' } do
        matches(ga[op](ga, gb), a[op](a, b), TOL[dt], dt .. ' ' .. op)
      end
      matches(gpos:pow(gb), pos:pow(b), TOL[dt] * 10, dt .. ' pow')
      matches(ga + 2, a + 2, TOL[dt], dt .. ' + scalar')
      matches(ga:add_scaled(gb, -0.5), a:add_scaled(b, -0.5), TOL[dt], dt .. ' add_scaled')
    end
    local i, f = fc.randint(-5, 6, { 3, 4 }), fc.randn(4)
    local gi, gf = i:cuda(), f:cuda()
    matches(gi * gi - gi, i * i - i, 0, 'int64 arithmetic')
    matches(gi + gf, i + f, 1e-6, 'int64 + float32 promotes')
    matches(gi:pow(2), i:pow(2), 0, 'int64 pow')
    matches(gi:gt(0):logical_and(gi:lt(3)), i:gt(0):logical_and(i:lt(3)), 0, 'bool logic')
    local a = fc.randn(3, 4)
    local ga = a:cuda()
    a:add_(f); ga:add_(gf)
    matches(ga, a, 1e-6, 'in place')
  end)

  it('runs every unary op', function()
    for _, dt in ipairs { 'float32', 'float64', 'float16', 'bfloat16' } do
      local x = (fc.randn(7, 9) * 2):to(dt)
      local pos = x:abs() + 0.1
      local gx, gpos = x:cuda(), pos:cuda()
      for _, op in ipairs { 'neg', 'abs', 'exp', 'tanh', 'sigmoid', 'relu', 'gelu', 'silu', 'floor',
        'ceil', 'round', 'sign', 'sin', 'cos' } do
        matches(gx[op](gx), x[op](x), TOL[dt] * 4, dt .. ' ' .. op)
      end
      for _, op in ipairs { 'log', 'log1p', 'sqrt', 'rsqrt' } do
        matches(gpos[op](gpos), pos[op](pos), TOL[dt] * 4, dt .. ' ' .. op)
      end
      matches(gx:clamp(-0.5, 0.7), x:clamp(-0.5, 0.7), 0, dt .. ' clamp')
      matches(gx:leaky_relu(0.2), x:leaky_relu(0.2), TOL[dt], dt .. ' leaky_relu')
      matches(fc.where(gx:gt(0), gx, gpos), fc.where(x:gt(0), x, pos), 0, dt .. ' where')
    end
    local i = fc.randint(-5, 6, { 10 })
    matches(i:cuda():abs(), i:abs(), 0, 'int64 abs')
    matches(i:cuda():clamp(-2, 2), i:clamp(-2, 2), 0, 'int64 clamp')
  end)

  it('converts between dtypes like the CPU', function()
    local x = fc.randn(50) * 300
    local gx = x:cuda()
    for _, dt in ipairs { 'float64', 'float16', 'bfloat16', 'int64', 'int32', 'uint8', 'bool' } do
      matches(gx:to(dt), x:to(dt), 0, 'float32 -> ' .. dt)
      matches(gx:to(dt):to('float32'), x:to(dt):to('float32'), 0, dt .. ' -> float32')
    end
  end)

  it('reduces over any dims', function()
    for _, dt in ipairs { 'float32', 'float64', 'float16' } do
      local x = fc.randn(6, 7, 8):to(dt)
      local gx = x:cuda()
      matches(gx:sum(), x:sum(), TOL[dt] * 10, dt .. ' sum')
      matches(gx:sum(2), x:sum(2), TOL[dt] * 10, dt .. ' sum(2)')
      matches(gx:sum({ 1, 3 }, true), x:sum({ 1, 3 }, true), TOL[dt] * 10, dt .. ' sum({1,3})')
      matches(gx:mean(-1), x:mean(-1), TOL[dt] * 10, dt .. ' mean(-1)')
      matches(gx:max(), x:max(), 0, dt .. ' max')
      matches(gx:transpose(1, 3):sum(1), x:transpose(1, 3):sum(1), TOL[dt] * 10, dt .. ' strided sum')
    end
    local big = fc.randn(1000, 700) -- one long row: split across blocks
    matches(big:cuda():sum(), big:sum(), 1e-4, 'large sum')
    matches(big:cuda():mean(), big:mean(), 1e-4, 'large mean')
    matches(big:cuda():sum(1), big:sum(1), 1e-4, 'column sums')
    local i = fc.randint(0, 100, { 30, 40 })
    matches(i:cuda():sum(2), i:sum(2), 0, 'int64 sums')
  end)

  it('multiplies matrices through cuBLAS', function()
    for _, dt in ipairs { 'float32', 'float64' } do
      local a, b = fc.randn(33, 17):to(dt), fc.randn(17, 29):to(dt)
      local ga, gb = a:cuda(), b:cuda()
      matches(ga:matmul(gb), a:matmul(b), TOL[dt] * 10, dt .. ' mm')
      matches(gb:t():matmul(ga:t()), b:t():matmul(a:t()), TOL[dt] * 10, dt .. ' transposed')
      local bat = fc.randn(3, 5, 17):to(dt)
      matches(bat:cuda():matmul(gb), bat:matmul(b), TOL[dt] * 10, dt .. ' batched')
      local v = fc.randn(17):to(dt)
      matches(ga:matmul(v:cuda()), a:matmul(v), TOL[dt] * 10, dt .. ' mv')
      local c = fc.randn(29):to(dt)
      matches(c:cuda():addmm(ga, gb, { beta = 0.5, alpha = 2 }), c:addmm(a, b, { beta = 0.5, alpha = 2 }),
        TOL[dt] * 10, dt .. ' addmm')
    end
    local a, b = fc.randn(64, 64), fc.randn(64, 64)
    fc.backends.allow_tf32(true) -- tensor cores: about 3 decimal digits
    matches(a:cuda():matmul(b:cuda()), a:matmul(b), 2e-2, 'tf32 mm')
    fc.backends.allow_tf32(false)
  end)

  it('runs softmax and log_softmax over any dim', function()
    for _, dt in ipairs { 'float32', 'float64' } do
      local x = fc.randn(4, 5, 6):to(dt)
      local gx = x:cuda()
      for dim = 1, 3 do
        matches(gx:softmax(dim), x:softmax(dim), TOL[dt] * 10, dt .. ' softmax ' .. dim)
        matches(gx:log_softmax(dim), x:log_softmax(dim), TOL[dt] * 10, dt .. ' log_softmax ' .. dim)
      end
    end
  end)

  it('computes the fused cross-entropy like the CPU', function()
    local x, y = fc.randn(8, 5, { dtype = 'float64' }), fc.randint(1, 6, { 8 })
    local w = fc.rand(5, { dtype = 'float64' }) + 0.5
    local gx, gy, gw = x:cuda(), y:cuda(), w:cuda()
    local cases = { {}, { reduction = 'sum' }, { reduction = 'none' }, { label_smoothing = 0.1 },
      { weight = true, ignore_index = 3 }, { weight = true, label_smoothing = 0.2 } }
    for _, opts in ipairs(cases) do
      local o, go = {}, {}
      for k, v in pairs(opts) do o[k], go[k] = v, v end
      if opts.weight then o.weight, go.weight = w, gw end
      matches(F.cross_entropy(gx, gy, go), F.cross_entropy(x, y, o), 1e-12, 'cross_entropy')
    end
    local sx, sy = fc.randn(2, 4, 3, { dtype = 'float64' }), fc.randint(1, 5, { 2, 3 }) -- [N, C, d1]
    matches(F.cross_entropy(sx:cuda(), sy:cuda()), F.cross_entropy(sx, sy), 1e-12, 'spatial')
    has(err_of(F.cross_entropy, gx, fc.tensor({ 1, 2, 3, 4, 5, 6, 7, 9 }):cuda()), 'target 6 is out of range for 5 classes (expected 1 to 5)')
  end)

  it('gives the CPU gradients through autograd', function()
    local function loss_of(x, w, b, y)
      local h = (x:matmul(w) + b):tanh()
      local p = h:softmax(2) * h:sigmoid() + h:relu():pow(2) - h:exp():log1p()
      return F.cross_entropy(p, y) + h:max() * 0.1 + (p / (h:abs() + 1)):mean()
    end
    local x, w = fc.randn(6, 4, { dtype = 'float64' }), fc.randn(4, 5, { dtype = 'float64' })
    local b, y = fc.randn(5, { dtype = 'float64' }), fc.randint(1, 6, { 6 })
    local grads = {}
    for _, dev in ipairs { 'cpu', 'cuda' } do
      local function leaf(t) return t:to(dev):detach():requires_grad_() end
      local xs = { leaf(x), leaf(w), leaf(b) }
      local l = loss_of(xs[1], xs[2], xs[3], y:to(dev))
      l:backward()
      grads[dev] = { l, xs[1].grad, xs[2].grad, xs[3].grad }
    end
    for k = 1, 4 do matches(grads.cuda[k], grads.cpu[k], 1e-10, 'gradient ' .. k) end
  end)

  it('passes a float64 finite-difference check on the device', function()
    local x = fc.randn(3, 4, { dtype = 'float64', device = 'cuda' }):requires_grad_()
    local function f(t) return (t:softmax(2) * t:sin()):sum() end
    f(x):backward()
    local g, h = x.grad:cpu():totable(), 1e-6
    for i = 1, 3 do
      for j = 1, 4 do
        local xp, xm = x:detach():clone(), x:detach():clone()
        xp[{ i, j }] = xp[{ i, j }] + h
        xm[{ i, j }] = xm[{ i, j }] - h
        local fd = (f(xp):item() - f(xm):item()) / (2 * h)
        assert.truthy(close(g[i][j], fd, 1e-6), string.format('(%d,%d): %g vs %g', i, j, g[i][j], fd))
      end
    end
  end)

  it('trains a small network with the CPU loss curve', function()
    same_loss_curve(25, 1e-4, function()
      fc.manual_seed(5)
      return fc.nn.Sequential { fc.nn.Linear(10, 32), fc.nn.ReLU(), fc.nn.Linear(32, 4) }
    end, function(params) return fc.optim.Adam(params, { lr = 1e-2 }) end, function()
      fc.manual_seed(6)
      return fc.randn(64, 10), fc.randint(1, 5, { 64 })
    end)
  end)

  it('takes SGD steps like the CPU', function()
    local p, g = fc.randn(100), fc.randn(100)
    local opts = { lr = 0.1, momentum = 0.9, nesterov = true, weight_decay = 1e-3 }
    local cp, gp = p:clone():requires_grad_(), p:cuda():requires_grad_()
    local copt, gopt = fc.optim.torch.SGD({ cp }, opts), fc.optim.torch.SGD({ gp }, opts)
    for _ = 1, 3 do
      cp.grad, gp.grad = g:clone(), g:cuda()
      copt:step(); gopt:step()
    end
    matches(gp:detach(), cp:detach(), 1e-5, 'sgd')
  end)

  it('keeps memory in the caching allocator', function()
    fc.cuda.empty_cache()
    local before = fc.cuda.memory_stats()
    local t = fc.zeros(1024, 1024, { device = 'cuda' })
    local during = fc.cuda.memory_stats()
    assert.equal(4 * 1024 * 1024, during.allocated_bytes - before.allocated_bytes)
    t:free()
    local after = fc.cuda.memory_stats()
    assert.equal(before.allocated_bytes, after.allocated_bytes)
    assert.truthy(after.cached_bytes >= 4 * 1024 * 1024)
    for _ = 1, 50 do -- steady state: every step reuses cached blocks
      local a = fc.randn(256, 256, { device = 'cuda' })
      local _ = (a:matmul(a) + 1):relu():sum():item()
    end
    local steady = fc.cuda.memory_stats()
    assert.truthy(steady.num_cache_hits > after.num_cache_hits)
    fc.cuda.empty_cache()
    assert.equal(0, fc.cuda.memory_stats().cached_bytes)
    fc.cuda.synchronize()
  end)

  -- ---- cuDNN convolutions and batch norm, pooling kernels ----------------------
  -- float32 runs cuDNN against oneDNN (TF32 off): sums of a few hundred
  -- products, so a wider bound than elementwise ops get.
  local CONV_TOL = { float32 = 1e-4, float64 = 1e-10 }

  it('convolves like the CPU, every dtype and geometry', function()
    local cases = {
      { x = { 2, 4, 9, 8 }, w = { 6, 4, 3, 3 }, o = { padding = 1 } },
      { x = { 3, 6, 11, 7 }, w = { 4, 3, 3, 2 }, o = { stride = { 2, 1 }, padding = { 1, 0 }, dilation = { 1, 2 }, groups = 2 } },
      { x = { 1, 8, 5, 5 }, w = { 8, 1, 3, 3 }, o = { padding = 1, groups = 8 } }, -- depthwise
      { x = { 2, 3, 16, 16 }, w = { 5, 3, 1, 1 }, o = { stride = 2 } },
    }
    for _, dt in ipairs { 'float32', 'float64' } do
      for i, c in ipairs(cases) do
        local x, w = fc.randn(c.x, { dtype = dt }), fc.randn(c.w, { dtype = dt })
        local b = fc.randn(c.w[1], { dtype = dt })
        matches(F.conv2d(x:cuda(), w:cuda(), b:cuda(), c.o), F.conv2d(x, w, b, c.o), CONV_TOL[dt], dt .. ' conv ' .. i)
        local wt = fc.randn(c.w[2] * (c.o.groups or 1), c.w[1] / (c.o.groups or 1), c.w[3], c.w[4], { dtype = dt })
        local t = c.o
        matches(F.conv_transpose2d(x:cuda(), wt:cuda(), nil, t), F.conv_transpose2d(x, wt, nil, t), CONV_TOL[dt],
          dt .. ' conv_transpose ' .. i)
      end
    end
    local h = fc.randn(2, 4, 6, 6, { dtype = 'float16' }) -- halves compute in float32
    local hw = fc.randn(3, 4, 3, 3, { dtype = 'float16' })
    matches(F.conv2d(h:cuda(), hw:cuda()), F.conv2d(h, hw), TOL.float16 * 4, 'float16 conv')
  end)

  it('pools like the CPU, indices included', function()
    local x = fc.randn(2, 3, 13, 10)
    local function both(f, what)
      local c, g = f(x), f(x:cuda())
      matches(g, c, 1e-6, what)
    end
    both(function(t) return F.max_pool2d(t, 2) end, 'max 2x2')
    both(function(t) return F.max_pool2d(t, { 3, 2 }, { stride = 2, padding = 1, dilation = { 2, 1 }, ceil_mode = true }) end, 'max ceil')
    both(function(t) return F.avg_pool2d(t, 3, { stride = 2, padding = 1 }) end, 'avg')
    both(function(t) return F.avg_pool2d(t, 3, { stride = 2, padding = 1, ceil_mode = true, count_include_pad = false }) end, 'avg no pad')
    both(function(t) return F.adaptive_avg_pool2d(t, { 4, 3 }) end, 'adaptive avg')
    both(function(t) return F.adaptive_avg_pool2d(t, 1) end, 'global avg')
    both(function(t) return F.adaptive_max_pool2d(t, { 5, 7 }) end, 'adaptive max')
    local _, ci = F.max_pool2d(x, 3, { stride = 2, return_indices = true })
    local _, gi = F.max_pool2d(x:cuda(), 3, { stride = 2, return_indices = true })
    matches(gi, ci, 0, 'max indices')
  end)

  it('normalises batches like the CPU, running statistics included', function()
    for _, dt in ipairs { 'float32', 'float64' } do
      local tol = dt == 'float64' and 1e-10 or 1e-4
      local x = fc.randn(8, 5, 6, 7, { dtype = dt }) * 3 + 1
      local w, b = fc.randn(5, { dtype = dt }), fc.randn(5, { dtype = dt })
      local rm, rv = fc.zeros(5, { dtype = dt }), fc.ones(5, { dtype = dt })
      local grm, grv = rm:cuda(), rv:cuda()
      for _, act in ipairs { false, 'relu' } do
        local o = { weight = w, bias = b, training = true, momentum = 0.2, act = act or nil }
        local go = { weight = w:cuda(), bias = b:cuda(), training = true, momentum = 0.2, act = act or nil }
        matches(F.batch_norm(x:cuda(), grm, grv, go), F.batch_norm(x, rm, rv, o), tol, dt .. ' training')
        matches(grm, rm, tol, dt .. ' running mean')
        matches(grv, rv, tol, dt .. ' running var')
        o.training, go.training = false, false
        matches(F.batch_norm(x:cuda(), grm, grv, go), F.batch_norm(x, rm, rv, o), tol, dt .. ' eval')
      end
    end
  end)

  it('gives the CPU gradients through convolutions, pooling and batch norm', function()
    local function loss_of(x, w, g, b, wt)
      local h = F.conv2d(x, w, nil, { padding = 1, stride = 2 })
      h = F.batch_norm(h, nil, nil, { weight = g, bias = b, act = 'relu' })
      h = F.max_pool2d(h, 2, { padding = 1 }) + F.avg_pool2d(h, 2, { padding = 1 })
      h = F.conv_transpose2d(h, wt, nil, { stride = 2 })
      return (F.adaptive_avg_pool2d(h, 2) * F.adaptive_max_pool2d(h, 3):mean()):sum()
    end
    local inputs = { fc.randn(2, 3, 9, 9), fc.randn(4, 3, 3, 3), fc.randn(4), fc.randn(4), fc.randn(4, 2, 2, 2) }
    local grads = {}
    for _, dev in ipairs { 'cpu', 'cuda' } do
      local xs = {}
      for k, t in ipairs(inputs) do xs[k] = t:double():to(dev):detach():requires_grad_() end
      local l = loss_of((table.unpack or unpack)(xs))
      l:backward()
      grads[dev] = { l }
      for k = 1, #xs do grads[dev][k + 1] = xs[k].grad end
    end
    for k = 1, #grads.cpu do matches(grads.cuda[k], grads.cpu[k], 1e-9, 'gradient ' .. k) end
  end)

  it('trains a small CNN with the CPU loss curve', function()
    same_loss_curve(15, 1e-3, function()
      fc.manual_seed(7)
      return fc.nn.Sequential {
        fc.nn.Conv2d(3, 8, 3, { padding = 1 }), fc.nn.BatchNorm2d(8), fc.nn.ReLU(), fc.nn.MaxPool2d(2),
        fc.nn.Conv2d(8, 16, 3, { padding = 1, stride = 2 }), fc.nn.BatchNorm2d(16), fc.nn.ReLU(),
        fc.nn.AdaptiveAvgPool2d(1), fc.nn.Flatten(), fc.nn.Linear(16, 4),
      }
    end, function(params) return fc.optim.torch.SGD(params, { lr = 0.1, momentum = 0.9 }) end, function()
      fc.manual_seed(8)
      return fc.randn(32, 3, 12, 12), fc.randint(1, 5, { 32 })
    end)
  end)

  it('indexes like the CPU: index_select, gather, scatter, embedding', function()
    local x = fc.randn(4, 5, 6)
    local gx = x:cuda()
    for _, dt in ipairs { 'float32', 'float64', 'float16', 'bfloat16', 'int64', 'int32', 'uint8', 'bool' } do
      local t = (x * 3):to(dt)
      local i = fc.tensor({ 3, 1, 3, 5 })
      matches(t:cuda():index_select(2, i:cuda()), t:index_select(2, i), 0, dt .. ' index_select')
      local gi = fc.randint(1, 5, { 4, 3, 6 })
      matches(t:cuda():gather(2, gi:cuda()), t:gather(2, gi), 0, dt .. ' gather')
    end
    local si = fc.randint(1, 5, { 4, 3, 6 })
    local src = fc.randn(4, 3, 6)
    matches(gx:scatter_add(2, si:cuda(), src:cuda()), x:scatter_add(2, si, src), 1e-6, 'scatter_add')
    local ints = fc.randint(-9, 9, { 4, 5, 6 }, { dtype = 'int32' })
    matches(ints:cuda():scatter_add(2, si:cuda(), ints:cuda()), ints:scatter_add(2, si, ints), 0, 'int scatter_add')
    local one = fc.tensor({ { 2 }, { 4 } })
    matches(fc.zeros(2, 5):cuda():scatter(2, one:cuda(), 7), fc.zeros(2, 5):scatter(2, one, 7), 0, 'scalar scatter')
    local w = fc.randn(10, 4)
    local idx = fc.randint(1, 11, { 3, 7 })
    matches(F.embedding(idx:cuda(), w:cuda(), { padding_idx = 2 }), F.embedding(idx, w, { padding_idx = 2 }), 0, 'embedding')
    local grads = {}
    for _, dev in ipairs { 'cpu', 'cuda' } do
      local wd, xd = w:double():to(dev):requires_grad_(), x:double():to(dev):requires_grad_()
      local l = (F.embedding(idx:to(dev), wd, { padding_idx = 2 }):sin():sum()
        + xd:index_select(3, fc.tensor({ 6, 1, 6 }):to(dev)):cos():sum()
        + xd:gather(2, si:to(dev)):pow(2):sum())
      l:backward()
      grads[dev] = { l, wd.grad, xd.grad }
    end
    for k = 1, 3 do matches(grads.cuda[k], grads.cpu[k], 1e-10, 'index gradient ' .. k) end
    has(err_of(function() return gx:index_select(1, fc.tensor({ 1, 9 }):cuda()) end), 'index 9 out of range')
  end)

  it('draws random numbers on the device from the CPU stream', function()
    for _, dt in ipairs { 'float32', 'float64' } do
      local exact = dt == 'float64' and 1e-15 or 0 -- the device's FMA may move a float64's last bit
      fc.manual_seed(42)
      local c = { fc.rand(50, 3, { dtype = dt }), fc.randn(40, { dtype = dt }), fc.randint(0, 7, { 33 }) }
      fc.manual_seed(42)
      local g = { fc.rand(50, 3, { dtype = dt, device = 'cuda' }), fc.randn(40, { dtype = dt, device = 'cuda' }),
        fc.randint(0, 7, { 33 }, { device = 'cuda' }) }
      matches(g[1], c[1], exact, dt .. ' rand')
      matches(g[2], c[2], dt == 'float64' and 1e-12 or 1e-6, dt .. ' randn') -- CUDA's log/sin/cos vs libm
      matches(g[3], c[3], 0, 'randint')
    end
    fc.manual_seed(9)
    local cb = fc.zeros(1000):bernoulli_(0.3)
    fc.manual_seed(9)
    matches(fc.zeros(1000):cuda():bernoulli_(0.3), cb, 0, 'bernoulli')
    local x = fc.randn(8, 33)
    local grads = {}
    for _, dev in ipairs { 'cpu', 'cuda' } do
      fc.manual_seed(77)
      local xd = x:to(dev):detach():requires_grad_()
      local y = F.dropout(xd, { p = 0.4 })
      y:sum():backward()
      grads[dev] = { y, xd.grad }
    end
    matches(grads.cuda[1], grads.cpu[1], 0, 'dropout')
    matches(grads.cuda[2], grads.cpu[2], 0, 'dropout gradient')
    fc.manual_seed(78)
    local c2 = F.dropout2d(fc.ones(2, 6, 3, 3), { p = 0.5 })
    fc.manual_seed(78)
    matches(F.dropout2d(fc.ones(2, 6, 3, 3):cuda(), { p = 0.5 }), c2, 0, 'dropout2d')
  end)

  it('queues work on user streams, times it with events, pins loader batches', function()
    local s = fc.cuda.Stream()
    assert.is_nil(fc.cuda.current_stream())
    local a = fc.randn(64, 64)
    local got, tag = fc.cuda.stream(s, function(x)
      assert.equal(s, fc.cuda.current_stream())
      return (x:cuda():matmul(x:cuda()) + 1):cpu(), 'done'
    end, a)
    assert.equal('done', tag)
    assert.is_nil(fc.cuda.current_stream()) -- put back
    matches(got:cuda(), a:matmul(a) + 1, 1e-4, 'on a stream')
    has(err_of(fc.cuda.stream, s, function() error('inside') end), 'inside')
    assert.is_nil(fc.cuda.current_stream()) -- put back after an error too
    local e0, e1 = fc.cuda.Event { enable_timing = true }, fc.cuda.Event { enable_timing = true }
    e0:record()
    local b = fc.randn(256, 256, { device = 'cuda' })
    for _ = 1, 5 do b = b:matmul(b):tanh() end
    e1:record(s)
    s:wait_event(e1)
    s:synchronize()
    e1:synchronize()
    assert.is_true(e1:query() and s:query())
    assert.truthy(e0:elapsed_time(e1) >= 0)
    has(err_of(function() return e0:elapsed_time(fc.cuda.Event()) end), 'enable_timing')
    local p = fc.arange(1, 13):reshape(3, 4):t():pin_memory()
    assert.is_true(p:is_pinned())
    assert.same(fc.arange(1, 13):reshape(3, 4):t():totable(), p:cuda():cpu():totable())
    has(err_of(function() return p:cuda():pin_memory() end), 'only CPU tensors can be pinned')
    local ds = fc.data.TensorDataset(fc.randn(10, 3), fc.arange(1, 11))
    local dl = fc.data.DataLoader(ds, { bs = 4, pin_memory = true, num_workers = 0 })
    local n = 0
    for xb, yb in dl:iter() do
      n = n + 1
      assert.is_true(xb:is_pinned() and yb:is_pinned())
    end
    assert.equal(3, n)
  end)

  it('sorts and takes topk like the CPU, ties, NaN and gradients included', function()
    for _, dt in ipairs { 'float32', 'float64', 'float16', 'int64', 'int32', 'uint8' } do
      local x = (fc.randn(5, 40, 7) * 4):round():to(dt) -- many ties
      for _, dim in ipairs { 1, 2, 3 } do
        for _, desc in ipairs { false, true } do
          local cv, ci = x:sort(dim, { descending = desc })
          local gv, gi = x:cuda():sort(dim, { descending = desc })
          matches(gv, cv, 0, dt .. ' sort values')
          matches(gi, ci, 0, dt .. ' sort indices')
        end
        local cv, ci = x:topk(3, { dim = dim })
        local gv, gi = x:cuda():topk(3, { dim = dim })
        matches(gv, cv, 0, dt .. ' topk values')
        matches(gi, ci, 0, dt .. ' topk indices')
      end
    end
    local nan = fc.tensor({ 3, 0 / 0, -1, 2, 0 / 0, -0.0, 0 })
    local cv, ci = nan:sort()
    local gv, gi = nan:cuda():sort()
    matches(gv, cv, 0, 'nan sort')
    matches(gi, ci, 0, 'nan sort indices')
    local grads = {}
    local x = fc.randn(4, 9, { dtype = 'float64' })
    for _, dev in ipairs { 'cpu', 'cuda' } do
      local xd = x:to(dev):detach():requires_grad_()
      local v = xd:topk(4, { dim = 2 })
      local s = xd:sort(1, { descending = true })
      local l = (v:sin():sum() + (s * fc.arange(1, 5, { dtype = 'float64' }):to(dev):reshape(4, 1)):sum())
      l:backward()
      grads[dev] = { l, xd.grad }
    end
    for k = 1, 2 do matches(grads.cuda[k], grads.cpu[k], 1e-12, 'sort gradient ' .. k) end
  end)

  it('names ops that have no CUDA kernel yet', function()
    local g = fc.randn(3, 3):cuda()
    has(err_of(function() return g:cumprod(1) end), 'has no CUDA kernel yet')
    has(err_of(function() return g + fc.ones(3) end), 'different devices')
  end)
end)

-- ---- the device cases against the fake plugin, in a child process -------------------

describe('the GPU cases against the fake plugin', function()
  local fastlua = os.getenv('FASTLUA')
  local fake = fastlua and fastlua:match('^(.*)/[^/]*$') .. '/tests/libfake_cuda.so'
  local f = fake and io.open(fake, 'rb')
  if f then f:close() end
  if on_fake or not f or os.getenv('FASTC_REQUIRE_GPU') == '1' or os.getenv('FASTC_IN_TEST_GPU') then return end
  it('pass, so the spec and the core CUDA paths run without a GPU', function()
    local spec = debug.getinfo(1, 'S').source:sub(2)
    local out = os.tmpname()
    -- FASTC_REQUIRE_GPU: a fake that fails to load (a stale build) fails here instead of skipping
    local cmd = string.format("FASTC_REQUIRE_GPU=1 FASTC_CUDA_PLUGIN='%s' '%s' tools/busted.lua -o tools/busted_summary.lua '%s' >'%s' 2>&1",
      fake, fastlua, spec, out)
    local rc = os.execute(cmd)
    local h = io.open(out, 'rb')
    local text = h:read('*a')
    h:close()
    os.remove(out)
    assert.truthy(rc == 0 or rc == true, text)
    assert.truthy(text:find(' 0 failed', 1, true), text)
  end)
end)
