-- tests/lua/linalg_spec.lua — matmul, mm, bmm, mv, addmm, dot, outer through
-- the binding: values against Lua loops, shapes, dtypes, views, gradients,
-- and errors that carry both shapes and the caller's line.
local fc = require 'fastc'
local S = dofile('tests/lua/support.lua')
local has, close, same, holds = S.has, S.close, S.same, S.holds
-- its own err_of: the pcall must run in this file for errors to name its lines
local function err_of(f, ...)
  local ok, e = pcall(f, ...)
  assert.is_false(ok, 'expected an error')
  return tostring(e)
end

-- a @ b of two 2-D Lua tables by the definition
local function naive(a, b)
  local c = {}
  for i = 1, #a do
    c[i] = {}
    for j = 1, #b[1] do
      local s = 0
      for k = 1, #b do s = s + a[i][k] * b[k][j] end
      c[i][j] = s
    end
  end
  return c
end

describe('matmul', function()
  it('multiplies matrices like the definition, as method and function', function()
    fc.manual_seed(1)
    local a, b = fc.randn(5, 7, { dtype = 'float64' }), fc.randn(7, 3, { dtype = 'float64' })
    local want = naive(a:totable(), b:totable())
    holds(a:matmul(b), want, 1e-12)
    holds(fc.matmul(a, b), want, 1e-12)
    holds(a:mm(b), want, 1e-12)
    assert.are.same({ 5, 3 }, a:matmul(b):size())
    assert.are.equal('float64', a:matmul(b).dtype)
  end)

  it('takes transposed and sliced views', function()
    fc.manual_seed(2)
    local a, b = fc.randn(6, 4), fc.randn(6, 5)
    local at = a:t() -- [4,6], column-major
    holds(at:matmul(b), naive(at:totable(), b:totable()), 1e-5)
    local wide = fc.randn(4, 10)
    local sl = wide:narrow(2, 3, 6) -- [4,6] with rows of 10
    holds(sl:matmul(b), naive(sl:totable(), b:totable()), 1e-5)
    holds(sl:matmul(sl:t()), naive(sl:totable(), sl:t():totable()), 1e-5)
  end)

  it('promotes 1-D operands and drops the added dim', function()
    local m = fc.tensor({ { 1, 2, 3 }, { 4, 5, 6 } }, { dtype = 'float32' })
    local v = fc.tensor({ 1, 0, -1 }, { dtype = 'float32' })
    local u = fc.tensor({ 1, 1 }, { dtype = 'float32' })
    holds(m:matmul(v), { -2, -2 })
    holds(u:matmul(m), { 5, 7, 9 })
    local d = v:matmul(v)
    assert.are.equal(0, d:dim())
    assert.are.equal(2, d:item())
    holds(m:mv(v), { -2, -2 })
  end)

  it('broadcasts batch dims: [2,1,3,4] @ [5,4,2] -> [2,5,3,2]', function()
    fc.manual_seed(3)
    local a, b = fc.randn(2, 1, 3, 4, { dtype = 'float64' }), fc.randn(5, 4, 2, { dtype = 'float64' })
    local c = a:matmul(b)
    assert.are.same({ 2, 5, 3, 2 }, c:size())
    for i = 1, 2 do
      for j = 1, 5 do
        holds(c[i][j], naive(a[i][1]:totable(), b[j]:totable()), 1e-12)
      end
    end
    -- a batch against one matrix (folded into one GEMM) and a vector
    local x, w = fc.randn(4, 3, 5, { dtype = 'float64' }), fc.randn(5, 2, { dtype = 'float64' })
    local y = x:matmul(w)
    assert.are.same({ 4, 3, 2 }, y:size())
    holds(y[3], naive(x[3]:totable(), w:totable()), 1e-12)
    assert.are.same({ 4, 3 }, x:matmul(fc.randn(5, { dtype = 'float64' })):size())
  end)

  it('bmm multiplies batches of one size', function()
    local a = fc.arange(12, { dtype = 'float32' }):view(2, 2, 3)
    local b = fc.ones(2, 3, 1)
    holds(a:bmm(b), { { { 3 }, { 12 } }, { { 21 }, { 30 } } })
    holds(fc.bmm(a, b), { { { 3 }, { 12 } }, { { 21 }, { 30 } } })
  end)

  it('keeps integer dtypes exact and half types in their dtype', function()
    local m = fc.tensor({ { 1, 2 }, { 3, 4 } })
    assert.are.equal('int64', m:matmul(m).dtype)
    holds(m:matmul(m), { { 7, 10 }, { 15, 22 } })
    local h = m:to('float16')
    assert.are.equal('float16', h:matmul(h).dtype)
    holds(h:matmul(h), { { 7, 10 }, { 15, 22 } })
    local bf = m:to('bfloat16')
    holds(bf:matmul(bf), { { 7, 10 }, { 15, 22 } })
  end)

  it('gives zeros when the inner dim is empty', function()
    local c = fc.zeros(2, 0):matmul(fc.zeros(0, 3))
    assert.are.same({ 2, 3 }, c:size())
    holds(c, { { 0, 0, 0 }, { 0, 0, 0 } })
  end)

  it('leaves * elementwise', function()
    local m = fc.tensor({ { 1, 2 }, { 3, 4 } })
    holds(m * m, { { 1, 4 }, { 9, 16 } })
  end)

  it('sends gradients to both operands', function()
    fc.manual_seed(4)
    local a = fc.randn(3, 4, { dtype = 'float64' })
    local b = fc.randn(2, 4, 5, { dtype = 'float64' })
    a.requires_grad, b.requires_grad = true, true
    local y = a:matmul(b)
    assert.are.equal('matmul', y.grad_fn)
    y:sum():backward()
    -- d sum(a @ b[i]) / da = sum over i, rows of b[i] summed
    local bs = b:detach():sum(1):sum(2) -- [1,4,1] -> column sums over batch and columns
    local ga = a.grad:totable()
    for r = 1, 3 do
      for k = 1, 4 do
        assert.is_true(close(ga[r][k], bs:view(-1)[k], 1e-12))
      end
    end
    local asum = a:detach():sum(1):view(-1) -- sum of a's rows, [4]
    local gb = b.grad:totable()
    for i = 1, 2 do
      for k = 1, 4 do
        for j = 1, 5 do assert.is_true(close(gb[i][k][j], asum[k], 1e-12)) end
      end
    end
  end)

  it('reports shapes, dtypes and the caller line', function()
    local a, b = fc.ones(3, 4), fc.ones(5, 6)
    local e = err_of(function() return a:matmul(b) end)
    has(e, 'matmul: shapes [3,4] and [5,6] do not match (4 != 5)')
    has(e, 'linalg_spec.lua:')
    has(err_of(fc.matmul, a, fc.ones(4, 2, { dtype = 'float64' })), 'matmul: dtypes float32 and float64 differ')
    has(err_of(fc.matmul, fc.ones(3, 3, 4), fc.ones(2, 4, 2)), 'matmul: batch dims of shapes [3,3,4] and [2,4,2] cannot broadcast')
    has(err_of(fc.matmul, fc.scalar_tensor(1), a), 'matmul: both arguments need at least 1 dim')
    has(err_of(fc.matmul, a, 2), 'matmul: expected a tensor as the second operand, got number')
    has(err_of(fc.mm, fc.ones(2, 3, 4), fc.ones(4, 2)), 'mm: expects 2-D matrices, got shapes [2,3,4] and [4,2]')
    has(err_of(fc.bmm, fc.ones(3, 4), fc.ones(4, 2)), 'bmm: expects 3-D batches of matrices, got shapes [3,4] and [4,2]')
    has(err_of(fc.bmm, fc.ones(2, 3, 4), fc.ones(1, 4, 2)), 'bmm: batch sizes differ, got shapes [2,3,4] and [1,4,2]')
    has(err_of(fc.mv, a, a), 'mv: expects a 2-D matrix and a 1-D vector')
  end)
end)

