-- tools/gen_util.lua — what the generators of test data share
-- (tools/gen_images.lua, tools/gen_segmentation.lua): a seeded random
-- stream and smooth noise, both exact in doubles so every machine writes the
-- same files.
local floor, min = math.floor, math.min
local M = {}

-- Park-Miller: products stay below 2^53, so doubles are exact. rand() is
-- uniform in (0, 1], rand(a, b) in (a, b].
function M.rng(seed)
  local x = (seed * 7919 + 12345) % 2147483646 + 1
  return function(a, b)
    x = x * 16807 % 2147483647
    local u = (x - 1) / 2147483646
    if a then return a + (b - a) * u end
    return u
  end
end

-- Smooth noise: a coarse gw x gh grid (gh defaults to gw) of random values,
-- bilinearly interpolated; the field takes u, v in [0, 1].
function M.noise_field(rand, gw, gh)
  gh = gh or gw
  local g = {}
  for i = 0, (gw + 1) * (gh + 1) - 1 do g[i] = rand() end
  return function(u, v)
    local x, y = u * gw, v * gh
    local x0, y0 = min(floor(x), gw - 1), min(floor(y), gh - 1)
    local fx, fy = x - x0, y - y0
    local i = y0 * (gw + 1) + x0
    local a = g[i] + (g[i + 1] - g[i]) * fx
    local b = g[i + gw + 1] + (g[i + gw + 2] - g[i + gw + 1]) * fx
    return a + (b - a) * fy
  end
end

return M
