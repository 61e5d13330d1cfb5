-- tests/lua/functional_spec.lua — fc.F layers against values worked another
-- way, their gradients against finite differences, and the nn modules on top.
local fc = require 'fastc'
local F, nn = fc.F, fc.nn

local S = dofile('tests/lua/support.lua')
local close, all_close = S.close, S.all_close

-- every third element's gradient against central differences
local function numeric_grad_ok(f, x) return S.grad_matches(f, x, 3) end

describe('fc.F', function()
  it('batch_norm normalises per channel and updates running stats', function()
    fc.manual_seed(1)
    local x = fc.randn(8, 3, 4, 4, { dtype = 'float64' }) * 2 + 5
    local rm, rv = fc.zeros(3, { dtype = 'float64' }), fc.ones(3, { dtype = 'float64' })
    local y = F.batch_norm(x, rm, rv, { training = true, momentum = 0.1 })
    for c = 1, 3 do
      local ch = y:select(2, c)
      assert.is_true(close(ch:mean():item(), 0, 1e-9))
      assert.is_true(close(ch:var(nil, false):item(), 1, 1e-4))
      local xc = x:select(2, c)
      assert.is_true(close(rm[c], 0.1 * xc:mean():item(), 1e-9))
      assert.is_true(close(rv[c], 0.9 + 0.1 * xc:var():item(), 1e-9)) -- unbiased
    end
    local e = F.batch_norm(x, rm, rv, { training = false })
    assert.is_true(all_close(e:select(2, 1), (x:select(2, 1) - rm[1]) / math.sqrt(rv[1] + 1e-5), 1e-9))
    local ok, err = numeric_grad_ok(function(t) return F.batch_norm(t, nil, nil, { training = true }) end,
      fc.randn(4, 2, 3, { dtype = 'float64' }))
    assert.is_true(ok, err)
  end)

  it('layer_norm and group_norm', function()
    local x = fc.randn(2, 3, 4, { dtype = 'float64' })
    local y = F.layer_norm(x, { 3, 4 })
    assert.is_true(close(y[1]:mean():item(), 0, 1e-9) and close(y[2]:var(nil, false):item(), 1, 1e-4))
    local g = F.group_norm(fc.randn(2, 4, 3, { dtype = 'float64' }), 2)
    assert.is_true(close(g[1]:narrow(1, 1, 2):mean():item(), 0, 1e-9))
    assert.is_true(numeric_grad_ok(function(t) return F.layer_norm(t, 4) end, x))
    assert.has_error(function() F.group_norm(fc.randn(2, 3, 2), 2) end)
  end)

  it('dropout keeps about 1-p of the values, scaled, reproducibly', function()
    fc.manual_seed(7)
    local y = F.dropout(fc.ones(10000), { p = 0.3 })
    local kept = y:gt(0):sum():item()
    assert.is_true(kept > 6700 and kept < 7300)
    assert.is_true(close(y:amax():item(), 1 / 0.7, 1e-6))
    fc.manual_seed(7)
    assert.are.same(y:totable(), F.dropout(fc.ones(10000), { p = 0.3 }):totable())
    assert.are.equal(10000, F.dropout(fc.ones(10000), { p = 0.3, training = false }):sum():item())
  end)

  it('embedding takes 1-based ids and blocks the padding row gradient', function()
    local w = fc.randn(5, 3):requires_grad_()
    local y = F.embedding(fc.tensor({ { 1, 5 }, { 2, 2 } }), w, { padding_idx = 2 })
    assert.are.same({ 2, 2, 3 }, y:size())
    assert.is_true(all_close(y[1][2], w[5]:detach()))
    y:sum():backward()
    assert.are.same({ 1, 1, 1 }, w.grad[1]:totable())
    assert.are.same({ 0, 0, 0 }, w.grad[2]:totable())
    assert.are.same({ 0, 0, 0 }, w.grad[3]:totable())
  end)

  it('pools (the full spec is pool_spec.lua)', function()
    local x = fc.arange(16):float():view(1, 1, 4, 4)
    assert.are.same({ { { { 2.5, 4.5 }, { 10.5, 12.5 } } } }, F.avg_pool2d(x, 2):totable())
    assert.are.same({ { { { 5, 7 }, { 13, 15 } } } }, F.max_pool2d(x, 2):totable())
    assert.are.same({ 1, 1, 1, 1 }, F.adaptive_avg_pool2d(x, 1):size())
    assert.is_true(close(F.adaptive_avg_pool2d(x, 1):item(), 7.5))
    assert.are.same({ { { { 10 } } } }, F.max_pool2d(x, 3):totable())
    assert.are.same({ { { { 5, 6, 7 }, { 9, 10, 11 }, { 13, 14, 15 } } } }, F.max_pool2d(x, 2, { stride = 1 }):totable())
  end)

  it('conv2d through the Lua API and nn.Conv2d', function()
    local x = fc.ones(1, 1, 3, 3)
    local w = fc.ones(1, 1, 2, 2)
    assert.are.same({ { { { 4, 4 }, { 4, 4 } } } }, F.conv2d(x, w):totable())
    assert.are.same({ 1, 1, 2, 2 }, F.conv2d(x, w, nil, { stride = 2, padding = 1 }):size())
    local conv = nn.Conv2d(3, 8, 3, { padding = 1 })
    assert.are.same({ 2, 8, 5, 5 }, conv(fc.randn(2, 3, 5, 5)):size())
    local bn = nn.BatchNorm2d(8)
    local out = bn(conv(fc.randn(2, 3, 5, 5)))
    out:sum():backward()
    assert.is_not_nil(conv.weight.grad)
    assert.is_not_nil(bn.weight.grad)
    assert.is_true(bn.running_mean:abs():sum():item() > 0)
  end)
end)
