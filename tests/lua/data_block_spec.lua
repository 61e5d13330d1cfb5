-- tests/lua/data_block_spec.lua — DataBlock, its summary, the blocks and the
-- vision factories end to end on small generated image folders: every
-- label checked against what its image shows.
local fc = require 'fastc'
local data, vision = fc.data, fc.vision

local S = dofile('tests/lua/support.lua')
local tmpdir, rmtree = S.tmpdir, S.rmtree

-- A PNG whose class shows in its colour: 'red' images are mostly red,
-- 'blue' ones mostly blue, with texture and a varied size.
local function write_image(path, cls, i)
  local h, w = 12 + i % 5, 14 + (i * 3) % 7
  local base = fc.rand(3, h, w) * 60
  local ch = cls == 'red' and 1 or 3
  base[ch]:add_(180)
  data.mkdir(data.path_parent(path))
  vision.save_png(path, base:to('uint8'))
end

local function make_folder(root, n)
  for _, split in ipairs { 'train', 'valid' } do
    for _, cls in ipairs { 'blue', 'red' } do
      for i = 1, n do write_image(string.format('%s/%s/%s/%s_%d.png', root, split, cls, cls, i), cls, i) end
    end
  end
end

-- every image in the batch is dominated by its label's colour
local function check_colours(xb, yb, vocab)
  for k = 1, xb:size(1) do
    local m = xb[k]:mean({ 2, 3 }):totable()
    local label = vocab[yb[k]]
    if label == 'red' then assert.is_true(m[1] > m[3], 'red image ' .. k) else assert.is_true(m[3] > m[1], 'blue image ' .. k) end
  end
end

