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

-- Two tensors of the same element count hold the same values within tol.
function S.all_close(t, u, tol)
  local a, b = t:reshape(-1):totable(), u:reshape(-1):totable()
  if #a ~= #b then return false end
  for i = 1, #a do
    if not S.close(a[i], b[i], tol) then return false end
  end
  return true
end

-- d(sum(f(x) * G))/dx at x's elements first, first + every, ... by central
-- differences (x float64, changed in place and put back).
function S.numeric_grad(f, x, G, every)
  local fc = require 'fastc'
  local flat, g = x:view(-1), {}
  for i = 1, x:numel(), every or 1 do
    local x0 = flat[i]
    flat[i] = x0 + 1e-6
    local up = fc.no_grad(function() return (f(x) * G):sum():item() end)
    flat[i] = x0 - 1e-6
    local down = fc.no_grad(function() return (f(x) * G):sum():item() end)
    flat[i] = x0
    g[i] = (up - down) / 2e-6
  end
  return g
end

-- backward's gradient of f at x against numeric_grad, within 1e-5; returns
-- true, or false and the first element that differs.
function S.grad_matches(f, x, every)
  local fc = require 'fastc'
  local G = fc.randn(f(x):size(), { dtype = 'float64' })
  x.requires_grad = true
  f(x):backward(G)
  local got = x.grad:reshape(-1):totable()
  x.grad, x.requires_grad = nil, false
  local want = S.numeric_grad(f, x, G, every)
  for i, w in pairs(want) do
    if not S.close(got[i], w, 1e-5) then return false, ('element %d: %g vs %g'):format(i, got[i], w) end
  end
  return true
end

-- A fresh empty folder under the system's temporary folder, named after `name`.
function S.tmpdir(name)
  local d = os.tmpname()
  os.remove(d)
  d = d .. '_' .. name
  os.execute("mkdir -p '" .. d .. "'")
  return d
end

function S.rmtree(d) os.execute("rm -rf '" .. d .. "'") end

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
