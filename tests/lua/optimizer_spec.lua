-- tests/lua/optimizer_spec.lua — fc.optim, fastai's optimizer: each
-- optimizer against steps worked by hand (two for the stateful ones), the
-- fused C steppers against fastai's stepper chains, hypers, fc.slice,
-- freezing, state dicts through safetensors, Lookahead.
local fc = require 'fastc'
local optim = fc.optim

local function close(a, b, tol)
  return math.abs(a - b) <= (tol or 1e-12) * (1 + math.abs(b))
end
local function all_close(got, want, tol)
  for i = 1, #want do
    if not close(got[i], want[i], tol) then
      return false, string.format('element %d: got %.15g, want %.15g', i, got[i], want[i])
    end
  end
  return true
end
local function assert_values(t, want, tol)
  local ok, msg = all_close(t:totable(), want, tol)
  assert(ok, msg)
end

-- A float64 parameter; `grads` lists the gradient of each step.
local function param(values) return fc.tensor(values, { dtype = 'float64' }):requires_grad_() end
local function run(make, p0, grads)
  local p = param(p0)
  local opt = make({ p })
  for _, g in ipairs(grads) do
    p.grad = fc.tensor(g, { dtype = 'float64' })
    opt:step()
    opt:zero_grad()
  end
  return p, opt
end
-- Runs with the fused C stepper and with fastai's stepper chain.
local function both(name, opts)
  local fused, chain = {}, {}
  for k, v in pairs(opts) do fused[k], chain[k] = v, v end
  chain.fused = false
  return {
    function(ps) return optim[name](ps, fused) end,
    function(ps) return optim[name](ps, chain) end,
  }
end

