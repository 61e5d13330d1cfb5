-- lua/fastc/data/cloader.lua — the low-level binding of the C data loader.
--
--   local cl = require 'fastc.data.cloader'
--   local loader = cl.new{ items = {'/p/a.jpg', ...}, labels = nil, bs = 64, shuffle = true,
--     drop_last = false, seed = 42, num_workers = 2, prefetch = 4, channels = 3,
--     pipeline = { {'random_resized_crop', size = {128, 128}}, {'flip', p = 0.5} },
--     on_error = 'raise' }
--   for xb, yb, idx in loader:epoch(1) do ... end -- uint8 [B,C,H,W], int64 [B] or nil, int64 [B]
-- Option normalize = {mean = {...}, std = {...}} (0..1 scale, one per channel)
-- makes xb float32 (x / 255 - mean) / std, computed on the worker threads.
--   loader:close()
--
-- Item positions (idx) count from 1; labels are carried as given. The C side
-- never calls Lua: each step of the `for` pulls the next finished batch.
-- With on_error = 'skip' a bad file is left out of its batch (which comes out
-- shorter) and a warning goes to opts.warn (default: stderr).
local ffi = require 'ffi'
local fc = require 'fastc'
local H = require('fastc.tensor').H
local C = H.C

local fmt, raise, wrap = string.format, H.raise, H.wrap

local M = {}

local function raise_c() raise(ffi.string(C.fc_last_error())) end

-- {h, w} or a number for a square.
local function size_of(step, what)
  local s = step.size
  if type(s) == 'number' then return s, s end
  if type(s) ~= 'table' or type(s[1]) ~= 'number' or type(s[2]) ~= 'number' then
    raise(fmt("%s: size must be {height, width} or a number, got %s", what, tostring(s)))
  end
  return s[1], s[2]
end