describe('addmm', function()
  it('is beta * c + alpha * (a @ b), c broadcasting, PyTorch style', function()
    local m = fc.tensor({ { 1, 2 }, { 3, 4 } }, { dtype = 'float64' })
    local c = fc.tensor({ 10, 20 }, { dtype = 'float64' })
    holds(c:addmm(m, m), { { 17, 30 }, { 25, 42 } })
    holds(c:addmm(m, m, { beta = 0.5, alpha = 2 }), { { 19, 30 }, { 35, 54 } })
    holds(fc.addmm(c, m, m, { alpha = -1 }), { { 3, 10 }, { -5, -2 } })
    holds(fc.addmm(1, m, m), { { 8, 11 }, { 16, 23 } }) -- a number for c, in a's dtype
    local nan = fc.full({ 2, 2 }, 0 / 0, { dtype = 'float64' })
    holds(nan:addmm(m, m, { beta = 0 }), { { 7, 10 }, { 15, 22 } })
  end)

  it('matches matmul plus bias on random data, with gradients', function()
    fc.manual_seed(5)
    local x, w, bias = fc.randn(6, 4, { dtype = 'float64' }), fc.randn(3, 4, { dtype = 'float64' }),
        fc.randn(3, { dtype = 'float64' })
    local want = (x:matmul(w:t()) * 2 + bias * 0.5):totable()
    holds(bias:addmm(x, w:t(), { beta = 0.5, alpha = 2 }), want, 1e-12)
    w.requires_grad, bias.requires_grad = true, true
    local y = bias:addmm(x, w:t(), { beta = 0.5, alpha = 2 })
    assert.are.equal('addmm', y.grad_fn)
    y:sum():backward()
    holds(bias.grad, { 3, 3, 3 }, 1e-12) -- 0.5 per row, 6 rows
    local xs = x:sum(1):view(-1):totable()
    for r = 1, 3 do
      for k = 1, 4 do assert.is_true(close(w.grad[r][k], 2 * xs[k], 1e-12)) end
    end
  end)

  it('checks its arguments', function()
    local a, w = fc.ones(3, 4), fc.ones(4, 2)
    has(err_of(fc.addmm, fc.ones(5), a, w), 'addmm: c of shape [5] does not broadcast to the product\'s shape [3,2]')
    has(err_of(fc.addmm, fc.ones(2), a, fc.ones(4)), 'addmm: expects 2-D matrices')
    has(err_of(fc.addmm, fc.ones(2), a, w, 3), 'addmm: options must be a table')
    has(err_of(fc.addmm, fc.ones(2), a, w, { beta = 'x' }), 'addmm: beta and alpha must be numbers')
    has(err_of(fc.addmm, 'c', a, w), 'addmm: expected a tensor or a number to add, got string')
  end)
end)

