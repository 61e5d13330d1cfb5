-- tools/gen_images.lua — a deterministic folder of JPEG images for tests and
-- benchmarks, laid out like Imagenette: DIR/train/<class>/*.jpg and
-- DIR/valid/<class>/*.jpg.
--
--   fastlua tools/gen_images.lua DIR [train_per_class [valid_per_class [classes [seed]]]]
--   local gen = dofile('tools/gen_images.lua'); gen{dir = d, train = 20, valid = 5, classes = 3, seed = 1}
--
-- Each image (about 160x200, sizes vary from 120 to 220 a side) is a
-- class-coloured gradient under a smooth noise texture, with one shape whose
-- kind belongs to the class (disc, box, stripes, ring, ...) at a random place,
-- size and shade, plus fine grain — so JPEG has real work to do and a small
-- model has something to learn. The same seed gives the same bytes.
local ffi = require 'ffi'
local fc = require 'fastc'
local cl = require 'fastc.data.cloader'

local floor, sqrt, abs, sin, cos, min, max = math.floor, math.sqrt, math.abs, math.sin, math.cos, math.min, math.max

local NAMES = { 'tench', 'springer', 'cassette', 'chainsaw', 'church', 'horn', 'truck', 'pump', 'golf', 'parachute' }

local gen_util = dofile((debug.getinfo(1, 'S').source:match('^@(.*/)') or './') .. 'gen_util.lua')
local rng, noise_field = gen_util.rng, gen_util.noise_field

-- Is (x, y), relative to the shape's centre and scaled by its radius, inside?
local SHAPES = {
  function(x, y) return x * x + y * y < 1 end,                               -- disc
  function(x, y) return abs(x) < 0.8 and abs(y) < 0.8 end,                   -- box
  function(x, y) return abs(x) < 1 and abs(y) < 1 and floor((x + 1) * 4) % 2 == 0 end, -- stripes
  function(x, y) local r = x * x + y * y; return r < 1 and r > 0.45 end,     -- ring
  function(x, y) return (abs(x) < 0.25 and abs(y) < 1) or (abs(y) < 0.25 and abs(x) < 1) end, -- cross
  function(x, y) return abs(x) + abs(y) < 1 end,                             -- diamond
  function(x, y) return y > -0.8 and y < 0.9 and abs(x) < (0.9 - y) * 0.55 end, -- triangle
  function(x, y) return abs(x) < 1 and abs(y) < 1 and (floor((x + 1) * 3) + floor((y + 1) * 3)) % 2 == 0 end, -- checker
  function(x, y) return x * x / 1.0 + y * y / 0.3 < 1 end,                   -- ellipse
  function(x, y) local r = sqrt(x * x + y * y); return r < 0.6 + 0.35 * sin(5 * math.atan2(y, x)) end, -- star blob
}

local function class_palette(k)
  local r = rng(1000 + k)
  return { r(40, 220), r(40, 220), r(40, 220) }, { r(20, 235), r(20, 235), r(20, 235) }, r(0, 2 * math.pi)
end

-- One image as a uint8 [3,H,W] tensor.
local function make_image(k, rand)
  local w, h = floor(rand(120, 221)), floor(rand(120, 221))
  local c1, c2, angle = class_palette(k)
  angle = angle + rand(-0.4, 0.4)
  local dx, dy = cos(angle), sin(angle)
  local tex = noise_field(rand, 3 + k % 4, 3 + (k * 7) % 5)
  local fine = noise_field(rand, 24, 24)
  local shape = SHAPES[k % #SHAPES + 1]
  local cx, cy, radius = rand(0.3, 0.7) * w, rand(0.3, 0.7) * h, rand(0.2, 0.4) * min(w, h)
  local tilt = rand(-0.5, 0.5)
  local ct, st = cos(tilt), sin(tilt)
  local shade = { rand(0, 255), rand(0, 255), rand(0, 255) }
  local buf = ffi.new('uint8_t[?]', 3 * w * h)
  local plane = w * h
  for y = 0, h - 1 do
    for x = 0, w - 1 do
      local u, v = x / (w - 1), y / (h - 1)
      local g = ((u - 0.5) * dx + (v - 0.5) * dy) + 0.5
      local t = tex(u, v) * 0.6 + fine(u, v) * 0.4
      local sx, sy = (x - cx) / radius, (y - cy) / radius
      local inside = shape(sx * ct - sy * st, sx * st + sy * ct)
      local grain = (rand() - 0.5) * 18
      for c = 1, 3 do
        local val = c1[c] + (c2[c] - c1[c]) * g
        val = val * (0.65 + 0.7 * t)
        if inside then val = shade[c] * 0.85 + val * 0.15 end
        val = max(0, min(255, val + grain))
        buf[(c - 1) * plane + y * w + x] = val
      end
    end
  end
  return fc.from_buffer(buf, 'uint8', { 3, h, w })
end

local function mkdir(path)
  local rc = os.execute("mkdir -p '" .. path:gsub("'", "'\\''") .. "'")
  if rc ~= 0 and rc ~= true then error('gen_images: cannot create ' .. path) end
end

-- Writes the folder; returns {train = {paths}, valid = {paths}, classes = {names}}.
local function generate(opts)
  local dir = assert(opts.dir, 'gen_images: dir is required')
  local ntrain, nvalid = opts.train or 100, opts.valid or 25
  local nclasses, seed = opts.classes or 10, opts.seed or 1
  local quality = opts.quality or 90
  local out = { train = {}, valid = {}, classes = {} }
  for k = 0, nclasses - 1 do
    local name = NAMES[k + 1] or string.format('class%02d', k)
    out.classes[k + 1] = name
    for _, split in ipairs({ { 'train', ntrain }, { 'valid', nvalid } }) do
      local sub = dir .. '/' .. split[1] .. '/' .. name
      mkdir(sub)
      for i = 1, split[2] do
        local rand = rng(((seed * 1000 + k) * 100000 + i) * 2 + (split[1] == 'valid' and 1 or 0))
        local path = string.format('%s/%s_%05d.jpg', sub, name, i)
        cl.write(path, make_image(k, rand), { quality = quality })
        local list = out[split[1]]
        list[#list + 1] = path
      end
    end
  end
  return out
end

if select('#', ...) > 0 then
  local dir, ntrain, nvalid, nclasses, seed = ...
  local t0 = os.clock()
  local out = generate { dir = dir, train = tonumber(ntrain) or 300, valid = tonumber(nvalid) or 50,
    classes = tonumber(nclasses) or 10, seed = tonumber(seed) or 1 }
  print(string.format('gen_images: %d train + %d valid JPEGs in %s (%.1fs)', #out.train, #out.valid, dir,
    os.clock() - t0))
end

return generate
