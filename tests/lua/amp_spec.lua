-- tests/lua/amp_spec.lua — mixed precision: half tensors through the Lua API,
-- autocast scopes against PyTorch 1.13's CPU autocast (dtypes and values
-- pasted from torch), GradScaler with forced overflows, and the
-- MixedPrecision callback (learn:to_bf16 / to_fp16 / to_fp32).
local fc = require 'fastc'
local S = dofile('tests/lua/support.lua')
local U = fc.train_util

local function errmsg(f, ...)
  local ok, e = pcall(f, ...)
  assert.is_false(ok, 'expected an error')
  return tostring(e)
end

local function max_abs_diff(a, b)
  return (a:double() - b:double()):abs():max():item()
end

describe('half tensors', function()
  it('convert both ways with round-to-nearest-even', function()
    -- 1 + 2^-11 and 1 + 3*2^-11 are float16 ties; 1 + 2^-8 and 1 + 3*2^-8 bfloat16 ties
    local t = fc.tensor({ 1 + 2 ^ -11, 1 + 3 * 2 ^ -11, 65520, 2 ^ -25, 1 + 2 ^ -8, 1 + 3 * 2 ^ -8 })
    local h = t:half():float()
    assert.equal(math.huge, h[3]) -- 65520 is the tie between 65504 and 2^16: to even, which overflows
    h[3] = 0
    S.holds(h, { 1, 1 + 2 ^ -9, 0, 0, 1 + 2 ^ -8, 1 + 3 * 2 ^ -8 }, 0)
    S.holds(t:bfloat16():float(), { 1, 1, 65536, 2 ^ -25, 1, 1 + 2 ^ -6 }, 0)
    assert.equal('float16', fc.zeros(2, { dtype = 'half' }):type())
    assert.equal('bfloat16', fc.randn(2, 2, { dtype = 'bfloat16' }):type())
    S.holds(fc.tensor({ 0.1 }, { dtype = 'bfloat16' }), { 0.10009765625 }, 0)
  end)

  it('run ops in float32 and round once, with autograd', function()
    -- PyTorch 1.13: softmax of these bf16 logits, and their cross-entropy
    local logits = fc.tensor({ { 4.375, -2.1875 }, { -0.63671875, 4.375 } }, { dtype = 'bfloat16' })
    local p = logits:softmax(2)
    assert.equal('bfloat16', p:type())
    S.holds(p:float(), { { 1.0, 0.00141143798828125 }, { 0.006622314453125, 0.9921875 } }, 4e-3)
    local w = logits:clone():requires_grad_()
    local l = fc.F.cross_entropy(w, fc.tensor { 2, 1 })
    assert.equal('bfloat16', l:type())
    -- 5.79113 (float32) rounds to 5.78125 in bf16; PyTorch 1.13 accumulates in
    -- bf16 and gives 5.8125, the next bf16 value up
    assert.equal(5.78125, l:item())
    l:backward()
    assert.equal('bfloat16', w.grad:type())
    S.holds(w.grad:float(), { { 0.5, -0.5 }, { -0.49609375, 0.49609375 } }, 8e-3)
  end)

  -- Each op's output and input gradients in float32, bfloat16 and float16
  -- against float64 on the same values: relative errors stay near each
  -- dtype's unit roundoff (2^-9, 2^-12). A backward that reads a half
  -- gradient as float32 (the conv2d bug this caught) is off by orders of magnitude.
  it('give outputs and gradients within half precision of float64', function()
    local F = fc.F
    fc.manual_seed(5)
    local function rel(a, b) return (a:double() - b):norm():item() / math.max(b:norm():item(), 1e-12) end
    local cases = {
      { 'linear', { { 6, 9 }, { 5, 9 }, { 5 } }, function(x, w, b) return F.linear(x, w, b) end },
      { 'conv2d', { { 2, 3, 9, 9 }, { 4, 3, 3, 3 }, { 4 } }, function(x, w, b) return F.conv2d(x, w, b, { stride = 2, padding = 1 }) end },
      { 'conv_transpose2d', { { 2, 3, 4, 4 }, { 3, 2, 3, 3 }, { 2 } }, function(x, w, b) return F.conv_transpose2d(x, w, b, { stride = 2 }) end },
      { 'conv1d', { { 2, 3, 9 }, { 4, 3, 3 } }, function(x, w) return F.conv1d(x, w) end },
      { 'softmax', { { 4, 7 } }, function(x) return x:softmax(2) end },
      { 'log_softmax', { { 4, 7 } }, function(x) return x:log_softmax(2) end },
      { 'cross_entropy', { { 6, 5 } }, function(x) return F.cross_entropy(x, fc.tensor { 1, 2, 3, 4, 5, 1 }) end },
      { 'mse_loss', { { 6, 5 }, { 6, 5 } }, function(x, y) return F.mse_loss(x, y) end },
      { 'bce_with_logits', { { 6, 5 } }, function(x) return F.binary_cross_entropy_with_logits(x, x:detach():gt(0):to(x:type())) end },
      { 'layer_norm', { { 4, 8 }, { 8 }, { 8 } }, function(x, w, b) return F.layer_norm(x, 8, { weight = w, bias = b }) end },
      { 'batch_norm', { { 6, 3, 4, 4 }, { 3 }, { 3 } }, function(x, w, b) return F.batch_norm(x, nil, nil, { weight = w, bias = b, training = true }) end },
      { 'group_norm', { { 2, 4, 5 }, { 4 }, { 4 } }, function(x, w, b) return F.group_norm(x, 2, { weight = w, bias = b }) end },
      { 'max_pool2d', { { 2, 3, 6, 6 } }, function(x) return F.max_pool2d(x, 2) end },
      { 'avg_pool2d', { { 2, 3, 6, 6 } }, function(x) return F.avg_pool2d(x, 3, { stride = 2, padding = 1 }) end },
      { 'adaptive_avg_pool2d', { { 2, 3, 6, 6 } }, function(x) return F.adaptive_avg_pool2d(x, 1) end },
      { 'embedding', { { 7, 4 } }, function(w) return F.embedding(fc.tensor { 1, 3, 3, 7 }, w) end },
      { 'activations', { { 40 } }, function(x) return x:relu() + x:gelu() + x:silu() + x:tanh() + x:sigmoid() end },
      { 'reductions', { { 5, 6 } }, function(x) return x:sum(1) + x:mean(1) * 2 + x:var(1) + x:amax(1) end },
      { 'matmul batched', { { 3, 4, 5 }, { 5, 2 } }, function(a, b) return a:matmul(b) end },
      { 'index ops', { { 5, 6 } }, function(x) return x:index_select(1, fc.tensor { 2, 2, 5 }):gather(2, fc.tensor { { 1, 6 }, { 2, 2 }, { 3, 4 } }) end },
      { 'cat where', { { 3, 4 }, { 3, 4 } }, function(a, b) return fc.where(a:detach():gt(0), fc.cat({ a, b }, 1):narrow(1, 1, 3), b * 3) end },
    }
    local TOL = { float32 = 1e-6, bfloat16 = 1.5e-2, float16 = 2e-3 }
    for _, c in ipairs(cases) do
      local name, shapes, f = c[1], c[2], c[3]
      local base = {}
      for i, s in ipairs(shapes) do base[i] = fc.randn(s, { dtype = 'float64' }) end
      local function run(dt)
        local ins = {}
        for i, b in ipairs(base) do ins[i] = b:to(dt):detach():requires_grad_() end
        local y = f(unpack(ins))
        fc.manual_seed(99)
        y:backward(fc.randn(y:size(), { dtype = 'float64' }):to(y:type()))
        local grads = {}
        for i, x in ipairs(ins) do grads[i] = x.grad end
        return y, grads
      end
      local y64, g64 = run('float64')
      for dt, tol in pairs(TOL) do
        local y, g = run(dt)
        assert.equal(dt, y:type(), name)
        local worst = rel(y, y64)
        for i = 1, #g64 do
          assert.equal(dt, g[i]:type(), name)
          worst = math.max(worst, rel(g[i], g64[i]))
        end
        assert.is_true(worst < tol, string.format('%s in %s: relative error %.3g', name, dt, worst))
      end
    end
  end)

  it('refuse to mix dtypes where PyTorch does, naming the op and the dtypes', function()
    local e = errmsg(function() return fc.randn(2, 2):bfloat16():matmul(fc.randn(2, 2)) end)
    S.has(e, 'matmul: dtypes bfloat16 and float32 differ')
    local p, g = fc.randn(3):half(), fc.randn(3):half()
    local ffi = require 'ffi'
    local C = require 'fastc.lib'
    assert.equal(-1, C.fc_sgd_step(p.p, g.p, nil, 0.1, 0, 0, 0, 0, 1))
    S.has(ffi.string(C.fc_last_error()), 'sgd_step: parameters must be float32 or float64, got float16')
    assert.equal(-1, C.fc_adam_step(p.p, g.p, g.p, g.p, 0.1, 0.9, 0.99, 1e-8, 0, 0, 1))
    S.has(ffi.string(C.fc_last_error()), 'adam_step: parameters must be float32 or float64, got float16')
    local theta = fc.tensor({ { { 1, 0, 0 }, { 0, 1, 0 } } }, { dtype = 'float32' })
    local grid = fc.F.affine_grid(theta, { 1, 1, 4, 4 })
    S.has(errmsg(fc.F.grid_sample, fc.randn(1, 1, 4, 4):bfloat16(), grid:bfloat16()),
      'grid_sample: input must be float32 or float64, got bfloat16')
  end)
end)

