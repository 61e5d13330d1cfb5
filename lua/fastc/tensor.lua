-- lua/fastc/tensor.lua — the tensor type: an FFI metatype over fc_tensor*.
--
-- Every C call that makes a tensor goes through `wrap`, which attaches the
-- finaliser and steps the GC when C memory has grown (the Lua GC cannot see
-- it). Dims and indices are 1-based here and converted to the C API's
-- 0-based convention at this boundary, so no user ever adds or subtracts one.
local ffi = require 'ffi'
local C = require 'fastc.lib'

local floor, huge, type, select = math.floor, math.huge, type, select
local fmt = string.format

local fc = {}
local Tensor = {} -- methods: t:name(...)
local H = { C = C } -- helpers shared with the extension files
local mt = {}

-- ---- errors ------------------------------------------------------------

local this_dir = debug.getinfo(1, 'S').source:match('^@(.*/)[^/]*$') or ''

-- The first stack frame outside the fastc package is the user's call site.
local function call_site()
  for level = 3, 40 do
    local info = debug.getinfo(level, 'Sl')
    if not info then break end
    local src = info.source
    local ours = this_dir ~= '' and src:sub(1, #this_dir + 1) == '@' .. this_dir
    if info.what ~= 'C' and not ours then
      return fmt('%s:%d: ', info.short_src, info.currentline or 0)
    end
  end
  return ''
end

local function raise(msg) error(call_site() .. msg, 0) end
local function raise_c() raise(ffi.string(C.fc_last_error())) end
H.raise = raise

local function check(rc)
  if rc < 0 then raise_c() end
end
H.check = check

-- An options table checked against the names an op or class takes: a typo is
-- an error naming the allowed names rather than an option silently ignored.
local function options(name, opts, allowed)
  if opts == nil then return {} end
  if type(opts) ~= 'table' then raise(string.format('%s: options must be a table, got %s', name, type(opts))) end
  for k in pairs(opts) do
    if not allowed[k] then
      local names = {}
      for a in pairs(allowed) do names[#names + 1] = a end
      table.sort(names)
      raise(string.format('%s: unknown option %q (expected %s)', name, tostring(k), table.concat(names, ', ')))
    end
  end
  return opts
end
H.options = options

-- ---- memory: GC steps driven by C allocations ----------------------------

local GC_MIN_STEP = 64 * 1024 * 1024
local gc_threshold = GC_MIN_STEP

-- Collect once the bytes allocated since the last collection exceed what
-- was alive after it (at least 64 MB): memory stays within ~2x the live set.
local function gc_step()
  if C.fc_bytes_since_mark() > gc_threshold then
    collectgarbage()
    C.fc_mem_mark()
    local live = tonumber(C.fc_live_bytes(C.FC_CPU)) + tonumber(C.fc_live_bytes(C.FC_CUDA))
    gc_threshold = live > GC_MIN_STEP and live or GC_MIN_STEP
  end
end

local ref_t = ffi.typeof('fc_handle')
-- The handle type's __gc (set with the metatype in init.lua) is the C
-- function fc_release_handle: collecting a tensor makes no Lua call, and no
-- per-object ffi.gc registration is needed.
mt.__gc = C.fc_release_handle

local function wrap(p)
  if p == nil then raise_c() end
  local t = ref_t(p)
  gc_step()
  return t
end
H.wrap = wrap

-- ---- dtypes and devices ----------------------------------------------------

local dtype_ids = {
  float32 = C.FC_FLOAT32, float = C.FC_FLOAT32, float64 = C.FC_FLOAT64, double = C.FC_FLOAT64,
  float16 = C.FC_FLOAT16, half = C.FC_FLOAT16, bfloat16 = C.FC_BFLOAT16,
  int64 = C.FC_INT64, long = C.FC_INT64, int32 = C.FC_INT32, int = C.FC_INT32,
  uint8 = C.FC_UINT8, byte = C.FC_UINT8, bool = C.FC_BOOL,
}
local dtype_names = {}
for id = 0, C.FC_NUM_DTYPES - 1 do dtype_names[id] = ffi.string(C.fc_dtype_name(id)) end
for id, name in pairs(dtype_names) do fc[name] = name end

local function dtype_id(d, default)
  if d == nil then return default end
  local id = dtype_ids[d]
  if not id then raise(fmt('unknown dtype %q (expected one of float32, float64, float16, bfloat16, int64, int32, uint8, bool)', tostring(d))) end
  return id
end
H.dtype_id = dtype_id
H.dtype_names = dtype_names

local CPU = ffi.new('fc_device', { C.FC_CPU, 0 })
local function device_of(d)
  if d == nil or d == 'cpu' then return CPU end
  if type(d) == 'cdata' then return d end
  local idx = type(d) == 'string' and d:match('^cuda:?(%d*)$')
  if idx then return ffi.new('fc_device', { C.FC_CUDA, tonumber(idx) or 0 }) end
  raise(fmt('unknown device %q (expected "cpu" or "cuda:N")', tostring(d)))
end
H.device_of = device_of

-- ---- dims ------------------------------------------------------------------

-- Lua dim (1..n, or -n..-1 from the end) to the C API's 0-based dim.
local function cdim(t, d, n)
  n = n or t.p.ndim
  local m = n > 0 and n or 1
  if type(d) ~= 'number' or d ~= floor(d) then
    raise(fmt('dim must be an integer, got %s', tostring(d)))
  end
  if d >= 1 and d <= m then return d - 1 end
  if d <= -1 and d >= -m then return d + m end
  if d == 0 then raise('dim 0 is invalid: dims count from 1 (or -1 for the last)') end
  raise(fmt('dim %d out of range for a %d-dim tensor (expected 1..%d or -%d..-1)', d, n, m, m))
end
H.dim = cdim

local function cdims(t, d)
  if d == nil then return 0, nil end
  if type(d) == 'number' then return 1, ffi.new('int[1]', cdim(t, d)) end
  local n = #d
  local arr = ffi.new('int[?]', math.max(n, 1))
  for i = 1, n do arr[i - 1] = cdim(t, d[i]) end
  return n, arr
end
H.dims = cdims

-- Sizes from varargs: f(2, 3), f({2, 3}), f(t:size()); a trailing table with
-- string keys is the options table.
local function sizes_and_opts(...)
  local n = select('#', ...)
  local last = select(n, ...)
  local opts
  if n > 0 and type(last) == 'table' and last[1] == nil and next(last) ~= nil then
    opts, n = last, n - 1
  end
  local sizes = ...
  if n == 1 and type(sizes) == 'table' then
    local m = #sizes
    local arr = ffi.new('int64_t[?]', math.max(m, 1))
    for i = 1, m do arr[i - 1] = sizes[i] end
    return m, arr, opts or {}
  end
  local arr = ffi.new('int64_t[?]', math.max(n, 1))
  for i = 1, n do
    local s = select(i, ...)
    if type(s) ~= 'number' then raise(fmt('size %d must be a number, got %s', i, type(s))) end
    arr[i - 1] = s
  end
  return n, arr, opts or {}
end
H.sizes_and_opts = sizes_and_opts

local function is_tensor(x) return ffi.istype(ref_t, x) end
fc.is_tensor = is_tensor
H.is_tensor = is_tensor

-- The checks of an op's arguments the extension files share: a number option
-- (default when absent), a tensor argument (its C pointer, nil when absent)
-- and the input itself, each an error naming the op when of the wrong type.
function H.number_opt(name, opts, key, default)
  local v = opts[key]
  if v == nil then return default end
  if type(v) ~= 'number' then raise(string.format('%s: %s must be a number, got %s', name, key, type(v))) end
  return v
end

function H.tensor_arg(name, t, what)
  if t == nil then return nil end
  if not is_tensor(t) then raise(string.format('%s: %s must be a tensor, got %s', name, what, type(t))) end
  return t.p
end

function H.input_of(name, x)
  if not is_tensor(x) then raise(string.format('%s: input must be a tensor, got %s', name, type(x))) end
  return x
end

-- A Lua number as a 0-dim tensor that promotes like a Python scalar: it
-- never widens a tensor of its own category (int next to int, float next to
-- float), and a float scalar next to an integer tensor gives float32.
local function scalar_for(x, like)
  local likeid = like and like.p.dtype or C.FC_FLOAT32
  local dtype
  if type(x) == 'boolean' then
    return wrap(C.fc_scalar(x and 1 or 0, C.FC_BOOL, like and like.p.device or CPU))
  elseif x ~= floor(x) or x ~= x or x == huge or x == -huge then
    dtype = C.fc_dtype_is_float(likeid) ~= 0 and C.FC_FLOAT64 or C.FC_FLOAT32
  else
    dtype = C.fc_dtype_is_float(likeid) ~= 0 and C.FC_FLOAT64 or C.FC_INT64
  end
  return wrap(C.fc_scalar(x, dtype, like and like.p.device or CPU))
end

local function as_tensor(x, like)
  if is_tensor(x) then return x end
  local tx = type(x)
  if tx == 'number' or tx == 'boolean' then return scalar_for(x, like) end
  if tx == 'table' then return fc.tensor(x) end
  raise(fmt('expected a tensor or a number, got %s', tx))
end
H.tensor = as_tensor

function H.ptrs(list)
  local n = #list
  local arr = ffi.new('fc_tensor*[?]', math.max(n, 1))
  for i = 1, n do
    local t = list[i]
    if not is_tensor(t) then raise(fmt('element %d is a %s, expected a tensor', i, type(t))) end
    arr[i - 1] = t.p
  end
  return n, arr
end

-- ---- creation --------------------------------------------------------------

local function creator(cfn)
  return function(...)
    local n, shape, opts = sizes_and_opts(...)
    return wrap(cfn(n, shape, dtype_id(opts.dtype, C.FC_FLOAT32), device_of(opts.device)))
  end
end
fc.empty = creator(C.fc_empty)
fc.zeros = creator(C.fc_zeros)
fc.ones = creator(C.fc_ones)
fc.rand = creator(C.fc_rand)
fc.randn = creator(C.fc_randn)

function fc.full(size, value, opts)
  opts = opts or {}
  local n, shape = sizes_and_opts(size)
  local default = (type(value) == 'number' and value == floor(value)) and C.FC_INT64 or C.FC_FLOAT32
  if type(value) == 'boolean' then value, default = value and 1 or 0, C.FC_BOOL end
  return wrap(C.fc_full(n, shape, value, dtype_id(opts.dtype, default), device_of(opts.device)))
end

function fc.randint(low, high, size, opts)
  opts = opts or {}
  local n, shape = sizes_and_opts(size)
  return wrap(C.fc_randint(low, high, n, shape, dtype_id(opts.dtype, C.FC_INT64), device_of(opts.device)))
end

-- A permutation of 1..n (Lua indices).
function fc.randperm(n, opts)
  opts = opts or {}
  local t = wrap(C.fc_randperm(n, C.FC_INT64, device_of(opts.device)))
  check(C.fc_add_(t.p, scalar_for(1, t).p))
  local dtype = dtype_id(opts.dtype, C.FC_INT64)
  return dtype == C.FC_INT64 and t or wrap(C.fc_to_dtype(t.p, dtype))
end

-- arange(n), arange(start, end), arange(start, end, step), then options.
-- These are values, not positions, so they keep PyTorch's meaning.
function fc.arange(a, b, c, d)
  local opts = {}
  if type(b) == 'table' then opts, b = b, nil
  elseif type(c) == 'table' then opts, c = c, nil
  elseif type(d) == 'table' then opts = d end
  local start, stop, step = 0, a, 1
  if b ~= nil then start, stop, step = a, b, c or 1 end
  local integral = start == floor(start) and stop == floor(stop) and step == floor(step)
  local dtype = dtype_id(opts.dtype, integral and C.FC_INT64 or C.FC_FLOAT32)
  return wrap(C.fc_arange(start, stop, step, dtype, device_of(opts.device)))
end

function fc.linspace(start, stop, steps, opts)
  opts = opts or {}
  return wrap(C.fc_linspace(start, stop, steps, dtype_id(opts.dtype, C.FC_FLOAT32), device_of(opts.device)))
end

function fc.eye(n, m, opts)
  if type(m) == 'table' then opts, m = m, nil end
  opts = opts or {}
  return wrap(C.fc_eye(n, m or n, dtype_id(opts.dtype, C.FC_FLOAT32), device_of(opts.device)))
end

function fc.scalar_tensor(v, opts)
  opts = opts or {}
  return wrap(C.fc_scalar(v, dtype_id(opts.dtype, C.FC_FLOAT32), device_of(opts.device)))
end

-- Walks a nested Lua table: its shape, and whether it holds floats/bools.
local function table_shape(data)
  local shape = {}
  local x = data
  while type(x) == 'table' do
    shape[#shape + 1] = #x
    x = x[1]
  end
  return shape
end

local function flatten_into(data, shape, depth, buf, pos, kind)
  if depth > #shape then
    local tx = type(data)
    if tx == 'boolean' then
      kind.bool = true
      buf[pos] = data and 1 or 0
    elseif tx == 'number' then
      kind.num = true
      if data ~= floor(data) or data == huge or data == -huge then kind.float = true end
      buf[pos] = data
    elseif tx == 'table' then
      raise('tensor: nested table is deeper than its first element suggests (ragged data)')
    elseif is_tensor(data) and data.p.numel == 1 then
      kind.num, kind.float = true, true
      buf[pos] = data:item()
    else
      raise(fmt('tensor: element of type %s is not a number or boolean', tx))
    end
    return pos + 1
  end
  if type(data) ~= 'table' or #data ~= shape[depth] then
    raise(fmt('tensor: ragged nested table: expected %d elements at depth %d, got %s', shape[depth],
      depth, type(data) == 'table' and tostring(#data) or type(data)))
  end
  for i = 1, shape[depth] do pos = flatten_into(data[i], shape, depth + 1, buf, pos, kind) end
  return pos
end

-- fc.tensor(nested_table_or_number, {dtype=, device=}): integers give int64,
-- any fraction float32, booleans bool — PyTorch's inference.
function fc.tensor(data, opts)
  opts = opts or {}
  if is_tensor(data) then
    local t = wrap(C.fc_clone(data.p))
    return opts.dtype and t:to(opts.dtype) or t
  end
  local shape = type(data) == 'table' and table_shape(data) or {}
  local n = 1
  for i = 1, #shape do n = n * shape[i] end
  local buf = ffi.new('double[?]', math.max(n, 1))
  local kind = {}
  flatten_into(data, shape, 1, buf, 0, kind)
  if kind.bool and kind.num then raise('tensor: mixes booleans and numbers') end
  local default = kind.bool and C.FC_BOOL or (kind.float or not kind.num) and C.FC_FLOAT32 or C.FC_INT64
  local cshape = ffi.new('int64_t[?]', math.max(#shape, 1), shape)
  return wrap(C.fc_from_buffer(buf, C.FC_FLOAT64, #shape, cshape, dtype_id(opts.dtype, default),
    device_of(opts.device)))
end

-- From raw memory (a cdata pointer) the caller owns; the data is copied.
function fc.from_buffer(ptr, dtype, size, opts)
  opts = opts or {}
  local n, shape = sizes_and_opts(size)
  local id = dtype_id(dtype)
  return wrap(C.fc_from_buffer(ptr, id, n, shape, dtype_id(opts.dtype, id), device_of(opts.device)))
end

function Tensor.uniform_(t, low, high) check(C.fc_uniform_(t.p, low or 0, high or 1)); return t end
function Tensor.normal_(t, mean, std) check(C.fc_normal_(t.p, mean or 0, std or 1)); return t end
function Tensor.bernoulli_(t, p) check(C.fc_bernoulli_(t.p, p or 0.5)); return t end
-- *_like: the shape, dtype and device of t unless opts say otherwise.
local function like(t, opts)
  opts = opts or {}
  return { dtype = opts.dtype or t.dtype, device = opts.device or t.device }
end
function fc.rand_like(t, opts) return fc.rand(t:size(), like(t, opts)) end
function fc.randn_like(t, opts) return fc.randn(t:size(), like(t, opts)) end
function fc.zeros_like(t, opts) return fc.zeros(t:size(), like(t, opts)) end
function fc.ones_like(t, opts) return fc.ones(t:size(), like(t, opts)) end
function fc.full_like(t, v, opts) return fc.full(t:size(), v, like(t, opts)) end
function fc.empty_like(t) return wrap(C.fc_empty_like(t.p)) end

function fc.manual_seed(seed) C.fc_manual_seed(seed) end
function fc.set_num_threads(n) C.fc_set_num_threads(n) end
function fc.get_num_threads() return C.fc_get_num_threads() end
function fc.live_bytes(device) return tonumber(C.fc_live_bytes(device == 'cuda' and C.FC_CUDA or C.FC_CPU)) end
function fc.empty_cache() C.fc_empty_cache() end
fc.version = ffi.string(C.fc_version())

-- ---- inspection ------------------------------------------------------------

function Tensor.dim(t) return t.p.ndim end
Tensor.ndimension = Tensor.dim
function Tensor.numel(t) return tonumber(t.p.numel) end
Tensor.nelement = Tensor.numel

-- t:size() is a Lua list of sizes that prints as [2,3]; t:size(d) is one
-- size (1-based d).
local Size = { __tostring = function(s) return '[' .. table.concat(s, ',') .. ']' end }
fc.Size = Size
function Tensor.size(t, d)
  local p = t.p
  if d then return tonumber(p.shape[cdim(t, d)]) end
  local s = setmetatable({}, Size)
  for i = 0, p.ndim - 1 do s[i + 1] = tonumber(p.shape[i]) end
  return s
end
Tensor.shape = Tensor.size

function Tensor.stride(t, d)
  local p = t.p
  if d then return tonumber(p.stride[cdim(t, d)]) end
  local s = {}
  for i = 0, p.ndim - 1 do s[i + 1] = tonumber(p.stride[i]) end
  return s
end

function Tensor.storage_offset(t) return tonumber(t.p.offset) end
function Tensor.is_contiguous(t) return C.fc_is_contiguous(t.p) ~= 0 end
function Tensor.is_floating_point(t) return C.fc_dtype_is_float(t.p.dtype) ~= 0 end
function Tensor.element_size(t) return C.fc_dtype_size(t.p.dtype) end
function Tensor.data_ptr(t) return C.fc_data_ptr(t.p) end
function Tensor.type(t) return dtype_names[t.p.dtype] end

local item_buf = ffi.new('double[1]')
function Tensor.item(t)
  check(C.fc_item(t.p, item_buf))
  local v = item_buf[0]
  if t.p.dtype == C.FC_BOOL then return v ~= 0 end
  return v
end

-- Nested Lua tables of numbers (booleans for bool tensors).
function Tensor.totable(t)
  local p = t.p
  local n = tonumber(p.numel)
  local buf = ffi.new('double[?]', math.max(n, 1))
  check(C.fc_to_doubles(p, buf))
  local is_bool = p.dtype == C.FC_BOOL
  local ndim = p.ndim
  local function value(v)
    if is_bool then return v ~= 0 end
    return v
  end
  if ndim == 0 then return value(buf[0]) end
  local pos = 0
  local function build(d)
    local out, size = {}, tonumber(p.shape[d])
    for i = 1, size do
      if d == ndim - 1 then
        out[i] = value(buf[pos])
        pos = pos + 1
      else
        out[i] = build(d + 1)
      end
    end
    return out
  end
  return build(0)
end

-- Releases the memory now; the tensor is unusable afterwards.
function Tensor.free(t) C.fc_free(t.p) end

-- ---- conversion and copies -------------------------------------------------

function Tensor.to(t, x)
  if dtype_ids[x] then return wrap(C.fc_to_dtype(t.p, dtype_ids[x])) end
  if type(x) == 'string' and (x == 'cpu' or x:match('^cuda')) then
    return wrap(C.fc_to_device(t.p, device_of(x)))
  end
  raise(fmt('to: expected a dtype or a device, got %s', tostring(x)))
end
for name, dtype in pairs { float = 'float32', double = 'float64', half = 'float16',
  bfloat16 = 'bfloat16', long = 'int64', int = 'int32', byte = 'uint8', bool = 'bool' } do
  Tensor[name] = function(t) return Tensor.to(t, dtype) end
end
function Tensor.cpu(t) return Tensor.to(t, 'cpu') end
function Tensor.cuda(t, i) return Tensor.to(t, 'cuda:' .. (i or 0)) end
function Tensor.clone(t) return wrap(C.fc_clone(t.p)) end
function Tensor.contiguous(t) return wrap(C.fc_contiguous(t.p)) end

function Tensor.copy_(t, src)
  check(C.fc_copy_(t.p, as_tensor(src, t).p))
  return t
end
function Tensor.fill_(t, v)
  if type(v) == 'boolean' then v = v and 1 or 0 end
  check(C.fc_fill_(t.p, v))
  return t
end
function Tensor.zero_(t) return Tensor.fill_(t, 0) end

-- ---- views -----------------------------------------------------------------

function Tensor.view(t, ...)
  local n, shape = sizes_and_opts(...)
  return wrap(C.fc_view(t.p, n, shape))
end
function Tensor.reshape(t, ...)
  local n, shape = sizes_and_opts(...)
  return wrap(C.fc_reshape(t.p, n, shape))
end
function Tensor.view_as(t, other) return Tensor.view(t, other:size()) end
function Tensor.reshape_as(t, other) return Tensor.reshape(t, other:size()) end

function Tensor.permute(t, ...)
  local dims = type(...) == 'table' and ... or { ... }
  local n, arr = cdims(t, dims)
  return wrap(C.fc_permute(t.p, n, arr))
end
function Tensor.transpose(t, d1, d2) return wrap(C.fc_transpose(t.p, cdim(t, d1), cdim(t, d2))) end
function Tensor.t(t)
  if t.p.ndim > 2 then raise(fmt('t: expects a tensor with at most 2 dims, got %d', t.p.ndim)) end
  if t.p.ndim < 2 then return wrap(C.fc_retain(t.p)) end
  return wrap(C.fc_transpose(t.p, 0, 1))
end

function Tensor.squeeze(t, d)
  return wrap(C.fc_squeeze(t.p, d == nil and C.FC_ALL_DIMS or cdim(t, d)))
end
function Tensor.unsqueeze(t, d)
  return wrap(C.fc_unsqueeze(t.p, cdim(t, d, t.p.ndim + 1)))
end
function Tensor.expand(t, ...)
  local n, shape = sizes_and_opts(...)
  return wrap(C.fc_expand(t.p, n, shape))
end
function Tensor.expand_as(t, other) return Tensor.expand(t, other:size()) end
function Tensor.flatten(t, s, e)
  if t.p.ndim == 0 then return wrap(C.fc_flatten(t.p, 0, -1)) end
  return wrap(C.fc_flatten(t.p, cdim(t, s or 1), cdim(t, e or -1)))
end

-- 1-based start; negative start counts from the end.
function Tensor.narrow(t, d, start, len)
  local cd = cdim(t, d)
  local size = tonumber(t.p.shape[cd])
  if start < 0 then start = size + start + 1 end
  if start < 1 or start > size + 1 then
    raise(fmt('narrow: start %d out of range for dim %d of size %d', start, d, size))
  end
  return wrap(C.fc_narrow(t.p, cd, start - 1, len))
end

-- Removes dim d, keeping position i (1-based; negative from the end).
local function select_index(t, cd, i)
  local size = tonumber(t.p.shape[cd])
  if type(i) ~= 'number' or i ~= floor(i) then raise(fmt('index must be an integer, got %s', tostring(i))) end
  if i >= 1 and i <= size then return i - 1 end
  if i <= -1 and i >= -size then return size + i end
  raise(fmt('index %d out of range for dim %d of size %d (expected 1..%d or -%d..-1)', i, cd + 1,
    size, size, size))
end
H.select_index = select_index

function Tensor.select(t, d, i)
  if t.p.ndim == 0 then raise('select: cannot index a 0-dim tensor') end
  local cd = cdim(t, d)
  return wrap(C.fc_select(t.p, cd, select_index(t, cd, i)))
end

fc.Tensor = Tensor
H.mt = mt
H.ref_t = ref_t
return { fc = fc, Tensor = Tensor, H = H, mt = mt }
