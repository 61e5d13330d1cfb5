-- lua/fastc/tensor_data.lua — fc.TensorDataLoader: batches drawn from
-- tensors already in memory, for fc.DataLoaders (lua/fastc/data) and the
-- Learner.
--
--   local train = fc.TensorDataLoader(x, y, {bs = 64, shuffle = true})
--   local valid = fc.TensorDataLoader(xv, yv, {bs = 128})
--   local dls = fc.DataLoaders(train, valid, {loss_func = fc.F.cross_entropy, c = 10, vocab = names})
--   (loss_func, c, vocab and n_inp may also be options of the training loader,
--   where DataLoaders looks for them)
--   for xb, yb in dls.train:iter() do ... end
--
-- fastai's loader interface: dl:iter(), dl:one_batch(), dl:new{...},
-- dl:len() (batches), dl.dataset:len() (items), dl.dataset:tensors().
return function(fc, Tensor, H)
  local class, fmt = fc.class, string.format

  local TensorDataset = class('TensorDataset')
  fc.TensorDataset = TensorDataset
  function TensorDataset:init(...)
    self.ts = { ... }
    if #self.ts == 0 then error('TensorDataset: expected at least one tensor', 3) end
    local n = self.ts[1]:size(1)
    for i, t in ipairs(self.ts) do
      if not H.is_tensor(t) then error(fmt('TensorDataset: argument %d is not a tensor', i), 3) end
      if t:size(1) ~= n then
        error(fmt('TensorDataset: tensor %d has %d items, tensor 1 has %d', i, t:size(1), n), 3)
      end
    end
    self.n = n
  end
  function TensorDataset:len() return self.n end
  function TensorDataset:tensors() return unpack(self.ts) end
  -- ds:get(i): the i-th item (1-based) as multiple values.
  function TensorDataset:get(i)
    local out = {}
    for j, t in ipairs(self.ts) do out[j] = t[i] end
    return unpack(out)
  end

  -- A small deterministic generator for seeded shuffles (xorshift64*),
  -- independent of the global fc.manual_seed stream.
  local bit = require 'bit'
  local function seeded_perm(state, n)
    local s = state.s
    local perm = {}
    for i = 1, n do perm[i] = i end
    for i = n, 2, -1 do
      s = bit.bxor(s, bit.rshift(s, 12)); s = bit.bxor(s, bit.lshift(s, 25)); s = bit.bxor(s, bit.rshift(s, 27))
      local r = tonumber(bit.band(bit.rshift(s * 2685821657736338717ULL, 11), 0xFFFFFFFFULL)) / 4294967296
      local j = math.floor(r * i) + 1
      perm[i], perm[j] = perm[j], perm[i]
    end
    state.s = s
    return fc.tensor(perm, { dtype = 'int64' })
  end

  local TensorDataLoader = class('TensorDataLoader')
  fc.TensorDataLoader = TensorDataLoader
  local OPTS = { bs = true, shuffle = true, drop_last = true, seed = true, after_batch = true,
    c = true, vocab = true, loss_func = true, n_inp = true }

  -- TensorDataLoader(x, y, opts) or TensorDataLoader(dataset, opts); y may be nil.
  function TensorDataLoader:init(x, y, opts)
    if type(x) == 'table' and not H.is_tensor(x) and x.tensors then
      self.dataset, opts = x, y
    else
      if not H.is_tensor(x) then error('TensorDataLoader: x must be a tensor', 3) end
      if H.is_tensor(y) then self.dataset = TensorDataset(x, y)
      else
        opts = opts or y
        self.dataset = TensorDataset(x)
      end
    end
    opts = opts or {}
    for k in pairs(opts) do
      if not OPTS[k] then error(fmt('TensorDataLoader: unknown option %q', tostring(k)), 3) end
    end
    self.bs = opts.bs or 64
    if type(self.bs) ~= 'number' or self.bs < 1 then error('TensorDataLoader: bs must be a positive number', 3) end
    self.shuffle, self.drop_last = opts.shuffle or false, opts.drop_last or false
    self.seed, self.after_batch = opts.seed, opts.after_batch
    -- what the data layer's loaders carry for the Learner (dls.c etc. read the training loader's)
    self.c, self.vocab, self.loss_func, self.n_inp = opts.c, opts.vocab, opts.loss_func, opts.n_inp
    if self.seed then self.rng = { s = 0x9E3779B97F4A7C15ULL + self.seed } end
  end

  -- A copy with some options changed (fastai's dl.new).
  function TensorDataLoader:new(opts)
    local o = { bs = self.bs, shuffle = self.shuffle, drop_last = self.drop_last, seed = self.seed,
      after_batch = self.after_batch, c = self.c, vocab = self.vocab, loss_func = self.loss_func, n_inp = self.n_inp }
    for k, v in pairs(opts or {}) do o[k] = v end
    if o.shuffle == false then o.seed = nil end
    return TensorDataLoader(self.dataset, o)
  end

  function TensorDataLoader:len()
    local n = self.dataset:len()
    if self.drop_last then return math.floor(n / self.bs) end
    return math.ceil(n / self.bs)
  end

  -- The item order of the next pass: nil for the natural order.
  function TensorDataLoader:get_idxs()
    if not self.shuffle then return nil end
    if self.rng then return seeded_perm(self.rng, self.dataset:len()) end
    return fc.randperm(self.dataset:len())
  end

  -- for xb, yb in dl:iter() do ... end: each batch as multiple values.
  -- Unshuffled batches are views of the tensors; shuffled ones are copies.
  function TensorDataLoader:iter()
    local idxs, n, bs, ts = self:get_idxs(), self:len(), self.bs, self.dataset.ts
    local total, tfm = self.dataset:len(), self.after_batch
    local b = 0
    return function()
      b = b + 1
      if b > n then return nil end
      local start = (b - 1) * bs + 1
      local count = math.min(bs, total - start + 1)
      local out = {}
      for j, t in ipairs(ts) do
        out[j] = idxs and t:index_select(1, idxs:narrow(1, start, count)) or t:narrow(1, start, count)
      end
      if tfm then return tfm(unpack(out)) end
      return unpack(out)
    end
  end

  function TensorDataLoader:one_batch()
    local it = self:new({ shuffle = false }):iter()
    return it()
  end
end
