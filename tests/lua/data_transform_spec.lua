-- tests/lua/data_transform_spec.lua — Transform, Pipeline and the seeded
-- generator of the data layer: dispatch by kind, split_idx, order, setups,
-- decode round trips.
local fc = require 'fastc'
local data = fc.data

describe('data Rng', function()
  local Rng = require 'fastc.data.rng'
  it('gives the same numbers for the same name, others for another', function()
    local a, b, c = Rng(7, 1, 'x'), Rng(7, 1, 'x'), Rng(7, 2, 'x')
    local va, vc = {}, {}
    for i = 1, 5 do
      va[i] = a:random()
      assert.are.equal(va[i], b:random())
      vc[i] = c:random()
      assert.is_true(va[i] >= 0 and va[i] < 1)
    end
    assert.are_not.same(va, vc)
  end)
  it('permutes, draws integers in range and is roughly uniform', function()
    local r = Rng(3)
    local p = r:perm(50)
    local seen = {}
    for _, v in ipairs(p) do seen[v] = true end
    for i = 1, 50 do assert.is_true(seen[i]) end
    local sum, lo, hi = 0, math.huge, -math.huge
    for _ = 1, 4000 do
      local k = r:randint(2, 5)
      lo, hi = math.min(lo, k), math.max(hi, k)
      sum = sum + r:random()
    end
    assert.are.equal(2, lo)
    assert.are.equal(5, hi)
    assert.is_true(math.abs(sum / 4000 - 0.5) < 0.03)
  end)
  it('refuses fractional seeds', function()
    assert.has_error(function() Rng(1.5) end)
  end)
end)

describe('Transform', function()
  local Transform, tuple = data.Transform, data.tuple

  it('wraps a plain function and applies it to each element of a tuple', function()
    local t = Transform(function(x) return x * 10 end)
    assert.are.equal(30, (t:call(3)))
    local out = t:call(tuple({ 1, 2 }, { 'a', 'b' }))
    assert.are.same({ 10, 20 }, { out[1], out[2] })
    assert.are.same({ 'a', 'b' }, out.kinds)
  end)

  it('dispatches on kind and leaves other kinds alone', function()
    local t = Transform { encodes = { image = function(_, x) return x + 1 end,
      category = function(_, x) return x * 2, 'doubled' end } }
    local out = t:call(tuple({ 1, 5, 'label' }, { 'image', 'category', 'label' }))
    assert.are.same({ 2, 10, 'label' }, { out[1], out[2], out[3] })
    assert.are.same({ 'image', 'doubled', 'label' }, out.kinds)
    local v, k = t:call(4, { kind = 'image' })
    assert.are.same({ 5, 'image' }, { v, k })
    v, k = t:call(4, { kind = 'mask' })
    assert.are.same({ 4, 'mask' }, { v, k })
  end)

  it('honours split_idx: a train-only transform does nothing elsewhere', function()
    local t = Transform { split_idx = 1, encodes = function(_, x) return -x end }
    assert.are.equal(-2, (t:call(2, { split_idx = 1 })))
    assert.are.equal(2, (t:call(2, { split_idx = 2 })))
    assert.are.equal(2, (t:call(2)))
  end)

  it('RandTransform acts with probability p from the given stream', function()
    local Rng = require 'fastc.data.rng'
    local t = data.RandTransform { encodes = function(_, x) return x + 1 end }
    t.p = 0.3
    local hits = 0
    for i = 1, 1000 do hits = hits + (t:call(0, { split_idx = 1, rng = Rng(i) }) == 1 and 1 or 0) end
    assert.is_true(hits > 240 and hits < 360, 'hits ' .. hits)
    -- the same stream decides the same way
    local a = t:call(0, { split_idx = 1, rng = Rng(99) })
    assert.are.equal(a, t:call(0, { split_idx = 1, rng = Rng(99) }))
  end)

  it('item transforms get the whole tuple', function()
    local swap = data.ItemTransform { encodes = function(_, t) return data.tuple({ t[2], t[1] }, { t.kinds[2], t.kinds[1] }) end }
    local out = swap:call(tuple({ 'x', 'y' }, { 'a', 'b' }))
    assert.are.same({ 'y', 'x', 'b', 'a' }, { out[1], out[2], out.kinds[1], out.kinds[2] })
  end)
end)

