-- tests/lua/plot_spec.lua — fc.plot: the PNG is read back and its pixels
-- checked where the layout says the lines, legend, labels and images are.
local fc = require 'fastc'
local plot = fc.plot

local function tmp(name) return string.format('%s_%s.png', os.tmpname(), name) end

-- The RGB pixel at (x, y) (0-based) of an [H, W, 3] image.
local function pixel(img, x, y)
  x, y = math.floor(x + 0.5), math.floor(y + 0.5)
  return { img[{ y + 1, x + 1, 1 }], img[{ y + 1, x + 1, 2 }], img[{ y + 1, x + 1, 3 }] }
end
local function same_color(a, b) return a[1] == b[1] and a[2] == b[2] and a[3] == b[3] end
-- Pixels darker than 100 in every channel (text) inside a box.
local function dark_pixels(img, x0, y0, x1, y1)
  local t = img[{ { y0 + 1, y1 }, { x0 + 1, x1 }, {} }]:to('int64')
  return t:lt(100):all(3):sum():item()
end

describe('fc.plot.lines', function()
  it('draws lines, ticks, labels, title and legend where the layout says', function()
    local path = tmp('lines')
    local printed = false
    local saved_print, saved_write = print, io.write
    print = function() printed = true end
    io.write = function() printed = true end
    local ok, got, lay = pcall(plot.lines, {
      series = { { x = { 0, 10 }, y = { 1, 1 }, label = 'flat' }, { x = { 0, 10 }, y = { 0, 10 }, label = 'rising' } },
      title = 'Title', xlabel = 'epoch', ylabel = 'loss', path = path, width = 400, height = 300 })
    print, io.write = saved_print, saved_write
    assert(ok, got)
    assert.is_false(printed)
    assert.are.equal(path, got)
    local img = fc.read_png(path)
    assert.are.same({ 300, 400, 3 }, img:size())
    -- series 1 at y = 1, series 2 along y = x, in the palette's first two colours
    for _, x in ipairs { 1.5, 2.5, 3.5 } do
      assert.is_true(same_color(pixel(img, lay.x_to_px(x), lay.y_to_px(1)), plot.PALETTE[1]))
      assert.is_true(same_color(pixel(img, lay.x_to_px(x), lay.y_to_px(x)), plot.PALETTE[2]))
    end
    -- and nowhere near them: the background
    assert.is_true(same_color(pixel(img, lay.x_to_px(3), lay.y_to_px(7)), { 255, 255, 255 }))
    -- ticks every 2 on both axes, labelled
    local labels = {}
    for i, t in ipairs(lay.xticks) do labels[i] = t.label end
    assert.are.same({ '0', '2', '4', '6', '8', '10' }, labels)
    for _, t in ipairs(lay.xticks) do
      assert.is_true(dark_pixels(img, t.px - 6, lay.plot[4] + 6, t.px + 7, lay.plot[4] + 20) > 3)
    end
    for _, t in ipairs(lay.yticks) do
      assert.is_true(dark_pixels(img, 0, t.px - 6, lay.plot[1] - 6, t.px + 7) > 3)
    end
    -- title above the box, x label below the tick labels, y label left of them
    assert.is_true(dark_pixels(img, 0, 0, 400, lay.plot[2] - 2) > 30)
    assert.is_true(dark_pixels(img, 0, lay.plot[4] + 22, 400, 300) > 10)
    assert.is_true(dark_pixels(img, 0, lay.plot[2], 20, lay.plot[4]) > 10)
    -- legend: a sample line in each colour, then its label
    assert.are.equal(2, #lay.legend.entries)
    for i, e in ipairs(lay.legend.entries) do
      assert.is_true(same_color(pixel(img, (e.x0 + e.x1) / 2, e.y), plot.PALETTE[i]))
      assert.is_true(dark_pixels(img, e.x1 + 4, e.y - 6, lay.legend[3], e.y + 6) > 5)
    end
    os.remove(path)
  end)

  it('maps a log x axis by decades and leaves gaps at NaN', function()
    local path = tmp('log')
    local _, lay = plot.lines { series = {
      { x = { 1e-4, 1e-2 }, y = { 1, 3 } },
      { x = { 1e-4, 1e-3, 1e-2 }, y = { 2.5, 0 / 0, 2.5 }, width = 3 },
    }, xscale = 'log', path = path }
    local labels = {}
    for i, t in ipairs(lay.xticks) do labels[i] = t.label end
    assert.are.same({ '1e-4', '0.001', '0.01' }, labels)
    local mid = (lay.x_to_px(1e-4) + lay.x_to_px(1e-2)) / 2
    assert.is_true(math.abs(lay.x_to_px(1e-3) - mid) < 1e-9)
    local img = fc.read_png(path)
    -- the straight segment in log x passes y = 2 at x = 1e-3
    assert.is_true(same_color(pixel(img, lay.x_to_px(1e-3), lay.y_to_px(2)), plot.PALETTE[1]))
    -- the NaN in series 2 breaks it: nothing between its two points
    assert.is_false(same_color(pixel(img, lay.x_to_px(2e-3), lay.y_to_px(2.5)), plot.PALETTE[2]))
    assert.is_nil(lay.legend)
    os.remove(path)
  end)

  it('takes tensors, points and explicit colours', function()
    local path = tmp('points')
    local _, lay = plot.lines { series = {
      { y = fc.tensor({ 3, 1, 2 }), style = 'points', color = { 200, 0, 0 } },
    }, path = path, width = 200, height = 150 }
    local img = fc.read_png(path)
    for i, v in ipairs { 3, 1, 2 } do
      assert.is_true(same_color(pixel(img, lay.x_to_px(i), lay.y_to_px(v)), { 200, 0, 0 }))
    end
    -- points only: nothing halfway between them
    assert.is_false(same_color(pixel(img, lay.x_to_px(1.5), lay.y_to_px(2)), { 200, 0, 0 }))
    os.remove(path)
  end)

  it('reports bad input clearly', function()
    local p = tmp('bad')
    assert.has_error(function() plot.lines { series = {} , path = p } end, 'plot.lines: series must be a non-empty list')
    assert.has_error(function() plot.lines { series = { { y = { 1 } } } } end, 'plot.lines: path is required')
    assert.has_error(function() plot.lines { series = { { x = { 1, 2 }, y = { 1 } } }, path = p } end,
      'plot.lines: series 1 has 2 x values but 1 y values')
    assert.has_error(function() plot.lines { series = { { x = { 0, 1 }, y = { 1, 2 } } }, xscale = 'log', path = p } end,
      "plot: x scale 'log' needs positive values, got 0")
    assert.has_error(function() plot.lines { series = { { y = { 1 } } }, path = p, colour = 1 } end,
      'plot.lines: unknown option "colour"')
    local ok, err = pcall(plot.lines, { series = { { y = { 1, 2 } } }, path = '/nonexistent_dir_fastc/p.png' })
    assert.is_false(ok)
    assert.truthy(err:find("write_png: cannot write '/nonexistent_dir_fastc/p.png'", 1, true))
  end)
end)

describe('fc.plot.image_grid', function()
  it('lays images out in a grid with titles', function()
    local path = tmp('grid')
    local red = fc.zeros(3, 4, 5, { dtype = 'uint8' })
    red[1]:fill_(255)
    local gray = fc.full({ 1, 2, 2 }, 128, { dtype = 'uint8' })
    local white = fc.ones(2, 3) -- float in [0, 1], [H, W]
    local _, lay = plot.image_grid { images = { red, gray, white }, titles = { 'red', 'gray', 'white' },
      ncol = 2, path = path, scale = 2 }
    assert.are.same({ 2, 2 }, { lay.ncol, lay.nrow })
    local img = fc.read_png(path)
    assert.are.same({ lay.height, lay.width, 3 }, img:size())
    local c = lay.cells
    assert.are.same({ 10, 8 }, { c[1][3] - c[1][1], c[1][4] - c[1][2] }) -- 5 x 4 at scale 2
    assert.is_true(same_color(pixel(img, c[1][1], c[1][2]), { 255, 0, 0 }))
    assert.is_true(same_color(pixel(img, c[1][3] - 1, c[1][4] - 1), { 255, 0, 0 }))
    assert.is_true(same_color(pixel(img, c[2][1] + 3, c[2][2] + 3), { 128, 128, 128 }))
    assert.is_true(c[3][2] > c[1][4]) -- third image on the second row
    assert.is_true(same_color(pixel(img, c[3][1], c[3][2]), { 255, 255, 255 }))
    -- titles: text just above each image
    assert.is_true(dark_pixels(img, c[1][1] - 6, c[1][2] - 13, c[1][3] + 6, c[1][2]) > 5)
    os.remove(path)
    assert.has_error(function() plot.image_grid { images = { fc.zeros(2, 3, 3) }, path = path } end,
      'image_grid: image 1 must be [C, H, W] with C 1, 3 or 4 (or [H, W]), got [2,3,3]')
    assert.has_error(function() plot.image_grid { images = {}, path = path } end)
  end)
end)
