-- lua/fastc/callback/recorder.lua — Recorder (default callback): the
-- smoothed training loss and lr per batch, the loss and metrics per epoch,
-- and the epoch log handed to learn.logger; plot_loss / plot_lr.
--
-- Metrics follow fastai's protocol (fc.metrics): reset(), accumulate(learn),
-- value and name. A plain function f(pred, y) becomes an average over items
-- (AvgMetric).
return function(fc, Tensor, H)
  local class, fmt = fc.class, string.format
  local U = fc.train_util

  local M = fc.metrics

  -- A metric from a function, a Metric instance or a Metric class.
  function U.mk_metric(m)
    if U.is_class(m) then m = m() end
    if type(m) == 'table' and m.accumulate then return m end
    if type(m) == 'function' or (type(m) == 'table' and getmetatable(m) and getmetatable(m).__call) then
      return M.mk_metric(m)
    end
    error(fmt('metrics: expected a function or a Metric, got %s', type(m)), 3)
  end

  local value_of = function(m) return U.to_number(U.get(m, 'value')) end

  local Recorder = fc.Callback:extend('Recorder')
  fc.Recorder = Recorder
  Recorder.order = 50

  function Recorder:init(opts)
    opts = opts or {}
    self.add_time = opts.add_time ~= false
    self.train_metrics, self.valid_metrics = opts.train_metrics or false, opts.valid_metrics ~= false
    self.loss_metric = M.AvgLoss()
    self.smooth_loss_metric = M.AvgSmoothLoss(opts.beta or 0.98)
  end

  function Recorder:before_fit()
    self.lrs, self.iters, self.losses, self.values = {}, {}, {}, {}
    local names = {}
    for i, m in ipairs(self.learn.metrics) do names[i] = U.get(m, 'name') end
    local out = { 'epoch' }
    local function add(prefix, list) for _, n in ipairs(list) do out[#out + 1] = prefix .. n end end
    if self.train_metrics and self.valid_metrics then
      add('train_', { 'loss', unpack(names) })
      add('valid_', { 'loss', unpack(names) })
    elseif self.valid_metrics then
      add('', { 'train_loss', 'valid_loss', unpack(names) })
    else
      add('', { 'train_loss', unpack(names) })
    end
    if self.add_time then out[#out + 1] = 'time' end
    self.metric_names = out
    self.smooth_loss_metric:reset()
  end

  function Recorder:_train_mets()
    if self.cancel_train then return {} end
    local out = { self.smooth_loss_metric }
    if self.train_metrics then for _, m in ipairs(self.learn.metrics) do out[#out + 1] = m end end
    return out
  end

  function Recorder:_valid_mets()
    if self.cancel_valid or not self.valid_metrics then return {} end
    local out = { self.loss_metric }
    for _, m in ipairs(self.learn.metrics) do out[#out + 1] = m end
    return out
  end

  function Recorder:after_batch()
    local learn = self.learn
    if #learn.yb == 0 then return end
    local mets = learn.training and self:_train_mets() or self:_valid_mets()
    for _, m in ipairs(mets) do m:accumulate(learn) end
    if not learn.training then return end
    local hypers = learn.opt.hypers
    self.lrs[#self.lrs + 1] = hypers[#hypers].lr
    local smooth = value_of(self.smooth_loss_metric)
    self.losses[#self.losses + 1] = smooth
    learn.smooth_loss = smooth
  end

  function Recorder:before_epoch()
    self.cancel_train, self.cancel_valid = false, false
    if self.add_time then self.start_epoch = U.now() end
    self.log = { self.learn.epoch or 0 }
  end

  function Recorder:before_train()
    local mets = self:_train_mets()
    for i = 2, #mets do mets[i]:reset() end
  end
  function Recorder:before_validate()
    for _, m in ipairs(self:_valid_mets()) do m:reset() end
  end
  function Recorder:after_train()
    if not self.log then return end
    for _, m in ipairs(self:_train_mets()) do self.log[#self.log + 1] = value_of(m) end
  end
  function Recorder:after_validate()
    if not self.log then return end
    for _, m in ipairs(self:_valid_mets()) do self.log[#self.log + 1] = value_of(m) end
  end
  function Recorder:after_cancel_train() self.cancel_train = true end
  function Recorder:after_cancel_validate() self.cancel_valid = true end

  function Recorder:after_epoch()
    if not self.log then return end -- before_epoch was cancelled before reaching us
    local record = {}
    for i = 2, #self.log do record[i - 1] = self.log[i] end
    self.learn.final_record = record
    self.values[#self.values + 1] = record
    if self.add_time then self.log[#self.log + 1] = U.format_time(U.now() - self.start_epoch) end
    self.learn.logger(self.log)
    self.iters[#self.iters + 1] = self.smooth_loss_metric.count
    self.log = nil
  end

  local function plot(opts)
    if not (fc.plot and fc.plot.lines) then error('plotting needs fc.plot.lines, which this build lacks', 3) end
    if opts.path then U.mkdir_p(opts.path:match('^(.*)/[^/]*$') or '.') end
    local path = fc.plot.lines(opts)
    return path
  end
  U.plot = plot

  local function range(a, b)
    local out = {}
    for i = a, b do out[#out + 1] = i end
    return out
  end

  -- plot_loss{skip_start = 5, with_valid = true, path}: the smoothed
  -- training loss per batch and the validation loss per epoch.
  function Recorder:plot_loss(opts)
    opts = opts or {}
    local skip = opts.skip_start or 5
    local series = { { x = range(skip, #self.losses - 1), y = { unpack(self.losses, skip + 1) }, label = 'train' } }
    if opts.with_valid ~= false then
      local xs, ys = {}, {}
      for i, it in ipairs(self.iters) do
        if it >= skip and self.values[i] and self.values[i][2] then
          xs[#xs + 1], ys[#ys + 1] = it, self.values[i][2]
        end
      end
      series[2] = { x = xs, y = ys, label = 'valid' }
    end
    return plot({ series = series, title = 'Loss', xlabel = 'iteration', ylabel = 'loss',
      path = opts.path or U.join(self.learn.path, 'loss.png') })
  end

  -- plot_lr{path}: the learning rate per training batch.
  function Recorder:plot_lr(opts)
    opts = opts or {}
    return plot({ series = { { x = range(0, #self.lrs - 1), y = self.lrs, label = 'lr' } }, title = 'Learning rate',
      xlabel = 'iteration', ylabel = 'lr', path = opts.path or U.join(self.learn.path, 'lr.png') })
  end

  table.insert(fc.defaults.callbacks, Recorder)
end
