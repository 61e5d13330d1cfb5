-- tests/lua/cloader_spec.lua — fastc.data.cloader: batches from a generated
-- JPEG folder, 1-based positions, labels carried, the same batches for any
-- number of workers, pipeline options and their errors, bad files raised or
-- skipped with warnings, close, decode/write/transform and read_csv.
local fc = require 'fastc'
local S = dofile('tests/lua/support.lua')
local has = S.has
-- its own err_of: the pcall must run in this file for errors to name its lines
local function err_of(f, ...)
  local ok, e = pcall(f, ...)
  assert.is_false(ok, 'expected an error')
  return tostring(e)
end
local cl = require 'fastc.data.cloader'
local gen = dofile('tools/gen_images.lua')

local dir = os.tmpname()
os.remove(dir)
local folder = gen { dir = dir, train = 6, valid = 2, classes = 3, seed = 7 }
local items, labels = {}, {}
for i, p in ipairs(folder.train) do
  items[i] = p
  labels[i] = math.floor((i - 1) / 6) + 1 -- class id from 1
end

local pipeline = { { 'random_resized_crop', size = { 32, 40 } }, { 'flip', p = 0.5 } }

local function epoch_bytes(l, e)
  local chunks, order = {}, {}
  for xb, _, idx in l:epoch(e) do
    local v = xb:reshape(xb:numel()):totable()
    for i = 1, #v do chunks[#chunks + 1] = v[i] end
    for _, k in ipairs(idx:totable()) do order[#order + 1] = k end
  end
  return table.concat(chunks, ','), order
end

describe('cloader', function()
  teardown(function() os.execute("rm -rf '" .. dir .. "'") end)

  it('generates a folder of JPEGs of varied sizes', function()
    assert.are.equal(18, #folder.train)
    assert.are.equal(6, #folder.valid)
    assert.are.same({ 'tench', 'springer', 'cassette' }, folder.classes)
    local sizes = {}
    for i = 1, 6 do
      local img = cl.decode(folder.train[i])
      assert.are.equal(3, img:size(1))
      sizes[img:size(2) .. 'x' .. img:size(3)] = true
      assert.is_true(img:to('float32'):std():item() > 10) -- not flat
    end
    local n = 0
    for _ in pairs(sizes) do n = n + 1 end
    assert.is_true(n >= 4)
    -- deterministic: the same seed writes the same bytes
    local again = gen { dir = dir .. '/again', train = 1, valid = 0, classes = 1, seed = 7 }
    local f1, f2 = io.open(folder.train[1], 'rb'), io.open(again.train[1], 'rb')
    assert.are.equal(f1:read('*a'), f2:read('*a'))
    f1:close(); f2:close()
  end)

  it('gives uint8 [B,C,H,W] batches, 1-based positions and carried labels', function()
    local l = cl.new { items = items, labels = fc.tensor(labels), bs = 4, num_workers = 2, pipeline = pipeline, seed = 3 }
    assert.are.equal(5, l:len())
    local seen, n = {}, 0
    for xb, yb, idx in l:epoch(1) do
      assert.are.equal('uint8', xb.dtype)
      assert.are.equal(3, xb:size(2)); assert.are.equal(32, xb:size(3)); assert.are.equal(40, xb:size(4))
      assert.are.equal('int64', yb.dtype)
      local iv, yv = idx:totable(), yb:totable()
      for i = 1, #iv do
        assert.are.equal(labels[iv[i]], yv[i])
        seen[iv[i]] = true
        n = n + 1
      end
    end
    assert.are.equal(18, n)
    for i = 1, 18 do assert.is_true(seen[i]) end
    l:close()
  end)

  it('unshuffled batches come in item order; drop_last drops the short one', function()
    local l = cl.new { items = items, bs = 5, drop_last = true, pipeline = { { 'resize', size = 16 } } }
    assert.are.equal(3, l:len())
    local order = {}
    for _, yb, idx in l:epoch(1) do
      assert.is_nil(yb)
      for _, k in ipairs(idx:totable()) do order[#order + 1] = k end
    end
    assert.are.same({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 }, order)
    l:close()
  end)

  it('gives the same batches for 0, 1 and 3 workers', function()
    local ref, ref_order
    for _, w in ipairs { 0, 1, 3 } do
      local l = cl.new { items = items, bs = 4, shuffle = true, seed = 11, num_workers = w, pipeline = pipeline }
      local bytes, order = epoch_bytes(l, 2)
      if ref then
        assert.are.equal(ref, bytes)
        assert.are.same(ref_order, order)
      else
        ref, ref_order = bytes, order
      end
      local other = epoch_bytes(l, 3)
      assert.are_not.equal(ref, other)
      l:close()
    end
  end)

  it('matches cl.transform of the decoded image for the same item', function()
    local pngs = {}
    for i = 1, 3 do
      pngs[i] = dir .. '/p' .. i .. '.png'
      cl.write(pngs[i], cl.decode(items[i]))
    end
    local l = cl.new { items = pngs, bs = 3, seed = 5, pipeline = pipeline, num_workers = 1 }
    for xb, _, idx in l:epoch(4) do
      for r = 1, 3 do
        local item = idx[r]
        local want = cl.transform(cl.decode(pngs[item]), pipeline, { seed = 5, epoch = 4, item = item })
        assert.is_true(xb[r]:eq(want):all():item())
      end
    end
    l:close()
  end)

  it('resize methods, crops, pads and decode sizes', function()
    local img = fc.arange(0, 16, { dtype = 'uint8' }):reshape(1, 4, 4)
    assert.are.same({ { { 5, 6 }, { 9, 10 } } }, cl.transform(img, { { 'center_crop', size = 2 } }):totable())
    local padded = cl.transform(img, { { 'pad', size = { 4, 6 }, pad_mode = 'border' } })
    assert.are.same({ 0, 0, 1, 2, 3, 3 }, padded[1][1]:totable())
    local sq = cl.transform(img, { { 'resize', size = { 2, 4 }, method = 'squish' } })
    assert.are.same({ 1, 2, 4 }, sq:size())
    local full = cl.decode(items[1])
    local tiny = cl.decode(items[1], { size = { 1, 1 } }) -- 1/8 scale, the smallest
    assert.are.equal(math.ceil(full:size(2) / 8), tiny:size(2))
    assert.are.equal(math.ceil(full:size(3) / 8), tiny:size(3))
    local small = cl.decode(items[1], { size = { math.floor(full:size(2) / 2), math.floor(full:size(3) / 2) } })
    assert.are.equal(math.ceil(full:size(2) / 2), small:size(2))
    assert.are.equal(1, cl.decode(items[1], { channels = 1 }):size(1))
  end)

  it('normalises on the workers when asked', function()
    local nm = { mean = { 0.5, 0.4, 0.3 }, std = { 0.2, 0.25, 0.3 } }
    local a = cl.new { items = items, bs = 6, pipeline = pipeline, num_workers = 2 }
    local b = cl.new { items = items, bs = 6, pipeline = pipeline, num_workers = 2, normalize = nm }
    local ia = a:epoch(1)
    for xf in b:epoch(1) do
      local xu = ia()
      assert.are.equal('float32', xf.dtype)
      local want = (xu:to('float32') / 255 - fc.tensor(nm.mean):reshape(1, 3, 1, 1)) / fc.tensor(nm.std):reshape(1, 3, 1, 1)
      assert.is_true((xf - want):abs():max():item() < 1e-5)
    end
    a:close(); b:close()
    has(err_of(cl.new, { items = items, normalize = { mean = { 0.5 } } }), 'normalize must be {mean = {3 numbers}')
  end)

  it('rejects bad options with messages that name them', function()
    has(err_of(cl.new, { items = items, pipeline = { { 'rotate' } } }), 'unknown step "rotate"')
    has(err_of(cl.new, { items = items, pipeline = { { 'resize', size = 8, methd = 'crop' } } }), 'unknown option "methd"')
    has(err_of(cl.new, { items = items, pipeline = { { 'resize', size = 8, method = 'stretch' } } }),
      "unknown method \"stretch\" (expected 'crop', 'pad', 'squish')")
    has(err_of(cl.new, { items = items, pipeline = { { 'resize' } } }), 'size must be {height, width}')
    has(err_of(cl.new, { items = items, on_error = 'ignore' }), 'unknown on_error "ignore"')
    has(err_of(cl.new, { items = items, bs = 0 }), 'batch_size must be >= 1')
    has(err_of(cl.new, { items = { 'a.jpg', 5 } }), 'item 2 is a number')
    has(err_of(cl.new, { items = items, labels = fc.tensor { 1, 2 } }), '2 labels for 18 items')
    has(err_of(cl.new, { items = items, pipeline = { { 'random_resized_crop', size = 8, scale = { 0.5, 0.2 } } } }),
      'scale {0.5, 0.2}')
    local e = err_of(cl.new, { items = items, channels = 2 })
    has(e, 'channels must be 1, 3 or 4')
    has(e, 'cloader_spec.lua') -- the caller's line, not the binding's
  end)

  it('raises on a bad file naming it, or skips it with a warning', function()
    local bad = { items[1], dir .. '/nope.jpg', items[2], items[3] }
    local zero = dir .. '/zero.jpg'
    io.open(zero, 'wb'):close()
    bad[5] = zero
    local l = cl.new { items = bad, bs = 2, num_workers = 2, pipeline = { { 'resize', size = 8 } } }
    local it = l:epoch(1)
    has(err_of(it), 'nope.jpg')
    local xb = it() -- the loader goes on with the next batch
    assert.are.equal(2, xb:size(1))
    has(err_of(it), "zero.jpg' is empty")
    assert.is_nil(it())
    l:close()
    local warnings = {}
    l = cl.new { items = bad, bs = 2, on_error = 'skip', pipeline = { { 'resize', size = 8 } },
      warn = function(m) warnings[#warnings + 1] = m end }
    local rows, order = {}, {}
    for b, _, idx in l:epoch(1) do
      rows[#rows + 1] = b:size(1)
      for _, k in ipairs(idx:totable()) do order[#order + 1] = k end
    end
    assert.are.same({ 1, 2 }, rows) -- the last batch held only the empty file
    assert.are.same({ 1, 3, 4 }, order)
    assert.are.equal(2, #warnings)
    has(warnings[1], 'skipped item 2'); has(warnings[1], 'nope.jpg')
    has(warnings[2], 'skipped item 5'); has(warnings[2], 'zero.jpg')
    l:close()
  end)

  it('closes idempotently, mid-epoch too', function()
    local l = cl.new { items = items, bs = 2, num_workers = 2, pipeline = pipeline }
    local it = l:epoch(1)
    assert.is_truthy(it())
    l:close()
    l:close()
    assert.is_nil(it())
    has(err_of(function() return l:epoch(2) end), 'loader is closed')
    has(err_of(function() return l:len() end), 'loader is closed')
    -- abandoned loaders are freed by the GC, threads joined
    for _ = 1, 5 do
      local m = cl.new { items = items, bs = 2, num_workers = 2, pipeline = pipeline }
      m:epoch(1)()
    end
    collectgarbage()
  end)

  it('writes and reads images, with errors naming the file', function()
    local img = fc.arange(0, 24, { dtype = 'uint8' }):reshape(2, 4, 3):mul(10):to('uint8')
    img = fc.cat({ img, img[{ { 1 } }] }, 1) -- [3,4,3]
    for _, ext in ipairs { 'png', 'bmp', 'tga' } do
      local p = dir .. '/w.' .. ext
      cl.write(p, img)
      assert.is_true(cl.decode(p):eq(img):all():item())
    end
    has(err_of(cl.decode, dir .. '/none.png'), 'none.png')
    has(err_of(cl.write, dir .. '/w.gif', img), 'unknown extension')
  end)

  it('reads CSV files into columns', function()
    local p = dir .. '/labels.csv'
    local f = io.open(p, 'w')
    f:write('fname,label,is_valid,score\n', 'a.jpg,cat,False,0.5\n', '"b,1.jpg","dog ""big""",True,\n')
    f:close()
    local df = cl.read_csv(p)
    assert.are.same({ 'fname', 'label', 'is_valid', 'score' }, df.names)
    assert.are.equal(2, df.nrows)
    assert.are.same({ 'a.jpg', 'b,1.jpg' }, df.columns.fname)
    assert.are.same({ 'cat', 'dog "big"' }, df.columns.label)
    assert.are.equal(0.5, df.columns.score[1])
    assert.is_true(df.columns.score[2] ~= df.columns.score[2]) -- empty: nan
    local raw = cl.read_csv(p, { header = false })
    assert.are.equal(3, raw.nrows)
    assert.are.equal('fname', raw.columns[1][1])
    has(err_of(cl.read_csv, dir .. '/missing.csv'), 'missing.csv')
  end)
end)