describe('DataBlock', function()
  local root
  setup(function()
    fc.manual_seed(1)
    root = tmpdir('block')
    make_folder(root, 5)
  end)
  teardown(function() rmtree(root) end)

  local function dblock(extra)
    local o = { blocks = { fc.ImageBlock(), fc.CategoryBlock() }, get_items = fc.get_image_files,
      get_y = fc.parent_label, splitter = fc.GrandparentSplitter(), item_tfms = { vision.Resize(8) } }
    for k, v in pairs(extra or {}) do o[k] = v end
    return fc.DataBlock(o)
  end

  it('builds datasets with the split, vocab and type transforms', function()
    local ds = dblock():datasets(root)
    assert.are.equal(20, ds:len())
    assert.are.equal(10, ds.train:len())
    assert.are.equal(10, ds.valid:len())
    assert.are.same({ 'blue', 'red' }, ds.vocab)
    local t = ds.train:get(1)
    assert.are.equal('image', t.kinds[1])
    assert.are.equal('uint8', t[1].dtype)
    assert.are.equal(3, t[1]:size(1))
    assert.are.equal(1, t[2]) -- train/blue/blue_1.png
  end)

  it('summary walks one item and one batch through every step', function()
    local out = {}
    dblock { batch_tfms = vision.aug_transforms { size = 6 } }:summary(root,
      { print = function(s) out[#out + 1] = s end })
    local text = table.concat(out, '\n')
    for _, want in ipairs {
      'Found 20 items', '2 datasets of sizes 10,10',
      'Setting up Pipeline: parent_label -> Categorize -- {vocab: 2 classes}',
      'applying ImageCreate -- {channels: 3} gives',
      'applying Categorize -- {vocab: 2 classes} gives\n      1 (category)',
      'Final sample: (uint8 tensor of shape [3,',
      'applying Resize -- {size: 8x8, method: crop, pad_mode: reflection} gives\n      (uint8 tensor of shape [3,8,8] (image), 1 (category))',
      'Collating items in a batch\n  (uint8 tensor of shape [4,3,8,8] (image), int64 tensor of shape [4] (category))',
      'applying IntToFloatTensor -- {div: 255, div_mask: 1} gives\n      (float32 tensor of shape [4,3,8,8] (image)',
      'applying Flip+Warp+Rotate+Zoom -- {size: 6x6, mode: bilinear, pad_mode: reflection} gives\n      (float32 tensor of shape [4,3,6,6] (image)',
      'applying Brightness+Contrast gives' } do
      assert.truthy(text:find(want, 1, true), 'summary lacks: ' .. want .. '\n---\n' .. text)
    end
  end)

  it('rejects unknown options and non-blocks', function()
    assert.has_error(function() fc.DataBlock { blocks = { fc.ImageBlock() }, get_itms = 1 } end)
    assert.has_error(function() fc.DataBlock { blocks = { 42 } } end)
  end)

  it('ImageDataLoaders.from_folder: labels match the images, batches reproduce', function()
    local dls = vision.ImageDataLoaders.from_folder(root, { item_tfms = { vision.Resize(8) }, bs = 4, seed = 7,
      batch_tfms = vision.aug_transforms { max_lighting = 0 } })
    assert.are.same({ 'blue', 'red' }, dls.vocab)
    assert.are.equal(2, dls.c)
    assert.are.equal(2, dls.train:len())
    assert.are.equal(3, dls.valid:len())
    local first = {}
    for xb, yb in dls.train:iter() do
      assert.are.same({ 4, 3, 8, 8 }, xb:size())
      assert.are.equal('float32', xb.dtype)
      check_colours(xb, yb, dls.vocab)
      first[#first + 1] = yb:totable()
    end
    local n = 0
    for xb, yb in dls.valid:iter() do
      check_colours(xb, yb, dls.vocab)
      n = n + xb:size(1)
    end
    assert.are.equal(10, n)
    local again = vision.ImageDataLoaders.from_folder(root, { item_tfms = { vision.Resize(8) }, bs = 4, seed = 7,
      batch_tfms = vision.aug_transforms { max_lighting = 0 } })
    local k = 0
    for _, yb in again.train:iter() do
      k = k + 1
      assert.are.same(first[k], yb:totable())
    end
    -- show_batch writes a labelled grid
    local png = os.tmpname() .. '.png'
    local path, canvas = dls.train:show_batch { max_n = 4, path = png, print = false }
    assert.are.equal(png, path)
    assert.are.equal(3, canvas:size(1))
    local f = assert(io.open(png, 'rb'))
    assert.are.equal('\137PNG', f:read(4))
    f:close()
    os.remove(png)
  end)

  it('the Lua engine skips a corrupt file on request, or names it', function()
    local bad = root .. '/valid/red/red_9.png'
    local f = assert(io.open(bad, 'wb'))
    f:write('\137PNG\r\n\26\ntruncated')
    f:close()
    local warned = {}
    local dls = vision.ImageDataLoaders.from_folder(root, { item_tfms = { vision.Resize(8) }, bs = 4, seed = 7,
      engine = 'lua', on_error = 'skip', warn = function(msg) warned[#warned + 1] = msg end })
    assert.is_false(dls.valid.use_c)
    local n = 0
    for xb, yb in dls.valid:iter() do
      check_colours(xb, yb, dls.vocab)
      n = n + xb:size(1)
    end
    assert.are.equal(10, n) -- 11 files, one unreadable
    assert.are.equal(1, #warned)
    assert.truthy(warned[1]:find('red_9.png', 1, true), warned[1])
    local strict = vision.ImageDataLoaders.from_folder(root, { item_tfms = { vision.Resize(8) }, bs = 4, engine = 'lua' })
    local ok, err = pcall(function() for _ in strict.valid:iter() do end end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find('red_9.png', 1, true), tostring(err))
    os.remove(bad)
  end)

  it('from_name_re and from_name_func label by file name', function()
    local files = data.get_image_files(root)
    local dls = vision.ImageDataLoaders.from_name_re(root, files, [[^([a-z]+)_\d+\.png$]],
      { item_tfms = { vision.Resize(8) }, bs = 5, valid_pct = 0.25, seed = 2 })
    assert.are.same({ 'blue', 'red' }, dls.vocab)
    assert.are.equal(15, dls.train_ds:len())
    for xb, yb in dls.valid:iter() do check_colours(xb, yb, dls.vocab) end
    local dls2 = vision.ImageDataLoaders.from_name_func(root, files, function(name) return name:match('^(%a+)') end,
      { item_tfms = { vision.Resize(8) }, bs = 5, seed = 2 })
    assert.are.equal(4, dls2.valid_ds:len())
  end)

  it('from_csv: single and multi-label targets, a valid column', function()
    local csv = root .. '/labels.csv'
    local f = assert(io.open(csv, 'w'))
    f:write('fname,labels,is_valid\n')
    for i = 1, 5 do
      f:write(string.format('train/red/red_%d.png,red warm,False\n', i))
      f:write(string.format('train/blue/blue_%d.png,blue,%s\n', i, i <= 2 and 'True' or 'False'))
    end
    f:close()
    local dls = vision.ImageDataLoaders.from_csv(root, { item_tfms = { vision.Resize(8) }, bs = 2,
      label_delim = ' ', valid_col = 'is_valid' })
    assert.are.same({ 'blue', 'red', 'warm' }, dls.vocab)
    assert.are.equal(2, dls.valid_ds:len())
    local xb, yb = dls.valid:one_batch()
    assert.are.same({ { 1, 0, 0 }, { 1, 0, 0 } }, yb:totable())
    assert.are.equal('float32', yb.dtype)
    local dec = dls.valid:decode_batch(dls.valid:one_batch_tuple())
    assert.are.same({ 'blue' }, dec[1][2])
    local dls1 = vision.ImageDataLoaders.from_csv(root, { item_tfms = { vision.Resize(8) }, bs = 2, seed = 1 })
    assert.are.same({ 'blue', 'red warm' }, dls1.vocab)
  end)

  it('RegressionBlock and a plain-table source', function()
    local items = {}
    for i = 1, 6 do items[i] = { x = i, y = i * 0.5 } end
    local db = fc.DataBlock { blocks = { fc.TransformBlock(), fc.RegressionBlock() },
      get_x = function(r) return fc.tensor({ r.x, r.x }, { dtype = 'float32' }) end,
      get_y = function(r) return r.y end, splitter = fc.IndexSplitter { 5, 6 } }
    local dls = db:dataloaders(items, { bs = 2, shuffle = false })
    local xb, yb = dls.valid:one_batch()
    assert.are.same({ { 5, 5 }, { 6, 6 } }, xb:totable())
    assert.are.same({ 2.5, 3 }, yb:totable())
    assert.are.equal(1, dls.c)
  end)
end)

describe('SegmentationDataLoaders', function()
  it('keeps images and masks aligned through resize and flips', function()
    fc.manual_seed(3)
    local root = tmpdir('seg')
    data.mkdir(root .. '/images')
    data.mkdir(root .. '/labels')
    local fnames = {}
    for i = 1, 6 do
      -- a bright square (class 2, code 1) on a dark field, at a varied place
      local h, w = 16, 20
      local m = fc.zeros(1, h, w, { dtype = 'uint8' })
      local r0, c0 = 2 + i, 1 + 2 * i
      m[{ {}, { r0, r0 + 5 }, { c0, c0 + 6 } }] = 1
      local img = (m:float() * 200 + 20):expand(3, h, w):contiguous():to('uint8')
      local p = string.format('%s/images/s%d.png', root, i)
      vision.save_png(p, img)
      vision.save_png(string.format('%s/labels/s%d_P.png', root, i), m)
      fnames[i] = p
    end
    local dls = vision.SegmentationDataLoaders.from_label_func(root, fnames,
      function(p) return root .. '/labels/' .. data.path_stem(p) .. '_P.png' end,
      { codes = { 'background', 'square' }, bs = 2, seed = 4, item_tfms = { vision.Resize(8) },
        batch_tfms = vision.aug_transforms { max_lighting = 0, max_warp = 0 } })
    assert.are.same({ 'background', 'square' }, dls.vocab)
    assert.are.equal(2, dls.c)
    assert.truthy(dls.loss_func)
    for _, dl in ipairs { dls.train, dls.valid } do
      for xb, yb in dl:iter() do
        assert.are.same({ xb:size(1), 8, 8 }, yb:size())
        assert.are.equal('int64', yb.dtype)
        -- where the mask says square, the image is bright (edges blur: most pixels)
        local bright = xb:select(2, 1):gt(0.5)
        local square = yb:eq(2)
        local agree = bright:eq(square):float():mean():item()
        assert.is_true(agree > 0.85, 'image/mask agreement ' .. agree)
        assert.is_true(yb:min():item() >= 1 and yb:max():item() <= 2)
      end
    end
    rmtree(root)
  end)
end)
