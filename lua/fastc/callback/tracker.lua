-- lua/fastc/callback/tracker.lua — TerminateOnNaNCallback and the callbacks
-- that track a monitored value per epoch: EarlyStoppingCallback,
-- SaveModelCallback, ReduceLROnPlateau.
return function(fc, Tensor, H)
  local fmt = string.format
  local U = fc.train_util
  local Callback = fc.Callback

  local function say(learn, ...)
    if learn.logger ~= U.noop then print(fmt(...)) end
  end

  local TerminateOnNaNCallback = Callback:extend('TerminateOnNaNCallback')
  fc.TerminateOnNaNCallback = TerminateOnNaNCallback
  TerminateOnNaNCallback.order = -9
  function TerminateOnNaNCallback:after_batch()
    local loss = self.learn.loss
    if loss == nil then return end
    local v = loss:mean():item()
    if v ~= v or v == math.huge or v == -math.huge then error(fc.CancelFitException) end
  end

  local less = function(a, b) return a < b end
  local greater = function(a, b) return a > b end
  fc.less, fc.greater = less, greater

  -- TrackerCallback{monitor = 'valid_loss', comp, min_delta = 0, reset_on_fit = true}
  local TrackerCallback = Callback:extend('TrackerCallback')
  fc.TrackerCallback = TrackerCallback
  TrackerCallback.order = 60
  function TrackerCallback:init(opts)
    opts = opts or {}
    local monitor = opts.monitor or 'valid_loss'
    local comp = opts.comp
    if comp == nil then comp = (monitor:find('loss') or monitor:find('error')) and less or greater end
    local min_delta = opts.min_delta or 0
    if comp == less then min_delta = -min_delta end
    self.monitor, self.comp, self.min_delta = monitor, comp, min_delta
    self.reset_on_fit = opts.reset_on_fit ~= false
    self.best = nil
  end
  function TrackerCallback:before_fit()
    local learn = self.learn
    self.run = not learn.lr_finder and not learn.gather_preds
    if self.reset_on_fit or self.best == nil then self.best = self.comp == less and math.huge or -math.huge end
    if not learn.recorder then error('TrackerCallback needs the Recorder', 0) end
    local names = learn.recorder.metric_names
    self.idx = nil
    for i = 2, #names do
      if names[i] == self.monitor then self.idx = i - 1 end
    end
    if not self.idx then
      error(fmt("%s: monitor '%s' is not one of %s", tostring(self), self.monitor,
        table.concat(names, ', ', 2)), 0)
    end
  end
  function TrackerCallback:after_epoch()
    local val = self.learn.recorder.values[#self.learn.recorder.values][self.idx]
    if val ~= nil and self.comp(val - self.min_delta, self.best) then
      self.best, self.new_best = val, true
    else
      self.new_best = false
    end
  end
  function TrackerCallback:after_fit() self.run = true end

  -- EarlyStoppingCallback{monitor, comp, min_delta, patience = 1, reset_on_fit}
  local EarlyStoppingCallback = TrackerCallback:extend('EarlyStoppingCallback')
  fc.EarlyStoppingCallback = EarlyStoppingCallback
  function EarlyStoppingCallback:init(opts)
    TrackerCallback.init(self, opts)
    self.patience = (opts or {}).patience or 1
  end
  function EarlyStoppingCallback:before_fit()
    self.wait = 0
    TrackerCallback.before_fit(self)
  end
  function EarlyStoppingCallback:after_epoch()
    TrackerCallback.after_epoch(self)
    if self.new_best then
      self.wait = 0
    else
      self.wait = self.wait + 1
      if self.wait >= self.patience then
        say(self.learn, 'No improvement since epoch %d: early stopping', self.learn.epoch - self.wait)
        error(fc.CancelFitException)
      end
    end
  end

  -- SaveModelCallback{monitor, comp, min_delta, fname = 'model', every_epoch = false,
  -- with_opt = false, reset_on_fit}: saves the best model (or every epoch,
  -- or every n epochs) and loads the best one back after fit.
  local SaveModelCallback = TrackerCallback:extend('SaveModelCallback')
  fc.SaveModelCallback = SaveModelCallback
  function SaveModelCallback:init(opts)
    opts = opts or {}
    TrackerCallback.init(self, opts)
    self.fname, self.every_epoch, self.with_opt = opts.fname or 'model', opts.every_epoch or false, opts.with_opt or false
    self.last_saved_path = nil
  end
  function SaveModelCallback:_save(name)
    self.last_saved_path = self.learn:save(name, { with_opt = self.with_opt })
  end
  function SaveModelCallback:after_epoch()
    local learn = self.learn
    if self.every_epoch then
      local every = self.every_epoch == true and 1 or self.every_epoch
      if learn.epoch % every == 0 then self:_save(fmt('%s_%d', self.fname, learn.epoch)) end
    else
      TrackerCallback.after_epoch(self)
      if self.new_best then
        say(learn, 'Better model found at epoch %d with %s value: %g.', learn.epoch, self.monitor, self.best)
        self:_save(self.fname)
      end
    end
  end
  function SaveModelCallback:after_fit()
    if not self.every_epoch and self.last_saved_path then self.learn:load(self.fname, { with_opt = self.with_opt }) end
    self.run = true
  end

  -- ReduceLROnPlateau{monitor, comp, min_delta, patience = 1, factor = 10, min_lr = 0, reset_on_fit}
  local ReduceLROnPlateau = TrackerCallback:extend('ReduceLROnPlateau')
  fc.ReduceLROnPlateau = ReduceLROnPlateau
  function ReduceLROnPlateau:init(opts)
    opts = opts or {}
    TrackerCallback.init(self, opts)
    self.patience, self.factor, self.min_lr = opts.patience or 1, opts.factor or 10, opts.min_lr or 0
  end
  function ReduceLROnPlateau:before_fit()
    self.wait = 0
    TrackerCallback.before_fit(self)
  end
  function ReduceLROnPlateau:after_epoch()
    TrackerCallback.after_epoch(self)
    if self.new_best then
      self.wait = 0
      return
    end
    self.wait = self.wait + 1
    if self.wait >= self.patience then
      local hypers = self.learn.opt.hypers
      local old = hypers[#hypers].lr
      for _, h in ipairs(hypers) do h.lr = math.max(h.lr / self.factor, self.min_lr) end
      self.wait = 0
      if hypers[#hypers].lr < old then
        say(self.learn, 'Epoch %d: reducing lr to %g', self.learn.epoch, hypers[#hypers].lr)
      end
    end
  end
end