describe('autocast', function()
  local x = fc.tensor({ { 0.3, -1.2, 2.5 }, { 1.7, 0.05, -0.8 } })
  local function params()
    return fc.tensor({ { 0.11, -0.7, 1.3 }, { 2.2, 0.4, -0.9 } }):requires_grad_(),
        fc.tensor({ 0.25, -0.125 }):requires_grad_()
  end

  it('lowers linear and keeps the loss in float32, like torch.autocast("cpu")', function()
    local w, b = params()
    local y, l = fc.autocast('bf16', function()
      local y = fc.F.linear(x, w, b)
      return y, fc.F.cross_entropy(y, fc.tensor { 2, 1 })
    end)
    assert.equal('bfloat16', y:type())
    assert.equal('float32', l:type())
    -- PyTorch 1.13 values for the same inputs
    S.holds(y:float(), { { 4.375, -2.1875 }, { -0.63671875, 4.375 } }, 4e-3)
    assert.is_true(S.close(l:item(), 5.791133880615234, 4e-3))
    l:backward()
    assert.equal('float32', w.grad:type())
    assert.equal('float32', b.grad:type())
    S.holds(w.grad, { { -0.6953125, -0.625, 1.6484375 }, { 0.6953125, 0.625, -1.6484375 } }, 8e-3)
    -- bf16 gradients of y are ~0.5 each: their sum is a few bf16 ulps (torch: 0.00390625)
    assert.is_true(math.abs(b.grad[1] - 0.00390625) <= 2 ^ -8)
  end)

  it('gives exactly the graph of explicit casts', function()
    local w1, b1 = params()
    local l1 = fc.autocast('bf16', function() return fc.F.linear(x, w1, b1):relu():sum() end)
    l1:backward()
    local w2, b2 = params()
    local l2 = fc.F.linear(x:bfloat16(), w2:bfloat16(), b2:bfloat16()):relu():sum()
    l2:backward()
    assert.equal(l2:type(), l1:type())
    assert.equal(l2:item(), l1:item())
    assert.equal(0, max_abs_diff(w1.grad, w2.grad))
    assert.equal(0, max_abs_diff(b1.grad, b2.grad))
  end)

  it('lowers conv2d (PyTorch 1.13 values)', function()
    local img = fc.arange(32):float():reshape(1, 2, 4, 4) * 0.1 - 1.3
    local k = fc.tensor({ { { { 0.5, -0.25 }, { 0.125, 1.0 } }, { { -1.5, 0.75 }, { 0.3, 0.2 } } } })
    local c = fc.autocast('bf16', fc.F.conv2d, img, k)
    assert.equal('bfloat16', c:type())
    local want = { -1.0390625, -0.9296875, -0.81640625, -0.58984375, -0.482421875, -0.365234375, -0.140625,
      -0.0341796875, 0.087890625 }
    local got = c:reshape(-1):float():totable()
    for i = 1, #want do assert.is_true(math.abs(got[i] - want[i]) <= 2 ^ -7, i .. ': ' .. got[i]) end
  end)

  -- The dtype each op gives under torch.autocast('cpu', dtype=torch.bfloat16)
  -- in PyTorch 1.13, for float32 inputs and for bfloat16 inputs.
  it("follows PyTorch 1.13's CPU op lists", function()
    local f, hb = fc.randn(4, 5), fc.randn(4, 5):bfloat16()
    local w = fc.randn(3, 5)
    local img, k = fc.randn(1, 2, 5, 5), fc.randn(3, 2, 3, 3)
    local tgt = fc.tensor { 1, 2, 3, 1 }
    local F = fc.F
    local cases = {
      { 'matmul', function(a) return a:matmul(w:t()) end, 'bfloat16', 'bfloat16' },
      { 'mm', function(a) return a:mm(w:t()) end, 'bfloat16', 'bfloat16' },
      { 'bmm', function(a) return a:unsqueeze(1):bmm(w:t():unsqueeze(1)) end, 'bfloat16', 'bfloat16' },
      { 'addmm', function(a) return fc.zeros(3):addmm(a, w:t()) end, 'bfloat16', 'bfloat16' },
      { 'linear', function(a) return F.linear(a, w) end, 'bfloat16', 'bfloat16' },
      { 'conv2d', function(a) return F.conv2d(a:type() == 'float32' and img or img:bfloat16(), k) end, 'bfloat16', 'bfloat16' },
      { 'conv1d', function(a) return F.conv1d(a:unsqueeze(2), fc.randn(2, 1, 2)) end, 'bfloat16', 'bfloat16' },
      { 'conv_transpose2d', function(a) return F.conv_transpose2d(a:unsqueeze(1):unsqueeze(1), fc.randn(1, 2, 2, 2)) end, 'float32', 'float32' },
      { 'prod', function(a) return a:prod() end, 'float32', 'float32' },
      { 'cross_entropy', function(a) return F.cross_entropy(a, tgt) end, 'float32', 'float32' },
      { 'nll_loss', function(a) return F.nll_loss(a, tgt) end, 'float32', 'float32' },
      { 'mse_loss', function(a) return F.mse_loss(a, 0) end, 'float32', 'float32' },
      { 'l1_loss', function(a) return F.l1_loss(a, 0) end, 'float32', 'float32' },
      { 'smooth_l1_loss', function(a) return F.smooth_l1_loss(a, 0) end, 'float32', 'float32' },
      { 'bce_with_logits', function(a) return F.binary_cross_entropy_with_logits(a, (a:gt(0)):to(a:type())) end, 'float32', 'float32' },
      { 'bce', function(a) return F.binary_cross_entropy(a:sigmoid(), (a:gt(0)):to(a:type())) end, 'float32', 'float32' },
      { 'softmax', function(a) return a:softmax(2) end, 'float32', 'bfloat16' },
      { 'log_softmax', function(a) return a:log_softmax(2) end, 'float32', 'bfloat16' },
      { 'layer_norm', function(a) return F.layer_norm(a, 5) end, 'float32', 'bfloat16' },
      { 'batch_norm', function(a) return F.batch_norm(a, nil, nil, { training = true }) end, 'float32', 'bfloat16' },
      { 'sum', function(a) return a:sum() end, 'float32', 'bfloat16' },
      { 'mean', function(a) return a:mean() end, 'float32', 'bfloat16' },
      { 'norm', function(a) return a:norm() end, 'float32', 'bfloat16' },
      { 'exp', function(a) return a:exp() end, 'float32', 'bfloat16' },
      { 'relu', function(a) return a:relu() end, 'float32', 'bfloat16' },
      { 'max_pool2d', function(a) return F.max_pool2d(a:unsqueeze(1):unsqueeze(1), 2) end, 'float32', 'bfloat16' },
      { 'cat', function(a) return fc.cat({ a, f }) end, 'float32', 'float32' },
    }
    for _, c in ipairs(cases) do
      local got32 = fc.autocast('bf16', c[2], f):type()
      local got16 = fc.autocast('bf16', c[2], hb):type()
      assert.equal(c[3], got32, c[1] .. ' on float32')
      assert.equal(c[4], got16, c[1] .. ' on bfloat16')
    end
  end)

  it('leaves float64 and integer tensors alone', function()
    local d = fc.randn(3, 3, { dtype = 'float64' })
    assert.equal('float64', fc.autocast('bf16', function() return d:matmul(d) end):type())
    local i = fc.tensor { { 1, 2 }, { 3, 4 } }
    assert.equal('int64', fc.autocast('bf16', function() return i:matmul(i) end):type())
  end)

  it('nests, disables, and restores the outer scope, also on error', function()
    local a = fc.randn(2, 2)
    local outer = fc.autocast('bf16', function()
      local inner_off = fc.autocast({ enabled = false }, function()
        assert.is_false(fc.is_autocast_enabled())
        return a:matmul(a):type()
      end)
      local inner_fp16 = fc.autocast('fp16', function() return a:matmul(a):type() end)
      local after = a:matmul(a):type()
      local ok = pcall(fc.autocast, 'fp16', function() error('boom') end)
      assert.is_false(ok)
      return { inner_off, inner_fp16, after, a:matmul(a):type(), fc.amp.get_dtype() }
    end)
    assert.same({ 'float32', 'float16', 'bfloat16', 'bfloat16', 'bfloat16' }, outer)
    assert.is_false(fc.is_autocast_enabled())
    assert.equal('float32', a:matmul(a):type())
    local e = errmsg(fc.autocast, 'bf16', function() error('inner failure') end)
    S.has(e, 'inner failure')
    assert.is_false(fc.is_autocast_enabled())
  end)

  it('scopes opened by hand, and only for their device', function()
    local a = fc.randn(2, 2)
    local ac = fc.autocast { dtype = 'bfloat16' }
    ac:enter()
    assert.equal('bfloat16', a:matmul(a):type())
    S.has(errmsg(function() ac:enter() end), 'autocast: this scope is already entered')
    ac:exit()
    ac:exit() -- a second exit is harmless
    assert.equal('float32', a:matmul(a):type())
    assert.equal('float32', fc.autocast({ device = 'cuda' }, function() return a:matmul(a) end):type())
    assert.equal('bfloat16', fc.autocast({ device = 'cpu' }, function() return a:matmul(a) end):type())
  end)

  it('casts a weight once per scope and gradients still add up', function()
    local w = fc.tensor({ { 1, 2 }, { 3, 4 } }, { dtype = 'float32' }):requires_grad_()
    local a = fc.ones(1, 2)
    local l, same = fc.autocast('bf16', function()
      local y1, y2 = fc.F.linear(a, w), fc.F.linear(a * 2, w)
      return (y1:sum() + y2:sum()):float(), y1.grad_fn ~= nil
    end)
    assert.is_true(same)
    l:backward()
    S.holds(w.grad, { { 3, 3 }, { 3, 3 } }, 0)
  end)

  it("takes edits to its op lists; 'promote' casts to the widest input", function()
    local cpu = fc.amp.policies.cpu
    local a, b, d = fc.randn(3):bfloat16(), fc.randn(3), fc.randn(3, { dtype = 'float64' })
    S.has(errmsg(function() return a:dot(b) end), 'dot')
    cpu.dot, cpu.softmax = 'promote', 'fp32'
    local ok, r1, r2, r3 = pcall(fc.autocast, 'bf16', function()
      return a:dot(b):type(), a:dot(d):type(), a:softmax(1):type()
    end)
    cpu.dot, cpu.softmax = nil, nil
    assert.is_true(ok, tostring(r1))
    assert.same({ 'float32', 'float64', 'float32' }, { r1, r2, r3 })
    assert.equal('bfloat16', fc.autocast('bf16', function() return a:softmax(1) end):type())
  end)

  it('checks its arguments', function()
    S.has(errmsg(fc.autocast, 'int8', function() end), "autocast: dtype must be 'bf16'/'bfloat16' or 'fp16'")
    S.has(errmsg(fc.autocast, { dtype = 'bf16', device = 'tpu' }, function() end), "autocast: device must be 'cpu' or 'cuda'")
    S.has(errmsg(fc.autocast, { dtyp = 'bf16' }, function() end), 'autocast: unknown option "dtyp"')
    S.has(errmsg(fc.autocast, 'bf16', 42), 'autocast: expected a function to run, got number')
    assert.equal('ban', fc.amp.policy('binary_cross_entropy', 'cuda'))
    assert.equal('fp32', fc.amp.policy('softmax', 'cuda'))
    assert.is_nil(fc.amp.policy('softmax', 'cpu'))
  end)
end)

