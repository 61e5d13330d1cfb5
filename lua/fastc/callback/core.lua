-- lua/fastc/callback/core.lua — fc.Callback, the event list, the
-- cancellation exceptions, TrainEvalCallback and GatherPredsCallback.
--
-- A callback is a class or a plain table of event handlers:
--
--   local Print = fc.Callback{ name = 'print', order = 60,
--     after_batch = function(self) print(self.loss:item()) end }
--   local Mine = fc.Callback:extend('MineCallback')   -- learn.mine
--   function Mine:before_fit() ... end
--
-- Inside a handler `self.x` reads the Learner's x (model, opt, epoch, ...)
-- when the callback has no field of that name; write through self.learn.
return function(fc, Tensor, H)
  local class = fc.class
  local fmt = string.format
  local ffi = require 'ffi'

  -- fastai's events, in the order the training loop reaches them.
  local EVENTS = { 'after_create', 'before_fit', 'before_epoch', 'before_train', 'before_batch', 'after_pred',
    'after_loss', 'before_backward', 'after_cancel_backward', 'after_backward', 'before_step',
    'after_cancel_step', 'after_step', 'after_cancel_batch', 'after_batch', 'after_cancel_train',
    'after_train', 'before_validate', 'after_cancel_validate', 'after_validate', 'after_cancel_epoch',
    'after_epoch', 'after_cancel_fit', 'after_fit' }
  local IS_EVENT = {}
  for _, e in ipairs(EVENTS) do IS_EVENT[e] = true end
  fc.events = EVENTS
  fc.event = {}
  for _, e in ipairs(EVENTS) do fc.event[e] = e end

  -- Batch-level events: the only ones run_train/run_valid filter.
  local INNER_LOOP = {}
  for _, e in ipairs { 'before_batch', 'after_pred', 'after_loss', 'before_backward', 'after_cancel_backward',
    'after_backward', 'before_step', 'after_step', 'after_cancel_batch', 'after_batch' } do INNER_LOOP[e] = true end

  -- ---- helpers shared by the training modules (fc.train_util) ------------------

  local U = {}
  fc.train_util = U

  -- 'LRFinder' -> 'lr_finder', 'ProgressCallback' -> 'progress' (fastai's class2attr).
  function U.snake_name(class_name, suffix)
    suffix = suffix or 'Callback'
    local base = class_name
    if #class_name > #suffix and class_name:sub(-#suffix) == suffix then base = class_name:sub(1, -#suffix - 1) end
    if base == class_name and class_name == suffix then return suffix:lower() end
    base = base:gsub('(.)(%u%l+)', '%1_%2'):gsub('([%l%d])(%u)', '%1_%2')
    return base:lower()
  end

  pcall(ffi.cdef, [[
    struct fc_timeval_ { long tv_sec; long tv_usec; };
    int gettimeofday(struct fc_timeval_ *tv, void *tz);
    int isatty(int fd);
  ]])
  local tv = ffi.new('struct fc_timeval_')
  function U.now()
    ffi.C.gettimeofday(tv, nil)
    return tonumber(tv.tv_sec) + tonumber(tv.tv_usec) * 1e-6
  end
  function U.isatty(fd) return ffi.C.isatty(fd or 1) == 1 end

  -- fastprogress's format_time: mm:ss, or h:mm:ss past an hour.
  function U.format_time(t)
    t = math.floor(t + 0.5)
    local h, m, s = math.floor(t / 3600), math.floor(t / 60) % 60, t % 60
    if h > 0 then return fmt('%d:%02d:%02d', h, m, s) end
    return fmt('%02d:%02d', m, s)
  end

  function U.noop() end

  function U.to_number(v)
    if H.is_tensor(v) then return v:item() end
    return v
  end

  -- Reads a metric field that may be a value or a method (value, name).
  function U.get(obj, k)
    local v = obj[k]
    if type(v) == 'function' then return v(obj) end
    return v
  end

  -- The batch size of a tuple of targets (or inputs).
  function U.find_bs(b)
    local t = b[1]
    while type(t) == 'table' and not H.is_tensor(t) do t = t[1] end
    if not t then error('find_bs: empty batch', 2) end
    return t:size(1)
  end

  function U.detuple(t)
    if type(t) == 'table' and not H.is_tensor(t) and #t == 1 then return t[1] end
    return t
  end

  -- Calls a loss with reduction 'none': loss objects carry a reduction
  -- field; plain functions (fc.F.*) take it as a trailing options table.
  function U.unreduced(lf, pred, ...)
    if type(lf) == 'table' and rawget(lf, 'reduction') ~= nil or (type(lf) == 'table' and lf.reduction ~= nil) then
      local old = lf.reduction
      lf.reduction = 'none'
      local ok, res = pcall(lf, pred, ...)
      lf.reduction = old
      if not ok then error(res, 0) end
      return res
    end
    local args = { ... }
    args[#args + 1] = { reduction = 'none' }
    return lf(pred, unpack(args))
  end

  -- ---- cancellation exceptions -------------------------------------------------

  local Exception = {}
  Exception.__index = Exception
  Exception.__tostring = function(e) return e.name end
  Exception.__call = function(cls) return cls end -- error(fc.CancelBatchException()) works too
  local DOCS = {
    CancelBatchException = 'skip the rest of this batch and go to after_batch',
    CancelTrainException = 'skip the rest of the training part of the epoch and go to after_train',
    CancelValidException = 'skip the rest of the validation part of the epoch and go to after_validate',
    CancelEpochException = 'skip the rest of this epoch and go to after_epoch',
    CancelStepException = 'skip stepping the optimizer',
    CancelBackwardException = 'skip the backward pass and go to after_backward',
    CancelFitException = 'interrupt training and go to after_fit',
  }
  local IS_CANCEL = {}
  for name, doc in pairs(DOCS) do
    local e = setmetatable({ name = name, doc = doc }, Exception)
    fc[name] = e
    IS_CANCEL[e] = true
  end
  function U.is_cancel(e) return IS_CANCEL[e] == true end

  -- ---- Callback --------------------------------------------------------------------

  local Callback = class('Callback')
  fc.Callback = Callback
  Callback.order, Callback.run, Callback.run_train, Callback.run_valid = 0, true, true, true

  -- Fields of the class chain, then the Learner's (fastai's GetAttr).
  Callback.__index = function(self, k)
    local v = getmetatable(self)[k]
    if v ~= nil then return v end
    if k == 'name' then return U.snake_name(getmetatable(self).__name) end
    local learn = rawget(self, 'learn')
    if learn then return learn[k] end
  end
  Callback.__tostring = function(self)
    local cls_name, name = getmetatable(self).__name, rawget(self, 'name')
    if cls_name == 'Callback' and name then return name end
    return cls_name
  end

  -- fc.Callback{...}: a callback made of the given fields.
  function Callback:init(fields)
    for k, v in pairs(fields or {}) do self[k] = v end
  end

  -- The handler of an event: the instance's own field or its class's,
  -- never the Learner's.
  local function handler(cb, event)
    local f = rawget(cb, event)
    if f == nil then f = getmetatable(cb)[event] end
    return f
  end
  U.handler = handler

  -- cb(event): runs the handler if the run flags allow it. Errors other than
  -- the cancellations come back with the callback and the event named.
  Callback.__call = function(self, event)
    local run = not INNER_LOOP[event] or (self.run_train and self.training ~= false)
      or (self.run_valid and not self.training)
    local res
    if self.run and run then
      local f = handler(self, event)
      if f then
        local ok, r = pcall(f, self)
        if not ok then
          if U.is_cancel(r) then error(r, 0) end
          error(fmt('exception in callback %s at event %s: %s', tostring(self), event, tostring(r)), 0)
        end
        res = r
      end
    end
    if event == 'after_fit' then rawset(self, 'run', true) end -- each fit starts with run on
    return res
  end

  -- Optimal string alignment distance, for catching misspelt event names.
  local function distance(a, b)
    local la, lb = #a, #b
    if math.abs(la - lb) > 2 then return 3 end
    local d = {}
    for i = 0, la do d[i] = { [0] = i } end
    for j = 0, lb do d[0][j] = j end
    for i = 1, la do
      for j = 1, lb do
        local cost = a:byte(i) == b:byte(j) and 0 or 1
        d[i][j] = math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
        if i > 1 and j > 1 and a:byte(i) == b:byte(j - 1) and a:byte(i - 1) == b:byte(j) then
          d[i][j] = math.min(d[i][j], d[i - 2][j - 2] + 1)
        end
      end
    end
    return d[la][lb]
  end

  local function closest_event(name)
    local best, best_d = nil, 3
    for _, e in ipairs(EVENTS) do
      local dd = distance(name, e)
      if dd < best_d then best, best_d = e, dd end
    end
    return best
  end

  -- Every function field of a callback whose name reads like an event must
  -- be one: a misspelt hook is an error, not a handler that never runs.
  function U.check_events(cb)
    local seen, cls = {}, getmetatable(cb)
    local function check(tbl)
      for k, v in pairs(tbl) do
        if type(k) == 'string' and type(v) == 'function' and not seen[k] and not IS_EVENT[k] then
          seen[k] = true
          local near = closest_event(k)
          if near or k:match('^before_') or k:match('^after_') then
            error(fmt("callback %s: '%s' is not an event%s (events: %s)", tostring(cb), k,
              near and fmt("; did you mean '%s'?", near) or '', table.concat(EVENTS, ' ')), 0)
          end
        end
      end
    end
    check(cb)
    while cls and cls ~= Callback do
      check(cls)
      cls = rawget(cls, 'super')
    end
  end

  -- ---- TrainEvalCallback -------------------------------------------------------

  local TrainEvalCallback = Callback:extend('TrainEvalCallback')
  fc.TrainEvalCallback = TrainEvalCallback
  TrainEvalCallback.order, TrainEvalCallback.run_valid = -10, false

  function TrainEvalCallback:after_create() self.learn.n_epoch = 1 end
  function TrainEvalCallback:before_fit()
    local learn = self.learn
    learn.epoch, learn.loss = 0, fc.zeros({})
    learn.train_iter, learn.pct_train = 0, 0
    if type(learn.model.reset) == 'function' then learn.model:reset() end
  end
  function TrainEvalCallback:after_batch()
    local learn = self.learn
    learn.pct_train = learn.pct_train + 1 / (learn.n_iter * learn.n_epoch)
    learn.train_iter = learn.train_iter + 1
  end
  function TrainEvalCallback:before_train()
    local learn = self.learn
    learn.pct_train = learn.epoch / learn.n_epoch
    learn.model:train()
    learn.training = true
  end
  function TrainEvalCallback:before_validate()
    self.learn.model:eval()
    self.learn.training = false
  end

  -- ---- GatherPredsCallback -----------------------------------------------------

  local function concat(list)
    if #list == 0 then return nil end
    if #list == 1 then return list[1] end
    return fc.cat(list, 1)
  end

  -- Gathers predictions and targets (and inputs, per-item losses) of a
  -- validation pass; used by get_preds.
  local GatherPredsCallback = Callback:extend('GatherPredsCallback')
  fc.GatherPredsCallback = GatherPredsCallback
  function GatherPredsCallback:init(opts)
    opts = opts or {}
    self.with_input, self.with_loss = opts.with_input or false, opts.with_loss or false
    self.with_preds = opts.with_preds ~= false
    self.with_targs = opts.with_targs ~= false
  end
  function GatherPredsCallback:before_validate()
    self.preds, self.targets, self.inputs, self.losses = {}, {}, {}, {}
  end
  function GatherPredsCallback:before_batch()
    if self.with_input then self.inputs[#self.inputs + 1] = self.learn.xb end
  end
  function GatherPredsCallback:after_batch()
    local learn = self.learn
    if learn.pred == nil then return end
    if self.with_preds then self.preds[#self.preds + 1] = learn.pred:detach() end
    if self.with_targs then self.targets[#self.targets + 1] = learn.yb end
    if self.with_loss then
      local bs, loss = U.find_bs(learn.yb), learn.loss
      if loss:numel() ~= bs then loss = loss:view(bs, -1):mean(2) end
      self.losses[#self.losses + 1] = loss:detach()
    end
  end

  -- Concatenates a list of tuples position by position; a 1-tuple gives
  -- its tensor, an empty one nil.
  local function concat_tuples(list)
    if #list == 0 then return nil end
    local out = {}
    for j = 1, #list[1] do
      local parts = {}
      for i, tup in ipairs(list) do parts[i] = tup[j] end
      out[j] = concat(parts)
    end
    return U.detuple(out)
  end

  function GatherPredsCallback:after_validate()
    self.all_preds = concat(self.preds)
    self.all_targets = concat_tuples(self.targets)
    self.all_inputs = self.with_input and concat_tuples(self.inputs) or nil
    self.all_losses = self.with_loss and concat(self.losses) or nil
  end

  return Callback
end
