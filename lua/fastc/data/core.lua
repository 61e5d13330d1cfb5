-- lua/fastc/data/core.lua — TfmdLists, Datasets, DataLoader, DataLoaders
-- (fastai's data/core.py and data/load.py, in Lua).
--
-- A DataLoader has two engines. When the items are image files and every
-- item transform is one the C loader knows (decode, resize, crops, flip),
-- batches come from its worker threads as uint8 [B,C,H,W] tensors, the
-- labels are looked up by the indices it returns, and the batch transforms
-- run on the whole tensors. Otherwise items go one by one through the Lua
-- pipeline and are collated here. Either way: shuffles and random
-- augmentation come from streams named by (seed, epoch, item), so a seed
-- gives the same batches every time.
return function(fc)
  local data = fc.data
  local class = require 'fastc.class'
  local Rng = require 'fastc.data.rng'
  local Pipeline, tuple, is_tuple = data.Pipeline, data.tuple, data.is_tuple
  local len_of, item_at = data.len_of, data.item_at
  local fmt, floor, ceil = string.format, math.floor, math.ceil

  -- A class whose instances look up `lazy[k](self)` for fields they lack.
  local function lazy_class(name, parent, lazy)
    local cls = parent and parent:extend(name) or class(name)
    cls.__index = function(self, k)
      local v = cls[k]
      if v ~= nil then return v end
      local f = lazy[k]
      if f then return f(self) end
      return nil
    end
    return cls
  end

  -- ---- TfmdLists -------------------------------------------------------------

  local tl_lazy = {
    train = function(self) return self:subset(1) end,
    valid = function(self) return self:subset(2) end,
    vocab = function(self) return self.tfms:attr('vocab') end,
    c = function(self) return self.tfms:attr('c') end,
    loss_func = function(self) return self.tfms:attr('loss_func') end,
  }
  local TfmdLists = lazy_class('TfmdLists', nil, tl_lazy)
  data.TfmdLists = TfmdLists

  -- TfmdLists(items, tfms, {splits=, split_idx=, train_setup=true,
  -- do_setup=true}): items seen through a Pipeline, lazily.
  function TfmdLists:init(items, tfms, o)
    o = o or {}
    if getmetatable(items) == data.DataFrame then items = items:rows() end
    self.items = items
    self.splits = o.splits or { data.seq(len_of(items)), {} }
    self.split_idx = o.split_idx
    self.tfms = getmetatable(tfms) == Pipeline and tfms or Pipeline(tfms, { split_idx = o.split_idx })
    if o.do_setup ~= false then self:setup(o.train_setup ~= false) end
  end

  function TfmdLists:setup(train_setup) self.tfms:setup(self, train_setup) end
  function TfmdLists:len() return len_of(self.items) end
  function TfmdLists:raw(i) return item_at(self.items, i) end

  -- The i-th item through the pipeline: value, kind.
  function TfmdLists:get(i, ctx)
    local n = self:len()
    if type(i) ~= 'number' or i < 1 or i > n or i ~= floor(i) then
      error(fmt('TfmdLists: index %s out of range 1..%d', tostring(i), n), 2)
    end
    return self.tfms:call(item_at(self.items, i), { split_idx = self.split_idx, rng = ctx and ctx.rng })
  end

  -- The same pipeline over a subset of the items (shared transforms).
  function TfmdLists:subset(s)
    local idx = self.splits[s]
    if idx == nil then error(fmt('TfmdLists: no split %s (there are %d)', tostring(s), #self.splits), 2) end
    local items = {}
    for k, i in ipairs(idx) do items[k] = item_at(self.items, i) end
    local sub = TfmdLists(items, self.tfms, { split_idx = s, do_setup = false })
    sub.splits = { data.seq(#items), {} }
    rawset(sub, 'parent_idx', idx)
    return sub
  end

  function TfmdLists:new_items(items, o)
    o = o or {}
    return TfmdLists(items, self.tfms, { split_idx = o.split_idx or 2, do_setup = false })
  end

  function TfmdLists:decode(o, kind) return self.tfms:decode(o, { kind = kind }) end

  function TfmdLists:__tostring() return fmt('TfmdLists: %d items, %s', self:len(), tostring(self.tfms)) end

  -- ---- Datasets -------------------------------------------------------------

  local ds_lazy = {
    train = function(self) return self:subset(1) end,
    valid = function(self) return self:subset(2) end,
    vocab = function(self) return self:attr('vocab') end,
    c = function(self) return self:attr('c') end,
    loss_func = function(self) return self:attr('loss_func') end,
  }
  local Datasets = lazy_class('Datasets', nil, ds_lazy)
  data.Datasets = Datasets

  -- Datasets(items, {tfms_x, tfms_y, ...}, {splits=, n_inp=, split_idx=}):
  -- one TfmdLists per list of transforms; item i is the tuple of each one's
  -- i-th value.
  function Datasets:init(items, tfms, o)
    o = o or {}
    if o.tls then
      self.tls = o.tls
    else
      if getmetatable(items) == data.DataFrame then items = items:rows() end
      tfms = tfms or { {} }
      self.tls = {}
      for j, t in ipairs(tfms) do
        self.tls[j] = TfmdLists(items, t, { splits = o.splits, split_idx = o.split_idx,
          train_setup = o.train_setup, do_setup = o.do_setup })
      end
    end
    self.splits = self.tls[1].splits
    self.split_idx = o.split_idx or self.tls[1].split_idx
    self.n_inp = o.n_inp or (#self.tls == 1 and 1 or #self.tls - 1)
  end

  function Datasets:len() return self.tls[1]:len() end
  function Datasets:raw(i) return self.tls[1]:raw(i) end
  function Datasets:get(i, ctx)
    local vals, kinds = {}, {}
    for j, tl in ipairs(self.tls) do vals[j], kinds[j] = tl:get(i, ctx) end
    return tuple(vals, kinds)
  end

  -- A field of the transforms, last TfmdLists first (the target's vocab).
  function Datasets:attr(k)
    for j = #self.tls, 1, -1 do
      local v = self.tls[j][k]
      if v ~= nil then return v end
    end
  end

  function Datasets:subset(s)
    local tls = {}
    for j, tl in ipairs(self.tls) do tls[j] = tl:subset(s) end
    return Datasets(nil, nil, { tls = tls, n_inp = self.n_inp, split_idx = s })
  end

  -- The tuple decoded by each pipeline (class ids back to labels).
  function Datasets:decode(t)
    local vals, kinds = {}, {}
    for j = 1, #t do
      local tl = self.tls[j]
      if tl then vals[j], kinds[j] = tl:decode(t[j], t.kinds[j])
      else vals[j], kinds[j] = t[j], t.kinds[j] end
    end
    return tuple(vals, kinds)
  end

  -- Items for inference: the input pipelines only (with_labels: all).
  function Datasets:test_set(items, o)
    o = o or {}
    if getmetatable(items) == data.DataFrame then items = items:rows() end
    local tls = {}
    local n = o.with_labels and #self.tls or self.n_inp
    for j = 1, n do tls[j] = self.tls[j]:new_items(items, { split_idx = 2 }) end
    return Datasets(nil, nil, { tls = tls, n_inp = self.n_inp, split_idx = 2 })
  end

  function Datasets:__tostring()
    return fmt('Datasets: %d items, %d pipelines (n_inp %d)', self:len(), #self.tls, self.n_inp)
  end

  function Datasets:dataloaders(o) return data.DataLoaders.from_dsets(self, o) end

  function data.seq(n)
    local t = {}
    for i = 1, n do t[i] = i end
    return t
  end

  -- ---- TensorDataset -------------------------------------------------------

  -- TensorDataset(x, y, {kinds=}): rows of whole tensors; batches are one
  -- index_select each instead of per-item work. Kinds default to image
  -- (for 3-D/4-D uint8 x) and category (int64 y).
  local TensorDataset = lazy_class('TensorDataset', nil, {})
  data.TensorDataset = TensorDataset
  function TensorDataset:init(...)
    local n = select('#', ...)
    local last = select(n, ...)
    local o = {}
    if type(last) == 'table' and not fc.is_tensor(last) then o, n = last, n - 1 end
    self.tensors = {}
    for i = 1, n do self.tensors[i] = (select(i, ...)) end
    local n0 = self.tensors[1]:size(1)
    for i, t in ipairs(self.tensors) do
      if t:size(1) ~= n0 then
        error(fmt('TensorDataset: tensor %d has %d rows, tensor 1 has %d', i, t:size(1), n0), 2)
      end
    end
    self.kinds = o.kinds or {}
    if not o.kinds then
      for i, t in ipairs(self.tensors) do
        if t.dtype == 'uint8' and t:dim() >= 3 then self.kinds[i] = 'image'
        elseif t.dtype == 'int64' and t:dim() == 1 then self.kinds[i] = 'category'
        else self.kinds[i] = 'tensor' end
      end
    end
    self.vocab, self.n_inp = o.vocab, o.n_inp or math.max(1, n - 1)
    if self.vocab then self.c = #self.vocab end
    if o.loss_func then self.loss_func = o.loss_func
    elseif self.kinds[n] == 'category' then self.loss_func = data.loss('CrossEntropyLossFlat') end
  end
  function TensorDataset:len() return self.tensors[1]:size(1) end
  function TensorDataset:get(i)
    local vals = {}
    for j, t in ipairs(self.tensors) do
      local v = t[i]
      vals[j] = v
    end
    return tuple(vals, { unpack(self.kinds) })
  end
  -- idx: an int64 tensor of 1-based rows
  function TensorDataset:get_batch(idx)
    local vals = {}
    for j, t in ipairs(self.tensors) do vals[j] = t:index_select(1, idx) end
    return tuple(vals, { unpack(self.kinds) })
  end
  function TensorDataset:decode(t)
    if not self.vocab then return t end
    local vals, kinds = {}, {}
    for j = 1, #t do
      if t.kinds[j] == 'category' then
        local id = fc.is_tensor(t[j]) and t[j]:item() or t[j]
        vals[j], kinds[j] = self.vocab[id], 'label'
      else vals[j], kinds[j] = t[j], t.kinds[j] end
    end
    return tuple(vals, kinds)
  end
  -- Rows as a subset (split s of `splits`).
  function TensorDataset:subset_rows(idx)
    local ts = {}
    local it = fc.tensor(idx, { dtype = 'int64' })
    for j, t in ipairs(self.tensors) do ts[j] = t:index_select(1, it) end
    ts[#ts + 1] = { kinds = self.kinds, vocab = self.vocab, n_inp = self.n_inp, loss_func = self.loss_func }
    return TensorDataset(unpack(ts))
  end

  -- ---- collation ------------------------------------------------------------

  local function all_integers(list)
    for _, v in ipairs(list) do if v ~= floor(v) then return false end end
    return true
  end

  -- One batch from a list of tuples: tensors stacked, numbers into a
  -- tensor (int64 if all whole), anything else as a Lua list.
  local function collate(items)
    local first = items[1]
    local out, kinds = {}, {}
    for j = 1, #first do
      local col = {}
      for k = 1, #items do col[k] = items[k][j] end
      local v = col[1]
      if fc.is_tensor(v) then out[j] = fc.stack(col)
      elseif type(v) == 'number' then
        out[j] = fc.tensor(col, { dtype = all_integers(col) and 'int64' or 'float32' })
      elseif type(v) == 'boolean' then out[j] = fc.tensor(col, { dtype = 'bool' })
      else out[j] = col end
      kinds[j] = first.kinds[j]
    end
    return tuple(out, kinds)
  end
  data.collate = collate

  -- ---- DataLoader --------------------------------------------------------------

  local dl_lazy = {
    vocab = function(self) return self.dataset.vocab end,
    c = function(self) return self.dataset.c end,
    loss_func = function(self) return self.dataset.loss_func end,
    n_inp = function(self) return self.dataset.n_inp or 1 end,
    n = function(self) return len_of(self.dataset) end,
    device = function() return 'cpu' end,
  }
  local DataLoader = lazy_class('DataLoader', nil, dl_lazy)
  data.DataLoader = DataLoader

  local HOOKS = { 'before_iter', 'after_item', 'before_batch', 'after_batch', 'after_iter' }
  local OPTS = { bs = true, shuffle = true, drop_last = true, num_workers = true, seed = true,
    prefetch = true, split_idx = true, on_error = true, engine = true, channels = true,
    before_iter = true, after_item = true, before_batch = true, after_batch = true, after_iter = true,
    n = true, device = true, pin_memory = true, verbose = true, warn = true }

  -- A loader's own Pipeline (the transforms themselves may be shared).
  local function as_pipeline(h, split_idx)
    if h == nil then return Pipeline({}, { split_idx = split_idx }) end
    return Pipeline(h, { split_idx = split_idx })
  end

  -- DataLoader(dataset, {bs=64, shuffle=false, drop_last=false, num_workers=,
  -- seed=, after_item=, before_batch=, after_batch=, before_iter=,
  -- after_iter=, engine='auto'|'c'|'lua'}). after_item/after_batch are
  -- transforms (a list or a Pipeline); before_batch a function of the list
  -- of items or transforms; before_iter/after_iter functions of the loader.
  function DataLoader:init(dataset, o)
    o = o or {}
    for k in pairs(o) do
      if not OPTS[k] then error(fmt('DataLoader: unknown option %q', tostring(k)), 3) end
    end
    if dataset == nil then error('DataLoader: expects a dataset', 3) end
    self.dataset = dataset
    self.bs = o.bs or 64
    if self.bs < 1 or self.bs ~= floor(self.bs) then error(fmt('DataLoader: bs must be a positive integer, got %s', tostring(self.bs)), 3) end
    self.shuffle, self.drop_last = o.shuffle or false, o.drop_last or false
    -- fastai's default: a worker per core (they sleep once the queue is full)
    self.num_workers = o.num_workers or math.min(fc.get_num_threads(), 8)
    self.prefetch, self.on_error, self.channels = o.prefetch, o.on_error, o.channels
    self.split_idx = o.split_idx or dataset.split_idx
    self.seed = o.seed or data.default_rng():seed()
    self.engine = o.engine or 'auto'
    self.warn = o.warn or function(msg) io.stderr:write('fastc DataLoader: ', msg, '\n') end
    self.verbose = o.verbose
    self.pin_memory = o.pin_memory
    self.after_item = as_pipeline(o.after_item, self.split_idx)
    self.after_batch = as_pipeline(o.after_batch, self.split_idx)
    self.before_batch, self.before_iter, self.after_iter = o.before_batch, o.before_iter, o.after_iter
    if type(self.before_batch) == 'table' and getmetatable(self.before_batch) == nil then
      self.before_batch = Pipeline(self.before_batch, { split_idx = self.split_idx })
    end
    self.epoch = 0
    self.opts = o
    self:_choose_engine()
    self.after_batch:setup(self)
  end

  function DataLoader:len()
    local n = len_of(self.dataset)
    return self.drop_last and floor(n / self.bs) or ceil(n / self.bs)
  end

  -- dl:new{...}: the same loader with options changed (dataset= too).
  function DataLoader:new(o)
    local merged = {}
    for k, v in pairs(self.opts) do merged[k] = v end
    merged.after_item, merged.after_batch = self.after_item, self.after_batch
    merged.seed = self.seed
    local dataset = self.dataset
    for k, v in pairs(o or {}) do
      if k == 'dataset' then dataset = v else merged[k] = v end
    end
    if dataset ~= self.dataset and (o or {}).split_idx == nil then merged.split_idx = dataset.split_idx end
    return DataLoader(dataset, merged)
  end

  -- The order of the items for one epoch.
  function DataLoader:_order(epoch)
    local n = len_of(self.dataset)
    if self.shuffle then return Rng(self.seed, epoch, 'shuffle'):perm(n) end
    return data.seq(n)
  end

  local function call_hook(h, x, dl)
    if h == nil then return x end
    if type(h) == 'function' then return h(x, dl) end
    return h:call(x, { split_idx = dl.split_idx })
  end

  -- One batch through the Lua engine: item indices -> tuple.
  function DataLoader:_lua_batch(idx, epoch, b)
    local ds = self.dataset
    local batch
    if ds.get_batch and self.after_item:len() == 0 and self.before_batch == nil then
      batch = ds:get_batch(fc.tensor(idx, { dtype = 'int64' }))
    else
      local items = {}
      for _, i in ipairs(idx) do
        local rng = Rng(self.seed, epoch, 'item', i)
        local ok, item = true, nil
        if self.on_error == 'skip' then
          ok, item = pcall(function()
            return self.after_item:call(ds:get(i, { rng = rng }), { split_idx = self.split_idx, rng = rng })
          end)
          if not ok then self.warn(fmt('skipped item %d: %s', i, tostring(item))) end
        else
          item = self.after_item:call(ds:get(i, { rng = rng }), { split_idx = self.split_idx, rng = rng })
        end
        if ok then items[#items + 1] = item end
      end
      if #items == 0 then error(fmt('DataLoader: every item of batch %d failed', b), 0) end
      items = call_hook(self.before_batch, items, self)
      batch = collate(items)
    end
    return self.after_batch:call(batch, { split_idx = self.split_idx, rng = Rng(self.seed, epoch, 'batch', b) })
  end

  -- Iterator over tuples for one epoch.
  -- pin_memory=true, where a GPU is usable: each batch's CPU tensors are
  -- copied to page-locked memory, so moving them to the GPU is queued
  -- without waiting (fc.cuda; a no-op without CUDA).
  local function pinned(next_batch)
    return function()
      local b = next_batch()
      if b == nil then return nil end
      for i = 1, #b do
        if fc.is_tensor(b[i]) and b[i].device == 'cpu' then b[i] = b[i]:pin_memory() end
      end
      return b
    end
  end

  function DataLoader:_batches()
    local next_batch = self:_unpinned_batches()
    if self.pin_memory and fc.cuda and fc.cuda.is_available() then return pinned(next_batch) end
    return next_batch
  end

  function DataLoader:_unpinned_batches()
    self.epoch = self.epoch + 1
    local epoch = self.epoch
    if self.before_iter then self.before_iter(self) end
    if self.use_c then return self:_c_batches(epoch) end
    local order = self:_order(epoch)
    local nb, bs, n = self:len(), self.bs, #order
    local b = 0
    return function()
      b = b + 1
      if b > nb then
        if b == nb + 1 and self.after_iter then self.after_iter(self) end
        return nil
      end
      local idx = {}
      for k = (b - 1) * bs + 1, math.min(b * bs, n) do idx[#idx + 1] = order[k] end
      return self:_lua_batch(idx, epoch, b)
    end
  end

  -- for xb, yb in dl:iter() do ... end: the tuple's elements per batch.
  function DataLoader:iter()
    local next_batch = self:_batches()
    return function()
      local b = next_batch()
      if b == nil then return nil end
      return unpack(b, 1, #b)
    end
  end
  -- for b in dl:tuples() do ... end: whole tuples (b.kinds says what each is).
  function DataLoader:tuples() return self:_batches() end

  -- The first batch of a fresh pass (unshuffled order unless shuffle).
  function DataLoader:one_batch()
    local b = self:one_batch_tuple()
    return unpack(b, 1, #b)
  end
  function DataLoader:one_batch_tuple()
    if self:len() == 0 then
      error(fmt('DataLoader: no full batch (%d items, bs %d, drop_last)', len_of(self.dataset), self.bs), 3)
    end
    local saved = self.epoch
    local it = self:_batches()
    local b = it()
    if self.use_c and self._cl_iter_done then self._cl_iter_done() end
    self.epoch = saved
    return b
  end

  -- Undoes the batch transforms (floats back to uint8 images, ...).
  function DataLoader:decode(b) return self.after_batch:decode(b) end

  -- Decoded items of a batch, at most max_n: a list of tuples whose
  -- targets are labels again.
  function DataLoader:decode_batch(b, max_n)
    b = self:decode(b)
    local n = fc.is_tensor(b[1]) and b[1]:size(1) or #b[1]
    if max_n then n = math.min(n, max_n) end
    local out = {}
    for i = 1, n do
      local vals, kinds = {}, {}
      for j = 1, #b do
        local v = b[j]
        vals[j] = fc.is_tensor(v) and v[i] or v[i]
        kinds[j] = b.kinds[j]
      end
      local t = tuple(vals, kinds)
      out[i] = self.dataset.decode and self.dataset:decode(t) or t
    end
    return out
  end

  -- show_batch{max_n=9, path=, ncols=}: a labelled PNG grid of a batch.
  function DataLoader:show_batch(o)
    o = o or {}
    local b = o.b or self:one_batch_tuple()
    return data.show_items(self:decode_batch(b, o.max_n or 9), o)
  end

  function DataLoader:__tostring()
    return fmt('DataLoader: %d items, bs %d, %d batches, %s engine', len_of(self.dataset), self.bs,
      self:len(), self.use_c and 'C' or 'Lua')
  end

  -- ---- the C engine ----------------------------------------------------------

  local cloader, cloader_err
  local function load_cloader()
    if cloader == nil then
      if not package.searchpath('fastc.data.cloader', package.path) then
        cloader, cloader_err = false, 'the C loader binding is not built'
      else
        local ok, m = pcall(require, 'fastc.data.cloader')
        cloader = ok and m or false
        cloader_err = not ok and ('the C loader binding failed to load: ' .. tostring(m)) or nil
      end
    end
    return cloader
  end
  data.cloader = load_cloader

  -- Why the C engine cannot serve this loader, or nil when it can.
  function DataLoader:_c_refusal()
    local ds = self.dataset
    if not load_cloader() then return cloader_err end
    if getmetatable(ds) ~= Datasets then return 'the dataset is not a Datasets' end
    local x_tl = ds.tls[1]
    local fs = x_tl.tfms.fs
    local last = fs[#fs]
    if not (last and last.c_image) then return 'the input is not an image decoded from a file' end
    if ds:len() > 0 then
      local x = x_tl:raw(1)
      for k = 1, #fs - 1 do x = fs[k]:call(x, { split_idx = self.split_idx }) end
      if type(x) ~= 'string' then return 'the input items are not file paths' end
    end
    for j = 2, #ds.tls do
      local tfs = ds.tls[j].tfms.fs
      if tfs[#tfs] and tfs[#tfs].c_image then return 'a target is an image (masks go through Lua)' end
    end
    if ds.n_inp ~= 1 then return 'more than one input' end
    for _, t in ipairs(self.after_item.fs) do
      if not t.c_spec then return tostring(t) .. ' is not a C transform' end
      if t:c_spec(self.split_idx) == nil then return tostring(t) .. ' has no C form with these options' end
    end
    if self.before_batch then return 'a before_batch hook' end
    return nil
  end

  function DataLoader:_choose_engine()
    local why = self:_c_refusal()
    if self.engine == 'c' and why then error('DataLoader: cannot use the C loader: ' .. why, 4) end
    self.use_c = self.engine ~= 'lua' and why == nil
    self.lua_reason = why
  end

  -- The raw paths, the C pipeline and the targets, computed once.
  function DataLoader:_c_setup()
    if self._c then return self._c end
    local ds = self.dataset
    local x_tl = ds.tls[1]
    local fs = x_tl.tfms.fs
    local n = ds:len()
    local paths = {}
    for i = 1, n do
      local x = x_tl:raw(i)
      for k = 1, #fs - 1 do x = fs[k]:call(x, { split_idx = self.split_idx }) end
      paths[i] = tostring(x)
    end
    local steps = {}
    for _, t in ipairs(self.after_item.fs) do
      local s = t:c_spec(self.split_idx)
      if s then steps[#steps + 1] = s end
    end
    local ys, kinds = {}, { fs[#fs].c_kind or 'image' }
    for j = 2, #ds.tls do
      local col = {}
      for i = 1, n do
        local v, kind = ds.tls[j]:get(i)
        col[i] = v
        kinds[j] = kind
      end
      ys[j] = collate((function()
        local items = {}
        for i = 1, n do items[i] = tuple({ col[i] }, { kinds[j] }) end
        return items
      end)())[1]
    end
    self._c = { paths = paths, steps = steps, ys = ys, kinds = kinds, channels = fs[#fs].channels or 3 }
    return self._c
  end

  function DataLoader:_c_loader()
    if self._cl then return self._cl end
    local c = self:_c_setup()
    self._cl = load_cloader().new {
      items = c.paths, labels = nil, bs = self.bs, shuffle = self.shuffle, drop_last = self.drop_last,
      seed = self.seed, num_workers = self.num_workers, prefetch = self.prefetch,
      channels = self.channels or c.channels, pipeline = c.steps, on_error = self.on_error,
      warn = self.warn,
    }
    return self._cl
  end

  function DataLoader:_c_batches(epoch)
    local cl = self:_c_loader()
    local c = self._c
    local it, state, ctl = cl:epoch(epoch)
    local b = 0
    local done = false
    self._cl_iter_done = function() done = true end
    return function()
      if done then return nil end
      local xb, _, idx = it(state, ctl)
      ctl = xb
      if xb == nil then
        done = true
        if self.after_iter then self.after_iter(self) end
        return nil
      end
      b = b + 1
      local vals = { xb }
      for j = 2, #c.kinds do
        local y = c.ys[j]
        if fc.is_tensor(y) then vals[j] = y:index_select(1, idx)
        else
          local list = {}
          for k, i in ipairs(idx:totable()) do list[k] = y[i] end
          vals[j] = list
        end
      end
      local batch = tuple(vals, { unpack(c.kinds) })
      return self.after_batch:call(batch, { split_idx = self.split_idx, rng = Rng(self.seed, epoch, 'batch', b) })
    end
  end

  function DataLoader:close()
    if self._cl then self._cl:close(); self._cl = nil end
  end

  -- ---- DataLoaders -------------------------------------------------------------

  -- An option given to DataLoaders wins; otherwise the training loader's.
  local function from_opts_or_train(k)
    return function(self)
      local v = self.opts[k]
      if v ~= nil then return v end
      local t = self.loaders[1]
      return t and t[k]
    end
  end
  local dls_lazy = {
    train = function(self) return self.loaders[1] end,
    valid = function(self) return self.loaders[2] end,
    train_ds = function(self) return self.loaders[1] and self.loaders[1].dataset end,
    valid_ds = function(self) return self.loaders[2] and self.loaders[2].dataset end,
    vocab = from_opts_or_train('vocab'),
    c = from_opts_or_train('c'),
    loss_func = from_opts_or_train('loss_func'),
    n_inp = from_opts_or_train('n_inp'),
    bs = function(self) return self.loaders[1] and self.loaders[1].bs end,
    device = function() return 'cpu' end,
  }
  local DataLoaders = lazy_class('DataLoaders', nil, dls_lazy)
  data.DataLoaders = DataLoaders
  -- dls[1], dls[2]: the loaders by position
  local dls_index = DataLoaders.__index
  DataLoaders.__index = function(self, k)
    if type(k) == 'number' then return self.loaders[k] end
    return dls_index(self, k)
  end

  local DLS_OPTS = { path = true, loss_func = true, c = true, vocab = true, n_inp = true, device = true }

  -- DataLoaders(train_dl, valid_dl, ..., {path=, loss_func=, c=, vocab=,
  -- n_inp=}): any loaders with iter/len/one_batch (nil for none, as an
  -- exported Learner keeps only what decoding needs).
  function DataLoaders:init(...)
    local n = select('#', ...)
    local last = select(n, ...)
    local o = {}
    if n > 0 and type(last) == 'table' and getmetatable(last) == nil then o, n = last, n - 1 end
    for k in pairs(o) do
      if not DLS_OPTS[k] then error(fmt('DataLoaders: unknown option %q', tostring(k)), 3) end
    end
    self.loaders = {}
    for i = 1, n do self.loaders[i] = (select(i, ...)) end
    self.opts = o
    self.path = o.path or '.'
  end

  -- What export keeps: no items, only what decoding predictions needs.
  function DataLoaders:new_empty()
    return DataLoaders(nil, nil, { loss_func = self.loss_func, c = self.c, vocab = self.vocab, n_inp = self.n_inp,
      path = self.path })
  end

  function DataLoaders:len() return #self.loaders end
  function DataLoaders:one_batch() return self.train:one_batch() end
  function DataLoaders:show_batch(o) return self.train:show_batch(o) end
  function DataLoaders:close() for _, dl in ipairs(self.loaders) do dl:close() end end

  -- test_dl(items, {with_labels=false, bs=}): a loader for new items with
  -- the validation behaviour (no augmentation, no shuffle).
  function DataLoaders:test_dl(items, o)
    o = o or {}
    if self.inference and not self.train then return self:_inference_dl(items, o) end
    local valid = self.valid or self.train
    local ds = self.train_ds
    if ds and ds.test_set and getmetatable(valid) == DataLoader then
      local test_ds = ds:test_set(items, { with_labels = o.with_labels })
      return valid:new { dataset = test_ds, shuffle = false, drop_last = false, split_idx = 2, bs = o.bs }
    end
    -- tensors: a tensor of stacked items or a list of item tensors
    if not fc.is_tensor(items) and not (type(items) == 'table' and fc.is_tensor(items[1])) then
      error(fmt('test_dl: these loaders have no data pipeline%s, so items must be tensors (got %s)',
        self.no_pipeline and ' (' .. self.no_pipeline .. ')' or '', type(items) == 'table' and type(items[1]) or type(items)), 2)
    end
    local x = fc.is_tensor(items) and items or fc.stack(items, 1)
    local bs = o.bs or (valid and valid.bs) or 64
    local kind = ds and ds.kinds and ds.kinds[1] or (x.dtype == 'uint8' and x:dim() >= 3 and 'image' or 'tensor')
    local after_batch = getmetatable(valid) == DataLoader and valid.after_batch or nil
    return DataLoader(TensorDataset(x, { kinds = { kind }, n_inp = 1 }), { bs = bs, after_batch = after_batch,
      split_idx = 2 })
  end

  function DataLoaders:__tostring()
    local parts = {}
    for i, dl in ipairs(self.loaders) do parts[i] = tostring(dl) end
    return 'DataLoaders:\n  ' .. table.concat(parts, '\n  ')
  end

  -- from_dsets(dsets, {bs=64, val_bs=, shuffle=true, num_workers=, seed=,
  -- after_item=, after_batch=, before_batch=, ...}): a training loader
  -- (shuffled, drop_last) and a validation loader over dsets' subsets.
  function DataLoaders.from_dsets(dsets, o)
    o = o or {}
    local common = {}
    for k, v in pairs(o) do
      if k ~= 'val_bs' and k ~= 'path' and k ~= 'shuffle' and k ~= 'val_shuffle' then common[k] = v end
    end
    local base = data.default_rng():seed()
    local loaders = {}
    local n = #dsets.splits
    for s = 1, n do
      local d = {}
      for k, v in pairs(common) do d[k] = v end
      local train = s == 1
      d.shuffle = train and (o.shuffle ~= false) or (o.val_shuffle or false)
      d.drop_last = train and d.shuffle
      d.bs = train and (o.bs or 64) or (o.val_bs or o.bs or 64)
      d.split_idx = s
      d.seed = o.seed and (o.seed + s - 1) or base + s
      if type(o.after_item) == 'table' and getmetatable(o.after_item) == nil then
        d.after_item = Pipeline(o.after_item)
      end
      if type(o.after_batch) == 'table' and getmetatable(o.after_batch) == nil then
        d.after_batch = Pipeline(o.after_batch)
      end
      loaders[s] = DataLoader(dsets:subset(s), d)
    end
    loaders[#loaders + 1] = { path = o.path }
    return DataLoaders(unpack(loaders))
  end
end
