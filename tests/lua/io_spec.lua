-- tests/lua/io_spec.lua — fc.save / fc.load / fc.read_idx through Lua:
-- round trips of every dtype, metadata, errors with their messages, and
-- interop with PyTorch (a json+struct reader/writer, no safetensors package)
-- when /usr/bin/python3 has torch.
local fc = require 'fastc'
local S = dofile('tests/lua/support.lua')
local has = S.has
-- its own err_of: the pcall must run in this file for errors to name its lines
local function err_of(f, ...)
  local ok, e = pcall(f, ...)
  assert.is_false(ok, 'expected an error')
  return tostring(e)
end
local ffi = require 'ffi'

local function same(got, want)
  if type(want) ~= 'table' then
    if want ~= want then return got ~= got end -- NaN
    return got == want
  end
  if type(got) ~= 'table' or #got ~= #want then return false end
  for i = 1, #want do
    if not same(got[i], want[i]) then return false end
  end
  return true
end

local function holds(t, dtype, want)
  assert.are.equal(dtype, t.dtype)
  assert.is_true(same(t:totable(), want), 'got ' .. tostring(t))
end

local function flat(t)
  local out, vals = {}, t:reshape(t:numel()):totable()
  for i = 1, #vals do out[i] = vals[i] end
  return out
end

local function read_file(path)
  local f = assert(io.open(path, 'rb'))
  local s = f:read('*a')
  f:close()
  return s
end

local function write_file(path, s)
  local f = assert(io.open(path, 'wb'))
  f:write(s)
  f:close()
end

-- the 8-byte little-endian length, the header, the data
local function st_bytes(header, data)
  local n, len = #header, {}
  for i = 1, 8 do
    len[i] = string.char(n % 256)
    n = math.floor(n / 256)
  end
  return table.concat(len) .. header .. (data or '')
end

local function int64_at(t, i) return ffi.cast('int64_t *', t:data_ptr())[i - 1] end

