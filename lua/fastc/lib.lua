-- lua/fastc/lib.lua — declares the C API to the FFI and finds the library.
--
-- The declarations are runtime/fastc.h itself, preprocessed at build time
-- into fastc/cdef.lua. Inside fastlua the symbols are already in the process
-- (ffi.C); from a plain luajit we load libfastc.so.
local ffi = require 'ffi'

ffi.cdef(require 'fastc.cdef')

local function has_symbols(ns)
  return pcall(function() return ns.fc_version end)
end

local function here()
  local src = debug.getinfo(1, 'S').source
  return src:sub(1, 1) == '@' and src:sub(2):match('^(.*)/[^/]*$') or '.'
end

local function load_library()
  if has_symbols(ffi.C) then return ffi.C end
  local dir = here()
  local candidates = {
    os.getenv('FASTC_LIB') or dir .. '/../../build/libfastc.so',
    dir .. '/../../build/libfastc.so', -- running from the source tree
    dir .. '/../../../../lib/libfastc.so', -- installed: PREFIX/share/fastc/lua/fastc
    'fastc',
  }
  local errors = {}
  for _, path in ipairs(candidates) do
    local ok, lib = pcall(ffi.load, path)
    if ok then return lib end
    errors[#errors + 1] = '  ' .. tostring(lib)
  end
  error('fastc: cannot find libfastc.so (set FASTC_LIB):\n' .. table.concat(errors, '\n'), 0)
end

return load_library()
