-- lua/fastc/callback/schedule.lua — ParamScheduler, LRFinder and the fit
-- policies built on them: fit_one_cycle, fit_flat_cos, fit_sgdr, fine_tune,
-- lr_find with the valley/slide/minimum/steep suggestions.
return function(fc, Tensor, H)
  local fmt = string.format
  local U = fc.train_util
  local Callback, Learner = fc.Callback, fc.Learner

  -- ParamScheduler{lr = sched, mom = sched}: sets each hyper-parameter to
  -- sched(pct_train) before every training batch and records it.
  local ParamScheduler = Callback:extend('ParamScheduler')
  fc.ParamScheduler = ParamScheduler
  ParamScheduler.order, ParamScheduler.run_valid = 60, false

  function ParamScheduler:init(scheds)
    if type(scheds) ~= 'table' then error('ParamScheduler: expected a table of name = schedule', 3) end
    self.scheds = scheds
  end
  function ParamScheduler:before_fit()
    self.hps = {}
    for name in pairs(self.scheds) do self.hps[name] = {} end
  end
  function ParamScheduler:_update_val(pct)
    for name, f in pairs(self.scheds) do self.learn.opt:set_hyper(name, f(pct)) end
  end
  function ParamScheduler:before_batch() self:_update_val(self.learn.pct_train) end
  function ParamScheduler:after_batch()
    local hypers = self.learn.opt.hypers
    for name in pairs(self.scheds) do
      local list = self.hps[name]
      list[#list + 1] = hypers[#hypers][name]
    end
  end
  function ParamScheduler:after_fit()
    if self.learn.recorder and self.hps then self.learn.recorder.hps = self.hps end
  end

  local function hyper_list(opt, name)
    local out = {}
    for i, h in ipairs(opt.hypers) do out[i] = h[name] end
    return out
  end
  local function scaled(list, f)
    local out = {}
    for i, v in ipairs(list) do out[i] = f(v) end
    return out
  end
  local function with_cbs(first, opts)
    local cbs = { first }
    for _, cb in ipairs(U.list(opts.cbs)) do cbs[#cbs + 1] = cb end
    return cbs
  end
  local function check_opts(name, opts, allowed)
    for k in pairs(opts) do
      if not allowed[k] then error(fmt('%s: unknown option %q', name, tostring(k)), 3) end
    end
  end

  -- fit_one_cycle(n_epoch, lr_max, {div = 25, div_final = 1e5, pct_start = 0.25,
  -- wd, moms, cbs, reset_opt, start_epoch}): lr warms up from lr_max/div to
  -- lr_max over pct_start of training then anneals to lr_max/div_final
  -- (both cosine); momentum goes the opposite way through moms.
  local ONE_CYCLE = { div = true, div_final = true, pct_start = true, wd = true, moms = true, cbs = true,
    reset_opt = true, start_epoch = true }
  function Learner:fit_one_cycle(n_epoch, lr_max, opts)
    opts = opts or {}
    check_opts('fit_one_cycle', opts, ONE_CYCLE)
    if not self.opt then self:create_opt() end
    self.opt:set_hyper('lr', lr_max == nil and self.lr or lr_max)
    local lrs = hyper_list(self.opt, 'lr')
    local div, div_final, pct = opts.div or 25, opts.div_final or 1e5, opts.pct_start or 0.25
    local moms = opts.moms or self.moms
    local scheds = {
      lr = fc.combined_cos(pct, scaled(lrs, function(v) return v / div end), lrs,
        scaled(lrs, function(v) return v / div_final end)),
      mom = fc.combined_cos(pct, moms[1], moms[2], moms[3]),
    }
    self:fit(n_epoch, nil, { cbs = with_cbs(ParamScheduler(scheds), opts), reset_opt = opts.reset_opt, wd = opts.wd,
      start_epoch = opts.start_epoch })
  end

  -- fit_flat_cos(n_epoch, lr, {div_final = 1e5, pct_start = 0.75, wd, cbs, reset_opt, start_epoch})
  local FLAT_COS = { div_final = true, pct_start = true, wd = true, cbs = true, reset_opt = true, start_epoch = true }
  function Learner:fit_flat_cos(n_epoch, lr, opts)
    opts = opts or {}
    check_opts('fit_flat_cos', opts, FLAT_COS)
    if not self.opt then self:create_opt() end
    self.opt:set_hyper('lr', lr == nil and self.lr or lr)
    local lrs = hyper_list(self.opt, 'lr')
    local div_final = opts.div_final or 1e5
    local scheds = { lr = fc.combined_cos(opts.pct_start or 0.75, lrs, lrs,
      scaled(lrs, function(v) return v / div_final end)) }
    self:fit(n_epoch, nil, { cbs = with_cbs(ParamScheduler(scheds), opts), reset_opt = opts.reset_opt, wd = opts.wd,
      start_epoch = opts.start_epoch })
  end

  -- fit_sgdr(n_cycles, cycle_len, lr_max, {cycle_mult = 2, wd, cbs, reset_opt, start_epoch}):
  -- cosine restarts, cycle i lasting cycle_len * cycle_mult^i epochs.
  local SGDR = { cycle_mult = true, wd = true, cbs = true, reset_opt = true, start_epoch = true }
  function Learner:fit_sgdr(n_cycles, cycle_len, lr_max, opts)
    opts = opts or {}
    check_opts('fit_sgdr', opts, SGDR)
    if not self.opt then self:create_opt() end
    self.opt:set_hyper('lr', lr_max == nil and self.lr or lr_max)
    local lrs = hyper_list(self.opt, 'lr')
    local mult = opts.cycle_mult or 2
    local n_epoch = mult == 1 and cycle_len * n_cycles or math.floor(cycle_len * (mult ^ n_cycles - 1) / (mult - 1))
    local pcts, scheds = {}, {}
    for i = 0, n_cycles - 1 do
      pcts[i + 1] = cycle_len * mult ^ i / n_epoch
      scheds[i + 1] = fc.SchedCos(lrs, 0)
    end
    self:fit(n_epoch, nil, { cbs = with_cbs(ParamScheduler({ lr = fc.combine_scheds(pcts, scheds) }), opts),
      reset_opt = opts.reset_opt, wd = opts.wd, start_epoch = opts.start_epoch })
  end

  -- fine_tune(epochs, base_lr = 2e-3, {freeze_epochs = 1, lr_mult = 100,
  -- pct_start = 0.3, div = 5, ...fit_one_cycle options}): the head alone
  -- first, then everything with discriminative rates.
  function Learner:fine_tune(epochs, base_lr, opts)
    opts = opts or {}
    base_lr = base_lr or 2e-3
    local rest = {}
    for k, v in pairs(opts) do
      if k ~= 'freeze_epochs' and k ~= 'lr_mult' and k ~= 'pct_start' and k ~= 'div' then rest[k] = v end
    end
    local function with(extra)
      local o = {}
      for k, v in pairs(rest) do o[k] = v end
      for k, v in pairs(extra) do o[k] = v end
      return o
    end
    self:freeze()
    self:fit_one_cycle(opts.freeze_epochs or 1, fc.slice(base_lr), with({ pct_start = 0.99 }))
    base_lr = base_lr / 2
    self:unfreeze()
    self:fit_one_cycle(epochs, fc.slice(base_lr / (opts.lr_mult or 100), base_lr),
      with({ pct_start = opts.pct_start or 0.3, div = opts.div or 5 }))
  end

  -- ---- LRFinder --------------------------------------------------------------------

  -- Trains with an exponentially growing lr until num_it batches or until
  -- the smoothed loss passes 4x its best; the weights are restored after.
  local LRFinder = ParamScheduler:extend('LRFinder')
  fc.LRFinder = LRFinder
  function LRFinder:init(opts)
    opts = opts or {}
    local start_lr, end_lr = opts.start_lr or 1e-7, opts.end_lr or 10
    self.num_it = math.max(opts.num_it or 100, 6)
    self.stop_div = opts.stop_div ~= false
    ParamScheduler.init(self, { lr = fc.SchedExp(start_lr, end_lr) })
  end
  function LRFinder:before_fit()
    ParamScheduler.before_fit(self)
    self.tmp_file = self.learn:save('_tmp')
    self.best_loss = math.huge
  end
  function LRFinder:before_batch() self:_update_val(self.learn.train_iter / self.num_it) end
  function LRFinder:after_batch()
    ParamScheduler.after_batch(self)
    local sl = self.learn.smooth_loss
    if sl < self.best_loss then self.best_loss = sl end
    if (sl > 4 * self.best_loss or sl ~= sl) and self.stop_div then error(fc.CancelFitException) end
    if self.learn.train_iter >= self.num_it then error(fc.CancelFitException) end
  end
  function LRFinder:before_validate() error(fc.CancelValidException) end
  function LRFinder:after_fit()
    self.learn.opt:zero_grad()
    if self.tmp_file and U.file_exists(self.tmp_file) then
      self.learn:load('_tmp', { with_opt = true })
      os.remove(self.tmp_file)
    end
    ParamScheduler.after_fit(self)
  end

  -- ---- suggestions (lists of numbers in, (lr, {lr, loss}) out) --------------------

  local S = {}
  fc.SuggestionMethod = S

  -- Python-style index (0-based, negatives from the end) into a Lua list.
  local function at(t, i) return i < 0 and t[#t + i + 1] or t[i + 1] end

  -- The middle of the longest run of decreasing loss.
  function S.valley(lrs, losses)
    local n = #losses
    local max_start, max_end = 0, 0
    local lds = {}
    for i = 0, n - 1 do lds[i] = 1 end
    for i = 1, n - 1 do
      for j = 0, i - 1 do
        if losses[i + 1] < losses[j + 1] and lds[i] < lds[j] + 1 then lds[i] = lds[j] + 1 end
        if lds[max_end] < lds[i] then
          max_end = i
          max_start = max_end - lds[max_end]
        end
      end
    end
    local sections = (max_end - max_start) / 3
    local idx = max_start + math.floor(sections) + math.floor(sections / 2)
    return at(lrs, idx), { at(lrs, idx), at(losses, idx) }
  end

  local function gradient(f)
    local n, g = #f, {}
    if n < 2 then return { 0 } end
    g[1], g[n] = f[2] - f[1], f[n] - f[n - 1]
    for i = 2, n - 1 do g[i] = (f[i + 1] - f[i - 1]) / 2 end
    return g
  end

  local function interp(x, xs, ys)
    if x <= xs[1] then return ys[1] end
    for i = 2, #xs do
      if x <= xs[i] then return ys[i - 1] + (ys[i] - ys[i - 1]) * (x - xs[i - 1]) / (xs[i] - xs[i - 1]) end
    end
    return ys[#ys]
  end

  -- Walks left from the end while the loss gradient keeps changing.
  function S.slide(lrs, losses, _, opts)
    opts = opts or {}
    local lr_diff, thresh, adjust = opts.lr_diff or 15, opts.thresh or 0.005, opts.adjust_value or 1
    local g, n = gradient(losses), #losses
    local r, l = -1, -1 - lr_diff
    if -l > n then error(fmt('slide: needs more than %d points, got %d', lr_diff, n), 2) end
    local local_min = at(lrs, l)
    while l >= -n and math.abs(at(g, r) - at(g, l)) > thresh do
      local_min = at(lrs, l)
      r, l = r - 1, l - 1
    end
    local suggestion = local_min * adjust
    local logs = {}
    for i, v in ipairs(lrs) do logs[i] = math.log10(v) end
    return suggestion, { suggestion, interp(math.log10(suggestion), logs, losses) }
  end

  -- A tenth of the lr at the lowest loss.
  function S.minimum(lrs, losses)
    local best = 1
    for i = 2, #losses do if losses[i] < losses[best] then best = i end end
    return lrs[best] / 10, { lrs[best], losses[best] }
  end

  -- The lr where the loss falls fastest against log(lr).
  function S.steep(lrs, losses)
    local best, best_g = 1, math.huge
    for i = 1, #lrs - 1 do
      local g = (losses[i + 1] - losses[i]) / (math.log(lrs[i + 1]) - math.log(lrs[i]))
      if g < best_g then best, best_g = i, g end
    end
    return lrs[best], { lrs[best], losses[best] }
  end
  S.Valley, S.Slide, S.Minimum, S.Steep = S.valley, S.slide, S.minimum, S.steep
  local NAMES = { [S.valley] = 'valley', [S.slide] = 'slide', [S.minimum] = 'minimum', [S.steep] = 'steep' }

  -- plot_sched{keys, path}: each scheduled hyper-parameter per batch, one
  -- PNG per key (path_<key>.png); returns the paths.
  function fc.Recorder:plot_sched(opts)
    opts = opts or {}
    local keys = opts.keys
    if not keys then
      keys = {}
      for k in pairs(self.hps or {}) do keys[#keys + 1] = k end
      table.sort(keys)
    end
    local paths = {}
    for i, k in ipairs(keys) do
      local ys = (self.hps or {})[k]
      if not ys then error(fmt("plot_sched: '%s' was not scheduled", k), 2) end
      local xs = {}
      for j = 1, #ys do xs[j] = j - 1 end
      local base = opts.path and opts.path:gsub('%.png$', '') or U.join(self.learn.path, 'sched')
      paths[i] = U.plot({ series = { { x = xs, y = ys, label = k } }, title = k, xlabel = 'iteration', ylabel = k,
        path = base .. '_' .. k .. '.png' })
    end
    return paths
  end

  -- plot_lr_find{skip_end = 5, suggestions, names, path}
  function fc.Recorder:plot_lr_find(opts)
    opts = opts or {}
    local skip = opts.skip_end or 5
    local n = #self.lrs - skip
    local series = { { x = { unpack(self.lrs, 1, n) }, y = { unpack(self.losses, 1, n) }, label = 'loss' } }
    for i, pt in ipairs(opts.suggestions or {}) do
      series[#series + 1] = { x = { pt[1] }, y = { pt[2] }, label = (opts.names or {})[i], style = 'points' }
    end
    return U.plot({ series = series, title = 'Learning rate finder', xlabel = 'learning rate', ylabel = 'loss',
      xscale = 'log', path = opts.path or U.join(self.learn.path, 'lr_find.png') })
  end

  -- lr_find{start_lr = 1e-7, end_lr = 10, num_it = 100, stop_div = true,
  -- show_plot = true, suggest_funcs = {fc.SuggestionMethod.valley}}:
  -- returns {valley = lr, ...} (also positionally, in suggest_funcs order).
  local LR_FIND = { start_lr = true, end_lr = true, num_it = true, stop_div = true, show_plot = true,
    suggest_funcs = true }
  function Learner:lr_find(opts)
    opts = opts or {}
    check_opts('lr_find', opts, LR_FIND)
    local num_it = opts.num_it or 100
    local n_epoch = math.floor(num_it / self.dls.train:len()) + 1
    local cb = LRFinder({ start_lr = opts.start_lr, end_lr = opts.end_lr, num_it = num_it, stop_div = opts.stop_div })
    self:no_logging(function() self:fit(n_epoch, nil, { cbs = { cb } }) end)
    local funcs = opts.suggest_funcs
    if funcs == nil then funcs = { S.valley } end
    if type(funcs) == 'function' then funcs = { funcs } end
    local rec = self.recorder
    local first, last = math.floor(num_it / 10) + 1, #rec.lrs - 5
    local lrs, losses = {}, {}
    for i = first, last do
      if rec.losses[i] ~= rec.losses[i] then break end -- stop at the first NaN
      lrs[#lrs + 1], losses[#losses + 1] = rec.lrs[i], rec.losses[i]
    end
    local result, points, names = {}, {}, {}
    if #funcs > 0 and #lrs < 2 then
      error(fmt('lr_find: only %d usable points for suggestions; raise num_it', #lrs), 2)
    end
    for i, f in ipairs(funcs) do
      local lr, pt = f(lrs, losses, num_it)
      local name = NAMES[f] or ('suggestion' .. i)
      result[i], result[name], points[i], names[i] = lr, lr, pt, name
    end
    if opts.show_plot ~= false then
      local path = rec:plot_lr_find({ suggestions = points, names = names })
      if path then print('lr_find plot: ' .. tostring(path)) end
    end
    return result
  end
end