describe('fc.save / fc.load', function()
  local path
  before_each(function() path = os.tmpname() end)
  after_each(function() os.remove(path) end)

  it('round-trips every dtype, 0-dim, empty and non-contiguous tensors', function()
    local m = fc.tensor({ { 1, 2, 3 }, { 4, 5, 6 } }, { dtype = 'float32' })
    local big = fc.tensor({ 0, -7 }, { dtype = 'int64' })
    ffi.cast('int64_t *', big:data_ptr())[0] = 9007199254740993LL -- 2^53 + 1: no double holds it
    local src = {
      f32 = m,
      f64 = fc.tensor({ 0.1, -1e300 }, { dtype = 'float64' }),
      f16 = fc.tensor({ 65504, -0.5 }, { dtype = 'float16' }),
      bf16 = fc.tensor({ { 1.5, -3 }, { 256, 0.0078125 } }, { dtype = 'bfloat16' }),
      i64 = big,
      i32 = fc.tensor({ -2147483648, 2147483647 }, { dtype = 'int32' }),
      u8 = fc.tensor({ 0, 128, 255 }, { dtype = 'uint8' }),
      bool = fc.tensor({ true, false, true }),
      scalar = fc.tensor(2.5),
      empty = fc.zeros({ 0, 3 }),
      transposed = m:t(),
      sliced = m:narrow(2, 2, 2),
    }
    assert.is_false(src.transposed:is_contiguous())
    fc.save(src, path)
    local got, meta, names = fc.load(path)
    assert.are.same({}, meta)
    assert.are.same({ 'bf16', 'bool', 'empty', 'f16', 'f32', 'f64', 'i32', 'i64', 'scalar',
      'sliced', 'transposed', 'u8' }, names) -- sorted
    for name, t in pairs(src) do
      assert.are.equal(t.dtype, got[name].dtype)
      assert.are.same(t:size(), got[name]:size())
      assert.is_true(same(got[name]:totable(), t:totable()), name)
    end
    holds(got.transposed, 'float32', { { 1, 4 }, { 2, 5 }, { 3, 6 } })
    holds(got.sliced, 'float32', { { 2, 3 }, { 5, 6 } })
    holds(got.scalar, 'float32', 2.5)
    assert.are.equal(0, got.empty:numel())
    assert.are.equal(9007199254740993LL, int64_at(got.i64, 1))
  end)

  it('round-trips metadata; numbers become strings', function()
    fc.save({ w = fc.ones({ 2 }) }, path, { format = 'pt', epoch = 12, lr = 0.5, note = 'a "quoted"\nline' })
    local t, meta = fc.load(path)
    assert.are.same({ format = 'pt', epoch = '12', lr = '0.5', note = 'a "quoted"\nline' }, meta)
    holds(t.w, 'float32', { 1, 1 })
  end)

  it('writes the same bytes for the same table, whatever the insertion order', function()
    local a, b = fc.tensor({ 1, 2 }), fc.tensor({ 3.5 })
    fc.save({ a = a, b = b }, path, { x = '1', y = '2' })
    local first = read_file(path)
    local t2 = {}
    t2.b = b
    t2.a = a
    fc.save(t2, path, { y = '2', x = '1' })
    assert.are.equal(first, read_file(path))
    assert.are.equal(0, (8 + first:byte(1) + 256 * first:byte(2)) % 8) -- data 8-aligned
  end)

  it('reports bad arguments to save', function()
    has(err_of(fc.save, fc.ones({ 2 }), path), 'save: expected a table of name = tensor, got a tensor')
    has(err_of(fc.save, { w = fc.ones({ 2 }) }), 'save: path must be a string, got nil')
    has(err_of(fc.save, { w = 3 }, path), "save: 'w' is a number, not a tensor")
    has(err_of(fc.save, { fc.ones({ 2 }) }, path), 'save: tensor names must be strings, got a number key')
    has(err_of(fc.save, { w = fc.ones({ 2 }) }, path, { k = true }),
      "save: metadata value for 'k' must be a string (or number), got boolean")
    has(err_of(fc.save, { w = fc.ones({ 2 }) }, path, 'meta'), 'save: metadata must be a table')
    has(err_of(fc.save, { [''] = fc.ones({ 2 }) }, path), 'save: tensor 0 has an empty name')
    has(err_of(fc.save, { __metadata__ = fc.ones({ 2 }) }, path), "'__metadata__' is reserved")
    local e = err_of(fc.save, { w = fc.ones({ 2 }) }, '/nonexistent_dir_fastc/x.safetensors')
    has(e, "save: cannot write '/nonexistent_dir_fastc/x.safetensors'")
    has(e, 'No such file or directory')
    assert.truthy(e:find('^[^:]*io_spec%.lua:%d+: '), 'error points at the caller: ' .. e)
  end)

  it('a failed save leaves the existing file intact', function()
    fc.save({ w = fc.tensor({ 1, 2 }) }, path)
    local before = read_file(path)
    local t = fc.ones({ 2 })
    t:free()
    has(err_of(fc.save, { w = t }, path), "save: tensor 'w' was freed")
    assert.are.equal(before, read_file(path))
  end)

  it('reports bad files to load, naming the file', function()
    has(err_of(fc.load, 'x_fastc_missing.safetensors'),
      "load: cannot open 'x_fastc_missing.safetensors': No such file or directory")
    has(err_of(fc.load, nil), 'load: path must be a string')
    write_file(path, 'abc')
    has(err_of(fc.load, path), "load: '" .. path .. "' is 3 bytes, too short for a safetensors file")
    write_file(path, st_bytes('{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', '1234'))
    has(err_of(fc.load, path), "tensor 'w' has data_offsets [0,8] past the end of the data (4 bytes; is the file truncated?)")
    write_file(path, st_bytes('{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', '12345678'))
    has(err_of(fc.load, path), "tensor 'w' of shape [3] and dtype F32 needs 12 bytes but its data_offsets [0,8] hold 8")
    write_file(path, st_bytes('{"w":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}', '12345678'))
    has(err_of(fc.load, path), "tensor 'w' has unsupported dtype 'C64'")
    write_file(path, st_bytes('{"w":', ''))
    has(err_of(fc.load, path), 'the header is not valid JSON')
    write_file(path, string.char(255, 255, 0, 0, 0, 0, 0, 0) .. '{}')
    has(err_of(fc.load, path), 'header length 65535 is larger than the file (10 bytes')
  end)

  it('loads files other writers laid out differently', function()
    -- unpadded, metadata last, header order unlike data order, a 0-dim tensor
    write_file(path, st_bytes('{"b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]},' ..
      '"a":{"dtype":"I32","shape":[],"data_offsets":[0,4]},"__metadata__":{"k":"v"}}',
      string.char(7, 0, 0, 0, 9, 250)))
    local t, meta, names = fc.load(path)
    assert.are.same({ 'b', 'a' }, names)
    holds(t.a, 'int32', 7)
    holds(t.b, 'uint8', { 9, 250 })
    assert.are.same({ k = 'v' }, meta)
  end)

  it('saves and loads a model state dict', function()
    local model = fc.nn.Sequential { fc.nn.Linear(3, 2), fc.nn.ReLU(), fc.nn.Linear(2, 1) }
    fc.save(model:state_dict(), path, { arch = 'mlp' })
    local sd, meta = fc.load(path)
    assert.are.equal('mlp', meta.arch)
    local other = fc.nn.Sequential { fc.nn.Linear(3, 2), fc.nn.ReLU(), fc.nn.Linear(2, 1) }
    other:load_state_dict(sd)
    local x = fc.randn({ 4, 3 })
    assert.is_true(same(other:forward(x):totable(), model:forward(x):totable()))
  end)
end)

