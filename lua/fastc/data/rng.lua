-- lua/fastc/data/rng.lua — a small seeded random generator for the data
-- pipeline (SplitMix64 over 64-bit FFI integers).
--
-- Every random choice the data layer makes (shuffles, splits, augmentation
-- parameters) comes from a stream named by a few integers: Rng(seed, epoch,
-- item) gives the same numbers wherever and whenever it is made, so results
-- do not depend on worker counts or on what else used the global generator.
local bit = require 'bit'
local ffi = require 'ffi'

local bxor, rshift = bit.bxor, bit.rshift
local floor = math.floor
local GOLDEN = 0x9E3779B97F4A7C15ULL
local TWO53 = 2 ^ 53

local function mix(z)
  z = bxor(z, rshift(z, 30)) * 0xBF58476D1CE4E5B9ULL
  z = bxor(z, rshift(z, 27)) * 0x94D049BB133111EBULL
  return bxor(z, rshift(z, 31))
end

-- A key part as an unsigned 64-bit integer: numbers by value, strings by a
-- hash of their bytes.
local function key_part(v)
  if type(v) == 'string' then
    local h = 1469598103934665603ULL
    for i = 1, #v do h = (bxor(h, v:byte(i) + 0ULL)) * 1099511628211ULL end
    return h
  end
  if type(v) ~= 'number' or v ~= floor(v) then
    error('Rng: seeds must be integers or strings, got ' .. tostring(v), 3)
  end
  return ffi.cast('uint64_t', v % TWO53) -- Lua's % is floored: never negative
end

local Rng = {}
Rng.__index = Rng

-- Rng(a, b, ...): the stream named by the integers/strings a, b, ...
local function new(...)
  local s = 0ULL
  for i = 1, select('#', ...) do s = mix(s + GOLDEN + key_part((select(i, ...)))) end
  return setmetatable({ state = s }, Rng)
end

-- Uniform in [0, 1) with 53 random bits.
function Rng:random()
  self.state = self.state + GOLDEN
  return tonumber(rshift(mix(self.state), 11)) / TWO53
end

function Rng:uniform(a, b) return a + (b - a) * self:random() end

-- An integer in a..b inclusive (Python's random.randint).
function Rng:randint(a, b) return a + floor(self:random() * (b - a + 1)) end

function Rng:bernoulli(p) return p >= 1 or self:random() < p end

-- A random permutation of 1..n as a Lua list (Fisher-Yates).
function Rng:perm(n)
  local out = {}
  for i = 1, n do out[i] = i end
  for i = n, 2, -1 do
    local j = self:randint(1, i)
    out[i], out[j] = out[j], out[i]
  end
  return out
end

-- A fresh integer seed drawn from this stream (for child streams).
function Rng:seed() return floor(self:random() * TWO53) end

return setmetatable({ new = new }, { __call = function(_, ...) return new(...) end })
