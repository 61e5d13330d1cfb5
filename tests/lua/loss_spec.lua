-- tests/lua/loss_spec.lua — softmax family and fc.F losses through Lua:
-- 1-based dims and class ids, ignore_index in Lua's numbering, options,
-- gradients, errors. Reference numbers are PyTorch 1.13's (float64), the
-- same ones tests/c/test_loss.c checks, with class ids shifted by one.
local fc = require 'fastc'
local S = dofile('tests/lua/support.lua')
local has, same, holds = S.has, S.same, S.holds
-- its own err_of: the pcall must run in this file for errors to name its lines
local function err_of(f, ...)
  local ok, e = pcall(f, ...)
  assert.is_false(ok, 'expected an error')
  return tostring(e)
end
local F = fc.F

local function close(a, b, tol)
  if a ~= a and b ~= b then return true end
  return a == b or math.abs(a - b) <= (tol or 1e-9) * (1 + math.abs(b))
end

local function logits()
  return fc.tensor({ { 1.0, 2.0, 0.5 }, { -1.0, 0.0, 3.0 }, { 0.2, 0.2, 0.2 }, { 2.0, -2.0, 1.0 } },
    { dtype = 'float64' })
end
local function classes() return fc.tensor({ 3, 1, 2, 3 }) end -- PyTorch's [2, 0, 1, 2]

describe('softmax and log_softmax', function()
  local e = math.exp(1) + math.exp(2) + math.exp(3)

  it('default to the last dim and take 1-based dims', function()
    local x = fc.tensor({ { 1, 2, 3 }, { 1000, 1000, 1000 } }, { dtype = 'float64' })
    local want = { { math.exp(1) / e, math.exp(2) / e, math.exp(3) / e }, { 1 / 3, 1 / 3, 1 / 3 } }
    holds(x:softmax(), want)
    holds(x:softmax(2), want)
    holds(x:softmax(-1), want)
    holds(fc.softmax(x, 2), want)
    holds(F.softmax(x), want)
    holds(x:log_softmax(), { { 1 - math.log(e), 2 - math.log(e), 3 - math.log(e) },
      { -math.log(3), -math.log(3), -math.log(3) } })
    -- over dim 1, the columns sum to 1
    holds(x:softmax(1):sum(1), { 1, 1, 1 })
    assert.are.equal('float64', x:softmax().dtype)
    assert.are.equal('float32', x:float():log_softmax(1).dtype)
  end)

  it('work on [N,C,H,W] over the channel dim', function()
    local x = fc.randn(2, 3, 4, 5)
    local s = x:softmax(2):sum(2)
    assert.are.same({ 2, 4, 5 }, { s:size(1), s:size(2), s:size(3) })
    assert.is_true(close(s:min():item(), 1, 1e-6) and close(s:max():item(), 1, 1e-6))
    assert.is_true(close(x:log_softmax(2):exp():sum():item(), 40, 1e-5))
  end)

  it('give gradients', function()
    local x = fc.randn(3, 4, { dtype = 'float64' }):requires_grad_()
    x:softmax(2):sum():backward() -- rows of a softmax always sum to 1
    assert.is_true(close(x.grad:abs():max():item(), 0, 1e-12))
    assert.are.equal('log_softmax', x:log_softmax().grad_fn)
  end)

  it('reject bad dims and integer tensors', function()
    local x = fc.zeros(2, 3)
    has(err_of(function() return x:softmax(3) end), 'dim 3 out of range')
    has(err_of(function() return x:softmax(0) end), 'dims count from 1')
    has(err_of(function() return fc.tensor({ 1, 2 }):softmax() end),
      'softmax: needs a floating point tensor, got int64')
  end)
end)

