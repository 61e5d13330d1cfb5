-- tests/lua/data_engine_spec.lua — the DataLoader's C engine (the loader's
-- worker threads) against its Lua engine: the same geometry for every item
-- transform, the same batches for any number of workers, labels that follow
-- the items when a bad file is skipped, and the reasons it falls back.
local fc = require 'fastc'
local data, vision = fc.data, fc.vision

local has_c = data.cloader() and true or false

local tmpdir = dofile('tests/lua/support.lua').tmpdir

-- Smooth gradients (resamplers with different filters agree on them) of
-- varied sizes, class 'a' bright in red, 'b' in blue.
local function make_folder(root)
  for i = 1, 8 do
    local h, w = 30 + 5 * i, 52 - 3 * i
    local yy = fc.arange(h, { dtype = 'float32' }):reshape(h, 1):expand(h, w)
    local xx = fc.arange(w, { dtype = 'float32' }):reshape(1, w):expand(h, w)
    local cls = i % 2 == 0 and 'a' or 'b'
    local r = xx * (100 / w) + (cls == 'a' and 150 or 0)
    local b = yy * (100 / h) + (cls == 'b' and 150 or 0)
    local img = fc.stack({ r, (xx + yy) * (100 / (h + w)) + 50, b }, 1)
    local split = i <= 4 and 'train' or 'valid'
    data.mkdir(string.format('%s/%s/%s', root, split, cls))
    vision.save_png(string.format('%s/%s/%s/%d.png', root, split, cls, i), img:to('uint8'))
  end
end

describe('DataLoader engines', function()
  if not has_c then
    pending('the C loader binding is not built')
    return
  end
  local root
  setup(function()
    root = tmpdir('engines')
    make_folder(root)
  end)
  teardown(function() os.execute("rm -rf '" .. root .. "'") end)

  local function dls_for(tfms, o)
    local opts = { item_tfms = tfms, bs = 4, seed = 1, batch_tfms = {} }
    for k, v in pairs(o or {}) do opts[k] = v end
    return vision.ImageDataLoaders.from_folder(root, opts)
  end

  it('picks the C engine for image files and known transforms, Lua otherwise', function()
    local dls = dls_for { vision.Resize(16), vision.FlipItem() }
    assert.is_true(dls.train.use_c and dls.valid.use_c)
    local custom = dls_for { vision.Resize(16), fc.Transform { encodes = { image = function(_, x) return x end } } }
    assert.is_false(custom.train.use_c)
    assert.truthy(custom.train.lua_reason:find('is not a C transform', 1, true))
    local ok, err = pcall(dls_for, { vision.RandomCrop(8) }, { engine = 'c' })
    assert.is_false(ok)
    assert.truthy(tostring(err):find('cannot use the C loader', 1, true))
  end)

  it('gives the Lua engine geometry for every validation transform', function()
    for _, tf in ipairs { vision.Resize(16), vision.Resize({ 12, 20 }, { method = 'squish' }),
      vision.Resize(24, { method = 'pad', pad_mode = 'border' }), vision.RandomResizedCrop(16),
      vision.CropPad(20), vision.CropPad({ 40, 60 }) } do
      local a = dls_for({ tf }, { engine = 'c' }).valid:one_batch()
      local b = dls_for({ tf }, { engine = 'lua' }).valid:one_batch()
      assert.are.same(a:size(), b:size())
      local diff = (a:float() - b:float()):abs():mean():item()
      assert.is_true(diff < 2, string.format('%s: mean difference %.2f levels', tostring(tf), diff))
    end
  end)

  it('keeps labels with their images, and batches equal for any worker count', function()
    local function epoch(workers)
      local dls = dls_for({ vision.RandomResizedCrop(12), vision.FlipItem() },
        { num_workers = workers, batch_tfms = vision.aug_transforms { size = 10 } })
      local out = {}
      for xb, yb in dls.train:iter() do
        for k = 1, xb:size(1) do
          local m = xb[k]:mean({ 2, 3 }):totable()
          assert.are.equal(m[1] > m[3] and 1 or 2, yb[k], 'label of image ' .. k)
        end
        out[#out + 1] = { xb, yb:totable() }
      end
      return out
    end
    local a, b = epoch(0), epoch(2)
    assert.are.equal(#a, #b)
    for i = 1, #a do
      assert.are.same(a[i][2], b[i][2])
      assert.are.equal(0, (a[i][1] - b[i][1]):abs():max():item())
    end
  end)

  it('skips a corrupt file with a warning; the labels still match', function()
    local bad = root .. '/valid/a/zz_corrupt.png'
    local f = assert(io.open(bad, 'wb'))
    f:write('\137PNG\r\n\26\nnot really')
    f:close()
    local warnings = {}
    local dls = dls_for({ vision.Resize(8) }, { on_error = 'skip',
      warn = function(msg) warnings[#warnings + 1] = msg end })
    local n = 0
    for xb, yb in dls.valid:iter() do
      n = n + xb:size(1)
      assert.are.equal(xb:size(1), yb:size(1))
      for k = 1, xb:size(1) do
        local m = xb[k]:mean({ 2, 3 }):totable()
        assert.are.equal(m[1] > m[3] and 1 or 2, yb[k])
      end
    end
    assert.are.equal(4, n)
    assert.truthy(#warnings == 1 and warnings[1]:find('zz_corrupt.png', 1, true), table.concat(warnings, '\n'))
    local raising = dls_for { vision.Resize(8) }
    local ok, err = pcall(function() for _ in raising.valid:iter() do end end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find('zz_corrupt.png', 1, true))
    os.remove(bad)
  end)
end)