describe('fc.slice and set_hyper', function()
  local function groups(n)
    local g = {}
    for i = 1, n do g[i] = { param({ 1 }) } end
    return g
  end

  it('spreads a slice geometrically over the groups', function()
    local opt = optim.SGD(groups(3), 0.1)
    opt:set_hyper('lr', fc.slice(1e-5, 1e-3))
    assert.is_true(close(opt.hypers[1].lr, 1e-5) and close(opt.hypers[2].lr, 1e-4) and close(opt.hypers[3].lr, 1e-3))
    opt:set_hyper('lr', fc.slice(1e-2))
    assert.are.same({ 1e-3, 1e-3, 1e-2 }, { opt.hypers[1].lr, opt.hypers[2].lr, opt.hypers[3].lr })
    opt:set_hyper('mom', 0.8)
    assert.are.same({ 0.8, 0.8, 0.8 }, { opt.hypers[1].mom, opt.hypers[2].mom, opt.hypers[3].mom })
    opt:set_hyper('wd', { 0, 0.1, 0.2 })
    assert.are.same({ 0, 0.1, 0.2 }, { opt.hypers[1].wd, opt.hypers[2].wd, opt.hypers[3].wd })
    opt:set_hypers { lr = 0.5, mom = { 0.1, 0.2, 0.3 } }
    assert.are.same({ 0.5, 0.3 }, { opt.hypers[3].lr, opt.hypers[3].mom })
    assert.has_error(function() opt:set_hyper('lr', { 1, 2 }) end,
      'set_hyper: 2 values for lr but there are 3 parameter groups')
    local one = optim.SGD({ param({ 1 }) }, 0.1)
    one:set_hyper('lr', fc.slice(1e-5, 1e-3))
    assert.are.equal(1e-3, one.hypers[1].lr)
    assert.are.same({ 1, 3, 9 }, optim.even_mults(1, 9, 3))
    assert.are.equal('slice(1e-05, 0.001)', tostring(fc.slice(1e-5, 1e-3)))
  end)

  it('takes fastai defaults, lr positional or in the options, per-group hypers', function()
    local p = param({ 1 })
    local h = optim.Adam({ p }, 3e-3).hypers[1]
    assert.are.same({ lr = 3e-3, mom = 0.9, sqr_mom = 0.99, eps = 1e-5, wd = 0.01 }, h)
    assert.are.same({ lr = 0.1, mom = 0, wd = 0 }, optim.SGD({ p }, { lr = 0.1 }).hypers[1])
    assert.are.same({ lr = 1e-3, mom = 0.9, sqr_mom = 0.99, eps = 1e-5, wd = 0, beta = 0 },
      optim.RAdam({ p }).hypers[1])
    local q = param({ 2 })
    local opt = optim.SGD({ { params = { p } }, { params = { q }, lr = 1 } }, 0.1)
    assert.are.same({ 0.1, 1 }, { opt.hypers[1].lr, opt.hypers[2].lr })
    local lists = optim.SGD({ { p }, { q } }, 0.1).param_lists
    assert.are.equal(2, #lists)
    assert.are.equal(q, lists[2][1])
  end)

  it('rejects unknown options, naming the fastai equivalent of torch names', function()
    local p = param({ 1 })
    assert.has_error(function() optim.Adam({ p }, { betas = { 0.9, 0.99 } }) end)
    local ok, err = pcall(optim.Adam, { p }, { betas = { 0.9, 0.99 } })
    assert.is_false(ok)
    assert.truthy(err:find('unknown option "betas" (fastai calls it mom and sqr_mom', 1, true))
    ok, err = pcall(optim.SGD, { p }, 0.1, { momentum = 0.9 })
    assert.truthy(err:find('fastai calls it mom', 1, true))
    assert.has_error(function() optim.SGD({}, 0.1) end, 'Optimizer: params is empty')
    assert.has_error(function() optim.SGD({ p, 3 }, 0.1) end)
    assert.has_error(function() optim.SGD({ p, p }, 0.1) end, 'Optimizer: group 1 parameter 2 appears twice')
  end)
end)

describe('fastai optimizers against steps worked by hand', function()
  it('SGD: plain, momentum with decoupled decay, momentum with L2', function()
    for _, make in ipairs(both('SGD', { lr = 0.1 })) do
      assert_values(run(make, { 1, -2 }, { { 0.5, 1 }, { -1, 2 } }), { 1 - 0.05 + 0.1, -2 - 0.1 - 0.2 })
    end
    -- p *= 1 - lr*wd, then avg = 0.9 avg + g, p -= lr avg:
    -- 1 -> 0.99 -> 0.94 (avg 0.5) -> 0.9306 -> 0.9856 (avg -0.55)
    for _, make in ipairs(both('SGD', { lr = 0.1, mom = 0.9, wd = 0.1 })) do
      local p, opt = run(make, { 1 }, { { 0.5 }, { -1 } })
      assert_values(p, { 0.9856 })
      assert_values(opt.state[p].grad_avg, { -0.55 })
    end
    -- L2: g += wd p. g1 = 0.6, avg 0.6, p 0.94; g2 = -1 + 0.094, avg 0.54 - 0.906, p 0.94 + 0.0366
    for _, make in ipairs(both('SGD', { lr = 0.1, mom = 0.9, wd = 0.1, decouple_wd = false })) do
      assert_values(run(make, { 1 }, { { 0.5 }, { -1 } }), { 0.9766 })
    end
  end)

  it('RMSProp: sqr_avg dampened, eps outside the root', function()
    -- sq1 = 0.01 * 0.25, p1 = 1 - 0.01 * 0.5 / (0.05 + eps); sq2 = 0.99 sq1 + 0.01
    local p1 = 1 - 0.01 * 0.5 / (0.05 + 1e-8)
    local p2 = p1 + 0.01 * 1 / (math.sqrt(0.99 * 0.0025 + 0.01) + 1e-8)
    for _, make in ipairs(both('RMSProp', { lr = 0.01 })) do
      assert_values(run(make, { 1 }, { { 0.5 }, { -1 } }), { p2 })
    end
    -- with mom 0.5 the numerator is avg = 0.5 avg + g: 0.5, then 0.25 - 1
    local q2 = p1 + 0.01 * 0.75 / (math.sqrt(0.99 * 0.0025 + 0.01) + 1e-8)
    for _, make in ipairs(both('RMSProp', { lr = 0.01, mom = 0.5 })) do
      assert_values(run(make, { 1 }, { { 0.5 }, { -1 } }), { q2 })
    end
  end)

  it('Adam: fastai defaults, decoupled wd 0.01, debiased moments', function()
    -- step 1: p = 0.999, m = 0.05, v = 0.0025, debias 0.1 and 0.01: update lr * 0.5 / (0.5 + eps)
    local p1 = 0.999 - 0.1 * 0.5 / (0.5 + 1e-5)
    -- step 2: m = 0.045 - 0.1, v = 0.002475 + 0.01, debias 0.19 and 0.0199
    local p2 = p1 * 0.999 - 0.1 * (-0.055 / 0.19) / (math.sqrt(0.012475 / 0.0199) + 1e-5)
    for _, make in ipairs(both('Adam', { lr = 0.1 })) do
      local p, opt = run(make, { 1 }, { { 0.5 }, { -1 } })
      assert_values(p, { p2 })
      assert.are.equal(2, opt.state[p].step)
      assert_values(opt.state[p].grad_avg, { -0.055 })
      assert_values(opt.state[p].sqr_avg, { 0.012475 })
    end
    -- L2 instead: g1 = 0.5 + 0.01 * 1
    for _, make in ipairs(both('Adam', { lr = 0.1, decouple_wd = false })) do
      assert_values(run(make, { 1 }, { { 0.5 } }), { 1 - 0.1 * 0.51 / (0.51 + 1e-5) })
    end
  end)

  it('RAdam: momentum-only steps until the variance is tractable', function()
    -- r <= 5 for steps 1 and 2: p -= lr / debias1 * m
    local p2 = 0.95 + 0.1 * 0.055 / 0.19
    for _, make in ipairs(both('RAdam', { lr = 0.1 })) do
      assert_values(run(make, { 1 }, { { 0.5 }, { -1 } }), { p2 })
    end
  end)

  it('QHAdam: quasi-hyperbolic mix of gradient and moments', function()
    -- step 1: every debiased moment is g itself: update lr * g / (|g| + eps)
    local p1 = 1 - 0.1 * 0.5 / (0.5 + 1e-8)
    local m2, v2 = 0.999 * 0.0005 - 0.001, 0.999 * 0.00025 + 0.001
    local d2 = 1 - 0.999 ^ 2
    local p2 = p1 - 0.1 * (0.3 * -1 + 0.7 * m2 / d2) / (math.sqrt(v2 / d2) + 1e-8)
    assert_values(run(function(ps) return optim.QHAdam(ps, 0.1) end, { 1 }, { { 0.5 }, { -1 } }), { p2 }, 1e-10)
  end)

  it('Larc clips the layer-wise rate at lr; Lars does not', function()
    -- |p| = 5, |g| = 1: local lr = lr * trust * 5 / (1 + eps)
    local function larc(make, grads) return run(make, { 3, 4 }, grads) end
    local lr_local = 0.1 * 0.02 * 5 / (1 + 1e-8)
    assert_values(larc(function(ps) return optim.Larc(ps, 0.1, { mom = 0 }) end, { { 0.6, 0.8 } }),
      { 3 - 0.6 * lr_local, 4 - 0.8 * lr_local })
    local big = 0.1 * 1 * 5 / (1 + 1e-8)
    assert_values(larc(function(ps) return optim.Lars(ps, 0.1, { mom = 0, trust_coeff = 1 }) end, { { 0.6, 0.8 } }),
      { 3 - 0.6 * big, 4 - 0.8 * big })
    assert_values(larc(function(ps) return optim.Larc(ps, 0.1, { mom = 0, trust_coeff = 1 }) end, { { 0.6, 0.8 } }),
      { 3 - 0.06, 4 - 0.08 })
    -- two steps with momentum 0.9: the second uses avg = 0.9 g1 + g2 and the new norms
    local p1 = { 3 - 0.6 * lr_local, 4 - 0.8 * lr_local }
    local n1 = math.sqrt(p1[1] ^ 2 + p1[2] ^ 2)
    local lr2 = 0.1 * 0.02 * n1 / (1 + 1e-8)
    local avg = { 0.9 * 0.6 + 0.6, 0.9 * 0.8 + 0.8 }
    assert_values(larc(function(ps) return optim.Larc(ps, 0.1) end, { { 0.6, 0.8 }, { 0.6, 0.8 } }),
      { p1[1] - lr2 * avg[1], p1[2] - lr2 * avg[2] })
  end)

  it('Lamb: Adam step scaled by the trust ratio |p| / |step|', function()
    local s = { 0.6 / (0.6 + 1e-5), 0.8 / (0.8 + 1e-5) }
    local r1, r2 = math.sqrt(12.5), math.sqrt((s[1] ^ 2 + s[2] ^ 2) / 2)
    local q = math.min(r1 / r2, 10)
    assert_values(run(function(ps) return optim.Lamb(ps, 0.1) end, { 3, 4 }, { { 0.6, 0.8 } }),
      { 3 - 0.1 * q * s[1], 4 - 0.1 * q * s[2] })
    -- a zero parameter: the ratio is 1
    assert_values(run(function(ps) return optim.Lamb(ps, 0.1) end, { 0, 0 }, { { 0.6, 0.8 } }),
      { -0.1 * s[1], -0.1 * s[2] })
  end)

  it('Lookahead: every k steps the slow weights move alpha towards the fast ones', function()
    local p = param({ 1 })
    local opt = optim.Lookahead(optim.SGD({ p }, 0.1), { k = 2, alpha = 0.5 })
    local seen = {}
    for i = 1, 4 do
      p.grad = fc.tensor({ 1 }, { dtype = 'float64' })
      opt:step()
      seen[i] = p:item()
    end
    -- fast 0.9, 0.8 -> slow 0.9; fast 0.8, 0.7 -> slow 0.8
    assert.is_true(all_close(seen, { 0.9, 0.9, 0.8, 0.8 }))
    assert.are.equal(4, opt.count)
    -- the wrapped optimizer's hypers and methods show through
    opt:set_hyper('lr', 0.2)
    assert.are.equal(0.2, opt.hypers[1].lr)
    assert.are.equal(opt.opt.hypers, opt.hypers)
  end)

  it('ranger is Lookahead over RAdam with fastai settings', function()
    local opt = optim.ranger({ param({ 1 }) }, 1e-3)
    assert.are.equal('Lookahead', opt:class_name())
    assert.are.same({ 6, 0.5 }, { opt.k, opt.alpha })
    assert.are.same({ lr = 1e-3, mom = 0.95, sqr_mom = 0.99, eps = 1e-6, wd = 0.01, beta = 0 }, opt.hypers[1])
  end)
end)

describe('fused steppers', function()
  -- Eight steps on random float32 parameters: fused C call == fastai chain.
  local function compare(name, opts, tol)
    fc.manual_seed(7)
    local p0, grads = fc.randn(40), {}
    for i = 1, 8 do grads[i] = fc.randn(40) end
    local results = {}
    for k, make in ipairs(both(name, opts)) do
      local p = p0:clone():requires_grad_()
      local opt = make({ p })
      for i = 1, 8 do
        p.grad = grads[i]:clone()
        opt:step()
      end
      results[k] = p:totable()
    end
    local ok, msg = all_close(results[1], results[2], tol or 1e-5)
    assert(ok, name .. ': ' .. tostring(msg))
  end

  it('match fastai stepper chains', function()
    compare('SGD', { lr = 0.1, mom = 0.9, wd = 0.01 })
    compare('SGD', { lr = 0.1, mom = 0.9, wd = 0.01, decouple_wd = false })
    compare('RMSProp', { lr = 0.01, mom = 0.9, wd = 0.1 })
    compare('Adam', { lr = 0.01 })
    compare('Adam', { lr = 0.01, decouple_wd = false, wd = 0.1 })
    compare('RAdam', { lr = 0.01, sqr_mom = 0.9 })             -- rectified from step 6
    compare('RAdam', { lr = 0.01, sqr_mom = 0.9, beta = 5, wd = 0.01 })
  end)

  it('a fused optimizer takes one C call per parameter', function()
    local opt = optim.Adam({ param({ 1 }) }, 0.1)
    assert.are.equal(1, #opt.steppers)
    assert.are.equal('fused_adam', opt.steppers[1].name)
    assert.are.equal(5, #optim.Adam({ param({ 1 }) }, { fused = false }).steppers)
  end)
end)

describe('Optimizer', function()
  it('converges on a quadratic with every optimizer', function()
    local makers = {
      function(ps) return optim.SGD(ps, 0.1) end,
      function(ps) return optim.SGD(ps, 0.05, { mom = 0.9 }) end,
      function(ps) return optim.RMSProp(ps, 0.01) end,
      function(ps) return optim.Adam(ps, 0.1, { wd = 0 }) end,
      function(ps) return optim.RAdam(ps, 0.1) end,
      function(ps) return optim.QHAdam(ps, 0.1) end,
      function(ps) return optim.Lamb(ps, 0.1) end,
      function(ps) return optim.Larc(ps, 0.1, { trust_coeff = 0.1, mom = 0 }) end,
      function(ps) return optim.ranger(ps, 0.1, { wd = 0 }) end,
    }
    for i, make in ipairs(makers) do
      local x = fc.tensor({ 1, -1 }, { dtype = 'float64' }):requires_grad_()
      local opt = make({ x })
      for _ = 1, 300 do
        opt:zero_grad()
        ;((x - 3) ^ 2):sum():backward()
        opt:step()
      end
      assert(close(x[1], 3, 0.05), string.format('optimizer %d ended at %g', i, x[1]))
    end
  end)

  it('steps only parameters with a gradient; zero_grad drops gradients', function()
    local a, b = param({ 1 }), param({ 1 })
    local opt = optim.SGD({ a, b }, 0.5)
    a.grad = fc.tensor({ 1 }, { dtype = 'float64' })
    opt:step()
    assert.are.same({ 0.5, 1 }, { a:item(), b:item() })
    opt:zero_grad()
    assert.is_nil(a.grad)
    assert.are.equal(1, #opt:all_params(nil, nil, false) - 1)
  end)

  it('runs custom stepper lists with their defaults', function()
    local p = param({ 2 })
    local seen
    local custom = optim.Stepper('custom', { scale = 3 }, function(q, g, state, hyper)
      seen = hyper.scale
      q:add_scaled_(g, -hyper.lr * hyper.scale)
    end)
    local opt = optim.Optimizer({ p }, { optim.weight_decay, custom }, { lr = 0.1, wd = 0.5 })
    p.grad = fc.tensor({ 1 }, { dtype = 'float64' })
    opt:step()
    assert.are.equal(3, seen)
    assert_values(p, { 2 * 0.95 - 0.3 })
    assert.has_error(function() optim.Optimizer({ p }, { 42 }) end, 'Optimizer: stepper 1 is a number, not callable')
  end)

  it('respects do_wd = false in the state', function()
    local a, b = param({ 1 }), param({ 1 })
    local opt = optim.SGD({ a, b }, 0.1, { wd = 0.5 })
    opt.state[b].do_wd = false
    a.grad, b.grad = fc.zeros(1, { dtype = 'float64' }), fc.zeros(1, { dtype = 'float64' })
    opt:step()
    assert.are.same({ 0.95, 1 }, { a:item(), b:item() })
  end)

  it('freeze_to, freeze, unfreeze; force_train parameters keep training', function()
    local a, bn, b, c = param({ 1 }), param({ 1 }), param({ 1 }), param({ 1 })
    local opt = optim.SGD({ { a, bn }, { b }, { c } }, 0.5)
    opt.state[bn].force_train = true
    local function grads()
      for _, p in ipairs { a, bn, b, c } do p.grad = fc.ones(1, { dtype = 'float64' }) end
    end
    opt:freeze()
    assert.are.equal(2, opt.frozen_idx)
    assert.are.same({ false, true, false, true },
      { a.requires_grad, bn.requires_grad, b.requires_grad, c.requires_grad })
    grads()
    opt:step()
    assert.are.same({ 1, 0.5, 1, 0.5 }, { a:item(), bn:item(), b:item(), c:item() })
    opt:freeze_to(1)
    assert.are.same({ false, true, true, true },
      { a.requires_grad, bn.requires_grad, b.requires_grad, c.requires_grad })
    opt:unfreeze()
    assert.is_true(a.requires_grad)
    grads()
    opt:step()
    assert.are.same({ 0.5, 0, 0.5, 0 }, { a:item(), bn:item(), b:item(), c:item() })
    opt:freeze_to(-1)
    assert.are.equal(2, opt.frozen_idx)
    opt:freeze_to(10) -- everything
    assert.are.equal(3, opt.frozen_idx)
    assert.has_error(function() optim.SGD({ a }, 0.1):freeze() end,
      'freeze: needs more than one parameter group (use a splitter)')
  end)

  it('clear_state keeps force_train and do_wd only', function()
    local p = param({ 1 })
    local opt = optim.Adam({ p }, 0.1)
    opt.state[p].do_wd = false
    p.grad = fc.ones(1, { dtype = 'float64' })
    opt:step()
    assert.truthy(opt.state[p].grad_avg)
    opt:clear_state()
    assert.are.same({ do_wd = false }, opt.state[p])
  end)

  it('state_dict round trip through a safetensors file', function()
    local path = os.tmpname()
    local function train(opt, ps, steps, seed)
      fc.manual_seed(seed)
      for _ = 1, steps do
        for _, p in ipairs(ps) do p.grad = fc.randn(p:size(), { dtype = 'float64' }) end
        opt:step()
      end
    end
    for _, make in ipairs {
      function(ps) return optim.Adam(ps, 0.01) end,
      function(ps) return optim.SGD(ps, 0.01, { mom = 0.9 }) end,
      function(ps) return optim.ranger(ps, 0.01, { k = 2 }) end,
    } do
      local a1, b1 = param({ 1, 2, 3 }), param({ { 1, 2 }, { 3, 4 } })
      local opt1 = make({ { a1 }, { b1 } })
      opt1.state[b1].do_wd = false
      opt1:set_hyper('lr', { 0.01, 0.02 })
      train(opt1, { a1, b1 }, 3, 1)
      opt1:save(path)
      -- a second optimizer on copies of the parameters, restored from the file
      local a2, b2 = param(a1:totable()), param(b1:totable())
      local opt2 = make({ { a2 }, { b2 } }):load(path)
      assert.are.same(opt1.hypers, opt2.hypers)
      assert.is_false(opt2.state[b2].do_wd)
      assert.are.equal(opt1.state[a1].step, opt2.state[a2].step)
      train(opt1, { a1, b1 }, 3, 2)
      train(opt2, { a2, b2 }, 3, 2)
      assert.is_true(all_close(a2:totable(), a1:totable(), 1e-12))
      assert.is_true(all_close(b2:view(-1):totable(), b1:view(-1):totable(), 1e-12))
    end
    os.remove(path)
  end)

  it('flatten_state / unflatten_state keep nested tables, empty ones and value types', function()
    local sd = { state = { {}, { step = 3, grad_avg = fc.ones(2), flag = true } },
      hypers = { { lr = 0.1, name = 'x' } } }
    local tensors, meta = optim.flatten_state(sd, 'o')
    assert.are.equal('number:3', meta['o.state.2.step'])
    local back = optim.unflatten_state(tensors, meta, 'o')
    assert.are.same({}, back.state[1])
    assert.are.same({ 3, true, 0.1, 'x' }, { back.state[2].step, back.state[2].flag, back.hypers[1].lr, back.hypers[1].name })
    assert.are.same({ 1, 1 }, back.state[2].grad_avg:totable())
    assert.has_error(function() optim.flatten_state({ f = print }) end)
  end)

  it('load_state_dict checks groups, counts and shapes', function()
    local p = param({ 1, 2 })
    local opt = optim.Adam({ p }, 0.1)
    assert.has_error(function() opt:load_state_dict({ state = {}, hypers = { {} } }) end,
      'Optimizer: state dict has state for 0 parameters, the optimizer has 1')
    assert.has_error(function() opt:load_state_dict({ state = { {} }, hypers = {} }) end,
      'Optimizer: state dict has 0 parameter groups, the optimizer 1')
    assert.has_error(function()
      opt:load_state_dict({ state = { { grad_avg = fc.zeros(3) } }, hypers = { {} } })
    end, "Optimizer: state 'grad_avg' of parameter 1 has 3 elements, the parameter 2")
  end)
end)