describe('fc.read_idx', function()
  local path
  before_each(function() path = os.tmpname() end)
  after_each(function() os.remove(path) end)

  it('reads an IDX file as the tensor its header describes', function()
    -- [2,2] int32, big-endian: 1, -2, 256, 70000
    write_file(path, string.char(0, 0, 0x0C, 2, 0, 0, 0, 2, 0, 0, 0, 2,
      0, 0, 0, 1, 255, 255, 255, 254, 0, 0, 1, 0, 0, 1, 0x11, 0x70))
    holds(fc.read_idx(path), 'int32', { { 1, -2 }, { 256, 70000 } })
  end)

  it('reports bad files', function()
    has(err_of(fc.read_idx, '/nonexistent_fastc/x.idx'), "read_idx: cannot open '/nonexistent_fastc/x.idx'")
    write_file(path, string.char(1, 2, 8, 1, 0, 0, 0, 1, 5))
    has(err_of(fc.read_idx, path), 'is not an IDX file')
    write_file(path, string.char(0, 0, 0x42, 1, 0, 0, 0, 1, 5))
    has(err_of(fc.read_idx, path), 'unsupported type code 0x42')
    write_file(path, string.char(0, 0, 8, 1, 0, 0, 0, 9, 5))
    has(err_of(fc.read_idx, path), 'is truncated')
  end)

  it('reads Fashion-MNIST when dataset-fashion-mnist is installed', function()
    local labels = '/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz'
    local f = io.open(labels, 'rb')
    if not f then return end -- not installed: nothing to check
    f:close()
    local y = fc.read_idx(labels)
    assert.are.equal('uint8', y.dtype)
    assert.are.same({ 10000 }, y:size())
    assert.are.equal(9, y:amax():item())
    assert.are.equal(0, y:amin():item())
  end)
end)

-- ---- PyTorch interop -------------------------------------------------------

local here = debug.getinfo(1, 'S').source:match('^@(.*/)[^/]*$') or './'
local script = here .. '../interop/safetensors_interop.py'
local status = os.execute("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1")
local have_torch = status == 0 or status == true