describe('F.cross_entropy', function()
  it('counts class ids from 1', function()
    assert.is_true(close(F.cross_entropy(logits(), classes()):item(), 2.1138569044502384))
    -- a Lua table of class ids works too
    assert.is_true(close(F.cross_entropy(logits(), { 3, 1, 2, 3 }):item(), 2.1138569044502384))
    assert.are.equal(0, F.cross_entropy(logits(), classes()):dim())
  end)

  it('takes weight, ignore_index (Lua numbering), label_smoothing and reduction', function()
    local w = fc.tensor({ 1.0, 2.0, 0.5 }, { dtype = 'float64' })
    assert.is_true(close(F.cross_entropy(logits(), classes(), { weight = w }):item(), 1.9771435484453392))
    assert.is_true(close(F.cross_entropy(logits(), classes(), { ignore_index = 3 }):item(), 2.5822480962127696))
    assert.is_true(close(F.cross_entropy(logits(), classes(), { label_smoothing = 0.1 }):item(), 2.072190237783572))
    assert.is_true(close(F.cross_entropy(logits(), classes(), { weight = w, label_smoothing = 0.2 }):item(),
      2.0332814497946603))
    assert.is_true(close(F.cross_entropy(logits(), classes(), { reduction = 'sum' }):item(), 8.455427617800954))
    holds(F.cross_entropy(logits(), classes(), { reduction = 'none' }),
      { 1.964368784107945, 4.065883903757429, 1.0986122886681098, 1.3265626412674705 })
    -- 0 and -100 lie outside 1..C: ignoring them changes nothing here
    assert.is_true(close(F.cross_entropy(logits(), classes(), { ignore_index = 0 }):item(), 2.1138569044502384))
    assert.is_true(close(F.cross_entropy(logits(), classes(), { ignore_index = -100 }):item(), 2.1138569044502384))
  end)

  it('takes [N,C,H,W] logits with [N,H,W] class ids', function()
    local v = {}
    for i = 0, 23 do v[#v + 1] = math.sin(i) end
    local x = fc.tensor(v, { dtype = 'float64' }):view(2, 3, 2, 2)
    local y = fc.tensor({ 1, 2, 3, 2, 2, 2, 1, 3 }):view(2, 2, 2)
    local w = fc.tensor({ 1.0, 2.0, 0.5 }, { dtype = 'float64' })
    assert.is_true(close(F.cross_entropy(x, y):item(), 1.6064477918968663))
    assert.is_true(close(F.cross_entropy(x, y, { weight = w, ignore_index = 2, label_smoothing = 0.1 }):item(),
      1.3775447636436622))
    local none = F.cross_entropy(x, y, { reduction = 'none' })
    assert.are.same({ 2, 2, 2 }, { none:size(1), none:size(2), none:size(3) })
  end)

  it('takes class probabilities shaped like the logits', function()
    local p = fc.tensor({ { 0.3, 0.1, 0.6 }, { 0.5, 0.25, 0.25 }, { 0, 1, 0 }, { 0.2, 0.2, 0.6 } },
      { dtype = 'float64' }):softmax(2)
    assert.is_true(close(F.cross_entropy(logits(), p):item(), 1.740072237775124))
  end)

  it('gives the logits (softmax - onehot) / N as gradient', function()
    local x = logits():requires_grad_()
    local loss = F.cross_entropy(x, classes())
    assert.are.equal('cross_entropy', loss.grad_fn)
    loss:backward()
    local want = logits():softmax(2)
    local onehot = fc.zeros(4, 3, { dtype = 'float64' })
    for i, c in ipairs { 3, 1, 2, 3 } do onehot[i][c] = 1 end
    holds(x.grad, ((want - onehot) / 4):totable(), 1e-12)
  end)

  it('reports targets out of range in Lua numbering', function()
    has(err_of(F.cross_entropy, logits(), fc.tensor({ 3, 1, 0, 3 })),
      'cross_entropy: target 0 is out of range for 3 classes (expected 1 to 3)')
    has(err_of(F.cross_entropy, logits(), fc.tensor({ 3, 1, 4, 3 })), 'target 4 is out of range')
    has(err_of(F.cross_entropy, logits(), fc.tensor({ 1, 2, 3 })),
      'target of shape [3] does not match input of shape [4,3] (expected [4])')
  end)

  it('rejects bad options', function()
    has(err_of(F.cross_entropy, logits(), classes(), { ignore_idx = 1 }),
      'cross_entropy: unknown option "ignore_idx" (expected ignore_index, label_smoothing, reduction, weight)')
    has(err_of(F.cross_entropy, logits(), classes(), { reduction = 'avg' }),
      "cross_entropy: reduction must be 'mean', 'sum' or 'none', got avg")
    has(err_of(F.cross_entropy, logits(), classes(), { label_smoothing = 2 }),
      'label_smoothing must be between 0.0 and 1.0, got 2')
    has(err_of(F.cross_entropy, logits(), classes(), { weight = { 1, 2, 3 } }), 'weight must be a tensor')
    has(err_of(F.cross_entropy, logits(), classes(), { ignore_index = 1.5 }), 'ignore_index must be an integer')
  end)
end)

describe('F.nll_loss', function()
  it('matches cross_entropy on log_softmax', function()
    local lp = logits():log_softmax(2)
    assert.is_true(close(F.nll_loss(lp, classes()):item(), 2.1138569044502384))
    local w = fc.tensor({ 1.0, 2.0, 0.5 }, { dtype = 'float64' })
    holds(F.nll_loss(lp, classes(), { weight = w, ignore_index = 1, reduction = 'none' }),
      F.cross_entropy(logits(), classes(), { weight = w, ignore_index = 1, reduction = 'none' }):totable())
    has(err_of(F.nll_loss, lp, classes(), { label_smoothing = 0.1 }), 'nll_loss: unknown option "label_smoothing"')
  end)
end)

describe('pointwise losses', function()
  local i = function() return fc.tensor({ 0.2, -1.0, 3.0, 0.0 }, { dtype = 'float64' }) end
  local t = function() return fc.tensor({ 0.0, 1.0, 1.0, 0.5 }, { dtype = 'float64' }) end

  it('mse, l1 and smooth_l1 with every reduction', function()
    assert.is_true(close(F.mse_loss(i(), t(), { reduction = 'sum' }):item(), 0.04 + 4 + 4 + 0.25))
    assert.is_true(close(F.mse_loss(i(), t()):item(), (0.04 + 4 + 4 + 0.25) / 4))
    holds(F.l1_loss(i(), t(), { reduction = 'none' }), { 0.2, 2, 2, 0.5 })
    assert.is_true(close(F.smooth_l1_loss(i(), t(), { beta = 0.5 }):item(), 0.9475))
    assert.is_true(close(F.smooth_l1_loss(i(), t()):item(), (0.02 + 1.5 + 1.5 + 0.125) / 4))
    assert.is_true(close(F.mse_loss(i(), 1, { reduction = 'sum' }):item(), 0.64 + 4 + 4 + 1))
  end)

  it('binary cross entropy, with and without logits', function()
    local pw = fc.scalar_tensor(2, { dtype = 'float64' })
    assert.is_true(close(F.binary_cross_entropy_with_logits(i(), t(), { pos_weight = pw }):item(), 1.14038942960136))
    assert.is_true(close(F.binary_cross_entropy(i():sigmoid(), t()):item(), 0.7132837722583756))
    local w = fc.tensor({ 1, 2, 1, 1 }, { dtype = 'float64' })
    local plain = F.binary_cross_entropy(i():sigmoid(), t(), { reduction = 'none' })
    holds(F.binary_cross_entropy(i():sigmoid(), t(), { weight = w, reduction = 'none' }), (plain * w):totable())
    has(err_of(F.binary_cross_entropy, fc.tensor({ 1.5 }), fc.tensor({ 1.0 })),
      'binary_cross_entropy: all elements of input should be between 0 and 1, got 1.5')
  end)

  it('give gradients to input and target', function()
    local x, y = i():requires_grad_(), t():requires_grad_()
    F.mse_loss(x, y, { reduction = 'sum' }):backward()
    holds(x.grad, { 0.4, -4, 4, -1 })
    holds(y.grad, { -0.4, 4, -4, 1 })
  end)

  it('reject bad options', function()
    has(err_of(F.smooth_l1_loss, i(), t(), { beta = -1 }), 'smooth_l1_loss: beta must be non-negative')
    has(err_of(F.mse_loss, i(), t(), { reduce = 'sum' }), 'mse_loss: unknown option "reduce"')
    has(err_of(F.binary_cross_entropy_with_logits, i(), t(), { pos_weight = 2 }), 'pos_weight must be a tensor')
    has(err_of(F.mse_loss, fc.zeros(2, 3), fc.zeros(2)), 'mse_loss: shapes [2,3] and [2]')
  end)
end)