describe('Pipeline', function()
  local Transform, Pipeline = data.Transform, data.Pipeline

  local function adder(n, order)
    return Transform { name = 'add' .. n, order = order, encodes = function(_, x) return x .. '+' .. n end,
      decodes = function(_, x) return (x:gsub('%+' .. n .. '$', '')) end }
  end

  it('sorts by order, stably, and flattens nested lists', function()
    local p = Pipeline { adder(1, 5), { adder(2, 0), adder(3, 5) }, adder(4, 0) }
    assert.are.equal('x+2+4+1+3', (p:call('x')))
    assert.are.equal('Pipeline: add2 -> add4 -> add1 -> add3', tostring(p))
  end)

  it('decodes in reverse back to the input', function()
    local p = Pipeline { adder(1), adder(2), adder(3) }
    local enc = p:call('v')
    assert.are.equal('v+1+2+3', enc)
    assert.are.equal('v', (p:decode(enc)))
  end)

  it('threads kinds through the steps', function()
    local p = Pipeline { Transform { encodes = function(_, x) return x * 2, 'doubled' end },
      Transform { encodes = { doubled = function(_, x) return x + 1, 'done' end } } }
    local v, k = p:call(5)
    assert.are.same({ 11, 'done' }, { v, k })
  end)

  it('sets transforms up on the items seen through the earlier ones', function()
    local seen
    local up = Transform { encodes = function(_, x) return x:upper() end }
    local collect = Transform { order = 1, setups = function(_, items)
      seen = {}
      for i = 1, items:len() do seen[i] = items:get(i) end
    end }
    local tl = data.TfmdLists({ 'a', 'b', 'c' }, { up, collect }, { splits = { { 1, 3 }, { 2 } } })
    assert.are.same({ 'A', 'C' }, seen) -- training items only, already upper-cased
    assert.are.equal('B', (tl:get(2)))
  end)

  it('Categorize round trips labels and ids, with the vocab from the training items', function()
    local tl = data.TfmdLists({ 'dog', 'cat', 'bird', 'cat', 'fish' }, { data.Categorize() },
      { splits = { { 1, 2, 3, 4 }, { 5 } } })
    assert.are.same({ 'bird', 'cat', 'dog' }, tl.vocab)
    assert.are.equal(3, tl.c)
    local id, kind = tl:get(1)
    assert.are.same({ 3, 'category' }, { id, kind })
    local label, k2 = tl:decode(id, kind)
    assert.are.same({ 'dog', 'label' }, { label, k2 })
    -- a validation label unseen in training is an error naming it
    local ok, err = pcall(function() return tl:get(5) end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find('"fish" is not in the vocab', 1, true))
  end)

  it('MultiCategorize + OneHotEncode round trip', function()
    local tl = data.TfmdLists({ { 'a', 'c' }, { 'b' }, {} }, { data.MultiCategorize(), data.OneHotEncode() })
    assert.are.same({ 'a', 'b', 'c' }, tl.vocab)
    local v, k = tl:get(1)
    assert.are.same({ 1, 0, 1 }, v:totable())
    assert.are.equal('multicategory', k)
    local labels = tl:decode(v, k)
    assert.are.same({ 'a', 'c' }, labels)
    assert.are.same({ 0, 0, 0 }, (tl:get(3)):totable())
  end)

  it('IntToFloatTensor and Normalize decode back to the pixels', function()
    local x = fc.tensor({ { { { 0, 51 }, { 102, 255 } } } }, { dtype = 'uint8' }) -- [1,1,2,2]
    local p = Pipeline { data.Normalize.from_stats({ 0.5 }, { 0.25 }), data.IntToFloatTensor() }
    local y = p:call(x, { kind = 'image' })
    -- (v/255 - 0.5) / 0.25
    local want = { -2, (0.2 - 0.5) / 0.25, (0.4 - 0.5) / 0.25, 2 }
    local got = y:reshape(-1):totable()
    for i = 1, 4 do assert.is_true(math.abs(got[i] - want[i]) < 1e-6, got[i] .. ' vs ' .. want[i]) end
    local back = p:decode(y, { kind = 'image' })
    assert.are.equal('uint8', back.dtype)
    assert.are.same(x:totable(), back:totable())
  end)

  it('masks become 1-based int64 class ids and decode back to codes', function()
    local m = fc.tensor({ { { { 0, 2 }, { 1, 0 } } } }, { dtype = 'uint8' }) -- [B=1,1,2,2]
    local t = data.IntToFloatTensor()
    local ids = t:call(m, { kind = 'mask' })
    assert.are.equal('int64', ids.dtype)
    assert.are.same({ { { 1, 3 }, { 2, 1 } } }, ids:totable())
    assert.are.same({ { { 0, 2 }, { 1, 0 } } }, t:decode(ids, { kind = 'mask' }):totable())
  end)
end)
