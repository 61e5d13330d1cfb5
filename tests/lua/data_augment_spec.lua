-- tests/lua/data_augment_spec.lua — item transforms (Lua engine) and batch
-- augmentation against pixel values worked out by hand.
local fc = require 'fastc'
local data, vision = fc.data, fc.vision
local Rng = require 'fastc.data.rng'

local function near(got, want, tol, what)
  tol = tol or 1e-5
  if type(want) == 'table' then
    assert.are.equal(#want, #got, (what or '') .. ' length')
    for i = 1, #want do near(got[i], want[i], tol, (what or '') .. '[' .. i .. ']') end
    return
  end
  assert.is_true(math.abs(got - want) <= tol, string.format('%s: got %.7g, want %.7g', what or 'value', got, want))
end

-- [C,H,W] uint8 from a nested table of rows (one channel)
local function img1(rows) return fc.tensor({ rows }, { dtype = 'uint8' }) end
local function call(t, x, kind, split, rng)
  return (t:call(x, { kind = kind or 'image', split_idx = split, rng = rng or Rng(0) }))
end

describe('item transforms (Lua engine)', function()
  it('Resize squish averages 2x2 blocks to halve the size', function()
    local x = img1 { { 0, 40, 80, 120 }, { 10, 50, 90, 130 } }
    local y = call(vision.Resize({ 1, 2 }, { method = 'squish' }), x, 'image', 2)
    assert.are.same({ { { 25, 105 } } }, y:totable())
  end)

  it('Resize crop takes the centre box in validation (area-averaged)', function()
    local rows = {}
    for r = 0, 3 do
      rows[r + 1] = {}
      for c = 0, 5 do rows[r + 1][c + 1] = 10 * r + 2 * c end
    end
    -- the centre 4x4 box is columns 1..4; its 2x2 block means
    local y = call(vision.Resize(2), img1(rows), 'image', 2)
    assert.are.same({ { { 8, 12 }, { 28, 32 } } }, y:totable())
  end)

  it('Resize crop in training picks the position from the stream', function()
    local rows = {}
    for r = 1, 2 do rows[r] = { 0, 50, 100, 150, 200 } end
    local t = vision.Resize({ 2, 2 })
    local seen = {}
    for s = 1, 40 do
      local y = call(t, img1(rows), 'image', 1, Rng(s))
      seen[y[1][1][1]] = true
      assert.are.same(y:totable(), call(t, img1(rows), 'image', 1, Rng(s)):totable())
    end
    local n = 0
    for _ in pairs(seen) do n = n + 1 end
    assert.is_true(n >= 3, 'crop positions seen: ' .. n)
  end)

  it('Resize pad keeps the image and pads with zeros', function()
    local x = img1 { { 1, 2, 3, 4 }, { 5, 6, 7, 8 } }
    local y = call(vision.Resize(4, { method = 'pad', pad_mode = 'zeros' }), x, 'image', 2)
    assert.are.same({ { { 0, 0, 0, 0 }, { 1, 2, 3, 4 }, { 5, 6, 7, 8 }, { 0, 0, 0, 0 } } }, y:totable())
  end)

  it('CropPad crops the centre or pads around it, pixel exact', function()
    local x = img1 { { 1, 2, 3 }, { 4, 5, 6 }, { 7, 8, 9 } }
    assert.are.same({ { { 5 } } }, call(vision.CropPad(1), x):totable())
    local p = call(vision.CropPad({ 3, 5 }), x):totable()
    assert.are.same({ { { 0, 1, 2, 3, 0 }, { 0, 4, 5, 6, 0 }, { 0, 7, 8, 9, 0 } } }, p)
    local b = call(vision.CropPad({ 3, 5 }, { pad_mode = 'border' }), x):totable()
    assert.are.same({ 1, 1, 2, 3, 3 }, b[1][1])
  end)

  it('FlipItem mirrors in training only, images and masks alike', function()
    local x = img1 { { 1, 2, 3 } }
    local t = vision.FlipItem(1)
    assert.are.same({ { { 3, 2, 1 } } }, call(t, x, 'image', 1):totable())
    assert.are.same({ { { 3, 2, 1 } } }, call(t, x, 'mask', 1):totable())
    assert.are.same({ { { 1, 2, 3 } } }, call(t, x, 'image', 2):totable())
  end)

  it('RandomResizedCrop: validation squishes to size + margin and crops the centre', function()
    local rows = {}
    for r = 0, 9 do
      rows[r + 1] = {}
      for c = 0, 9 do rows[r + 1][c + 1] = 10 * r + c end
    end
    local t = vision.RandomResizedCrop(2)
    -- margin ceil(2 * 0.14 / 8) * 8 = 8: 10x10 is the image itself, so the
    -- centre 2x2 pixels come out
    assert.are.same({ { { 44, 45 }, { 54, 55 } } }, call(t, img1(rows), 'image', 2):totable())
    local y = call(t, img1(rows), 'image', 1, Rng(3))
    assert.are.same({ 1, 2, 2 }, y:size())
    assert.are.same(y:totable(), call(t, img1(rows), 'image', 1, Rng(3)):totable())
  end)

  it('RandomResizedCrop crops an image and its mask with the same box', function()
    -- vertical stripes 6 pixels wide: two different boxes would disagree
    local rows = {}
    for r = 1, 40 do
      rows[r] = {}
      for c = 1, 48 do rows[r][c] = (math.floor((c - 1) / 6) % 2) * 200 end
    end
    local x = img1(rows)
    local t = vision.RandomResizedCrop(24, { min_scale = 0.3 })
    for s = 1, 8 do
      local out = t:call(data.tuple({ x, x }, { 'image', 'mask' }), { split_idx = 1, rng = Rng(s) })
      local agree = out[1]:gt(100):eq(out[2]:gt(100)):float():mean():item()
      assert.is_true(agree > 0.9, 'seed ' .. s .. ': image and mask agree on ' .. agree)
    end
  end)

  it('masks resample by nearest neighbour (no blended class codes)', function()
    local m = img1 { { 0, 0, 3, 3 }, { 0, 0, 3, 3 } }
    local y = call(vision.Resize({ 2, 3 }, { method = 'squish' }), m, 'mask', 2)
    for _, v in ipairs(y:reshape(-1):totable()) do assert.is_true(v == 0 or v == 3) end
  end)
end)

describe('batch augmentation', function()
  local function batch(rows) return fc.tensor({ { rows } }, { dtype = 'float32' }) end -- [1,1,H,W]
  local function run(t, x, split, kind)
    local b = data.tuple({ x }, { kind or 'image' })
    return t:call(b, { split_idx = split or 1, rng = Rng(1) })[1]
  end

  it('Flip (p=1) mirrors each row; validation leaves it alone', function()
    local x = batch { { 1, 2, 3 }, { 4, 5, 6 } }
    near(run(vision.Flip { p = 1 }, x):reshape(-1):totable(), { 3, 2, 1, 6, 5, 4 })
    near(run(vision.Flip { p = 1 }, x, 2):reshape(-1):totable(), { 1, 2, 3, 4, 5, 6 })
    near(run(vision.Flip { p = 0 }, x):reshape(-1):totable(), { 1, 2, 3, 4, 5, 6 })
  end)

  it('Rotate by 90 degrees permutes the pixels of a square', function()
    -- theta = [[cos, sin], [-sin, cos]]: output (x, y) reads input (y, -x),
    -- so out[i][j] = in[2 - j][i] (0-based) for in[r][c] = 3r + c
    local x = batch { { 0, 1, 2 }, { 3, 4, 5 }, { 6, 7, 8 } }
    local y = run(vision.Rotate { draw = 90, p = 1 }, x)
    near(y:reshape(-1):totable(), { 6, 3, 0, 7, 4, 1, 8, 5, 2 }, 1e-4)
  end)

  it('Zoom by 2 about the centre reads the middle half, interpolated', function()
    local x = batch { { 0, 10, 20, 30, 40 } }
    local y = run(vision.Zoom { draw = 2, draw_x = 0.5, draw_y = 0.5, p = 1 }, x)
    near(y:reshape(-1):totable(), { 10, 15, 20, 25, 30 }, 1e-4)
  end)

  it('Warp maps the tilted corners back to the square', function()
    local orig = { { -1, -1 }, { -1, 1 }, { 1, -1 }, { 1, 1 } }
    local xt, yt = 0.1, -0.15
    local targ = { { -1 - yt, -1 - xt }, { -1 + yt, 1 + xt }, { 1 + yt, -1 + xt }, { 1 - yt, 1 - xt } }
    local c = vision.find_coeffs(orig, targ)
    for i = 1, 4 do
      local x, y = targ[i][1], targ[i][2]
      local d = c[7] * x + c[8] * y + 1
      near({ (c[1] * x + c[2] * y + c[3]) / d, (c[4] * x + c[5] * y + c[6]) / d }, orig[i], 1e-9)
    end
    -- no tilt: the identity
    local x = batch { { 1, 2, 3 }, { 4, 5, 6 } }
    near(run(vision.Warp { draw_x = 0, draw_y = 0, p = 1 }, x):reshape(-1):totable(), { 1, 2, 3, 4, 5, 6 }, 1e-5)
  end)

  it('composes flip and a size change into one pass; validation only resizes', function()
    local t = vision.setup_aug_tfms { vision.Flip { p = 1, size = { 1, 2 } }, vision.Zoom { draw = 1, p = 1 } }
    assert.are.equal(1, #t)
    assert.are.equal('Flip+Zoom', t[1]:name_of())
    -- 1x4 to 1x2 with align_corners: reads columns 0 and 3 (mirrored in training)
    local x = batch { { 0, 10, 20, 30 } }
    near(run(t[1], x, 1):reshape(-1):totable(), { 30, 0 }, 1e-4)
    near(run(t[1], x, 2):reshape(-1):totable(), { 0, 30 }, 1e-4)
  end)

  it('moves images and masks together: bilinear pixels, nearest class ids', function()
    local img = batch { { 0.1, 0.2, 0.3 } }
    local mask = fc.tensor({ { { 1, 2, 3 } } }) -- [1,1,3] int64 ids
    local b = vision.Flip { p = 1 }:call(data.tuple({ img, mask }, { 'image', 'mask' }), { split_idx = 1, rng = Rng(0) })
    near(b[1]:reshape(-1):totable(), { 0.3, 0.2, 0.1 })
    assert.are.equal('int64', b[2].dtype)
    assert.are.same({ { { 3, 2, 1 } } }, b[2]:totable())
  end)

  it('Brightness and Contrast work on logits', function()
    local x = batch { { 0.5, 0.8 } }
    near(run(vision.Brightness { draw = 0.7, p = 1 }, x):reshape(-1):totable(),
      { 0.7, 1 / (1 + math.exp(-(math.log(4) + math.log(0.7 / 0.3)))) })
    -- contrast 2: sigmoid(2 logit(0.8)) = 0.64 / (0.64 + 0.04)
    near(run(vision.Contrast { draw = 2, p = 1 }, x):reshape(-1):totable(), { 0.5, 0.64 / 0.68 })
    local both = vision.setup_aug_tfms { vision.Brightness { draw = 0.5, p = 1 }, vision.Contrast { draw = 2, p = 1 } }
    assert.are.equal(1, #both)
    near(run(both[1], x):reshape(-1):totable(), { 0.5, 0.64 / 0.68 })
    near(run(both[1], x, 2):reshape(-1):totable(), { 0.5, 0.8 }) -- training only
  end)

  it('aug_transforms: one affine and one lighting pass, reproducible, valid untouched', function()
    local tfms = vision.aug_transforms { size = 8 }
    assert.are.equal(2, #tfms)
    assert.are.equal('Flip+Warp+Rotate+Zoom', tfms[1]:name_of())
    assert.are.equal('Brightness+Contrast', tfms[2]:name_of())
    local p = data.Pipeline(tfms)
    local x = fc.rand(4, 3, 10, 12)
    local function go(split, seed)
      return p:call(data.tuple({ x }, { 'image' }), { split_idx = split, rng = Rng(seed) })[1]
    end
    local a = go(1, 5)
    assert.are.same({ 4, 3, 8, 8 }, a:size())
    assert.are.same(a:reshape(-1):totable(), go(1, 5):reshape(-1):totable())
    assert.is_true(a:min():item() >= 0 and a:max():item() <= 1)
    -- validation: a plain resize, the same whatever the seed
    assert.are.same(go(2, 1):reshape(-1):totable(), go(2, 2):reshape(-1):totable())
    assert.is_true(#vision.aug_transforms { max_lighting = 0, max_warp = 0, max_rotate = 0, max_zoom = 1 } == 1)
    assert.are.equal(0, #vision.aug_transforms { do_flip = false, max_lighting = 0, max_warp = 0, max_rotate = 0,
      max_zoom = 1 })
  end)

  it('Normalize takes its stats from one batch when given none', function()
    local x = (fc.rand(16, 3, 4, 4) * 255):to('uint8')
    local ds = data.TensorDataset(x, fc.ones(16, { dtype = 'int64' }), { kinds = { 'image', 'category' } })
    local dl = data.DataLoader(ds, { bs = 16, after_batch = { data.IntToFloatTensor(), data.Normalize() } })
    local xb = dl:one_batch()
    near(xb:mean({ 1, 3, 4 }):totable(), { 0, 0, 0 }, 1e-4)
    near(xb:std({ 1, 3, 4 }):totable(), { 1, 1, 1 }, 1e-3)
    local dec = dl:decode(data.tuple({ xb }, { 'image' }))[1]
    assert.are.same(x:totable(), dec:totable())
  end)
end)
