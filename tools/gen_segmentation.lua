-- tools/gen_segmentation.lua — a deterministic segmentation set for tests,
-- benchmarks and the segment recipe: shapes on textured backgrounds.
--
--   fastlua tools/gen_segmentation.lua DIR [n_images [size [classes [seed]]]]
--   local gen = dofile('tools/gen_segmentation.lua')
--   local out = gen{dir = d, n = 60, size = 64, classes = 2, seed = 1}
--
-- Writes DIR/images/img_00001.png (RGB) and DIR/labels/img_00001.png (one
-- channel: 0 background, k for shape class k) and DIR/codes.txt (one code
-- per line: background, disc, box, ...). Each image is a smooth noise
-- texture in random colours with 1-3 shapes (discs, boxes, triangles, ...)
-- of random size, position and shade, partly overlapping; each pixel's
-- label is the top shape covering it. Returns {images = {...},
-- labels = {...}, codes = {...}}. The same seed gives the same files.
local ffi = require 'ffi'
local fc = require 'fastc'

local floor, min, max, abs = math.floor, math.min, math.max, math.abs

local NAMES = { 'disc', 'box', 'triangle', 'ring', 'cross' }
local SHAPES = {
  function(x, y) return x * x + y * y < 1 end,
  function(x, y) return abs(x) < 0.85 and abs(y) < 0.85 end,
  function(x, y) return y > -0.8 and y < 0.9 and abs(x) < (0.9 - y) * 0.6 end,
  function(x, y) local r = x * x + y * y; return r < 1 and r > 0.35 end,
  function(x, y) return (abs(x) < 0.3 and abs(y) < 1) or (abs(y) < 0.3 and abs(x) < 1) end,
}

local gen_util = dofile((debug.getinfo(1, 'S').source:match('^@(.*/)') or './') .. 'gen_util.lua')
local rng, noise_field = gen_util.rng, gen_util.noise_field

-- One image (uint8 [3,S,S]) and its label map (uint8 [1,S,S]).
local function make_pair(rand, size, classes)
  local img = ffi.new('uint8_t[?]', 3 * size * size)
  local lab = ffi.new('uint8_t[?]', size * size)
  local tex, fine = noise_field(rand, 4), noise_field(rand, 16)
  local c1 = { rand(30, 225), rand(30, 225), rand(30, 225) }
  local c2 = { rand(30, 225), rand(30, 225), rand(30, 225) }
  local shapes = {}
  for s = 1, floor(rand(1, 4)) do
    local k = floor(rand(1, classes + 1))
    shapes[s] = { k = k, cx = rand(0.2, 0.8) * size, cy = rand(0.2, 0.8) * size, r = rand(0.12, 0.3) * size,
      tilt = rand(-0.6, 0.6), shade = { rand(0, 255), rand(0, 255), rand(0, 255) } }
  end
  local plane = size * size
  for y = 0, size - 1 do
    for x = 0, size - 1 do
      local u, v = x / (size - 1), y / (size - 1)
      local t = tex(u, v) * 0.7 + fine(u, v) * 0.3
      local col = { c1[1] + (c2[1] - c1[1]) * t, c1[2] + (c2[2] - c1[2]) * t, c1[3] + (c2[3] - c1[3]) * t }
      local label = 0
      for _, s in ipairs(shapes) do
        local dx, dy = (x - s.cx) / s.r, (y - s.cy) / s.r
        local ct, st = math.cos(s.tilt), math.sin(s.tilt)
        if SHAPES[s.k](dx * ct - dy * st, dx * st + dy * ct) then
          label = s.k
          for c = 1, 3 do col[c] = s.shade[c] * 0.8 + col[c] * 0.2 end
        end
      end
      local grain = (rand() - 0.5) * 16
      for c = 1, 3 do img[(c - 1) * plane + y * size + x] = max(0, min(255, col[c] + grain)) end
      lab[y * size + x] = label
    end
  end
  return fc.from_buffer(img, 'uint8', { 3, size, size }), fc.from_buffer(lab, 'uint8', { 1, size, size })
end

local function generate(o)
  local dir = assert(o.dir, 'gen_segmentation: dir is required')
  local n, size, seed = o.n or 100, o.size or 64, o.seed or 1
  local classes = min(o.classes or 1, #SHAPES)
  os.execute("mkdir -p '" .. dir .. "/images' '" .. dir .. "/labels'")
  local out = { images = {}, labels = {}, codes = { 'background' } }
  for k = 1, classes do out.codes[k + 1] = NAMES[k] end
  local f = assert(io.open(dir .. '/codes.txt', 'w'))
  f:write(table.concat(out.codes, '\n'), '\n')
  f:close()
  for i = 1, n do
    local rand = rng(seed * 100003 + i)
    local img, lab = make_pair(rand, size, classes)
    local name = string.format('img_%05d.png', i)
    out.images[i], out.labels[i] = dir .. '/images/' .. name, dir .. '/labels/' .. name
    fc.vision.save_png(out.images[i], img)
    fc.vision.save_png(out.labels[i], lab)
  end
  return out
end

if select('#', ...) > 0 then
  local dir, n, size, classes, seed = ...
  local out = generate { dir = dir, n = tonumber(n) or 200, size = tonumber(size) or 64,
    classes = tonumber(classes) or 1, seed = tonumber(seed) or 1 }
  print(string.format('gen_segmentation: %d image/label pairs in %s (codes: %s)', #out.images, dir,
    table.concat(out.codes, ', ')))
end

return generate