local function pick(what, name, value, choices, default)
  if value == nil then return default end
  local id = choices[value]
  if id == nil then
    local names = {}
    for k in pairs(choices) do names[#names + 1] = "'" .. k .. "'" end
    table.sort(names)
    raise(fmt("%s: unknown %s %q (expected %s)", what, name, tostring(value), table.concat(names, ', ')))
  end
  return id
end

local methods = { crop = C.FC_RESIZE_CROP, squish = C.FC_RESIZE_SQUISH, pad = C.FC_RESIZE_PAD }
local pad_modes = { zeros = C.FC_PAD_ZEROS, border = C.FC_PAD_BORDER, reflection = C.FC_PAD_REFLECTION }
local kinds = {
  resize = C.FC_TFM_RESIZE, random_resized_crop = C.FC_TFM_RANDOM_RESIZED_CROP,
  center_crop = C.FC_TFM_CENTER_CROP, pad = C.FC_TFM_PAD, flip = C.FC_TFM_FLIP,
}
local known_keys = {
  resize = { size = 1, method = 1, pad_mode = 1, valid = 1 },
  random_resized_crop = { size = 1, scale = 1, ratio = 1, valid = 1, val_xtra = 1 },
  center_crop = { size = 1, pad_mode = 1 }, pad = { size = 1, pad_mode = 1 }, flip = { p = 1 },
}

-- The pipeline table as an fc_tfm array (C checks the numbers).
local function build_pipeline(pipeline)
  pipeline = pipeline or {}
  if type(pipeline) ~= 'table' then raise('pipeline must be a list of steps') end
  local n = #pipeline
  local tfms = ffi.new('fc_tfm[?]', math.max(n, 1))
  for i = 1, n do
    local step = pipeline[i]
    local name = type(step) == 'table' and step[1]
    local what = fmt('pipeline step %d (%s)', i, tostring(name))
    local kind = kinds[name]
    if not kind then raise(fmt("pipeline step %d: unknown step %q (expected resize, random_resized_crop, center_crop, pad or flip)", i, tostring(name))) end
    for k in pairs(step) do
      if k ~= 1 and not known_keys[name][k] then raise(fmt('%s: unknown option %q', what, tostring(k))) end
    end
    local t = tfms[i - 1]
    t.kind = kind
    if name == 'flip' then
      t.p = step.p == nil and 0.5 or step.p
    else
      t.height, t.width = size_of(step, what)
      t.method = pick(what, 'method', step.method, methods, C.FC_RESIZE_CROP)
      t.pad_mode = pick(what, 'pad_mode', step.pad_mode, pad_modes, C.FC_PAD_ZEROS)
      t.valid = step.valid and 1 or 0
      local scale, ratio = step.scale or { 0.08, 1 }, step.ratio or { 3 / 4, 4 / 3 }
      t.scale[0], t.scale[1] = scale[1], scale[2]
      t.ratio[0], t.ratio[1] = ratio[1], ratio[2]
      t.val_xtra = step.val_xtra or 0.14
    end
  end
  return tfms, n
end

local Loader = fc.class('CLoader')

local function flag(v, default) if v == nil then return default end return v and 1 or 0 end

function Loader:init(opts)
  if type(opts) ~= 'table' then raise('cloader.new: expected an options table') end
  local items = opts.items
  if type(items) ~= 'table' then raise('cloader.new: items must be a list of file paths') end
  local n = #items
  for i = 1, n do
    if type(items[i]) ~= 'string' then raise(fmt('cloader.new: item %d is a %s, not a path', i, type(items[i]))) end
  end
  local labels
  if opts.labels ~= nil then
    local l = opts.labels
    if not fc.is_tensor(l) then raise('cloader.new: labels must be an int64 tensor') end
    if l:numel() ~= n then raise(fmt('cloader.new: %d labels for %d items', l:numel(), n)) end
    labels = l:to('int64'):contiguous()
  end
  local tfms, ntfms = build_pipeline(opts.pipeline)
  local on_error = pick('cloader.new', 'on_error', opts.on_error,
    { raise = C.FC_ON_ERROR_RAISE, skip = C.FC_ON_ERROR_SKIP }, C.FC_ON_ERROR_RAISE)
  local o = ffi.new('fc_loader_opts')
  o.batch_size = opts.bs or 64
  o.shuffle = flag(opts.shuffle, 0)
  o.drop_last = flag(opts.drop_last, 0)
  o.seed = opts.seed or 0
  o.num_workers = opts.num_workers or 0
  o.prefetch = opts.prefetch or math.max(2, 2 * (opts.num_workers or 0))
  o.channels = opts.channels or 3
  o.on_error = on_error
  o.index_base = 1
  o.ntfms, o.tfms = ntfms, tfms
  if opts.normalize then -- {mean = {...}, std = {...}}: float32 batches, normalised by the workers
    local nm = opts.normalize
    if type(nm) ~= 'table' or type(nm.mean) ~= 'table' or type(nm.std) ~= 'table' or #nm.mean ~= o.channels or #nm.std ~= o.channels then
      raise(fmt('cloader.new: normalize must be {mean = {%d numbers}, std = {%d numbers}}', o.channels, o.channels))
    end
    o.normalize = 1
    for k = 1, o.channels do o.mean[k - 1], o.std[k - 1] = nm.mean[k], nm.std[k] end
  end
  local paths = ffi.new('const char *[?]', math.max(n, 1))
  for i = 1, n do paths[i - 1] = items[i] end -- the strings stay alive in `items`
  local lp = labels and ffi.cast('const int64_t *', labels:data_ptr()) or nil
  local p = C.fc_loader_new(n, paths, lp, o)
  if p == nil then raise_c() end
  self.ptr = ffi.gc(p, C.fc_loader_free)
  self.n = n
  self.warn = opts.warn or function(msg) io.stderr:write('fastc loader: ', msg, '\n') end
  self.out = ffi.new('fc_tensor *[3]')
end

function Loader:len()
  if not self.ptr then raise('cloader: loader is closed') end
  return tonumber(C.fc_loader_len(self.ptr))
end

-- Iterates the batches of epoch e (any integer; it keys shuffle and
-- augmentations). Starting another epoch abandons this one.
function Loader:epoch(e)
  local ptr = self.ptr
  if not ptr then raise('cloader: loader is closed') end
  e = e or 1
  if C.fc_loader_start_epoch(ptr, e) < 0 then raise_c() end
  local out = self.out
  return function()
    if not self.ptr then return nil end
    local rc = C.fc_loader_next(ptr, out, out + 1, out + 2)
    local w = C.fc_loader_warnings(ptr)
    if w[0] ~= 0 then
      for line in ffi.string(w):gmatch('[^\n]+') do self.warn(line) end
    end
    if rc < 0 then raise_c() end
    if rc == 0 then return nil end
    local x, y, idx = wrap(out[0]), out[1] ~= nil and wrap(out[1]) or nil, wrap(out[2])
    return x, y, idx
  end
end

function Loader:close()
  if self.ptr then
    C.fc_loader_free(ffi.gc(self.ptr, nil))
    self.ptr = nil
  end
end

function M.new(opts) return Loader(opts) end
M.Loader = Loader

-- One image file as uint8 [C,H,W]. size = {h, w}: a JPEG may decode with DCT
-- scaling straight to the smallest size that is still at least h x w.
function M.decode(path, opts)
  opts = opts or {}
  if type(path) ~= 'string' then raise('cloader.decode: path must be a string') end
  local h, w = 0, 0
  if opts.size then h, w = size_of(opts, 'cloader.decode') end
  return wrap(C.fc_image_read(path, opts.channels or 3, h, w))
end

-- Writes a uint8 [C,H,W] image; format from the extension (.jpg .png .bmp .tga).
function M.write(path, img, opts)
  if not fc.is_tensor(img) then raise('cloader.write: image must be a uint8 tensor') end
  if C.fc_image_write(path, img.p, (opts or {}).quality or 95) < 0 then raise_c() end
end

-- The pipeline applied to one image exactly as the loader applies it to item
-- `item` (1-based) in epoch `epoch` with seed `seed`.
function M.transform(img, pipeline, opts)
  opts = opts or {}
  if not fc.is_tensor(img) then raise('cloader.transform: image must be a uint8 tensor') end
  local tfms, n = build_pipeline(pipeline)
  return wrap(C.fc_image_transform(img.p, n, tfms, opts.seed or 0, opts.epoch or 1, (opts.item or 1) - 1))
end

-- A CSV file: df.names (header fields, or 1..n without a header), df.nrows,
-- df.columns[name] a Lua list of numbers (numeric columns; empty -> nan) or strings.
function M.read_csv(path, opts)
  opts = opts or {}
  if type(path) ~= 'string' then raise('cloader.read_csv: path must be a string') end
  local sep = opts.sep or ','
  if type(sep) ~= 'string' or #sep ~= 1 then raise("cloader.read_csv: sep must be one character") end
  local header = opts.header == nil and true or opts.header
  local csv = C.fc_csv_read(path, header and 1 or 0, sep:byte())
  if csv == nil then raise_c() end
  csv = ffi.gc(csv, C.fc_csv_free)
  local nrows, ncols = tonumber(C.fc_csv_rows(csv)), C.fc_csv_cols(csv)
  local df = { names = {}, columns = {}, nrows = nrows }
  for c = 0, ncols - 1 do
    local name = header and ffi.string(C.fc_csv_name(csv, c)) or c + 1
    local col = {}
    if C.fc_csv_is_numeric(csv, c) ~= 0 then
      for r = 0, nrows - 1 do col[r + 1] = C.fc_csv_number(csv, c, r) end
    else
      for r = 0, nrows - 1 do col[r + 1] = ffi.string(C.fc_csv_string(csv, c, r)) end
    end
    df.names[c + 1] = name
    df.columns[name] = col
  end
  C.fc_csv_free(ffi.gc(csv, nil))
  return df
end

return M
