-- lua/fastc/data/transform.lua — Transform and Pipeline (fastai's
-- fastcore.transform, in Lua).
--
-- Values travel with a *kind*, the Lua stand-in for fastai's tensor types:
-- 'image' (uint8 [C,H,W] per item, float [B,C,H,W] per batch), 'mask',
-- 'category', 'multicategory', 'regression', 'label' (a decoded class name),
-- nil (a raw item). A sample or a batch is a *tuple*: a Lua list with a
-- `kinds` field, {x, y, kinds = {'image', 'category'}}.
--
-- A Transform's `encodes`/`decodes` is either one function applied to every
-- kind, or a table {image = f, mask = g} (key '*' for any other kind);
-- kinds without an entry pass through untouched. Each function is called
-- as f(self, value, kind) and returns the new value and, optionally, its
-- new kind. Applied to a tuple, a transform maps over its elements (unless
-- it is an item transform, `tuple = true`, which gets the whole tuple).
--
-- `split_idx` limits a transform to the training (1) or validation (2)
-- subset, like fastai's 0/1 but counted from 1 as everything in fastc;
-- `order` sorts a Pipeline; `setups(self, items)` runs once on the
-- training items seen through the transforms before it.
return function(fc)
  local class = require 'fastc.class'
  local Rng = require 'fastc.data.rng'
  local fmt = string.format
  local data = fc.data

  local function is_tuple(x) return type(x) == 'table' and x.kinds ~= nil end

  -- tuple({x, y}, {'image', 'category'})
  local function tuple(values, kinds)
    values.kinds = kinds or {}
    return values
  end
  data.tuple, data.is_tuple = tuple, is_tuple

  local Transform = class('Transform')
  Transform.order = 0
  data.Transform = Transform

  -- Transform(f) wraps a plain function f(x, kind); Transform{encodes=,
  -- decodes=, setups=, order=, split_idx=, name=} takes methods, called as
  -- f(self, x, kind) like those of a subclass.
  function Transform:init(opts)
    if type(opts) == 'function' then
      local f = opts
      opts = { encodes = function(_, x, kind) return f(x, kind) end }
    end
    for k, v in pairs(opts or {}) do self[k] = v end
  end

  function Transform:name_of()
    return rawget(self, 'name') or getmetatable(self).__name
  end

  -- Parameters shown by tostring and DataBlock:summary.
  function Transform:params() return nil end

  function Transform:__tostring()
    local p = self:params()
    return p and fmt('%s -- %s', self:name_of(), p) or self:name_of()
  end

  -- Hook: prepare random draws for one call (see RandTransform).
  function Transform:before_call(b, split_idx, rng) end

  function Transform:setup(items, train_setup)
    if self.setups then
      if train_setup and items and items.train then items = items.train end
      self:setups(items)
    end
  end

  -- The function for `kind` in an encodes/decodes field, or nil.
  local function method_for(f, kind)
    if type(f) == 'table' then
      local g = f[kind or 'nil']
      if g == nil then g = f['*'] end
      return g
    end
    return f
  end

  function Transform:handles(kind)
    return method_for(self.encodes, kind) ~= nil
  end

  local function apply_one(self, name, x, kind)
    local f = method_for(self[name], kind)
    if f == nil then return x, kind end
    local y, k = f(self, x, kind)
    if k == nil then k = kind end
    return y, k
  end

  local function apply(self, name, x, kind)
    if is_tuple(x) and not self.tuple then
      local out, kinds = {}, {}
      for i = 1, #x do out[i], kinds[i] = apply_one(self, name, x[i], x.kinds[i]) end
      return tuple(out, kinds)
    end
    return apply_one(self, name, x, kind)
  end

  local NO_CTX = {}

  -- tfm:call(x, {split_idx=, rng=, kind=}) -> value (and kind for a
  -- single value). A transform limited to one split does nothing when
  -- called for another one, or for none (as in fastai).
  function Transform:call(x, ctx)
    ctx = ctx or NO_CTX
    local s = self.split_idx -- nil or false: every split
    if s and s ~= ctx.split_idx then return x, ctx.kind end
    self:before_call(x, ctx.split_idx, ctx.rng or data.default_rng())
    if self.skip_call then return x, ctx.kind end
    return apply(self, 'encodes', x, ctx.kind)
  end

  function Transform:decode(x, ctx)
    ctx = ctx or NO_CTX
    if self.decodes == nil then return x, ctx.kind end
    return apply(self, 'decodes', x, ctx.kind)
  end

  Transform.__call = function(self, x, ctx) return self:call(x, ctx) end

  -- A transform of the whole tuple (fastai's ItemTransform).
  local ItemTransform = Transform:extend('ItemTransform')
  ItemTransform.tuple = true
  data.ItemTransform = ItemTransform

  -- Draws whether to act (probability p) before each call; train only.
  local RandTransform = Transform:extend('RandTransform')
  RandTransform.split_idx = 1
  RandTransform.p = 1
  data.RandTransform = RandTransform
  function RandTransform:before_call(b, split_idx, rng)
    self.skip_call = not (self.p >= 1 or rng:random() < self.p)
  end

  -- A generator for calls made outside a DataLoader (which passes its own):
  -- seeded once from fc's global generator, so fc.manual_seed governs it.
  local default
  function data.default_rng()
    if not default then default = Rng(fc.randint(0, 2 ^ 31, { 1 }):item()) end
    return default
  end
  function data.reset_default_rng() default = nil end

  -- ---- Pipeline ------------------------------------------------------------

  local function as_transform(t)
    if type(t) == 'function' then return Transform(t) end
    if type(t) == 'table' and getmetatable(t) and t.call then return t end
    if type(t) == 'table' and getmetatable(t) == nil and (t.encodes or t.decodes) then
      return Transform(t)
    end
    error(fmt('Pipeline: expected a Transform or a function, got %s', tostring(t)), 4)
  end

  -- Sorted by order; ties keep the given order.
  local function sorted(fs)
    local idx = {}
    for i = 1, #fs do idx[i] = i end
    table.sort(idx, function(a, b)
      local oa, ob = fs[a].order or 0, fs[b].order or 0
      if oa ~= ob then return oa < ob end
      return a < b
    end)
    local out = {}
    for i = 1, #idx do out[i] = fs[idx[i]] end
    return out
  end

  -- Flattens nested lists of transforms (a list may hold lists, as
  -- aug_transforms returns one).
  local function flatten(list, out)
    out = out or {}
    if list == nil then return out end
    if type(list) ~= 'table' or getmetatable(list) ~= nil or list.encodes or list.decodes then
      out[#out + 1] = as_transform(list)
      return out
    end
    for i = 1, #list do flatten(list[i], out) end
    return out
  end
  data.flatten_tfms = flatten

  local Pipeline = class('Pipeline')
  data.Pipeline = Pipeline

  -- Pipeline(tfms, {split_idx=})
  function Pipeline:init(fs, opts)
    if getmetatable(fs) == Pipeline then fs = fs.fs end
    self.fs = sorted(flatten(fs))
    self.split_idx = (opts or {}).split_idx
  end

  function Pipeline:len() return #self.fs end

  function Pipeline:add(ts, items, train_setup)
    for _, t in ipairs(flatten(ts)) do
      t:setup(items, train_setup)
      self.fs[#self.fs + 1] = t
    end
    self.fs = sorted(self.fs)
  end

  -- Sets up each transform on the items seen through the ones before it.
  function Pipeline:setup(items, train_setup)
    local fs = self.fs
    self.fs = {}
    for _, t in ipairs(fs) do self:add(t, items, train_setup) end
  end

  function Pipeline:call(x, ctx)
    ctx = ctx or {}
    local kind = ctx.kind
    local c = { split_idx = ctx.split_idx or self.split_idx, rng = ctx.rng }
    for _, f in ipairs(self.fs) do
      c.kind = kind
      x, kind = f:call(x, c)
    end
    return x, kind
  end
  Pipeline.__call = function(self, x, ctx) return self:call(x, ctx) end

  -- Undoes the transforms in reverse order (those with a decodes).
  function Pipeline:decode(x, ctx)
    ctx = ctx or {}
    local kind = ctx.kind
    for i = #self.fs, 1, -1 do x, kind = self.fs[i]:decode(x, { kind = kind }) end
    return x, kind
  end

  -- The first transform (from the end) with field k: how a Datasets finds
  -- vocab, c and loss_func (fastai gathers them through the same lookup).
  function Pipeline:attr(k)
    for i = #self.fs, 1, -1 do
      local v = self.fs[i][k]
      if v ~= nil and type(v) ~= 'function' then return v end
    end
  end

  function Pipeline:__tostring()
    local parts = {}
    for i, f in ipairs(self.fs) do parts[i] = tostring(f) end
    return 'Pipeline: ' .. (#parts > 0 and table.concat(parts, ' -> ') or '(empty)')
  end

  return { Transform = Transform, Pipeline = Pipeline }
end