describe('GradScaler', function()
  local function setup(grads)
    local ps, opt = {}, nil
    for i, g in ipairs(grads) do
      ps[i] = fc.tensor({ 1, 2 }, { dtype = 'float32' }):requires_grad_()
      ps[i].grad = fc.tensor(g, { dtype = 'float32' })
    end
    opt = fc.optim.SGD(ps, 0.5)
    return ps, opt
  end

  it('scales the loss and unscales the gradients before the step', function()
    local scaler = fc.amp.GradScaler { init_scale = 1024 }
    local loss = fc.tensor(3.0)
    assert.equal(3072, scaler:scale(loss):item())
    local t = scaler:scale { loss, { loss } }
    assert.equal(3072, t[2][1]:item())
    local ps, opt = setup { { 1024, -2048 } }
    scaler:step(opt)
    S.holds(ps[1], { 1 - 0.5 * 1, 2 + 0.5 * 2 }, 0)
    S.holds(ps[1].grad, { 1, -2 }, 0)
    scaler:update()
    assert.equal(1024, scaler:get_scale())
    assert.equal(1, scaler:get_growth_tracker())
  end)

  it('skips the step on inf or nan and backs off', function()
    for _, bad in ipairs { math.huge, 0 / 0 } do
      local scaler = fc.amp.GradScaler { init_scale = 2 ^ 16, backoff_factor = 0.25 }
      local ps, opt = setup { { 1, 2 }, { bad, 1 } }
      scaler:step(opt)
      S.holds(ps[1], { 1, 2 }, 0) -- untouched: one bad gradient skips the whole step
      S.holds(ps[2], { 1, 2 }, 0)
      assert.is_true(scaler:found_inf(opt))
      scaler:update()
      assert.equal(2 ^ 14, scaler:get_scale())
      assert.equal(0, scaler:get_growth_tracker())
    end
  end)

  it('grows after growth_interval good steps, short of float32 overflow', function()
    local scaler = fc.amp.GradScaler { init_scale = 8, growth_interval = 3 }
    local scales = {}
    for i = 1, 7 do
      local _, opt = setup { { i == 5 and math.huge or 1, 1 } }
      scaler:step(opt)
      scaler:update()
      scales[i] = scaler:get_scale()
    end
    assert.same({ 8, 8, 16, 16, 8, 8, 8 }, scales)
    local big = fc.amp.GradScaler { init_scale = 2 ^ 127, growth_interval = 1 }
    local _, opt = setup { { 1, 1 } }
    big:step(opt)
    big:update()
    assert.equal(2 ^ 127, big:get_scale()) -- 2^128 is inf in float32: kept
  end)

  it('unscale_ first (to clip) then step, in torch order; misuse is an error', function()
    local scaler = fc.amp.GradScaler { init_scale = 4 }
    local ps, opt = setup { { 4, 8 } }
    scaler:unscale_(opt)
    S.holds(ps[1].grad, { 1, 2 }, 0)
    S.has(errmsg(scaler.unscale_, scaler, opt), 'GradScaler:unscale_: already called on this optimizer since the last update()')
    scaler:step(opt)
    S.holds(ps[1], { 0.5, 1 }, 0) -- unscaled once only
    S.has(errmsg(scaler.step, scaler, opt), 'GradScaler:step: already called since the last update()')
    S.has(errmsg(scaler.unscale_, scaler, opt), 'GradScaler:unscale_: called after step()')
    scaler:update()
    S.has(errmsg(scaler.update, scaler), 'GradScaler:update: no inf checks were recorded')
    local hopt = { param_groups = { { params = { { grad = fc.ones(1, { dtype = 'half' }) } } } } }
    S.has(errmsg(scaler.unscale_, scaler, hopt), 'parameter 1 of group 1: amp_unscale_: gradients must be float32 or float64')
    S.has(errmsg(fc.amp.GradScaler, { growth_factor = 0.5 }), 'GradScaler: growth_factor must be > 1')
    S.has(errmsg(fc.amp.GradScaler, { init_scale = -1 }), 'GradScaler: init_scale must be a positive finite number')
    S.has(errmsg(fc.amp.GradScaler, { growth_interval = 1.5 }), 'GradScaler: growth_interval must be an integer')
    S.has(errmsg(fc.amp.GradScaler, { scale = 2 }), 'GradScaler: unknown option "scale"')
    S.has(errmsg(fc.amp.GradScaler, { init_scale = 1e39 }), 'GradScaler: init_scale 1e+39 overflows float32')
  end)

  it('does nothing when disabled, and saves its state', function()
    local off = fc.amp.GradScaler { enabled = false }
    local loss = fc.tensor(2.0)
    assert.is_true(rawequal(loss, off:scale(loss)))
    local ps, opt = setup { { 1, 1 } }
    off:step(opt)
    S.holds(ps[1], { 0.5, 1.5 }, 0)
    assert.equal(1, off:get_scale())
    local a = fc.amp.GradScaler { init_scale = 64, growth_interval = 2 }
    local _, o = setup { { 1, 1 } }
    a:step(o); a:update()
    local b = fc.amp.GradScaler()
    b:load_state_dict(a:state_dict())
    assert.equal(64, b:get_scale())
    assert.equal(1, b:get_growth_tracker())
    assert.equal(2, b.growth_interval)
  end)

  it('catches a real float16 overflow in backward', function()
    fc.manual_seed(1)
    local m = fc.nn.Linear(4, 2)
    local x, y = fc.randn(8, 4), fc.tensor { 1, 2, 1, 2, 1, 2, 1, 2 }
    local opt = fc.optim.SGD(m:parameters(), 0.1)
    local w0 = m.weight:clone()
    -- 2^40 times a gradient of order 1/8 is far past float16's 65504
    local scaler = fc.amp.GradScaler { init_scale = 2 ^ 40 }
    local steps, skipped = 0, 0
    while steps == 0 do
      local loss = fc.autocast('fp16', function() return fc.F.cross_entropy(m(x), y) end)
      scaler:scale(loss):backward()
      scaler:step(opt)
      if scaler:found_inf(opt) then skipped = skipped + 1 else steps = steps + 1 end
      scaler:update()
      opt:zero_grad()
      if skipped > 60 then break end
    end
    assert.equal(1, steps)
    -- the scale halves from 2^40 to around 2^17 before the float16 gradients fit
    assert.is_true(skipped >= 15 and skipped <= 35, 'skipped ' .. skipped)
    assert.is_true(scaler:get_scale() * 0.25 < 65504)
    assert.is_true(max_abs_diff(m.weight, w0) > 0)
  end)
end)