-- Python's `read` output: {name = {dtype=, shape=, values=}}, {key = value}
local function python_read(path)
  local p = assert(io.popen(string.format("/usr/bin/python3 '%s' read '%s' --aligned 2>&1", script, path)))
  local out = p:read('*a')
  p:close()
  local tensors, meta = {}, {}
  for line in out:gmatch('[^\n]+') do
    local kind, a, b, c, d = line:match('^(%a+)\t([^\t]*)\t([^\t]*)\t?([^\t]*)\t?([^\t]*)$')
    if kind == 'tensor' then
      local shape, values = {}, {}
      for s in c:gmatch('[^,]+') do shape[#shape + 1] = tonumber(s) end
      for v in d:gmatch('[^,]+') do
        values[#values + 1] = v == 'inf' and math.huge or v == '-inf' and -math.huge
          or v == 'nan' and 0 / 0 or v:match('^%-?%d+$') and #v > 15 and v or tonumber(v)
      end
      tensors[a] = { dtype = b, shape = shape, values = values }
    elseif kind == 'meta' then
      meta[a] = b
    else
      error('python: ' .. out, 0)
    end
  end
  return tensors, meta
end

describe('safetensors interop with PyTorch', function()
  local path
  before_each(function() path = os.tmpname() end)
  after_each(function() os.remove(path) end)

  it('PyTorch reads what fastc writes', function()
    if not have_torch then
      pending('/usr/bin/python3 with torch is not available')
      return
    end
    local i64 = fc.tensor({ 0, -5, 0 }, { dtype = 'int64' })
    ffi.cast('int64_t *', i64:data_ptr())[0] = 9007199254740993LL
    local m = fc.tensor({ { 0, 1, 2 }, { 3, 4, 5 } }, { dtype = 'float64' })
    fc.save({
      f32 = fc.tensor({ { 1.5, -2, 3 }, { 0.25, 1024, math.huge } }, { dtype = 'float32' }),
      f64 = fc.tensor({ 0.1, -1e300, 3.141592653589793 }, { dtype = 'float64' }),
      f16 = fc.tensor({ 65504, -0.5 }, { dtype = 'float16' }),
      bf16 = fc.tensor({ { 1.5, -3 }, { 256, 0.0078125 } }, { dtype = 'bfloat16' }),
      i64 = i64,
      i32 = fc.tensor({ { -2147483648, 2147483647 }, { 0, 7 } }, { dtype = 'int32' }),
      u8 = fc.tensor({ 0, 1, 128, 255 }, { dtype = 'uint8' }),
      bool = fc.tensor({ true, false, true }),
      scalar = fc.tensor(2.5),
      empty = fc.zeros({ 0, 3 }),
      transposed = m:t(),
    }, path, { format = 'pt', source = 'fastc' })
    local t, meta = python_read(path)
    assert.are.same({ format = 'pt', source = 'fastc' }, meta)
    local want = {
      f32 = { 'F32', { 2, 3 }, { 1.5, -2, 3, 0.25, 1024, math.huge } },
      f64 = { 'F64', { 3 }, { 0.1, -1e300, 3.141592653589793 } },
      f16 = { 'F16', { 2 }, { 65504, -0.5 } },
      bf16 = { 'BF16', { 2, 2 }, { 1.5, -3, 256, 0.0078125 } },
      i64 = { 'I64', { 3 }, { '9007199254740993', -5, 0 } },
      i32 = { 'I32', { 2, 2 }, { -2147483648, 2147483647, 0, 7 } },
      u8 = { 'U8', { 4 }, { 0, 1, 128, 255 } },
      bool = { 'BOOL', { 3 }, { 1, 0, 1 } },
      scalar = { 'F32', {}, { 2.5 } },
      empty = { 'F32', { 0, 3 }, {} },
      transposed = { 'F64', { 3, 2 }, { 0, 3, 1, 4, 2, 5 } },
    }
    for name, w in pairs(want) do
      assert.is_not_nil(t[name], name)
      assert.are.equal(w[1], t[name].dtype, name)
      assert.are.same(w[2], t[name].shape, name)
      assert.is_true(same(t[name].values, w[3]), name)
    end
  end)

  it('fastc reads what PyTorch writes', function()
    if not have_torch then
      pending('/usr/bin/python3 with torch is not available')
      return
    end
    local rc = os.execute(string.format("/usr/bin/python3 '%s' write '%s'", script, path))
    assert.is_true(rc == 0 or rc == true)
    local t, meta, names = fc.load(path)
    assert.are.equal('pt', meta.format)
    assert.truthy(meta.source:find('^torch'))
    assert.are.same({ 'f32', 'f64', 'f16', 'bf16', 'i64', 'i32', 'u8', 'bool', 'scalar', 'empty',
      'transposed' }, names) -- the file's order
    holds(t.f32, 'float32', { { 1.5, -2, 3 }, { 0.25, 1024, math.huge } })
    holds(t.f64, 'float64', { 0.1, -1e300, 3.141592653589793 })
    holds(t.f16, 'float16', { 65504, -0.5 })
    holds(t.bf16, 'bfloat16', { { 1.5, -3 }, { 256, 0.0078125 } })
    assert.are.equal('int64', t.i64.dtype)
    assert.are.equal(9007199254740993LL, int64_at(t.i64, 1))
    assert.are.same({ -5, 0 }, { flat(t.i64)[2], flat(t.i64)[3] })
    holds(t.i32, 'int32', { { -2147483648, 2147483647 }, { 0, 7 } })
    holds(t.u8, 'uint8', { 0, 1, 128, 255 })
    holds(t.bool, 'bool', { true, false, true })
    holds(t.scalar, 'float32', 2.5)
    assert.are.same({ 0, 3 }, t.empty:size())
    holds(t.transposed, 'float64', { { 0, 3 }, { 1, 4 }, { 2, 5 } })
  end)
end)
