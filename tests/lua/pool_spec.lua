-- tests/lua/pool_spec.lua — pooling through fc.F and fc.nn: PyTorch's
-- options, 1-based indices, nil output sizes, gradients, modules and errors.
-- Reference numbers are PyTorch 1.13's (float64) on the input below, the
-- same ones tests/c/test_pool.c checks, indices shifted by one.
local fc = require 'fastc'
-- its own err_of: the pcall must run in this file for errors to name its lines
local function err_of(f, ...)
  local ok, e = pcall(f, ...)
  assert.is_false(ok, 'expected an error')
  return tostring(e)
end
local F, nn = fc.F, fc.nn

local function close(a, b, tol)
  if a ~= a and b ~= b then return true end
  return a == b or math.abs(a - b) <= (tol or 1e-9) * (1 + math.abs(b))
end

local function flat(t)
  local out = {}
  local function walk(v)
    if type(v) == 'table' then for _, x in ipairs(v) do walk(x) end else out[#out + 1] = v end
  end
  walk(t:totable())
  return out
end

-- t holds exactly the values `want` (row-major) within tol
local function holds(t, want, tol)
  local got = flat(t)
  assert.are.equal(#want, #got, 'element count of ' .. tostring(t))
  for i = 1, #want do
    assert.is_true(close(got[i], want[i], tol), ('element %d: got %s, want %s'):format(i, got[i], want[i]))
  end
end

-- x = ((i * 37) % 53) / 10 - 2.5 for i = 0..69, as [1,2,5,7] float64
local function torch_input()
  local v = {}
  for i = 0, 69 do v[#v + 1] = ((i * 37) % 53) / 10 - 2.5 end
  return fc.tensor(v, { dtype = 'float64' }):view(1, 2, 5, 7)
end

describe('fc.F pooling', function()
  it('max_pool2d with padding, ceil_mode and 1-based indices (PyTorch numbers)', function()
    local x = torch_input()
    local v, i = F.max_pool2d(x, 3, { stride = 2, padding = 1, ceil_mode = true, return_indices = true })
    assert.are.same({ 1, 2, 3, 4 }, v:size())
    assert.are.equal('float64', v.dtype)
    holds(v, { 2.2, 2.7, 2.7, 0.1, 2.2, 2.7, 2.7, 2.6, 1, 2.5, 1.5, 2, -0.2, 1.9, 2.4, 2.4,
      2.3, 2.3, 2.2, 1.8, 2.7, 1.7, 2.2, 0.6 })
    holds(i, { 8, 11, 11, 6, 8, 11, 11, 21, 22, 31, 25, 28, 1, 3, 6, 6, 16, 16, 26, 13, 29, 23, 26, 27 }, 0)
    -- the indices address the flattened planes: gather gives the values back
    holds(x:flatten(3):gather(3, i:flatten(3)), flat(v))
    -- pairs for kernel, stride, padding and dilation
    v, i = F.max_pool2d(x, { 2, 3 }, { stride = 2, padding = { 1, 0 }, dilation = { 2, 1 }, ceil_mode = true,
      return_indices = true })
    holds(v, { 2.2, 2.7, 1.1, 2.2, 2.7, 2, 1, 1.5, 2, 1.3, 1.3, 1.8, 1.7, 2.2, 2.2, 1.7, 2.2, 2.2 })
    holds(i, { 8, 11, 12, 8, 11, 28, 22, 25, 28, 10, 10, 13, 23, 26, 26, 23, 26, 26 }, 0)
    -- without return_indices: one result
    assert.are.equal(1, select('#', F.max_pool2d(x, 2)))
  end)

  it('avg_pool2d with count_include_pad both ways (PyTorch numbers)', function()
    local x = torch_input()
    holds(F.avg_pool2d(x, 3, { stride = 2, padding = 1, ceil_mode = true }), { 0.1666666667, 0.1222222222,
      0.3444444444, -0.4444444444, 0.5333333333, 0.1666666667, 0.5, -0.08888888889, -0.04444444444, 0.1,
      -0.2666666667, -0.06666666667, -0.5777777778, -0.1111111111, 0.1111111111, 0.5777777778, -0.2888888889,
      0.1111111111, -0.1444444444, 0.2666666667, 0.3888888889, -0.1333333333, 0.08888888889, -0.2222222222 }, 1e-9)
    holds(F.avg_pool2d(x, 3, { stride = 2, padding = 1, ceil_mode = true, count_include_pad = false }),
      { 0.375, 0.1833333333, 0.5166666667, -1, 0.8, 0.1666666667, 0.5, -0.1333333333, -0.1, 0.15, -0.4, -0.15,
        -1.3, -0.1666666667, 0.1666666667, 1.3, -0.4333333333, 0.1111111111, -0.1444444444, 0.4, 0.875, -0.2,
        0.1333333333, -0.5 }, 1e-9)
  end)

  it('adaptive pools: any size, nil keeps the input size (PyTorch numbers)', function()
    local x = torch_input()
    holds(F.adaptive_avg_pool2d(x, { 4, 3 }), { 0.01666666667, 0.35, -0.2, 0.3, 0.6333333333, 0.08333333333,
      -0.3, 0.03333333333, 0.3666666667, -0.01666666667, 0.3166666667, -0.2333333333, -0.3333333333, 0,
      0.3333333333, -0.05, -0.6, -0.2666666667, 0.2333333333, -0.3166666667, 0.01666666667, 0.5166666667,
      -0.03333333333, 0.3 }, 1e-9)
    local v, i = F.adaptive_max_pool2d(x, { 2, 5 }, { return_indices = true })
    holds(v, { 2.2, 1.2, 2.7, 1.7, 2.6, 1.6, 2.5, 2.5, 0.5, 2.6, 2.3, 2.3, 1.9, 2.4, 2.4, 2.7, 2.3, 2.2, 2.2, 1.2 })
    holds(i, { 8, 2, 11, 5, 21, 15, 31, 31, 19, 21, 16, 16, 3, 6, 6, 29, 16, 26, 26, 20 }, 0)
    -- {nil, 1}: one column per row, the row means and maxima
    local rows = F.adaptive_avg_pool2d(x, { nil, 1 })
    assert.are.same({ 1, 2, 5, 1 }, rows:size())
    holds(rows, flat(x:mean(4, true)), 1e-12)
    holds(F.adaptive_max_pool2d(x, { nil, 1 }), flat(x:amax(4, true)))
    holds(F.adaptive_max_pool2d(x, { 5, nil }), flat(x)) -- 5x7 windows of one element
    -- the global average pool and a size larger than the input
    holds(F.adaptive_avg_pool2d(x, 1), flat(x:mean({ 3, 4 }, true)), 1e-12)
    assert.are.same({ 1, 2, 11, 13 }, F.adaptive_avg_pool2d(x, { 11, 13 }):size())
  end)

  it('[C,H,W] inputs, float32 and non-contiguous views', function()
    local x = fc.randn(3, 9, 8)
    local xt = x:transpose(2, 3) -- [3,8,9], not contiguous
    local y = F.max_pool2d(xt, 2)
    assert.are.same({ 3, 4, 4 }, y:size())
    assert.are.equal('float32', y.dtype)
    holds(y, flat(F.max_pool2d(xt:contiguous():unsqueeze(1), 2)))
    holds(F.avg_pool2d(xt, { 3, 2 }, { stride = { 1, 2 } }),
      flat(F.avg_pool2d(xt:contiguous(), { 3, 2 }, { stride = { 1, 2 } })))
  end)

  it('gradients: max to the argmax, average spread over the window', function()
    local x = fc.randperm(36):to('float64'):view(1, 1, 6, 6):requires_grad_()
    local v, i = F.max_pool2d(x, 2, { return_indices = true })
    v:sum():backward()
    local g = x.grad:flatten()
    local hit = {}
    for _, k in ipairs(flat(i)) do hit[k] = true end
    for k = 1, 36 do assert.are.equal(hit[k] and 1 or 0, g[k]) end
    x.grad = nil
    F.adaptive_avg_pool2d(x, 1):sum():backward()
    holds(x.grad, flat(fc.full({ 36 }, 1 / 36, { dtype = 'float64' })), 1e-12)
    x.grad = nil
    -- 3x3 windows, stride 2, padding 1, no pad counted: a corner input is in one window of 4 elements
    F.avg_pool2d(x, 3, { stride = 2, padding = 1, count_include_pad = false }):sum():backward()
    assert.is_true(close(x.grad[{ 1, 1, 1, 1 }], 1 / 4))
  end)

  it('errors name the problem and the caller line', function()
    local x = fc.randn(1, 2, 5, 5)
    local e = err_of(F.max_pool2d, x, 3, { padding = 2 })
    assert.truthy(e:find('max_pool2d: padding 2x2 must be at most half the kernel size 3x3', 1, true), e)
    assert.truthy(e:find('pool_spec.lua:%d+:'), e)
    e = err_of(F.avg_pool2d, x, 6)
    assert.truthy(e:find('avg_pool2d: input of shape [1,2,5,5] is too small for kernel 6x6', 1, true), e)
    e = err_of(F.max_pool2d, x, 2, { stride = 0 })
    assert.truthy(e:find('stride must be positive, got 0x0', 1, true), e)
    e = err_of(F.max_pool2d, x, 2.5)
    assert.truthy(e:find('kernel size must be whole numbers, got 2.5', 1, true), e)
    e = err_of(F.max_pool2d, x, 'big')
    assert.truthy(e:find('kernel size must be a number or an {h, w} pair', 1, true), e)
    e = err_of(F.max_pool2d, fc.randn(5, 5), 2)
    assert.truthy(e:find('expects an [N,C,H,W] or [C,H,W] input, got shape [5,5]', 1, true), e)
    e = err_of(F.adaptive_avg_pool2d, fc.ones(1, 1, 4, 4, { dtype = 'int64' }), 2)
    assert.truthy(e:find('needs a floating point input, got int64', 1, true), e)
    e = err_of(F.adaptive_max_pool2d, x, { 2, 'x' })
    assert.truthy(e:find('output size must be whole numbers', 1, true), e)
    e = err_of(F.adaptive_avg_pool2d, x, -1)
    assert.truthy(e:find('output size must be non-negative, got -1x-1', 1, true), e)
    e = err_of(F.avg_pool2d, {}, 2)
    assert.truthy(e:find('avg_pool2d: expected a tensor input, got table', 1, true), e)
  end)
end)

describe('fc.nn pooling modules', function()
  it('MaxPool2d and AvgPool2d take the PyTorch options', function()
    local x = torch_input()
    local m = nn.MaxPool2d(3, { stride = 2, padding = 1, ceil_mode = true })
    assert.are.equal('MaxPool2d(kernel_size=3, stride=2, padding=1, dilation=1, ceil_mode=true)', tostring(m))
    holds(m(x), flat(F.max_pool2d(x, 3, { stride = 2, padding = 1, ceil_mode = true })))
    local mi = nn.MaxPool2d({ 2, 3 }, { stride = 2, padding = { 1, 0 }, dilation = { 2, 1 }, ceil_mode = true,
      return_indices = true })
    local v, i = mi(x)
    assert.are.same({ 1, 2, 3, 3 }, v:size())
    holds(i, { 8, 11, 12, 8, 11, 28, 22, 25, 28, 10, 10, 13, 23, 26, 26, 23, 26, 26 }, 0)
    local a = nn.AvgPool2d(3, { stride = 2, padding = 1, ceil_mode = true, count_include_pad = false })
    assert.are.equal('AvgPool2d(kernel_size=3, stride=2, padding=1)', tostring(a))
    holds(a(x), flat(F.adaptive_avg_pool2d(x, { 3, 4 })), 1e-12) -- the same windows here
    assert.are.equal(2, nn.AvgPool2d(2).stride)
    assert.truthy(err_of(nn.MaxPool2d, 'x'):find('MaxPool2d: kernel_size must be a number', 1, true))
  end)

  it('AdaptiveAvgPool2d, AdaptiveMaxPool2d and AdaptiveConcatPool2d', function()
    local x = fc.randn(4, 3, 7, 5)
    local avg = nn.AdaptiveAvgPool2d({ nil, 2 })
    assert.are.equal('AdaptiveAvgPool2d(output_size={nil,2})', tostring(avg))
    assert.are.same({ 4, 3, 7, 2 }, avg(x):size())
    local v, i = nn.AdaptiveMaxPool2d(1, { return_indices = true })(x)
    holds(v, flat(x:amax({ 3, 4 }, true)), 1e-6)
    holds(i, flat(x:flatten(3):argmax(3, true):unsqueeze(4)), 0)
    -- fastai's concat pool: max channels first, then average
    local cp = nn.AdaptiveConcatPool2d()
    local y = cp(x)
    assert.are.same({ 4, 6, 1, 1 }, y:size())
    holds(y:narrow(2, 1, 3), flat(x:amax({ 3, 4 }, true)), 1e-6)
    holds(y:narrow(2, 4, 3), flat(x:mean({ 3, 4 }, true)), 1e-6)
    assert.are.same({ 4, 6, 2, 2 }, nn.AdaptiveConcatPool2d(2)(x):size())
    -- a classifier head trains through it
    local head = nn.Sequential { nn.AdaptiveConcatPool2d(), nn.Flatten(), nn.Linear(6, 2) }
    local xr = x:clone():requires_grad_()
    head(xr):sum():backward()
    assert.are.same({ 4, 3, 7, 5 }, xr.grad:size())
    assert.is_not_nil(head[3].weight.grad)
  end)
end)