describe('dot and outer', function()
  it('dot of two vectors is a 0-dim tensor', function()
    local u = fc.tensor({ 1, 2, 3 }, { dtype = 'float32' })
    local v = fc.tensor({ 4, -5, 6 }, { dtype = 'float32' })
    assert.are.equal(12, u:dot(v):item())
    assert.are.equal(12, fc.dot(u, v):item())
    assert.are.equal(0, u:dot(v):dim())
    local m = fc.tensor({ { 1, 2 }, { 3, 4 }, { 5, 6 } }, { dtype = 'float32' })
    assert.are.equal(56, m:select(2, 2):dot(m:select(2, 2)):item()) -- a strided column
    has(err_of(fc.dot, u, fc.ones(4)), 'dot: expects two 1-D tensors of one size, got shapes [3] and [4]')
    has(err_of(fc.dot, u, u:double()), 'dot: dtypes float32 and float64 differ')
  end)

  it('outer of two vectors', function()
    local u, v = fc.tensor({ 1, 2 }), fc.tensor({ 1, 0, -1 })
    holds(u:outer(v), { { 1, 0, -1 }, { 2, 0, -2 } })
    holds(fc.outer(u, v), { { 1, 0, -1 }, { 2, 0, -2 } })
    assert.are.equal('int64', fc.outer(u, v).dtype)
    has(err_of(fc.outer, fc.ones(2, 2), v), 'outer: expects two 1-D tensors, got shapes [2,2] and [3]')
  end)
end)
