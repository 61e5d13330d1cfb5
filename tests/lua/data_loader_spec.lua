-- tests/lua/data_loader_spec.lua — Datasets, DataLoader (Lua engine) and
-- DataLoaders: ordering, shuffling from a seed, drop_last, hooks, new,
-- TensorDataset batches, test_dl.
local fc = require 'fastc'
local data = fc.data

-- items 1..n; x = the number, y = 'odd'/'even'
local function number_dsets(n, splits)
  local items = {}
  for i = 1, n do items[i] = i end
  local parity = function(i) return i % 2 == 0 and 'even' or 'odd' end
  return data.Datasets(items, { {}, { parity, data.Categorize() } }, { splits = splits })
end

local function xs_of(dl)
  local out = {}
  for xb in dl:iter() do out[#out + 1] = xb:totable() end
  return out
end

describe('Datasets', function()
  it('gives tuples of each pipeline, subsets by split, decodes', function()
    local ds = number_dsets(6, { { 1, 2, 3, 4 }, { 5, 6 } })
    assert.are.equal(6, ds:len())
    local t = ds:get(3)
    assert.are.same({ 3, 2 }, { t[1], t[2] }) -- vocab {even, odd}: odd is 2
    assert.are.same({ nil, 'category' }, { t.kinds[1], t.kinds[2] })
    assert.are.same({ 'even', 'odd' }, ds.vocab)
    assert.are.equal(2, ds.c)
    assert.are.equal(4, ds.train:len())
    assert.are.equal(2, ds.valid:len())
    assert.are.equal(6, (ds.valid:get(2))[1])
    local d = ds:decode(t)
    assert.are.same({ 3, 'odd', 'label' }, { d[1], d[2], d.kinds[2] })
    assert.are.equal(1, ds.n_inp)
    assert.truthy(ds.loss_func)
  end)
end)

describe('DataLoader', function()
  it('batches in order without shuffle; the last batch may be short', function()
    local ds = number_dsets(10)
    local dl = data.DataLoader(ds, { bs = 4 })
    assert.are.equal(3, dl:len())
    assert.are.same({ { 1, 2, 3, 4 }, { 5, 6, 7, 8 }, { 9, 10 } }, xs_of(dl))
    local ys = {}
    for _, yb in dl:iter() do ys[#ys + 1] = yb:totable() end
    assert.are.same({ 2, 1, 2, 1 }, ys[1])
    local dl2 = data.DataLoader(ds, { bs = 4, drop_last = true })
    assert.are.equal(2, dl2:len())
    assert.are.same({ { 1, 2, 3, 4 }, { 5, 6, 7, 8 } }, xs_of(dl2))
    assert.are.same({ 1, 2, 3, 4 }, (dl:one_batch()):totable())
  end)

  it('shuffles reproducibly from the seed, a new order each epoch, every item once', function()
    local ds = number_dsets(12)
    local a = data.DataLoader(ds, { bs = 5, shuffle = true, seed = 11 })
    local b = data.DataLoader(ds, { bs = 5, shuffle = true, seed = 11 })
    local c = data.DataLoader(ds, { bs = 5, shuffle = true, seed = 12 })
    local e1, e2 = xs_of(a), xs_of(a)
    assert.are.same(e1, xs_of(b))
    assert.are.same(e2, xs_of(b))
    assert.are_not.same(e1, e2)
    assert.are_not.same(e1, xs_of(c))
    local seen = {}
    for _, batch in ipairs(e1) do for _, v in ipairs(batch) do seen[#seen + 1] = v end end
    table.sort(seen)
    assert.are.same({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 }, seen)
    -- one_batch does not advance the epochs
    local d = data.DataLoader(ds, { bs = 5, shuffle = true, seed = 11 })
    d:one_batch()
    assert.are.same(e1, xs_of(d))
  end)

  it('runs the hooks in fastai order', function()
    local ds = number_dsets(5)
    local log = {}
    local dl = data.DataLoader(ds, { bs = 2,
      before_iter = function() log[#log + 1] = 'before_iter' end,
      -- a Transform maps over the tuple (x and its label): an item transform sees both
      after_item = { data.ItemTransform { encodes = function(_, t)
        log[#log + 1] = 'item' .. t[1]
        return data.tuple({ t[1] * 10, t[2] }, t.kinds)
      end } },
      before_batch = function(items)
        log[#log + 1] = 'before_batch' .. #items
        return items
      end,
      after_batch = { data.ItemTransform { encodes = function(_, b) log[#log + 1] = 'after_batch'; return b end } },
      after_iter = function() log[#log + 1] = 'after_iter' end })
    local xs = xs_of(dl)
    assert.are.same({ { 10, 20 }, { 30, 40 }, { 50 } }, xs)
    assert.are.same({ 'before_iter', 'item1', 'item2', 'before_batch2', 'after_batch', 'item3', 'item4',
      'before_batch2', 'after_batch', 'item5', 'before_batch1', 'after_batch', 'after_iter' }, log)
  end)

  it('passes each item its own random stream: same seed, same augmentation', function()
    local ds = number_dsets(8)
    local jitter = data.RandTransform { encodes = function(self, x) return x + self.r end }
    function jitter:before_call(b, split_idx, rng)
      data.RandTransform.before_call(self, b, split_idx, rng)
      self.r = rng:random()
    end
    local function run(seed, bs)
      local dl = data.DataLoader(ds, { bs = bs, seed = seed, after_item = { jitter }, split_idx = 1 })
      local all = {}
      for xb in dl:iter() do for _, v in ipairs(xb:totable()) do all[#all + 1] = v end end
      return all
    end
    local a = run(5, 3)
    assert.are.same(a, run(5, 3))
    assert.are.same(a, run(5, 8)) -- batch size does not change what an item gets
    assert.are_not.same(a, run(6, 3))
    for i = 1, 8 do assert.is_true(a[i] > i and a[i] < i + 1) end
  end)

  it('new copies the loader with options changed', function()
    local ds = number_dsets(6)
    local dl = data.DataLoader(ds, { bs = 4 })
    local dl2 = dl:new { bs = 3 }
    assert.are.equal(2, dl2:len())
    assert.are.same({ { 1, 2, 3 }, { 4, 5, 6 } }, xs_of(dl2))
    local dl3 = dl:new { dataset = ds.train, bs = 6 }
    assert.are.equal(6, dl3.n)
    assert.has_error(function() data.DataLoader(ds, { bz = 3 }) end)
    assert.has_error(function() data.DataLoader(ds, { bs = 0 }) end)
  end)

  it('TensorDataset batches by index_select and keeps kinds', function()
    local x = fc.arange(24, { dtype = 'uint8' }):reshape(6, 1, 2, 2)
    local y = fc.tensor({ 1, 2, 3, 1, 2, 3 })
    local ds = data.TensorDataset(x, y, { vocab = { 'a', 'b', 'c' } })
    local dl = data.DataLoader(ds, { bs = 4, shuffle = true, seed = 1, after_batch = { data.IntToFloatTensor() } })
    local xb, yb = dl:one_batch()
    assert.are.same({ 4, 1, 2, 2 }, xb:size())
    assert.are.equal('float32', xb.dtype)
    -- each image's pixels are 4*(i-1)..4*i-1 for its row i, and its label is y[i]
    for k = 1, 4 do
      local first = math.floor(xb[k]:reshape(-1):totable()[1] * 255 + 0.5)
      local row = first / 4 + 1
      assert.are.equal(y[row], yb[k])
    end
    assert.are.equal(3, dl.c)
    local dec = dl:decode_batch(dl:one_batch_tuple(), 2)
    assert.are.equal(2, #dec)
    assert.are.equal('uint8', dec[1][1].dtype)
    assert.are.equal('label', dec[1].kinds[2])
  end)
end)

describe('DataLoaders', function()
  it('from_dsets: a shuffled drop_last train loader and an ordered valid one', function()
    local ds = number_dsets(10, { { 1, 2, 3, 4, 5, 6, 7 }, { 8, 9, 10 } })
    local dls = ds:dataloaders { bs = 2, seed = 3 }
    assert.are.equal(3, dls.train:len())
    assert.are.equal(2, dls.valid:len())
    assert.is_true(dls.train.shuffle and dls.train.drop_last)
    assert.is_false(dls.valid.shuffle or dls.valid.drop_last)
    assert.are.same({ { 8, 9 }, { 10 } }, xs_of(dls.valid))
    assert.are.same({ 'even', 'odd' }, dls.vocab)
    assert.are.equal(2, dls.c)
    assert.truthy(dls.loss_func)
    assert.are.equal(2, dls:len())
    local again = number_dsets(10, { { 1, 2, 3, 4, 5, 6, 7 }, { 8, 9, 10 } }):dataloaders { bs = 2, seed = 3 }
    assert.are.same(xs_of(dls.train), xs_of(again.train))
  end)

  it('test_dl runs new items through the input pipeline only', function()
    local items = { 1, 2, 3, 4 }
    local ds = data.Datasets(items, { { function(x) return x * 2 end }, { function(x) return x % 2 end } },
      { splits = { { 1, 2 }, { 3, 4 } } })
    local dls = ds:dataloaders { bs = 2 }
    local tdl = dls:test_dl({ 7, 8, 9 })
    local batches = {}
    for xb, yb in tdl:iter() do
      batches[#batches + 1] = xb:totable()
      assert.is_nil(yb)
    end
    assert.are.same({ { 14, 16 }, { 18 } }, batches)
  end)

  it('takes loaders by position and options for what the Learner reads', function()
    local x, y = fc.rand(6, 3), fc.tensor({ 1, 2, 1, 2, 1, 2 })
    local train = data.DataLoader(data.TensorDataset(x, y), { bs = 4 })
    local valid = data.DataLoader(data.TensorDataset(x, y), { bs = 3 })
    local lf = function() end
    local dls = data.DataLoaders(train, valid, { loss_func = lf, c = 2, vocab = { 'u', 'v' } })
    assert.are.equal(train, dls[1])
    assert.are.equal(valid, dls[2])
    assert.are.equal(lf, dls.loss_func)
    assert.are.same({ 'u', 'v' }, dls.vocab)
    local empty = dls:new_empty()
    assert.is_nil(empty.train)
    assert.are.equal(2, empty.c)
    assert.are.equal(lf, empty.loss_func)
    assert.has_error(function() data.DataLoaders(train, { lr = 1 }) end)
    -- test_dl on tensors: validation batching, inputs only
    local t = dls:test_dl(fc.rand(5, 3))
    local sizes = {}
    for xb, yb in t:iter() do
      sizes[#sizes + 1] = xb:size(1)
      assert.is_nil(yb)
    end
    assert.are.same({ 3, 2 }, sizes)
  end)
end)