describe('MixedPrecision', function()
  -- A 3-class MLP on synthetic data, 16 batches of 32 per epoch.
  local function mlp_learner(seed, cbs)
    fc.manual_seed(seed)
    local x = fc.randn(512, 8)
    local y = x:matmul(fc.randn(8, 3)):argmax(2)
    local dls = fc.DataLoaders(fc.TensorDataLoader(x, y, { bs = 32, shuffle = true }),
      fc.TensorDataLoader(x:narrow(1, 1, 128), y:narrow(1, 1, 128), { bs = 64 }))
    local model = fc.nn.Sequential { fc.nn.Linear(8, 32), fc.nn.ReLU(), fc.nn.Linear(32, 3) }
    local learn = fc.Learner(dls, model, { loss_func = fc.nn.CrossEntropyLoss(), lr = 1e-2, cbs = cbs })
    learn.logger, learn.create_mbar = U.noop, false
    return learn
  end

  it('to_bf16 tracks the float32 loss curve within 1%', function()
    local ref = mlp_learner(7)
    ref:fit(3)
    local seen = {}
    local probe_in = fc.Callback { name = 'probe_in', order = 5, after_pred = function(self) seen.inside = self.pred:type() end }
    local probe_out = fc.Callback { name = 'probe_out', order = 20,
      after_pred = function(self) seen.after = self.pred:type() end,
      before_backward = function(self) seen.loss = self.loss_grad:type() end }
    local learn = mlp_learner(7, { probe_in, probe_out })
    learn:to_bf16()
    learn:fit(3)
    assert.equal('bfloat16', seen.inside)
    assert.equal('float32', seen.after)
    assert.equal('float32', seen.loss)
    local a, b = ref.recorder.losses, learn.recorder.losses
    assert.equal(#a, #b)
    local worst = 0
    for i = 1, #a do worst = math.max(worst, math.abs(a[i] - b[i]) / a[i]) end
    assert.is_true(worst < 0.01, 'worst relative gap ' .. worst)
    assert.is_true(b[#b] < 0.5 * b[1])
    for i = 1, 3 do
      assert.is_true(S.close(learn.recorder.values[i][1], ref.recorder.values[i][1], 0.01))
    end
    assert.equal('float32', learn.model[1].weight:type())
    assert.is_nil(rawget(learn.mixed_precision, 'autocast')) -- cleared after fit
    assert.equal(48, #learn.mixed_precision.scales)
    assert.equal(1, learn.mixed_precision.scales[1]) -- bf16: the scaler is off
    assert.is_false(fc.is_autocast_enabled())
    local preds = learn:get_preds()
    assert.equal('float32', preds:type())
  end)

  it('to_fp16 skips the steps whose gradients overflow', function()
    local params_before, taken, cancelled = {}, 0, 0
    local poison = fc.Callback { name = 'poison', order = 5,
      after_backward = function(self)
        if self.iter == 2 then
          local g = self.learn.model[3].bias.grad
          g[1] = math.huge
        end
        params_before[self.iter] = self.learn.model[1].weight:clone()
      end,
      after_cancel_step = function() cancelled = cancelled + 1 end,
      after_batch = function(self)
        if self.training and max_abs_diff(self.learn.model[1].weight, params_before[self.iter]) > 0 then
          taken = taken + 1
        end
      end }
    local learn = mlp_learner(7, { poison })
    learn:to_fp16 { init_scale = 2 ^ 10, growth_interval = 4 }
    assert.equal(10, learn.mixed_precision.order)
    learn:fit(1)
    assert.equal(1, cancelled)
    assert.equal(15, taken)
    local s = learn.mixed_precision.scales
    assert.equal(15, #s)
    -- 2 good steps then the poisoned batch halves the scale; it doubles every 4 good steps
    assert.same({ 1024, 1024, 512, 512, 512, 512, 1024, 1024, 1024, 1024, 2048, 2048, 2048, 2048, 4096 }, s)
  end)

  it('to_fp16 starting far too high backs off until the steps go through', function()
    local learn = mlp_learner(7)
    learn:to_fp16 { init_scale = 2 ^ 40 }
    learn:fit(3)
    local s = learn.mixed_precision.scales
    assert.is_true(#s > 10 and #s < 48, #s .. ' steps') -- about 20 of the 48 batches skipped
    assert.is_true(s[1] <= 2 ^ 20)
    local l = learn.recorder.values[1][1]
    assert.is_true(l == l and l < 1.2)
  end)

  it('to_fp32 removes it; to_fp16 twice keeps one; a cancelled batch closes the scope', function()
    local learn = mlp_learner(1)
    learn:to_fp16()
    learn:to_bf16()
    local n = 0
    for _, cb in ipairs(learn.cbs) do if cb:is_a(fc.MixedPrecision) then n = n + 1 end end
    assert.equal(1, n)
    assert.equal('bfloat16', learn.mixed_precision.amp_mode)
    learn:to_fp32()
    assert.is_nil(learn.mixed_precision)
    local cancel = fc.Callback { name = 'cancel', order = 20, after_pred = function() error(fc.CancelBatchException) end }
    learn:to_bf16()
    learn:add_cb(cancel)
    learn:fit(1)
    assert.is_false(fc.is_autocast_enabled())
    S.has(errmsg(fc.MixedPrecision, { amp_mode = 'int8' }), "MixedPrecision: amp_mode must be 'fp16' or 'bf16'")
    S.has(errmsg(fc.MixedPrecision, { init_scal = 1 }), 'MixedPrecision: unknown option "init_scal"')
  end)
end)

-- CUDA tensors get PyTorch's CUDA lists and the scaler's composed unscale;
-- checked in a child fastlua against the host-memory fake plugin (make test
-- sets FASTLUA). Without it the case is left out.
describe('autocast on cuda tensors (fake plugin)', function()
  local fastlua = os.getenv('FASTLUA')
  local fake = fastlua and fastlua:match('^(.*)/[^/]*$') .. '/tests/libfake_cuda.so'
  local f = fake and io.open(fake, 'rb')
  if f then f:close() end
  if not f then return end
  it('follows the CUDA lists and skips steps on inf', function()
    local script = os.tmpname()
    local h = io.open(script, 'wb')
    h:write([[
local fc = require 'fastc'
local x = fc.randn(4, 5):cuda()
local w = fc.randn(3, 5):cuda():requires_grad_()
local y, s, l = fc.autocast('fp16', function()
  local y = x:matmul(w:t())
  return y, y:softmax(2), fc.F.cross_entropy(y, fc.tensor({ 1, 2, 3, 1 }):cuda())
end)
l:backward()
print(y:type(), s:type(), l:type(), w.grad:type(), tostring(w.grad.device))
print(select(2, pcall(fc.autocast, 'fp16', function() return fc.F.binary_cross_entropy(x:sigmoid(), x:gt(0):float()) end)))
local sc = fc.amp.GradScaler { init_scale = 4 }
local p = fc.ones(3):cuda():requires_grad_()
p.grad = fc.tensor({ 4, 8, 1 / 0 }, { dtype = 'float32' }):cuda()
local opt = fc.optim.torch.SGD({ p }, { lr = 0.5 })
sc:step(opt); sc:update()
print(sc:get_scale(), p:cpu():sum():item(), p.grad:cpu()[2])
p.grad = fc.tensor({ 4, 8, 2 }, { dtype = 'float32' }):cuda()
sc:step(opt); sc:update()
print(sc:get_scale(), table.concat(p:cpu():totable(), ','))
]])
    h:close()
    local p = io.popen(string.format("FASTC_CUDA_PLUGIN='%s' '%s' '%s' 2>&1", fake, fastlua, script))
    local out = p:read('*a')
    p:close()
    os.remove(script)
    local lines = {}
    for line in out:gmatch('[^\n]+') do lines[#lines + 1] = line end
    assert.equal('float16\tfloat32\tfloat32\tfloat32\tcuda:0', lines[1], out)
    S.has(lines[2] or '', 'binary_cross_entropy: unsafe to autocast on cuda')
    assert.equal('2\t3\t2', lines[3], out) -- skipped: p untouched, grads unscaled by 1/4
    assert.equal('2\t0,-1,0.5', lines[4], out) -- 1 - 0.5 * {2, 4, 1}
  end)
end)
