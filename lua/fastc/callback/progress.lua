-- lua/fastc/callback/progress.lua — ProgressCallback (default): a terminal
-- progress bar with ETA for each pass and the epoch table; quiet (table
-- only) when stdout is not a terminal. ShowGraphCallback and CSVLogger.
return function(fc, Tensor, H)
  local fmt = string.format
  local U = fc.train_util
  local Callback = fc.Callback

  -- A one-line bar redrawn in place, at most every 0.1 s.
  local Bar = fc.class('ProgressBar')
  fc.ProgressBar = Bar
  function Bar:init(total, out)
    self.total, self.out, self.start, self.last_draw, self.comment = total, out or io.stdout, U.now(), -1, ''
  end
  function Bar:text(done, now)
    local elapsed = now - self.start
    local frac = self.total > 0 and done / self.total or 1
    local width = 30
    local filled = math.floor(frac * width + 0.5)
    local eta = done > 0 and elapsed / done * (self.total - done) or 0
    return fmt('|%s%s| %3d%% %d/%d [%s<%s]%s', string.rep('#', filled), string.rep('-', width - filled),
      math.floor(frac * 100), done, self.total, U.format_time(elapsed), U.format_time(eta),
      self.comment ~= '' and ' ' .. self.comment or '')
  end
  function Bar:update(done)
    local now = U.now()
    if done < self.total and now - self.last_draw < 0.1 then return end
    self.last_draw = now
    self.out:write('\r', self:text(done, now), '\27[K')
    self.out:flush()
  end
  function Bar:finish()
    self.out:write('\r\27[K')
    self.out:flush()
  end

  local function cell(v)
    if type(v) == 'number' and math.floor(v) ~= v then return fmt('%.6f', v) end
    return tostring(v)
  end

  local ProgressCallback = Callback:extend('ProgressCallback')
  fc.ProgressCallback = ProgressCallback
  ProgressCallback.order = 60

  function ProgressCallback:init(opts)
    opts = opts or {}
    self.out = opts.out or io.stdout
    self.show_bar = opts.show_bar -- nil: only on a terminal
  end

  function ProgressCallback:_bar_wanted()
    if self.show_bar ~= nil then return self.show_bar end
    return self.out == io.stdout and U.isatty(1)
  end

  function ProgressCallback:before_fit()
    local learn = self.learn
    if learn.logger ~= U.noop and learn.recorder then
      self.old_logger = learn.logger
      learn.logger = function(log) self:_write_stats(log) end
      self.widths = {}
      for i, name in ipairs(learn.recorder.metric_names) do self.widths[i] = math.max(#name, 9) end
      self:_write_stats(learn.recorder.metric_names)
    else
      self.old_logger = nil
    end
  end

  function ProgressCallback:_write_stats(log)
    local parts = {}
    for i, v in ipairs(log) do parts[i] = fmt('%-' .. (self.widths[i] or 9) .. 's', cell(v)) end
    self.out:write(table.concat(parts, '  '):gsub('%s+$', ''), '\n')
    self.out:flush()
  end

  function ProgressCallback:_launch_bar()
    if not self:_bar_wanted() then return end
    local ok, n = pcall(function() return self.learn.dl:len() end)
    self.pbar = Bar(ok and n or #self.learn.dl, self.out)
    self.pbar:update(0)
  end
  function ProgressCallback:before_train() self:_launch_bar() end
  function ProgressCallback:before_validate() self:_launch_bar() end
  function ProgressCallback:after_batch()
    if not self.pbar then return end
    local sl = self.learn.smooth_loss
    if sl and self.learn.training then self.pbar.comment = fmt('%.4f', sl) end
    self.pbar:update(self.learn.iter + 1)
  end
  local function close_bar(self)
    if self.pbar then self.pbar:finish() end
    self.pbar = nil
  end
  ProgressCallback.after_train = close_bar
  ProgressCallback.after_validate = close_bar
  function ProgressCallback:after_fit()
    close_bar(self)
    if self.old_logger then self.learn.logger = self.old_logger end
    self.old_logger = nil
  end

  table.insert(fc.defaults.callbacks, ProgressCallback)

  -- no_bar(fn): fn(learn) without the progress callback.
  function fc.Learner:no_bar(fn)
    local progress = rawget(self, 'progress')
    if progress then self:remove_cb(progress) end
    local ok, err = pcall(fn, self)
    if progress then self:add_cb(ProgressCallback()) end
    if not ok then error(err, 0) end
    return self
  end

  -- ---- ShowGraphCallback -----------------------------------------------------

  -- Redraws the training and validation losses into a PNG after each epoch.
  local ShowGraphCallback = Callback:extend('ShowGraphCallback')
  fc.ShowGraphCallback = ShowGraphCallback
  ShowGraphCallback.order, ShowGraphCallback.run_valid = 65, false
  function ShowGraphCallback:init(opts) self.graph_path = (opts or {}).path end
  function ShowGraphCallback:before_fit()
    self.run = not self.learn.lr_finder and not self.learn.gather_preds
    if not self.run then return end
    self.nb_batches = {}
    self.file = self.graph_path or U.join(self.learn.path, 'show_graph.png')
  end
  function ShowGraphCallback:after_train() self.nb_batches[#self.nb_batches + 1] = self.learn.train_iter end
  function ShowGraphCallback:after_epoch()
    local rec = self.learn.recorder
    local xs = {}
    for i = 1, #rec.losses do xs[i] = i - 1 end
    local vx, vy = {}, {}
    for i, v in ipairs(rec.values) do
      if v[2] and self.nb_batches[i] then vx[#vx + 1], vy[#vy + 1] = self.nb_batches[i], v[2] end
    end
    local path = U.plot({ series = { { x = xs, y = rec.losses, label = 'train' }, { x = vx, y = vy, label = 'valid' } },
      title = 'Loss', xlabel = 'iteration', ylabel = 'loss', path = self.file })
    if self.learn.epoch == 0 and self.learn.logger ~= U.noop then print('loss graph: ' .. tostring(path)) end
    self.last_path = path
  end

  -- ---- CSVLogger -----------------------------------------------------------------

  -- Writes the epoch table to path/fname as CSV (and still logs it).
  local CSVLogger = Callback:extend('CSVLogger')
  fc.CSVLogger = CSVLogger
  CSVLogger.order = 60
  function CSVLogger:init(fname, opts)
    opts = opts or {}
    self.fname, self.append = fname or 'history.csv', opts.append or false
  end
  function CSVLogger:before_fit()
    local learn = self.learn
    local file = U.join(learn.path, self.fname)
    U.mkdir_p(file:match('^(.*)/[^/]*$') or '.')
    local f, err = io.open(file, self.append and 'a' or 'w')
    if not f then error('CSVLogger: ' .. tostring(err), 0) end
    self.file, self.file_path = f, file
    f:write(table.concat(learn.recorder.metric_names, ','), '\n')
    self.old_logger = learn.logger
    learn.logger = function(log) self:_write_line(log) end
  end
  function CSVLogger:_write_line(log)
    local parts = {}
    for i, v in ipairs(log) do parts[i] = tostring(v) end
    self.file:write(table.concat(parts, ','), '\n')
    self.file:flush()
    self.old_logger(log)
  end
  function CSVLogger:after_fit()
    if self.file then self.file:close() end
    self.file = nil
    if self.old_logger then self.learn.logger = self.old_logger end
  end
  -- The log as {header = {...}, rows = {{...}, ...}} (numbers where they parse).
  function CSVLogger:read_log()
    local f = assert(io.open(self.file_path or U.join(self.learn.path, self.fname), 'r'))
    local header, rows = nil, {}
    for line in f:lines() do
      local cells = {}
      for c in (line .. ','):gmatch('([^,]*),') do cells[#cells + 1] = tonumber(c) or c end
      if not header then header = cells else rows[#rows + 1] = cells end
    end
    f:close()
    return { header = header, rows = rows }
  end
end
