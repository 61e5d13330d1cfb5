-- tests/lua/support.lua — small assertions the specs share (not a spec itself:
-- busted runs only *_spec.lua). Load with dofile('tests/lua/support.lua').
local assert = require 'luassert' -- busted's assert lives in the specs' environment, not here
local S = {}

-- Asserts the error message e contains s (plain text, not a pattern).
function S.has(e, s)
  assert.truthy(e:find(s, 1, true), 'error "' .. e .. '" lacks "' .. s .. '"')
end

-- Relative closeness with an absolute floor of tol (default 1e-6).
function S.close(a, b, tol)
  return math.abs(a - b) <= (tol or 1e-6) * (1 + math.abs(b))
end

-- Nested tables of numbers equal within tol, shape included.
function S.same(got, want, tol)
  if type(want) ~= 'table' then return type(got) == 'number' and S.close(got, want, tol) end
  if type(got) ~= 'table' or #got ~= #want then return false end
  for i = 1, #want do
    if not S.same(got[i], want[i], tol) then return false end
  end
  return true
end

-- Asserts tensor t holds the nested values `want`.
function S.holds(t, want, tol)
  assert.is_true(S.same(t:totable(), want, tol), 'got ' .. tostring(t))
end

return S
