-- lua/fastc/ext_io.lua — safetensors files from Lua:
--   fc.save({name = tensor, ...}, path, {key = 'value', ...})
--   local tensors, metadata, names = fc.load(path)
-- Names are written sorted, so the same table always gives the same file;
-- `names` lists them in the file's order. (fc.read_idx is in ext_idx.lua.)
local ffi = require 'ffi'

return function(fc, Tensor, H)
  local C = H.C
  local fmt, raise = string.format, H.raise

  local function sorted_keys(tbl, what)
    local keys = {}
    for k in pairs(tbl) do
      if type(k) ~= 'string' then
        raise(fmt('save: %s names must be strings, got a %s key (%s)', what, type(k), tostring(k)))
      end
      keys[#keys + 1] = k
    end
    table.sort(keys)
    return keys
  end

  function fc.save(tensors, path, metadata)
    if type(tensors) ~= 'table' then
      raise(fmt('save: expected a table of name = tensor, got %s', H.is_tensor(tensors) and 'a tensor' or type(tensors)))
    end
    if type(path) ~= 'string' then raise(fmt('save: path must be a string, got %s', type(path))) end
    if metadata ~= nil and type(metadata) ~= 'table' then
      raise(fmt('save: metadata must be a table of strings, got %s', type(metadata)))
    end
    local names = sorted_keys(tensors, 'tensor')
    for _, name in ipairs(names) do
      local t = tensors[name]
      if not H.is_tensor(t) then raise(fmt("save: '%s' is a %s, not a tensor", name, type(t))) end
    end
    local keys, values = {}, {}
    if metadata then
      keys = sorted_keys(metadata, 'metadata')
      for i, k in ipairs(keys) do
        local v = metadata[k]
        if type(v) == 'number' then v = tostring(v)
        elseif type(v) ~= 'string' then
          raise(fmt("save: metadata value for '%s' must be a string (or number), got %s", k, type(v)))
        end
        values[i] = v
      end
    end
    -- Everything that allocates first: once the arrays point into Lua
    -- strings, nothing may run the GC before the call.
    local n, nm = #names, #keys
    local cnames = ffi.new('const char *[?]', n + 1)
    local ctensors = ffi.new('fc_tensor *[?]', n + 1)
    local ckeys = ffi.new('const char *[?]', nm + 1)
    local cvalues = ffi.new('const char *[?]', nm + 1)
    for i = 1, n do ctensors[i - 1] = tensors[names[i]].p end
    for i = 1, n do cnames[i - 1] = names[i] end
    for i = 1, nm do
      ckeys[i - 1] = keys[i]
      cvalues[i - 1] = values[i]
    end
    H.check(C.fc_save(path, n, cnames, ctensors, nm, ckeys, cvalues))
  end

  function fc.load(path)
    if type(path) ~= 'string' then raise(fmt('load: path must be a string, got %s', type(path))) end
    local f = C.fc_load(path)
    if f == nil then H.check(-1) end
    f = ffi.gc(f, C.fc_file_close) -- closed even if wrapping raises
    local tensors, metadata, names = {}, {}, {}
    for i = 0, C.fc_file_count(f) - 1 do
      local name = ffi.string(C.fc_file_name(f, i))
      names[i + 1] = name
      tensors[name] = H.wrap(C.fc_file_tensor(f, i))
    end
    for i = 0, C.fc_file_meta_count(f) - 1 do
      metadata[ffi.string(C.fc_file_meta_key(f, i))] = ffi.string(C.fc_file_meta_value(f, i))
    end
    C.fc_file_close(ffi.gc(f, nil))
    return tensors, metadata, names
  end
end
