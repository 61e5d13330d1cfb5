-- lua/fastc/data/block.lua — TransformBlock, the generic blocks and
-- DataBlock (fastai's data/block.py, in Lua).
--
--   local dblock = fc.DataBlock{
--     blocks = {fc.ImageBlock(), fc.CategoryBlock()},
--     get_items = fc.get_image_files, get_y = fc.parent_label,
--     splitter = fc.GrandparentSplitter(), item_tfms = {fc.vision.Resize(128)},
--     batch_tfms = fc.vision.aug_transforms{}}
--   local dls = dblock:dataloaders(path, {bs = 64})
--   dblock:summary(path)
return function(fc)
  local data = fc.data
  local class = require 'fastc.class'
  local Transform, Pipeline = data.Transform, data.Pipeline
  local fmt = string.format

  -- ---- blocks ----------------------------------------------------------------

  -- TransformBlock{type_tfms=, item_tfms=, batch_tfms=, dl_type=}
  local TransformBlock = class('TransformBlock')
  data.TransformBlock = TransformBlock
  function TransformBlock:init(o)
    o = o or {}
    self.type_tfms = data.flatten_tfms(o.type_tfms)
    self.item_tfms = data.flatten_tfms(o.item_tfms)
    self.batch_tfms = data.flatten_tfms(o.batch_tfms)
    self.name = o.name
  end

  -- CategoryBlock(vocab=nil, {sort=true, add_na=false}): one label per item.
  function data.CategoryBlock(vocab, o)
    return TransformBlock { type_tfms = { data.Categorize(vocab, o) }, name = 'CategoryBlock' }
  end

  -- MultiCategoryBlock{encoded=false, vocab=, add_na=}: lists of labels,
  -- one-hot encoded (encoded=true: items already one-hot).
  function data.MultiCategoryBlock(o)
    o = o or {}
    local tfms = o.encoded and { data.EncodedMultiCategorize(o.vocab) }
      or { data.MultiCategorize(o.vocab, { add_na = o.add_na }), data.OneHotEncode() }
    return TransformBlock { type_tfms = tfms, name = 'MultiCategoryBlock' }
  end

  -- RegressionBlock(n_out=nil): float targets.
  function data.RegressionBlock(n_out)
    if type(n_out) == 'table' then n_out = n_out.n_out end
    return TransformBlock { type_tfms = { data.RegressionSetup(n_out) }, name = 'RegressionBlock' }
  end

  -- ---- DataBlock -------------------------------------------------------------

  local DataBlock = class('DataBlock')
  data.DataBlock = DataBlock

  local KEYS = { blocks = true, get_items = true, get_x = true, get_y = true, getters = true,
    splitter = true, item_tfms = true, batch_tfms = true, n_inp = true, dl_type = true }

  local function as_block(b)
    if type(b) == 'function' then b = b() end
    if getmetatable(b) == nil or not b.type_tfms then
      error('DataBlock: each block must be a TransformBlock (e.g. fc.ImageBlock())', 4)
    end
    return b
  end

  -- A getter (a function, or a list of functions applied in turn) as a
  -- transform that shows under the function's name.
  local function getter_tfm(g)
    if g == nil then return nil end
    if type(g) == 'table' and getmetatable(g) and g.call then return g end
    local name = 'get'
    if type(g) == 'function' then
      for k, v in pairs(data) do if v == g then name = k end end
    elseif type(g) == 'table' and g.pat then
      name = tostring(g)
    end
    -- is_getter: an exported Learner's inference pipeline leaves it out
    return Transform { name = name, is_getter = true, encodes = function(_, x) return g(x) end }
  end

  -- Keeps one transform per class: the user's replaces a default one.
  local function merge_tfms(defaults, user)
    local out, by_class = {}, {}
    for _, t in ipairs(data.flatten_tfms({ defaults, user })) do
      local mt = getmetatable(t)
      local plain = mt == Transform
      if not plain and by_class[mt] then out[by_class[mt]] = t
      else
        out[#out + 1] = t
        if not plain then by_class[mt] = #out end
      end
    end
    return out
  end

  function DataBlock:init(o)
    o = o or {}
    for k in pairs(o) do
      if not KEYS[k] then error(fmt('DataBlock: unknown option %q', tostring(k)), 3) end
    end
    local blocks = o.blocks or { TransformBlock(), TransformBlock() }
    self.blocks = {}
    for i, b in ipairs(blocks) do self.blocks[i] = as_block(b) end
    self.n_inp = o.n_inp or math.max(1, #self.blocks - 1)
    self.get_items, self.splitter = o.get_items, o.splitter or data.RandomSplitter()
    local getters = o.getters
    if not getters then
      -- get_x/get_y: a function (or callable), or a list for several blocks
      local function pick(g, i)
        if type(g) == 'table' and getmetatable(g) == nil then return g[i] end
        return g
      end
      getters = {}
      for i = 1, #self.blocks do
        if i <= self.n_inp then getters[i] = pick(o.get_x, i) else getters[i] = pick(o.get_y, i - self.n_inp) end
      end
    end
    self.getters = getters
    local item_defaults, batch_defaults = { data.ToTensor() }, {}
    for _, b in ipairs(self.blocks) do
      item_defaults[#item_defaults + 1] = b.item_tfms
      batch_defaults[#batch_defaults + 1] = b.batch_tfms
    end
    self.item_tfms = merge_tfms(item_defaults, o.item_tfms)
    self.batch_tfms = merge_tfms(batch_defaults, o.batch_tfms)
  end

  -- The per-block type transforms with each block's getter in front.
  function DataBlock:type_tfms()
    local out = {}
    for i, b in ipairs(self.blocks) do
      local list = {}
      local g = getter_tfm(self.getters[i])
      if g then list[1] = g end
      for _, t in ipairs(b.type_tfms) do list[#list + 1] = t end
      out[i] = list
    end
    return out
  end

  function DataBlock:items_of(source)
    local items = self.get_items and self.get_items(source) or source
    if getmetatable(items) == data.DataFrame then items = items:rows() end
    if type(items) ~= 'table' then
      error(fmt('DataBlock: expected a list of items (get_items gives them from a source), got %s', type(items)), 3)
    end
    return items
  end

  -- dblock:datasets(source) -> Datasets with the block transforms set up.
  function DataBlock:datasets(source, o)
    local items = self:items_of(source)
    local splits = self.splitter(items)
    -- fresh transforms per call: setting one up fixes its vocab
    return data.Datasets(items, self:type_tfms(), { splits = splits, n_inp = self.n_inp })
  end

  -- dblock:dataloaders(source, {bs=64, num_workers=, seed=, ...}).
  function DataBlock:dataloaders(source, o)
    o = o or {}
    local dsets = self:datasets(source)
    local d = {}
    for k, v in pairs(o) do d[k] = v end
    d.after_item = d.after_item or self.item_tfms
    d.after_batch = d.after_batch or self.batch_tfms
    return data.DataLoaders.from_dsets(dsets, d)
  end

  -- ---- summary ---------------------------------------------------------------

  local function describe(x, kind)
    local k = kind and (' (' .. kind .. ')') or ''
    if fc.is_tensor(x) then
      return fmt('%s tensor of shape %s%s', x.dtype, tostring(x:size()), k)
    elseif type(x) == 'table' and getmetatable(x) == nil then
      local parts = {}
      for i = 1, math.min(#x, 5) do parts[i] = describe(x[i]) end
      if #x > 5 then parts[#parts + 1] = '...' end
      if next(x) ~= nil and #x == 0 then
        local kv = {}
        for key, v in pairs(x) do
          if type(key) == 'string' then kv[#kv + 1] = key .. '=' .. tostring(v) end
          if #kv >= 6 then break end
        end
        table.sort(kv)
        return '{' .. table.concat(kv, ', ') .. '}' .. k
      end
      return '{' .. table.concat(parts, ', ') .. '}' .. k
    elseif type(x) == 'string' then
      return fmt('%q%s', x, k)
    end
    return tostring(x) .. k
  end
  data.describe = describe

  -- Walks one item through every step, printing each result, then builds
  -- a batch of 4 and applies the batch transforms. `print` can be replaced
  -- (o.print) to capture the text; returns the lines.
  function DataBlock:summary(source, o)
    o = o or {}
    local lines = {}
    local function say(...)
      local s = fmt(...)
      lines[#lines + 1] = s
      if o.print ~= false then (o.print or print)(s) end
    end
    say('Setting-up type transforms pipelines')
    local items = self:items_of(source)
    say('Collecting items from %s', type(source) == 'string' and source or describe(source))
    say('Found %d items', #items)
    local dsets = self:datasets(source)
    local sizes = {}
    for s = 1, #dsets.splits do sizes[s] = #dsets.splits[s] end
    say('%d datasets of sizes %s', #sizes, table.concat(sizes, ','))
    for _, tl in ipairs(dsets.tls) do say('Setting up %s', tostring(tl.tfms)) end
    local train = dsets.train
    if train:len() == 0 then say('No training items: nothing more to show'); return lines end
    local i = 1
    say('')
    say('Building one sample')
    local vals, kinds = {}, {}
    for j, tl in ipairs(train.tls) do
      local x, kind = tl:raw(i), nil
      say('  %s', tostring(tl.tfms))
      say('    starting from')
      say('      %s', describe(x))
      for _, t in ipairs(tl.tfms.fs) do
        x, kind = t:call(x, { split_idx = 1, kind = kind })
        say('    applying %s gives', tostring(t))
        say('      %s', describe(x, kind))
      end
      vals[j], kinds[j] = x, kind
    end
    local sample = data.tuple(vals, kinds)
    local parts = {}
    for j = 1, #sample do parts[j] = describe(sample[j], sample.kinds[j]) end
    say('')
    say('Final sample: (%s)', table.concat(parts, ', '))
    say('')
    local dls = data.DataLoaders.from_dsets(dsets, { bs = 4, after_item = self.item_tfms,
      after_batch = {}, engine = 'lua', seed = 0 })
    local dl = dls.train
    say('Setting up after_item: %s', tostring(dl.after_item))
    say('Setting up before_batch: %s', dl.before_batch and tostring(dl.before_batch) or 'Pipeline: (empty)')
    local ab = Pipeline(self.batch_tfms)
    say('Setting up after_batch: %s', tostring(ab))
    say('')
    say('Building one batch')
    say('Applying item_tfms to the first sample:')
    say('  %s', tostring(dl.after_item))
    say('    starting from')
    say('      (%s)', table.concat(parts, ', '))
    local rng = require('fastc.data.rng')(0, 'summary')
    local x = sample
    for _, t in ipairs(dl.after_item.fs) do
      x = t:call(x, { split_idx = 1, rng = rng })
      local p = {}
      for j = 1, #x do p[j] = describe(x[j], x.kinds[j]) end
      say('    applying %s gives', tostring(t))
      say('      (%s)', table.concat(p, ', '))
    end
    local n = math.min(4, train:len())
    say('')
    say('Adding the next %d samples', n - 1)
    say('')
    say('No before_batch transform to apply')
    say('')
    say('Collating items in a batch')
    local b = dl:one_batch_tuple()
    local function show_batch_line(t)
      local p = {}
      for j = 1, #t do p[j] = describe(t[j], t.kinds[j]) end
      return '(' .. table.concat(p, ', ') .. ')'
    end
    say('  %s', show_batch_line(b))
    say('')
    if ab:len() == 0 then
      say('No batch_tfms to apply')
    else
      say('Applying batch_tfms to the batch built')
      say('  %s', tostring(ab))
      local probe = data.DataLoader(dsets.train, { bs = 4, after_item = self.item_tfms, after_batch = {},
        engine = 'lua', seed = 0, split_idx = 1 })
      for _, t in ipairs(ab.fs) do
        t:setup(probe)
        b = t:call(b, { split_idx = 1, rng = rng })
        probe.after_batch:add(t)
        say('    applying %s gives', tostring(t))
        say('      %s', show_batch_line(b))
      end
    end
    return lines
  end
end
