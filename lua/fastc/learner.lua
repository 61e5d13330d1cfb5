-- lua/fastc/learner.lua — fc.Learner: fastai's training loop with events.
--
--   local learn = fc.Learner(dls, model, {loss_func = fc.F.cross_entropy, metrics = {accuracy}})
--   learn:fit_one_cycle(3, 3e-3)
--   local preds, targs = learn:get_preds()
--
-- The loop (show_training_loop prints it with the callbacks at each event):
--   fit: before_fit, then per epoch: before_epoch, the training pass
--   (before_train, batches, after_train), the validation pass
--   (before_validate, batches, after_validate), after_epoch; after_fit.
--   batch: before_batch, model -> after_pred, loss -> after_loss, and when
--   training: before_backward, backward, after_backward, before_step, step,
--   after_step, zero_grad; after_batch.
-- Raising fc.CancelXException in a handler skips to after_cancel_x, then
-- after_x. epoch and iter count from 0 as in fastai (pct_train = epoch/n_epoch).
return function(fc, Tensor, H)
  local class, fmt = fc.class, string.format
  local ffi = require 'ffi'
  local U = fc.train_util
  local Callback = fc.Callback

  fc.defaults = fc.defaults or {}
  fc.defaults.lr = 1e-3
  fc.defaults.callbacks = { fc.TrainEvalCallback }

  local function is_class(t)
    return type(t) == 'table' and rawget(t, '__index') ~= nil and rawget(t, '__name') ~= nil
  end
  U.is_class = is_class

  -- A list from nil, one item or a list of items.
  local function list(v)
    if v == nil then return {} end
    if type(v) ~= 'table' or getmetatable(v) ~= nil or H.is_tensor(v) then return { v } end
    local out = {}
    for i, x in ipairs(v) do out[i] = x end
    return out
  end
  U.list = list

  function fc.trainable_params(model)
    local out = {}
    for _, p in ipairs(model:parameters()) do
      if p.requires_grad then out[#out + 1] = p end
    end
    return out
  end

  local NORM_TYPES = { 'BatchNorm1d', 'BatchNorm2d', 'BatchNorm3d', 'LayerNorm', 'GroupNorm', 'InstanceNorm1d',
    'InstanceNorm2d' }
  local function is_norm(m)
    for _, name in ipairs(NORM_TYPES) do
      local cls = fc.nn[name]
      if cls and m:is_a(cls) then return true end
    end
    return false
  end
  U.is_norm = is_norm

  -- Parameters of the norm layers, and with_bias every bias too (fastai's norm_bias_params).
  function fc.norm_bias_params(model, with_bias)
    local out, seen = {}, {}
    for _, m in ipairs(model:modules()) do
      for _, pair in ipairs(m:named_parameters()) do
        local local_name, p = pair[1], pair[2]
        local own = not local_name:find('.', 1, true)
        if own and not seen[p] and (is_norm(m) or (with_bias and local_name == 'bias')) then
          seen[p] = true
          out[#out + 1] = p
        end
      end
    end
    return out
  end

  -- ---- Learner ------------------------------------------------------------------

  local Learner = class('Learner')
  fc.Learner = Learner

  -- learn.x / learn.y: the first input and target (fastai's detuplified xb, yb).
  Learner.__index = function(self, k)
    local v = getmetatable(self)[k]
    if v ~= nil then return v end
    if k == 'x' then return U.detuple(rawget(self, 'xb')) end
    if k == 'y' then return U.detuple(rawget(self, 'yb')) end
  end

  local function print_log(log)
    local parts = {}
    for i, v in ipairs(log) do
      if type(v) == 'number' and math.floor(v) ~= v then parts[i] = fmt('%.6f', v) else parts[i] = tostring(v) end
    end
    print(table.concat(parts, '  '))
  end
  U.print_log = print_log

  local OPTS = { loss_func = true, opt_func = true, lr = true, splitter = true, cbs = true, metrics = true, path = true,
    model_dir = true, wd = true, wd_bn_bias = true, train_bn = true, moms = true }

  function Learner:init(dls, model, opts)
    opts = opts or {}
    for k in pairs(opts) do
      if not OPTS[k] then error(fmt('Learner: unknown option %q', tostring(k)), 3) end
    end
    if type(model) ~= 'table' or type(model.parameters) ~= 'function' then
      error('Learner: model must be an fc.nn.Module', 3)
    end
    local loss_func = opts.loss_func or (dls and dls.loss_func) or (dls and dls.train_ds and dls.train_ds.loss_func)
    if loss_func == nil then error('Learner: could not infer the loss function from the data; pass loss_func', 3) end
    self.dls, self.model, self.loss_func = dls, model, loss_func
    self.opt_func = opts.opt_func or fc.optim.Adam
    self.lr = opts.lr or fc.defaults.lr
    self.splitter = opts.splitter or fc.trainable_params
    self.path = opts.path or (dls and dls.path) or '.'
    self.model_dir = opts.model_dir or 'models'
    self.wd, self.wd_bn_bias = opts.wd, opts.wd_bn_bias or false
    self.train_bn = opts.train_bn ~= false
    self.moms = opts.moms or { 0.95, 0.85, 0.95 }
    self.metrics = {}
    for i, m in ipairs(list(opts.metrics)) do self.metrics[i] = U.mk_metric(m) end
    self.training, self.create_mbar, self.logger, self.opt, self.cbs = false, true, print_log, nil, {}
    self.xb, self.yb = {}, {}
    self:add_cbs(fc.defaults.callbacks)
    self:add_cbs(opts.cbs)
    self:_call('after_create')
  end

  Learner.__tostring = function(self)
    return fmt('Learner(model=%s, loss_func=%s, callbacks=%d)', self.model:class_name(), tostring(self.loss_func), #self.cbs)
  end

  -- ---- callbacks --------------------------------------------------------------

  function Learner:add_cb(cb)
    if is_class(cb) then cb = cb() end
    if type(cb) == 'table' and getmetatable(cb) == nil then cb = Callback(cb) end
    if type(cb) ~= 'table' or not Callback.is_a(cb, Callback) then
      error(fmt('add_cb: expected a callback (fc.Callback{...} or a class), got %s', type(cb)), 2)
    end
    U.check_events(cb)
    local name = cb.name
    if Learner[name] ~= nil then error(fmt("add_cb: callback name '%s' is a Learner method", name), 2) end
    local current = rawget(self, name)
    if current ~= nil and not (type(current) == 'table' and Callback.is_a(current, Callback)) then
      error(fmt("add_cb: callback name '%s' would hide the Learner's field of that name", name), 2)
    end
    rawset(cb, 'learn', self)
    rawset(self, name, cb)
    self.cbs[#self.cbs + 1] = cb
    self._sorted = nil
    return self
  end

  function Learner:add_cbs(cbs)
    for _, cb in ipairs(list(cbs)) do self:add_cb(cb) end
    return self
  end

  -- remove_cb(instance) or remove_cb(Class): every callback of that class.
  function Learner:remove_cb(cb)
    if is_class(cb) then
      for _, c in ipairs(list(self.cbs)) do
        if c:is_a(cb) then self:remove_cb(c) end
      end
      return self
    end
    rawset(cb, 'learn', nil)
    if rawget(self, cb.name) == cb then rawset(self, cb.name, nil) end
    for i, c in ipairs(self.cbs) do
      if c == cb then
        table.remove(self.cbs, i)
        break
      end
    end
    self._sorted = nil
    return self
  end

  function Learner:remove_cbs(cbs)
    for _, cb in ipairs(list(cbs)) do self:remove_cb(cb) end
    return self
  end

  -- Runs fn(self) and restores afterwards, even when fn raises.
  local function finally(fn, after, ...)
    local res = { pcall(fn, ...) }
    after()
    if not res[1] then error(res[2], 0) end
    return unpack(res, 2, table.maxn(res))
  end

  -- added_cbs(cbs, fn): fn(learn) with cbs added for its duration.
  function Learner:added_cbs(cbs, fn)
    local added = {}
    for _, cb in ipairs(list(cbs)) do
      if is_class(cb) then cb = cb() end
      if type(cb) == 'table' and getmetatable(cb) == nil then cb = Callback(cb) end
      added[#added + 1] = cb
    end
    self:add_cbs(added)
    return finally(fn, function() self:remove_cbs(added) end, self)
  end

  function Learner:removed_cbs(cbs, fn)
    cbs = list(cbs)
    self:remove_cbs(cbs)
    return finally(fn, function() self:add_cbs(cbs) end, self)
  end

  -- Callbacks sorted by order; ties keep the order they were added in.
  function Learner:sorted_cbs()
    if self._sorted then return self._sorted end
    local idx, sorted = {}, {}
    for i, cb in ipairs(self.cbs) do
      idx[cb], sorted[i] = i, cb
    end
    table.sort(sorted, function(a, b)
      if a.order ~= b.order then return a.order < b.order end
      return idx[a] < idx[b]
    end)
    self._sorted = sorted
    return sorted
  end

  function Learner:ordered_cbs(event)
    local out = {}
    for _, cb in ipairs(self:sorted_cbs()) do
      if U.handler(cb, event) then out[#out + 1] = cb end
    end
    return out
  end

  local IS_EVENT = {}
  for _, e in ipairs(fc.events) do IS_EVENT[e] = true end

  -- learn:_call('before_fit') or learn:_call{'after_epoch', 'after_fit'}
  function Learner:_call(events)
    if type(events) == 'string' then events = { events } end
    for _, event in ipairs(events) do
      if not IS_EVENT[event] then error(fmt('unknown event %s', tostring(event)), 2) end
      for _, cb in ipairs(self:sorted_cbs()) do cb(event) end
    end
  end

  local function replacing(self, attr, val, fn)
    local old = rawget(self, attr)
    rawset(self, attr, val)
    return finally(fn, function() rawset(self, attr, old) end, self)
  end

  function Learner:no_logging(fn) return replacing(self, 'logger', U.noop, fn) end
  function Learner:no_mbar(fn) return replacing(self, 'create_mbar', false, fn) end

  -- ---- the loop ------------------------------------------------------------------

  local function matches(e, ex) return e == ex or (type(e) == 'table' and getmetatable(e) == ex) end

  -- before_x, f(), and after_x; a matching cancellation runs after_cancel_x
  -- first, any other error propagates.
  function Learner:_with_events(f, event_type, ex, final)
    local ok, e = pcall(function()
      self:_call('before_' .. event_type)
      f()
    end)
    if not ok then
      if matches(e, ex) then self:_call('after_cancel_' .. event_type)
      else error(e, 0) end
    end
    self:_call('after_' .. event_type)
    if final then final() end
  end

  local function n_batches(dl)
    if type(dl.iter) == 'function' then return dl:len() end
    return #dl
  end

  -- Visits every batch of dl (a loader, or a plain list of batches) as a list.
  local function each_batch(dl, fn)
    if type(dl.iter) ~= 'function' then
      for i, b in ipairs(dl) do fn(i - 1, b) end
      return
    end
    local it, i = dl:iter(), 0
    while true do
      local b = { it() }
      if b[1] == nil then break end
      fn(i, b)
      i = i + 1
    end
  end

  function Learner:all_batches()
    self.n_iter = n_batches(self.dl)
    each_batch(self.dl, function(i, b) self:one_batch(i, b) end)
  end

  function Learner:_split(b)
    local n = (self.dls and self.dls.n_inp) or (#b == 1 and 1 or #b - 1)
    local xb, yb = {}, {}
    for i = 1, #b do
      if i <= n then xb[#xb + 1] = b[i] else yb[#yb + 1] = b[i] end
    end
    self.xb, self.yb = xb, yb
  end

  function Learner:_backward() self.loss_grad:backward() end
  function Learner:_step() self.opt:step() end

  function Learner:_do_one_batch()
    self.pred = self.model(unpack(self.xb))
    self:_call('after_pred')
    if #self.yb > 0 then
      self.loss_grad = self.loss_func(self.pred, unpack(self.yb))
      self.loss = self.loss_grad:detach()
    end
    self:_call('after_loss')
    if not self.training or #self.yb == 0 then return end
    self:_with_events(function() self:_backward() end, 'backward', fc.CancelBackwardException)
    self:_with_events(function() self:_step() end, 'step', fc.CancelStepException)
    self.opt:zero_grad()
  end

  -- One batch b = {x..., y...} at position i (from 0) of the current pass.
  function Learner:one_batch(i, b)
    self.iter = i
    self:_split(b)
    self:_with_events(function() self:_do_one_batch() end, 'batch', fc.CancelBatchException)
  end

  function Learner:_do_epoch_train()
    self.dl = self.dls.train
    self:_with_events(function() self:all_batches() end, 'train', fc.CancelTrainException)
  end

  function Learner:_do_epoch_validate(ds_idx, dl)
    self.dl = dl or self.dls[ds_idx or 2]
    if self.dl == nil then error(fmt('validate: the DataLoaders have no loader %d', ds_idx or 2), 3) end
    fc.no_grad(function()
      self:_with_events(function() self:all_batches() end, 'validate', fc.CancelValidException)
    end)
  end

  function Learner:_do_epoch()
    self:_do_epoch_train()
    self:_do_epoch_validate()
  end

  function Learner:_do_fit()
    for epoch = 0, self.n_epoch - 1 do
      self.epoch = epoch
      self:_with_events(function() self:_do_epoch() end, 'epoch', fc.CancelEpochException)
    end
  end

  function Learner:_end_cleanup()
    self.dl, self.xb, self.yb, self.pred, self.loss = nil, {}, {}, nil, nil
  end

  -- Skips the epochs before start_epoch (fit's start_epoch).
  local SkipToEpoch = Callback:extend('SkipToEpoch')
  fc.SkipToEpoch = SkipToEpoch
  SkipToEpoch.order = 70
  function SkipToEpoch:init(epoch) self.skip_to = epoch end
  function SkipToEpoch:before_epoch()
    if self.learn.epoch < self.skip_to then error(fc.CancelEpochException) end
  end

  -- fit(n_epoch, lr, {wd, cbs, reset_opt, start_epoch})
  local FIT_OPTS = { wd = true, cbs = true, reset_opt = true, start_epoch = true }
  function Learner:fit(n_epoch, lr, opts)
    opts = opts or {}
    for k in pairs(opts) do
      if not FIT_OPTS[k] then error(fmt('fit: unknown option %q', tostring(k)), 2) end
    end
    if type(n_epoch) ~= 'number' or n_epoch < 0 then error('fit: n_epoch must be a number >= 0', 2) end
    local cbs = list(opts.cbs)
    if opts.start_epoch and opts.start_epoch ~= 0 then cbs[#cbs + 1] = SkipToEpoch(opts.start_epoch) end
    self:added_cbs(cbs, function()
      if opts.reset_opt or not self.opt then self:create_opt() end
      local wd = opts.wd
      if wd == nil then wd = self.wd end
      if wd ~= nil then self.opt:set_hypers({ wd = wd }) end
      self.opt:set_hypers({ lr = lr == nil and self.lr or lr })
      self.n_epoch = n_epoch
      self:_with_events(function() self:_do_fit() end, 'fit', fc.CancelFitException,
        function() self:_end_cleanup() end)
    end)
  end

  function Learner:create_opt()
    self.opt = self.opt_func(self.splitter(self.model), self.lr)
    local state = self.opt.state
    if type(state) == 'table' then
      local function mark(p, k, v)
        state[p] = state[p] or {}
        state[p][k] = v
      end
      if not self.wd_bn_bias then
        for _, p in ipairs(fc.norm_bias_params(self.model, true)) do mark(p, 'do_wd', false) end
      end
      if self.train_bn then
        for _, p in ipairs(fc.norm_bias_params(self.model, false)) do mark(p, 'force_train', true) end
      end
    end
    return self.opt
  end

  -- ---- freezing ----------------------------------------------------------------

  function Learner:freeze_to(n)
    if not self.opt then self:create_opt() end
    self.opt:freeze_to(n)
    self.opt:clear_state()
  end
  function Learner:freeze() self:freeze_to(-1) end
  function Learner:unfreeze() self:freeze_to(0) end

  -- ---- evaluation ----------------------------------------------------------------

  -- fn inside before_fit/before_epoch ... after_epoch/after_fit (fastai's `with learn:`).
  function Learner:_as_fit(fn)
    self:_call({ 'before_fit', 'before_epoch' })
    return finally(fn, function() self:_call({ 'after_epoch', 'after_fit' }) end)
  end

  function Learner:_validation_context(cbs, inner, fn)
    return self:no_logging(function()
      return self:no_mbar(function()
        return self:added_cbs(cbs, function()
          if inner then return fn() end
          return self:_as_fit(fn)
        end)
      end)
    end)
  end

  -- validate{ds_idx = 2, dl, cbs}: {valid_loss, metric values...}
  function Learner:validate(opts)
    opts = opts or {}
    local dl = opts.dl or self.dls[opts.ds_idx or 2]
    self:_validation_context(opts.cbs, false, function() self:_do_epoch_validate(opts.ds_idx, dl) end)
    return rawget(self, 'final_record')
  end

  local function apply_act(lf, act, x)
    if act then return act(x) end
    if type(lf) == 'table' and lf.activation then return lf:activation(x) end
    return x
  end
  local function apply_decodes(lf, x)
    if type(lf) == 'table' and lf.decodes then return lf:decodes(x) end
    return x
  end

  -- The loss function with reduction 'none', for fn's duration.
  function Learner:loss_not_reduced(fn)
    local lf = self.loss_func
    return replacing(self, 'loss_func', function(pred, ...) return U.unreduced(lf, pred, ...) end, fn)
  end

  -- get_preds{ds_idx = 2, dl, with_input, with_decoded, with_loss, act, inner, cbs}
  -- returns [inputs,] preds, targets[, decoded][, losses]; preds have the
  -- loss's activation applied (softmax for cross-entropy) unless act is given.
  function Learner:get_preds(opts)
    opts = opts or {}
    local dl = opts.dl
    if dl == nil then
      local base = self.dls[opts.ds_idx or 2]
      if base == nil then error(fmt('get_preds: the DataLoaders have no loader %d', opts.ds_idx or 2), 2) end
      dl = base.new and base:new({ shuffle = false, drop_last = false }) or base
    elseif dl.shuffle and dl.new then
      dl = dl:new({ shuffle = false }) -- predictions in item order
    end
    local cb = fc.GatherPredsCallback({ with_input = opts.with_input, with_loss = opts.with_loss })
    local cbs = list(opts.cbs)
    cbs[#cbs + 1] = cb
    local function run()
      self:_validation_context(cbs, opts.inner, function() self:_do_epoch_validate(nil, dl) end)
    end
    if opts.with_loss then self:loss_not_reduced(run) else run() end
    local res = {}
    if opts.with_input then res[#res + 1] = cb.all_inputs end
    local preds = cb.all_preds and apply_act(self.loss_func, opts.act, cb.all_preds)
    res[#res + 1] = preds
    res[#res + 1] = cb.all_targets
    if opts.with_decoded then res[#res + 1] = preds and apply_decodes(self.loss_func, preds) end
    if opts.with_loss then res[#res + 1] = cb.all_losses end
    if not opts.inner then self:_end_cleanup() end
    return unpack(res, 1, table.maxn(res))
  end

  -- predict(item): decoded label (vocab entry for class ids), decoded
  -- prediction, and the activations for one item (x without batch dim).
  function Learner:predict(item)
    if not (self.dls and self.dls.test_dl) then error('predict: the DataLoaders cannot make a test_dl', 2) end
    local dl = self.dls:test_dl({ item })
    local _, preds, _, dec = self:get_preds({ dl = dl, with_input = true, with_decoded = true })
    local dec1, pred1 = dec[1], preds[1]
    local label = dec1
    if H.is_tensor(label) and label:dim() == 0 then label = label:item() end
    local vocab = self.dls.vocab
    if type(label) == 'number' and vocab then label = vocab[label] end
    -- multi-label: the names of the classes over the threshold
    if H.is_tensor(label) and label:dim() == 1 and vocab and label:numel() == #vocab then
      local names = {}
      for i, v in ipairs(label:totable()) do
        if v == true or (type(v) == 'number' and v ~= 0) then names[#names + 1] = vocab[i] end
      end
      label = names
    end
    return label, dec1, pred1
  end

  -- tta{ds_idx = 2, dl, n = 4, beta = 0.25, use_max = false, batch_tfms}:
  -- predictions averaged over n augmented passes, blended with a plain one.
  -- batch_tfms(x, y) -> x, y is the augmentation (or the loader's own
  -- training-time transforms when it has set_split_idx).
  function Learner:tta(opts)
    opts = opts or {}
    local n, beta = opts.n or 4, opts.beta
    if opts.beta == nil then beta = 0.25 end
    local dl = opts.dl or self.dls[opts.ds_idx or 2]
    local aug_dl = dl
    if opts.batch_tfms and dl.new then aug_dl = dl:new({ after_batch = opts.batch_tfms })
    elseif getmetatable(dl) == fc.data.DataLoader then
      -- fastai's set_split_idx(0): the training-time item and batch
      -- transforms, in item order
      aug_dl = dl:new({ split_idx = 1, shuffle = false, drop_last = false })
    end
    local aug, preds, targs
    self:no_logging(function() return self:_as_fit(function()
      self:no_mbar(function()
        local sum
        for i = 0, n - 1 do
          self.epoch = i
          local p = self:get_preds({ dl = aug_dl, inner = true })
          if sum == nil then sum = p
          elseif opts.use_max then sum = fc.where(p:gt(sum), p, sum)
          else sum = sum + p end
        end
        aug = opts.use_max and sum or sum / n
        self.epoch = n
        preds, targs = self:get_preds({ dl = dl, inner = true })
      end)
    end) end)
    self:_end_cleanup()
    if opts.use_max then return fc.where(preds:gt(aug), preds, aug), targs end
    if beta == false then return aug, preds, targs end
    return aug + (preds - aug) * beta, targs
  end

  -- ---- files ----------------------------------------------------------------------

  pcall(ffi.cdef, 'int mkdir(const char *path, unsigned int mode);')
  local function mkdir_p(dir)
    local path = ''
    for part in dir:gmatch('[^/]+') do
      path = (path == '' and dir:sub(1, 1) ~= '/') and part or path .. '/' .. part
      ffi.C.mkdir(path, 493) -- 0755; an existing directory is fine
    end
  end
  U.mkdir_p = mkdir_p

  local function join(...)
    local parts = {}
    for _, p in ipairs({ ... }) do
      if p ~= '' and p ~= '.' or #parts == 0 then parts[#parts + 1] = tostring(p) end
    end
    return (table.concat(parts, '/'):gsub('//+', '/'))
  end
  U.join = join

  local function file_exists(path)
    local f = io.open(path, 'rb')
    if f then f:close() end
    return f ~= nil
  end
  U.file_exists = file_exists

  function Learner:model_file(name)
    if not name:match('%.safetensors$') then name = name .. '.safetensors' end
    return join(self.path, self.model_dir, name)
  end

  local OPT_PREFIX = 'opt/'

  -- save(name, {with_opt = true}) -> path/model_dir/name.safetensors: the
  -- model's state dict under its own names, the optimizer under opt/.
  function Learner:save(name, opts)
    opts = opts or {}
    local file = self:model_file(name)
    mkdir_p(file:match('^(.*)/[^/]*$') or '.')
    local tensors, meta = {}, { format = 'fastc.learner' }
    for k, t in pairs(self.model:state_dict()) do tensors[k] = t end
    if opts.with_opt ~= false and self.opt then
      U.flatten(self.opt:state_dict(), OPT_PREFIX, tensors, meta)
      meta.with_opt = '1'
    end
    fc.save(tensors, file, meta)
    return file
  end

  -- load(name, {with_opt = true, strict = true})
  function Learner:load(name, opts)
    opts = opts or {}
    local file = self:model_file(name)
    if not file_exists(file) then error(fmt('load: no file %s', file), 2) end
    if not self.opt then self:create_opt() end
    local tensors, meta = fc.load(file)
    local model_sd = {}
    for k, t in pairs(tensors) do
      if k:sub(1, #OPT_PREFIX) ~= OPT_PREFIX then model_sd[k] = t end
    end
    self.model:load_state_dict(model_sd, { strict = opts.strict ~= false })
    if opts.with_opt ~= false and meta.with_opt == '1' then
      self.opt:load_state_dict(U.unflatten(OPT_PREFIX, tensors, meta))
    end
    return self
  end

  -- export(fname = 'export.safetensors'): weights plus a manifest of how to
  -- rebuild the Learner from registered constructors (see registry.lua).
  function Learner:export(fname)
    fname = join(self.path, fname or 'export.safetensors')
    mkdir_p(fname:match('^(.*)/[^/]*$') or '.')
    local model_recipe = fc.recipe_of(self.model)
    if not model_recipe then
      error('export: the model was not built by a registered constructor; build it with a function made by ' ..
        'fc.register(name, fn) so load_learner can rebuild it', 2)
    end
    local loss_recipe = fc.recipe_of(self.loss_func)
    if not loss_recipe then
      error('export: the loss function is not registered; use a registered loss or fc.register_value(name, loss)', 2)
    end
    local dls = self.dls or {}
    -- the data pipeline, so load_learner's predict can open files; a
    -- pipeline with a step that cannot be kept leaves predict to tensors
    local inference, no_pipeline = dls.inference, dls.no_pipeline
    if not inference and dls.inference_spec then inference, no_pipeline = dls:inference_spec() end
    local manifest = {
      model = model_recipe, loss_func = loss_recipe, opt_func = fc.recipe_of(self.opt_func),
      splitter = fc.recipe_of(self.splitter), lr = self.lr, wd = self.wd, moms = self.moms,
      wd_bn_bias = self.wd_bn_bias, train_bn = self.train_bn, model_dir = self.model_dir,
      dls = { c = dls.c, vocab = dls.vocab, n_inp = dls.n_inp }, inference = inference,
      no_pipeline = not inference and no_pipeline or nil,
    }
    local tensors, meta = {}, { format = 'fastc.export', version = '1' }
    for k, t in pairs(self.model:state_dict()) do tensors[k] = t end
    U.flatten(manifest, 'learner/', {}, meta)
    fc.save(tensors, fname, meta)
    return fname
  end

  -- fc.load_learner(fname): the exported Learner, ready for get_preds/predict.
  function fc.load_learner(fname, opts)
    opts = opts or {}
    local tensors, meta = fc.load(fname)
    if meta.format ~= 'fastc.export' then error(fmt('load_learner: %s was not written by learn:export', fname), 2) end
    local m = U.unflatten('learner/', {}, meta)
    local model = fc.from_recipe(m.model)
    model:load_state_dict(tensors)
    local loss_func = fc.from_recipe(m.loss_func)
    local d = m.dls or {}
    local dls = fc.data.DataLoaders.for_inference(m.inference,
      { loss_func = loss_func, c = d.c, vocab = d.vocab, n_inp = d.n_inp })
    dls.no_pipeline = m.no_pipeline
    return Learner(dls, model, { loss_func = loss_func, opt_func = m.opt_func and fc.from_recipe(m.opt_func),
      splitter = m.splitter and fc.from_recipe(m.splitter), lr = m.lr, wd = m.wd, moms = m.moms,
      wd_bn_bias = m.wd_bn_bias, train_bn = m.train_bn, model_dir = m.model_dir, path = opts.path, cbs = opts.cbs })
  end

  -- ---- inspection ------------------------------------------------------------------

  local LOOP = { 'Start Fit', 'before_fit', 'Start Epoch Loop', 'before_epoch', 'Start Train', 'before_train',
    'Start Batch Loop', 'before_batch', 'after_pred', 'after_loss', 'before_backward', 'after_cancel_backward',
    'after_backward', 'before_step', 'after_cancel_step', 'after_step', 'after_cancel_batch', 'after_batch',
    'End Batch Loop', 'End Train', 'after_cancel_train', 'after_train', 'Start Valid', 'before_validate',
    'Start Batch Loop', '**CBs same as train batch**', 'End Batch Loop', 'End Valid', 'after_cancel_validate',
    'after_validate', 'End Epoch Loop', 'after_cancel_epoch', 'after_epoch', 'End Fit', 'after_cancel_fit',
    'after_fit' }

  -- The loop with the callbacks that run at each event; returns the text.
  function Learner:show_training_loop()
    local indent, lines = 0, {}
    for _, s in ipairs(LOOP) do
      if s:match('^Start') then
        lines[#lines + 1] = string.rep(' ', indent) .. s
        indent = indent + 2
      elseif s:match('^End') then
        indent = indent - 2
        lines[#lines + 1] = string.rep(' ', indent) .. s
      else
        local names = {}
        for i, cb in ipairs(self:ordered_cbs(s)) do names[i] = tostring(cb) end
        lines[#lines + 1] = fmt('%s - %-22s: [%s]', string.rep(' ', indent), s, table.concat(names, ', '))
      end
    end
    local text = table.concat(lines, '\n')
    print(text)
    return text
  end

  local function shape_str(t)
    if not H.is_tensor(t) then return '' end
    local s = t:size()
    s[1] = s[1] -- batch size kept as is
    return table.concat(s, ' x ')
  end

  local function commas(n)
    local s = tostring(n)
    local out = s:reverse():gsub('(%d%d%d)', '%1,'):reverse()
    return (out:gsub('^,', ''))
  end

  -- summary(): each leaf layer's output shape, parameter count and whether
  -- it trains, on one batch of the training data; returns the text.
  function Learner:summary()
    local b = { self.dls.train:one_batch() }
    local n_inp = self.dls.n_inp or (#b == 1 and 1 or #b - 1)
    local xb = {}
    for i = 1, n_inp do xb[i] = b[i]:narrow(1, 1, 1) end
    local rows, handles = {}, {}
    for _, m in ipairs(self.model:modules()) do
      if #m:children() == 0 then
        handles[#handles + 1] = m:register_forward_hook(function(mod, _, out)
          local n, trainable = 0, nil
          for _, p in ipairs(mod:parameters()) do
            n = n + p:numel()
            if trainable == nil then trainable = p.requires_grad end
          end
          rows[#rows + 1] = { mod:class_name(), shape_str(out), n, trainable }
        end)
      end
    end
    local was_training = self.model.training
    self.model:eval()
    finally(function() fc.no_grad(function() self.model(unpack(xb)) end) end, function()
      for _, h in ipairs(handles) do h.remove() end
      self.model:train(was_training)
    end)
    local width = 76
    local lines = { fmt('%s (Input shape: %s)', self.model:class_name(), shape_str(xb[1])), string.rep('=', width),
      fmt('%-20s %-20s %-12s %-10s', 'Layer (type)', 'Output Shape', 'Param #', 'Trainable'), string.rep('=', width) }
    local total, trainable_total = 0, 0
    for _, r in ipairs(rows) do
      lines[#lines + 1] = fmt('%-20s %-20s %-12s %-10s', r[1], r[2], r[3] > 0 and commas(r[3]) or '',
        r[4] == nil and '' or tostring(r[4]))
      total = total + r[3]
      if r[4] then trainable_total = trainable_total + r[3] end
    end
    lines[#lines + 1] = string.rep('_', width)
    lines[#lines + 1] = fmt('Total params: %s', commas(total))
    lines[#lines + 1] = fmt('Total trainable params: %s', commas(trainable_total))
    lines[#lines + 1] = fmt('Total non-trainable params: %s', commas(total - trainable_total))
    lines[#lines + 1] = ''
    local of = self.opt_func
    local of_name = type(of) == 'table' and rawget(of, '__name') or (fc.recipe_of(of) or {}).value or tostring(of)
    lines[#lines + 1] = fmt('Optimizer used: %s', of_name)
    lines[#lines + 1] = fmt('Loss function: %s', tostring(self.loss_func))
    if self.opt then
      local fi = self.opt.frozen_idx or 0
      lines[#lines + 1] = fi == 0 and 'Model unfrozen' or fmt('Model frozen up to parameter group #%d', fi)
    end
    lines[#lines + 1] = 'Callbacks:'
    for _, cb in ipairs(self:sorted_cbs()) do lines[#lines + 1] = '  - ' .. tostring(cb) end
    return table.concat(lines, '\n')
  end

  return Learner
end
