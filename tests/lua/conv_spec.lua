-- tests/lua/conv_spec.lua — convolution through fc.F and fc.nn: conv2d and
-- conv_transpose2d against PyTorch 1.13 numbers and against each other (the
-- transpose is the adjoint of the convolution), float32 (oneDNN) against
-- float64, non-contiguous inputs, nn.ConvTranspose2d, and errors.
local fc = require 'fastc'
local F, nn = fc.F, fc.nn

local function close(a, b, tol) return math.abs(a - b) <= (tol or 1e-6) * (1 + math.abs(b)) end
local function flat(t) return t:contiguous():view(-1):totable() end
local function all_close(got, want, tol)
  for i = 1, #want do
    if not close(got[i], want[i], tol) then return false, ('element %d: %.9g, expected %.9g'):format(i, got[i], want[i]) end
  end
  return #got == #want, ('%d elements, expected %d'):format(#got, #want)
end
-- ((i * a) % m - c) / 4 for i = 0 .. n-1, the inputs the PyTorch numbers used
local function pattern(n, a, m, c, dtype)
  local v = {}
  for i = 0, n - 1 do v[#v + 1] = ((i * a) % m - c) / 4 end
  return fc.tensor(v, { dtype = dtype })
end

describe('fc.F.conv_transpose2d', function()
  it('matches PyTorch 1.13 (groups, stride, padding, output_padding), forward and gradients', function()
    for _, dtype in ipairs { 'float32', 'float64' } do
      local x = pattern(12, 7, 11, 5, dtype):view(1, 2, 2, 3):requires_grad_()
      local w = pattern(18, 5, 9, 4, dtype):view(2, 1, 3, 3):requires_grad_()
      local b = fc.tensor({ 0.5, -0.25 }, { dtype = dtype }):requires_grad_()
      local y = F.conv_transpose2d(x, w, b, { stride = 2, padding = 1, output_padding = 1, groups = 2 })
      assert.are.same({ 1, 2, 4, 6 }, y:size())
      assert.is_true(all_close(flat(y), {
        1.125, -0.1875, 0.25, 0.625, 0.75, 0.125, -0.4375, -0.8125, 1.0625, 1.1875, -0.1875, 1.0625,
        -0.125, 1.5625, 0.375, 0.3125, 0.875, -0.0625, 1.75, 0.4375, 0.75, 0.6875, -0.25, 0.5,
        -0.75, 0.5, -0.25, -0.75, 0.25, -1, 0.9375, -0.5625, -0.3125, 1.4375, -1.5625, 0.6875,
        -0.625, 0.1875, -0.125, -1.0625, 0.375, -1.1875, 0.5, -0.1875, -0.5, 0.0625, -1.5, -0.25 }, 1e-6))
      local G = pattern(48, 3, 7, 3, dtype):view(1, 2, 4, 6)
      y:backward(G)
      assert.is_true(all_close(flat(x.grad),
        { 0.625, -0.375, -1.1875, 1.5625, 1.0625, -1.5625, 1.25, 1.25, 0.875, 0.1875, 2.375, 2.375 }, 1e-6))
      assert.is_true(all_close(flat(w.grad), { -0.75, 0.5, -1.125, 0.1875, -0.3125, 0.625, -0.3125, 0.5, -0.3125,
        0.6875, 0.125, 0.875, -1.0625, 1.1875, 0.625, 0.8125, -0.875, 1.1875 }, 1e-6))
      assert.is_true(all_close(flat(b.grad), { 0, -0.25 }, 1e-6))
    end
  end)

  -- <conv2d(x, w), y> = <x, conv_transpose2d(y, w)> when output_padding
  -- brings the transpose back to x's size: each is the other's adjoint.
  it('is the adjoint of conv2d', function()
    fc.manual_seed(5)
    local cases = {
      { x = { 2, 4, 9, 8 }, co = 6, k = { 3, 2 }, stride = { 2, 1 }, padding = { 1, 0 }, dilation = { 1, 2 }, groups = 2 },
      { x = { 1, 3, 7, 7 }, co = 3, k = { 3, 3 }, stride = { 3, 3 }, padding = { 1, 1 }, dilation = { 1, 1 }, groups = 3 },
      { x = { 2, 2, 10, 6 }, co = 4, k = { 2, 3 }, stride = { 2, 2 }, padding = { 0, 2 }, dilation = { 2, 1 }, groups = 1 },
    }
    for _, c in ipairs(cases) do
      for _, dtype in ipairs { 'float64', 'float32' } do
        local x = fc.randn(c.x):to(dtype)
        local w = fc.randn(c.co, c.x[2] / c.groups, c.k[1], c.k[2]):to(dtype)
        local opts = { stride = c.stride, padding = c.padding, dilation = c.dilation, groups = c.groups }
        local y = F.conv2d(x, w, nil, opts)
        local op = {}
        for d = 1, 2 do -- what the transpose's size formula leaves out of x's size
          local back = (y:size(d + 2) - 1) * c.stride[d] - 2 * c.padding[d] + c.dilation[d] * (c.k[d] - 1) + 1
          op[d] = c.x[d + 2] - back
        end
        opts.output_padding = op
        local r = fc.randn(y:size()):to(dtype)
        local xt = F.conv_transpose2d(r, w, nil, opts)
        assert.are.same(x:size(), xt:size())
        local lhs, rhs = (y * r):sum():item(), (x * xt):sum():item()
        assert.is_true(close(lhs, rhs, dtype == 'float64' and 1e-12 or 1e-4), ('%s: %g vs %g'):format(dtype, lhs, rhs))
      end
    end
  end)

  it('raises clear errors', function()
    local x, w = fc.ones(1, 4, 3, 3), fc.ones(4, 2, 3, 3)
    local ok, e = pcall(F.conv_transpose2d, x, w, nil, { stride = 2, output_padding = 2 })
    assert.truthy(not ok and e:find('output_padding 2 (height) must be >= 0 and smaller than either stride 2 or dilation 1', 1, true), e)
    ok, e = pcall(F.conv_transpose2d, x, fc.ones(3, 2, 3, 3))
    assert.truthy(not ok and e:find('expects 3 input channels, input of shape [1,4,3,3] has 4', 1, true), e)
    ok, e = pcall(F.conv_transpose2d, x, w, fc.ones(3))
    assert.truthy(not ok and e:find('bias of shape [3] does not match 2 output channels', 1, true), e)
    ok, e = pcall(F.conv_transpose2d, x, w, nil, { output_padding = { 1, 2, 3 } })
    assert.truthy(not ok and e:find('output_padding must be a number or a {h, w} pair', 1, true), e)
  end)
end)

describe('fc.F.conv2d', function()
  it('float32 (oneDNN) agrees with float64, contiguous or not', function()
    fc.manual_seed(6)
    local x64 = fc.randn(3, 6, 11, 9):double()
    local w64 = fc.randn(8, 3, 3, 3):double()
    local b64 = fc.randn(8):double()
    local opts = { stride = { 2, 1 }, padding = { 1, 2 }, dilation = { 1, 2 }, groups = 2 }
    local want = flat(F.conv2d(x64, w64, b64, opts))
    assert.is_true(all_close(flat(F.conv2d(x64:float(), w64:float(), b64:float(), opts)), want, 1e-4))
    -- the same values laid out transposed, and every other filter of a bigger weight
    local xt = x64:float():transpose(3, 4):contiguous():transpose(3, 4)
    local wbig = fc.cat({ w64:float(), w64:float() }, 2):view(8, 2, 3, 3, 3):select(2, 1)
    assert.is_false(xt:is_contiguous())
    assert.is_false(wbig:is_contiguous())
    assert.is_true(all_close(flat(F.conv2d(xt, wbig, b64:float(), opts)), want, 1e-4))
  end)

  it('trains: float32 gradients agree with float64', function()
    fc.manual_seed(7)
    local x = fc.randn(4, 16, 14, 14)
    local w = fc.randn(32, 16, 3, 3) * 0.1
    local grads = {}
    for _, dtype in ipairs { 'float64', 'float32' } do
      local xv, wv = x:to(dtype):requires_grad_(), w:to(dtype):requires_grad_()
      local bv = fc.zeros(32):to(dtype):requires_grad_()
      F.conv2d(xv, wv, bv, { stride = 2, padding = 1 }):sin():sum():backward()
      grads[dtype] = { flat(xv.grad), flat(wv.grad), flat(bv.grad) }
    end
    for i = 1, 3 do assert.is_true(all_close(grads.float32[i], grads.float64[i], 1e-3)) end
  end)
end)

describe('fc.nn.ConvTranspose2d', function()
  it('has PyTorch shapes and init, and trains', function()
    fc.manual_seed(8)
    local m = nn.ConvTranspose2d(4, 6, 3, { stride = 2, padding = 1, output_padding = 1, groups = 2 })
    assert.are.same({ 4, 3, 3, 3 }, m.weight:size())
    assert.are.same({ 6 }, m.bias:size())
    -- kaiming_uniform(a = sqrt 5) and the bias: bound 1/sqrt(fan_in), fan_in = (6 / 2) * 3 * 3
    local bound = 1 / math.sqrt(27)
    assert.is_true(m.weight:abs():max():item() <= bound)
    assert.is_true(m.weight:abs():max():item() > 0.5 * bound)
    assert.is_true(m.bias:abs():max():item() <= bound)
    local y = m(fc.randn(2, 4, 5, 5))
    assert.are.same({ 2, 6, 10, 10 }, y:size())
    y:pow(2):mean():backward()
    assert.are.same({ 4, 3, 3, 3 }, m.weight.grad:size())
    assert.are.same({ 6 }, m.bias.grad:size())
    assert.truthy(tostring(m):find('ConvTranspose2d(4, 6, kernel_size={3,3}, stride={2,2}, padding={1,1}, output_padding={1,1})', 1, true))
    local nobias = nn.ConvTranspose2d(2, 2, { 2, 3 }, { bias = false })
    assert.is_nil(nobias.bias)
    assert.are.same({ 1, 2, 4, 6 }, nobias(fc.randn(1, 2, 3, 4)):size())
  end)
end)
