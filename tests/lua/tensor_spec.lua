-- tests/lua/tensor_spec.lua — the binding: creation, 1-based indexing,
-- operators, printing, errors with call sites, GC pressure.
local fc = require 'fastc'

local function close(a, b, tol)
  return math.abs(a - b) <= (tol or 1e-6) * (1 + math.abs(b))
end

local function same_list(got, want, tol)
  if #got ~= #want then return false end
  for i = 1, #want do
    if type(want[i]) == 'table' then
      if not same_list(got[i], want[i], tol) then return false end
    elseif type(want[i]) == 'boolean' then
      if got[i] ~= want[i] then return false end
    elseif not close(got[i], want[i], tol) then
      return false
    end
  end
  return true
end

local function err_of(f, ...)
  local ok, e = pcall(f, ...)
  assert.is_false(ok, 'expected an error')
  return e
end

describe('creation', function()
  it('infers dtype from nested tables like PyTorch', function()
    assert.are.equal('int64', fc.tensor({ 1, 2, 3 }).dtype)
    assert.are.equal('float32', fc.tensor({ 1, 2.5 }).dtype)
    assert.are.equal('bool', fc.tensor({ true, false }).dtype)
    assert.are.equal('float64', fc.tensor({ 1, 2 }, { dtype = 'float64' }).dtype)
    assert.is_true(same_list(fc.tensor({ { 1, 2 }, { 3, 4 } }):totable(), { { 1, 2 }, { 3, 4 } }))
  end)

  it('rejects ragged and bad data', function()
    assert.truthy(err_of(fc.tensor, { { 1, 2 }, { 3 } }):find('ragged', 1, true))
    assert.truthy(err_of(fc.tensor, { 1, 'x' }):find('not a number', 1, true))
    assert.truthy(err_of(fc.tensor, { 1, true }):find('mixes booleans', 1, true))
    assert.truthy(err_of(fc.zeros, 2, 3, { dtype = 'float128' }):find('unknown dtype "float128"', 1, true))
  end)

  it('takes sizes as varargs or a table, options last', function()
    assert.are.same({ 2, 3 }, fc.zeros(2, 3):size())
    assert.are.same({ 2, 3 }, fc.ones({ 2, 3 }):size())
    assert.are.equal('int32', fc.ones(4, { dtype = 'int32' }).dtype)
    assert.are.same({}, fc.zeros({}):size())
    assert.are.equal(7, fc.full({ 2 }, 7)[2])
    assert.are.equal('int64', fc.full({ 2 }, 7).dtype)
    assert.are.equal(3, fc.eye(3):sum():item())
  end)

  it('arange, linspace and randperm', function()
    assert.are.same({ 0, 1, 2, 3, 4 }, fc.arange(5):totable())
    assert.are.same({ 2, 4, 6 }, fc.arange(2, 8, 2):totable())
    assert.are.equal('float32', fc.arange(0, 1, 0.25).dtype)
    assert.is_true(same_list(fc.linspace(0, 1, 3):totable(), { 0, 0.5, 1 }))
    local p = fc.randperm(10):totable()
    table.sort(p)
    assert.are.same({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, p) -- Lua positions
  end)

  it('manual_seed reproduces draws', function()
    fc.manual_seed(3)
    local a = fc.randn(5):totable()
    fc.manual_seed(3)
    assert.are.same(a, fc.randn(5):totable())
    local r = fc.randint(1, 4, { 1000 })
    assert.is_true(r:ge(1):all():item() and r:lt(4):all():item())
  end)
end)

describe('shape and 1-based dims', function()
  local t = fc.arange(24):view(2, 3, 4)

  it('size, dim, numel, #t', function()
    assert.are.equal(3, t:size(2))
    assert.are.equal(4, t:size(-1))
    assert.are.equal(3, t:dim())
    assert.are.equal(24, t:numel())
    assert.are.equal(2, #t)
    assert.are.same({ 12, 4, 1 }, t:stride())
  end)

  it('rejects dim 0 and out of range dims clearly', function()
    assert.truthy(err_of(t.size, t, 0):find('dim 0 is invalid: dims count from 1', 1, true))
    assert.truthy(err_of(t.size, t, 4):find('dim 4 out of range for a 3-dim tensor (expected 1..3 or -3..-1)', 1, true))
    assert.truthy(err_of(t.transpose, t, 1, -4):find('out of range', 1, true))
  end)

  it('views: transpose, permute, squeeze, unsqueeze, expand, flatten', function()
    assert.are.same({ 4, 3, 2 }, t:permute(3, 2, 1):size())
    assert.are.same({ 2, 4, 3 }, t:transpose(2, 3):size())
    assert.is_false(t:transpose(2, 3):is_contiguous())
    assert.are.same({ 2, 1, 3, 4 }, t:unsqueeze(2):size())
    assert.are.same({ 2, 3, 4, 1 }, t:unsqueeze(-1):size())
    assert.are.same({ 2, 3, 4 }, t:unsqueeze(1):squeeze(1):size())
    assert.are.same({ 3, 5 }, fc.ones(3, 1):expand(3, 5):size())
    assert.are.same({ 2, 12 }, t:flatten(2):size())
    assert.are.same({ 24 }, t:flatten():size())
    assert.are.same({ 6, 4 }, t:view(-1, 4):size())
    assert.truthy(err_of(t.view, t:transpose(1, 3), 24):find('use reshape', 1, true))
    assert.are.same({ 24 }, t:transpose(1, 3):reshape(24):size())
  end)

  it('narrow and select take 1-based positions', function()
    local m = fc.arange(12):view(3, 4)
    assert.are.same({ { 1, 2 }, { 5, 6 }, { 9, 10 } }, m:narrow(2, 2, 2):totable())
    assert.are.same({ 4, 5, 6, 7 }, m:select(1, 2):totable())
    assert.are.same({ 3, 7, 11 }, m:select(2, -1):totable())
    assert.truthy(err_of(m.select, m, 1, 4):find('index 4 out of range for dim 1 of size 3', 1, true))
    assert.truthy(err_of(m.select, m, 1, 0):find('index 0 out of range', 1, true))
  end)
end)

describe('indexing', function()
  it('t[i] selects along the first dim; numbers at 1-D', function()
    local m = fc.tensor({ { 1, 2, 3 }, { 4, 5, 6 } })
    assert.are.same({ 4, 5, 6 }, m[2]:totable())
    assert.are.equal(6, m[2][3])
    assert.are.equal(3, m[1][-1])
    assert.truthy(err_of(function() return m[3] end):find('index 3 out of range', 1, true))
  end)

  it('table keys: numbers, inclusive ranges, steps, whole dims', function()
    local m = fc.arange(20):view(4, 5)
    assert.are.equal(7, m[{ 2, 3 }])
    assert.are.same({ { 6, 7, 8 }, { 11, 12, 13 } }, m[{ { 2, 3 }, { 2, 4 } }]:totable())
    assert.are.same({ 1, 6, 11, 16 }, m[{ {}, 2 }]:totable())
    assert.are.same({ { 15, 16, 17, 18, 19 } }, m[{ { -1 } }]:totable())
    assert.are.same({ 0, 2, 4 }, m[{ 1, { 1, 5, 2 } }]:totable())
    assert.truthy(err_of(function() return m[{ 1, 2, 3 }] end):find('too many indices (3) for a 2-dim tensor', 1, true))
  end)

  it('assignment writes through views', function()
    local m = fc.zeros(3, 3)
    m[2] = 5
    m[{ 3, 3 }] = 9
    m[{ {}, 1 }] = fc.tensor({ 1, 2, 3 })
    assert.are.same({ { 1, 0, 0 }, { 2, 5, 5 }, { 3, 0, 9 } }, m:totable())
    local v = fc.zeros(4)
    v[-1] = 2
    assert.are.same({ 0, 0, 0, 2 }, v:totable())
    assert.truthy(err_of(function() m.nonsense = 1 end):find('cannot assign', 1, true))
  end)
end)

describe('arithmetic', function()
  it('operators with tensors and numbers on either side', function()
    local a = fc.tensor({ 1, 2, 3 }, { dtype = 'float32' })
    assert.are.same({ 3, 4, 5 }, (a + 2):totable())
    assert.are.same({ 1, 0, -1 }, (2 - a):totable())
    assert.are.same({ 2, 4, 6 }, (a * 2):totable())
    assert.is_true(same_list((1 / a):totable(), { 1, 0.5, 1 / 3 }))
    assert.are.same({ 1, 4, 9 }, (a ^ 2):totable())
    assert.are.same({ -1, -2, -3 }, (-a):totable())
    assert.are.same({ 1, 0, 1 }, (a % 2):totable())
  end)

  it('keeps integer tensors integral with integer scalars', function()
    local i = fc.tensor({ 1, 2 })
    assert.are.equal('int64', (i * 3).dtype)
    assert.are.equal('float32', (i * 0.5).dtype)
    assert.are.equal('float32', (i / 2).dtype)
    assert.are.equal('float64', (fc.ones(2, { dtype = 'float64' }) + 1).dtype)
  end)

  it('broadcasts and reports shape mismatches at the call site', function()
    local r = fc.ones(3, 1) + fc.arange(4):float()
    assert.are.same({ 3, 4 }, r:size())
    local e = err_of(function() return fc.ones(2, 3) + fc.ones(4) end)
    assert.truthy(e:find('tensor_spec.lua:%d+: add: shapes %[2,3%] and %[4%] cannot broadcast'))
  end)

  it('methods and in-place forms', function()
    local x = fc.tensor({ -1, 0, 2 }, { dtype = 'float32' })
    assert.are.same({ 0, 0, 2 }, x:relu():totable())
    assert.are.same({ -0.5, 0, 2 }, x:clamp(-0.5):totable())
    assert.are.same({ -1, 0, 1 }, x:clamp(nil, 1):totable())
    x:mul_(2):add_(1)
    assert.are.same({ -1, 1, 5 }, x:totable())
    assert.are.same({ false, true, true }, x:gt(0):totable())
    assert.are.same({ 5, 1, 5 }, fc.where(x:gt(0), x, 5):totable())
    assert.truthy(err_of(fc.ones(2, { dtype = 'int64' }).div_, fc.ones(2, { dtype = 'int64' }), 2)
      :find('div_: result type float32 cannot be stored in a int64 tensor', 1, true))
  end)
end)

describe('conversion and printing', function()
  it('dtype conversion and item/totable', function()
    local t = fc.tensor({ 1.7, -2.2 })
    assert.are.same({ 1, -2 }, t:long():totable())
    assert.are.equal('float16', t:half().dtype)
    assert.is_true(close(t:double()[1], 1.7, 1e-6))
    assert.are.equal(true, fc.tensor({ true })[1])
    assert.truthy(err_of(t.item, t):find('item: tensor of shape [2] has 2 elements', 1, true))
  end)

  it('prints values, dtype and size', function()
    local s = tostring(fc.tensor({ { 1.5, -2 }, { 0.25, 3 } }))
    assert.are.equal('tensor([[ 1.5000, -2.0000],\n        [ 0.2500,  3.0000]])\n[float32 tensor, size 2x2]', s)
    assert.are.equal('tensor([1, 2, 3])\n[int64 tensor, size 3]', tostring(fc.tensor({ 1, 2, 3 })))
    local big = tostring(fc.arange(5000))
    assert.truthy(big:find('...', 1, true))
    assert.truthy(big:find('4999', 1, true))
    local t = fc.ones(2)
    t:free()
    assert.are.equal('[freed tensor]', tostring(t))
    assert.truthy(err_of(function() return t + 1 end):find('was freed', 1, true))
  end)
end)

describe('memory', function()
  it('keeps resident memory flat with no collectgarbage() call', function()
    local function rss_mb()
      local f = io.open('/proc/self/statm')
      local pages = f:read('*n'); pages = f:read('*n')
      f:close()
      return pages * 4096 / 2 ^ 20
    end
    local before = rss_mb()
    local peak = before
    for i = 1, 1000 do
      local t = fc.empty(25 * 1024 * 1024) -- 100 MB of float32
      t:fill_(i)
      local r = rss_mb()
      if r > peak then peak = r end
    end
    -- a few live blocks plus the allocator's bounded cache, never 1000 of them
    assert.is_true(peak - before < 700, ('peak grew by %.0f MB'):format(peak - before))
  end)
end)
