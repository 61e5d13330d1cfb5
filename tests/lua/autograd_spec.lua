-- tests/lua/autograd_spec.lua — autograd through the binding, checked against
-- central finite differences in float64.
local fc = require 'fastc'

-- d(sum(f(x) * G))/dx by finite differences, element by element.
local numeric_grad = dofile('tests/lua/support.lua').numeric_grad

local function check_grad(f, shape)
  local x = fc.randn(shape, { dtype = 'float64' })
  local G = fc.randn(f(x):size(), { dtype = 'float64' })
  local want = numeric_grad(f, x, G)
  x.requires_grad = true
  f(x):backward(G)
  local got = x.grad:view(-1):totable()
  for i = 1, #want do
    assert(math.abs(got[i] - want[i]) < 1e-5 * (1 + math.abs(want[i])),
      ('element %d: backward %g, numeric %g'):format(i, got[i], want[i]))
  end
end

describe('autograd', function()
  it('matches finite differences through a composite expression', function()
    fc.manual_seed(1)
    local w = fc.randn({ 4 }, { dtype = 'float64' })
    check_grad(function(x) return ((x * w):tanh() + x:exp() / 3):sigmoid() end, { 3, 4 })
    check_grad(function(x) return x:t():contiguous():view(2, 6):narrow(2, 2, 3) * 2 end, { 3, 4 })
    check_grad(function(x) return fc.where(x:gt(0), x:gelu(), x:silu()) - x ^ 2 end, { 5 })
  end)

  it('differentiates prod and cumprod, zeros included', function()
    fc.manual_seed(2)
    check_grad(function(x) return x:prod(2) end, { 3, 4 })
    check_grad(function(x) return x:cumprod(1) end, { 3, 4 })
    local x = fc.tensor({ { 2, 0, -1, 0.25 }, { 0, 4, 0, -3 } }, { dtype = 'float64' }):requires_grad_()
    x:prod(2):sum():backward()
    assert.are.same({ { 0, -0.5, 0, 0 }, { 0, 0, 0, 0 } }, x.grad:totable())
  end)

  it('exposes requires_grad, is_leaf, grad_fn, grad', function()
    local x = fc.tensor({ 1, 2, 3 }, { dtype = 'float32' }):requires_grad_()
    assert.is_true(x.requires_grad)
    assert.is_true(x.is_leaf)
    local y = (x * x):relu()
    assert.are.equal('relu', y.grad_fn)
    assert.is_false(y.is_leaf)
    y:backward(fc.ones(3))
    assert.are.same({ 2, 4, 6 }, x.grad:totable())
    x.grad = nil
    assert.is_nil(x.grad)
  end)

  it('no_grad records nothing and restores the mode after errors', function()
    local x = fc.ones(2):requires_grad_()
    local y = fc.no_grad(function() return x * 2 end)
    assert.is_false(y.requires_grad)
    assert.is_true(fc.is_grad_enabled())
    assert.has_error(function() fc.no_grad(function() error('boom') end) end)
    assert.is_true(fc.is_grad_enabled())
    fc.no_grad(function() x:mul_(3) end) -- in place under no_grad is allowed
    assert.are.same({ 3, 3 }, x:totable())
  end)

  it('reports misuse clearly', function()
    local x = fc.ones(2):requires_grad_()
    local ok, e = pcall(function() x:add_(1) end)
    assert.is_false(ok)
    assert.truthy(e:find('in-place op on a tensor that requires grad', 1, true))
    ok, e = pcall(function() (x * 2):backward() end)
    assert.truthy(e:find('grad can be implicit only for a single-element output', 1, true))
    ok, e = pcall(function() fc.ones(2, { dtype = 'int64' }):requires_grad_() end)
    assert.truthy(e:find('only floating point tensors can require grad', 1, true))
    local y = (x * 3):sum()
    y:backward()
    ok, e = pcall(function() y:backward() end)
    assert.truthy(e:find('a second time', 1, true))
  end)

  it('detach shares data without history', function()
    local x = fc.ones(2):requires_grad_()
    local d = (x * 2):detach()
    assert.is_false(d.requires_grad)
    assert.is_nil(d.grad_fn)
  end)
end)
