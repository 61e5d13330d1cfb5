-- tests/lua/callback_spec.lua — the event loop: order of events against
-- fastai's documented loop, cancellation paths, errors, run flags,
-- misspelt hooks, and the built-in callbacks.
local fc = require 'fastc'
local U = fc.train_util

local function learner(opts)
  fc.manual_seed(3)
  opts = opts or {}
  opts.n_train, opts.n_valid = opts.n_train or 2, opts.n_valid or 1
  opts.lr = opts.lr or 1e-2
  local learn = fc.testing.synth_learner(opts)
  learn.logger = U.noop
  return learn
end

local function recorder_cb()
  local cb = fc.testing.VerboseCallback()
  return cb
end

local TRAIN_BATCH = { 'before_batch', 'after_pred', 'after_loss', 'before_backward', 'after_backward', 'before_step',
  'after_step', 'after_batch' }
local VALID_BATCH = { 'before_batch', 'after_pred', 'after_loss', 'after_batch' }

local function expected(n_train, n_valid)
  local out = { 'before_fit', 'before_epoch', 'before_train' }
  for _ = 1, n_train do for _, e in ipairs(TRAIN_BATCH) do out[#out + 1] = e end end
  out[#out + 1] = 'after_train'
  out[#out + 1] = 'before_validate'
  for _ = 1, n_valid do for _, e in ipairs(VALID_BATCH) do out[#out + 1] = e end end
  for _, e in ipairs({ 'after_validate', 'after_epoch', 'after_fit' }) do out[#out + 1] = e end
  return out
end

-- The events seen after `start` (1-based) up to the end.
local function from(list, start)
  local out = {}
  for i = start, #list do out[#out + 1] = list[i] end
  return out
end

describe('the training loop', function()
  it('runs events in fastai order, after_create at construction', function()
    local v = recorder_cb()
    local learn = learner({ cbs = { v } })
    assert.are.same({ 'after_create' }, v.events)
    learn:fit(1)
    assert.are.same(expected(2, 1), from(v.events, 2))
  end)

  it('exposes fastai attributes to callbacks', function()
    local seen = {}
    local cb = fc.Callback({ name = 'probe', after_loss = function(self)
      local l = self.learn
      if l.training then
        seen[#seen + 1] = { l.iter, l.epoch, l.n_epoch, l.n_iter, l.train_iter, l.pct_train, l.x == l.xb[1],
          l.y == l.yb[1], l.pred ~= nil, l.loss_grad.requires_grad, l.loss.requires_grad, l.dl == l.dls.train,
          self.opt == l.opt, self.model == l.model }
      end
    end })
    local learn = learner({ cbs = { cb } })
    learn:fit(2)
    assert.are.equal(4, #seen)
    assert.are.same({ 1, 1, 2, 2, 3, 0.75, true, true, true, true, false, true, true, true }, seen[4])
    assert.are.same({ 0, 0, 2, 2, 0, 0 }, { unpack(seen[1], 1, 6) })
    assert.are.equal(learn.probe, cb)
  end)

  it('updates the parameters and records the losses', function()
    local learn = learner({ n_train = 10 })
    local a0 = learn.model.a:item()
    learn:fit(2)
    assert.are_not.equal(a0, learn.model.a:item())
    local rec = learn.recorder
    assert.are.equal(20, #rec.losses)
    assert.are.equal(20, #rec.lrs)
    assert.are.same({ 10, 20 }, rec.iters)
    assert.are.equal(2, #rec.values)
    assert.are.same({ 'epoch', 'train_loss', 'valid_loss', 'time' }, rec.metric_names)
    assert.is_true(rec.values[2][2] < rec.values[1][2]) -- valid loss falls
    assert.are.same(rec.values[2], learn.final_record)
  end)

  it('smooths the loss with beta 0.98 and debiasing', function()
    local losses = {}
    local cb = fc.Callback({ name = 'grab', order = 49, after_batch = function(self)
      if self.learn.training then losses[#losses + 1] = self.learn.loss:item() end
    end })
    local learn = learner({ n_train = 3, cbs = { cb } })
    learn:fit(1)
    local val, want = 0, {}
    for i, l in ipairs(losses) do
      val = 0.98 * val + 0.02 * l
      want[i] = val / (1 - 0.98 ^ i)
    end
    for i = 1, 3 do assert(math.abs(want[i] - learn.recorder.losses[i]) < 1e-9 * (1 + want[i])) end
    assert.are.equal(learn.recorder.losses[3], learn.smooth_loss)
  end)
end)

describe('cancellation', function()
  -- A callback that raises ex at event `at` (in training or validation as asked).
  local function raiser(at, ex, when)
    return fc.Callback({ name = 'raiser', order = 100, [at] = function(self)
      if when == nil or (when == 'train') == self.learn.training then error(ex) end
    end })
  end

  local function run(at, ex, when, n_epoch)
    local v = recorder_cb()
    local learn = learner({ cbs = { v, raiser(at, ex, when) } })
    local a0 = learn.model.a:item()
    learn:fit(n_epoch or 1)
    return from(v.events, 2), learn, a0
  end

  it('CancelBatchException: after_cancel_batch then after_batch, no step', function()
    local ev, learn, a0 = run('after_pred', fc.CancelBatchException, 'train')
    local want = { 'before_fit', 'before_epoch', 'before_train' }
    for _ = 1, 2 do
      for _, e in ipairs({ 'before_batch', 'after_pred', 'after_cancel_batch', 'after_batch' }) do want[#want + 1] = e end
    end
    assert.are.same(want, { unpack(ev, 1, #want) })
    assert.are.equal(a0, learn.model.a:item())
  end)

  it('CancelStepException: after_cancel_step then after_step, weights unchanged', function()
    local ev, learn, a0 = run('before_step', fc.CancelStepException())
    local i = 0
    for k, e in ipairs(ev) do if e == 'before_step' then i = k break end end
    assert.are.same({ 'before_step', 'after_cancel_step', 'after_step', 'after_batch' }, { unpack(ev, i, i + 3) })
    assert.are.equal(a0, learn.model.a:item())
  end)

  it('CancelBackwardException: skips backward, so no gradient to step with', function()
    local ev, learn, a0 = run('before_backward', fc.CancelBackwardException)
    local i = 0
    for k, e in ipairs(ev) do if e == 'before_backward' then i = k break end end
    assert.are.same({ 'before_backward', 'after_cancel_backward', 'after_backward', 'before_step', 'after_step' },
      { unpack(ev, i, i + 4) })
    assert.are.equal(a0, learn.model.a:item())
  end)

  it('CancelTrainException: after_cancel_train, after_train, then validation', function()
    local ev = run('before_train', fc.CancelTrainException)
    assert.are.same({ 'before_fit', 'before_epoch', 'before_train', 'after_cancel_train', 'after_train',
      'before_validate' }, { unpack(ev, 1, 6) })
  end)

  it('CancelValidException: after_cancel_validate then after_validate', function()
    local ev = run('before_validate', fc.CancelValidException)
    assert.are.same({ 'before_validate', 'after_cancel_validate', 'after_validate', 'after_epoch', 'after_fit' },
      from(ev, #ev - 4))
  end)

  it('CancelEpochException: after_cancel_epoch, after_epoch, next epoch', function()
    local ev = run('before_epoch', fc.CancelEpochException, nil, 2)
    assert.are.same({ 'before_fit', 'before_epoch', 'after_cancel_epoch', 'after_epoch', 'before_epoch',
      'after_cancel_epoch', 'after_epoch', 'after_fit' }, ev)
  end)

  it('CancelFitException: after_cancel_fit then after_fit', function()
    local ev = run('after_train', fc.CancelFitException, nil, 3)
    assert.are.same({ 'after_train', 'after_cancel_fit', 'after_fit' }, from(ev, #ev - 2))
  end)

  it('other errors propagate with the callback and event named', function()
    local learn = learner({ cbs = { fc.Callback({ name = 'broken', before_step = function() error('boom') end }) } })
    local ok, err = pcall(function() learn:fit(1) end)
    assert.is_false(ok)
    assert.truthy(err:find('broken', 1, true))
    assert.truthy(err:find('before_step', 1, true))
    assert.truthy(err:find('boom', 1, true))
    -- the temporary callbacks of a failed fit are gone, the learner still works
    learn:remove_cb(learn.broken)
    learn:fit(1)
  end)
end)

describe('callbacks', function()
  it('reject misspelt events at add_cb', function()
    local learn = learner()
    local ok, err = pcall(function() learn:add_cb(fc.Callback({ befor_batch = function() end })) end)
    assert.is_false(ok)
    assert.truthy(err:find("'befor_batch' is not an event", 1, true))
    assert.truthy(err:find("did you mean 'before_batch'", 1, true))
    ok, err = pcall(function() learn:add_cb({ after_epcoh = function() end }) end)
    assert.is_false(ok)
    assert.truthy(err:find('after_epoch', 1, true))
    local Bad = fc.Callback:extend('BadCallback')
    function Bad:after_bach() end
    assert.has_error(function() learn:add_cb(Bad) end)
    -- helper methods with other names are fine
    learn:add_cb(fc.Callback({ name = 'fine', helper = function() end, order = 3 }))
  end)

  it('class callbacks get snake_case names without Callback', function()
    assert.are.equal('lr_finder', U.snake_name('LRFinder'))
    assert.are.equal('csv_logger', U.snake_name('CSVLogger'))
    assert.are.equal('train_eval', U.snake_name('TrainEvalCallback'))
    assert.are.equal('complicated_name', U.snake_name('ComplicatedNameCallback'))
    assert.are.equal('callback', U.snake_name('Callback'))
    local Mine = fc.Callback:extend('MineCallback')
    local learn = learner({ cbs = { Mine } })
    assert.is_true(learn.mine:is_a(Mine))
    assert.are.equal(learn, learn.mine.learn)
  end)

  it('run_train / run_valid / run filter the batch events', function()
    local counts = { train = 0, valid = 0, off = 0 }
    local t = fc.Callback({ name = 't', run_valid = false, after_batch = function() counts.train = counts.train + 1 end })
    local v = fc.Callback({ name = 'v', run_train = false, after_batch = function() counts.valid = counts.valid + 1 end })
    local off = fc.Callback({ name = 'off', before_fit = function(self) self.run = false end,
      after_batch = function() counts.off = counts.off + 1 end })
    local learn = learner({ cbs = { t, v, off } })
    learn:fit(1)
    assert.are.same({ train = 2, valid = 1, off = 0 }, counts)
    assert.is_true(off.run) -- run is back on after fit
  end)

  it('ordered_cbs sorts by order, ties by insertion', function()
    local a = fc.Callback({ name = 'a', order = 5, before_fit = function() end })
    local b = fc.Callback({ name = 'b', order = -50, before_fit = function() end })
    local c = fc.Callback({ name = 'c', order = 5, before_fit = function() end })
    local learn = learner({ cbs = { a, b, c } })
    local names = {}
    for i, cb in ipairs(learn:ordered_cbs('before_fit')) do names[i] = cb.name end
    assert.are.same({ 'b', 'train_eval', 'a', 'c', 'recorder', 'progress' }, names)
  end)

  it('add/remove by instance or class, added_cbs and removed_cbs restore', function()
    local learn = learner()
    local cb = fc.testing.VerboseCallback()
    learn:add_cb(cb)
    assert.are.equal(cb, learn.verbose)
    learn:remove_cb(cb)
    assert.is_nil(learn.verbose)
    assert.is_nil(cb.learn)
    learn:add_cbs({ fc.testing.VerboseCallback(), fc.testing.VerboseCallback() })
    learn:remove_cb(fc.testing.VerboseCallback)
    assert.are.equal(3, #learn.cbs)
    local inside
    learn:added_cbs({ fc.testing.VerboseCallback }, function(l) inside = #l.cbs end)
    assert.are.equal(4, inside)
    assert.are.equal(3, #learn.cbs)
    learn:removed_cbs({ learn.progress }, function(l) inside = l.progress end)
    assert.is_nil(inside)
    assert.is_not_nil(learn.progress)
    assert.has_error(function() learn:added_cbs({ fc.testing.VerboseCallback }, function() error('x') end) end)
    assert.are.equal(3, #learn.cbs)
    assert.has_error(function() learn:add_cb(fc.Callback({ name = 'fit' })) end)
  end)

  it('fit cbs are temporary and start_epoch skips epochs', function()
    local v = recorder_cb()
    local learn = learner()
    learn:fit(3, nil, { cbs = { v }, start_epoch = 2 })
    assert.is_nil(learn.verbose)
    local epochs = 0
    for _, e in ipairs(v.events) do if e == 'before_train' then epochs = epochs + 1 end end
    assert.are.equal(1, epochs)
  end)
end)

describe('built-in callbacks', function()
  it('EarlyStoppingCallback stops after patience epochs without progress', function()
    local learn = learner({ lr = 0 }) -- lr 0: the valid loss never improves
    learn:fit(5, 0, { cbs = { fc.EarlyStoppingCallback({ patience = 2 }) } })
    assert.are.equal(3, #learn.recorder.values)
    assert.has_error(function() learn:fit(1, 0, { cbs = { fc.EarlyStoppingCallback({ monitor = 'nope' }) } }) end)
  end)

  it('SaveModelCallback keeps the best model and loads it back', function()
    local dir = os.tmpname()
    os.remove(dir)
    local learn = learner({ path = dir, n_train = 5 })
    local snap = {}
    local grab = fc.Callback({ name = 'snap', order = 70, after_epoch = function(self)
      snap[#snap + 1] = { self.learn.recorder.values[#self.learn.recorder.values][2], self.learn.model.a:item() }
    end })
    learn:fit(3, 0.05, { cbs = { fc.SaveModelCallback({ fname = 'best' }), grab } })
    local best = 1
    for i = 2, #snap do if snap[i][1] < snap[best][1] then best = i end end
    assert.are.equal(snap[best][2], learn.model.a:item())
    learn:fit(2, 0.05, { cbs = { fc.SaveModelCallback({ every_epoch = true, fname = 'e' }) } })
    assert.is_true(U.file_exists(dir .. '/models/e_0.safetensors'))
    assert.is_true(U.file_exists(dir .. '/models/e_1.safetensors'))
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it('ReduceLROnPlateau divides the lr when stuck', function()
    local learn = learner()
    learn:fit(3, 0, { cbs = { fc.ReduceLROnPlateau({ patience = 1, factor = 10, min_lr = 0 }) } })
    -- lr 0 gives no progress: epoch 1 -> stuck once -> lr/10 (0 stays 0); use a fixed lr to observe
    local seen = {}
    local pin = fc.Callback({ name = 'pin', order = 61, after_epoch = function(self)
      seen[#seen + 1] = self.learn.opt.hypers[1].lr
    end })
    local freeze_model = fc.Callback({ name = 'fm', before_step = function() error(fc.CancelStepException) end })
    learn:fit(3, 1, { cbs = { fc.ReduceLROnPlateau({ patience = 1, factor = 10, min_lr = 0.05 }), pin, freeze_model } })
    assert.are.same({ 1, 0.1, 0.05 }, seen)
  end)

  it('TerminateOnNaNCallback stops at the first NaN loss', function()
    local learn = learner({ n_train = 5 })
    local nan = fc.Callback({ name = 'nan', after_loss = function(self)
      if self.learn.training and self.learn.iter == 2 then self.learn.loss = fc.tensor(0 / 0) end
    end })
    local v = recorder_cb()
    learn:fit(2, nil, { cbs = { fc.TerminateOnNaNCallback(), nan, v } })
    local batches = 0
    for _, e in ipairs(v.events) do if e == 'after_batch' then batches = batches + 1 end end
    assert.are.equal(2, batches) -- the third batch is cut before this callback's after_batch
    assert.are.equal('after_fit', v.events[#v.events])
  end)

  it('GradientAccumulation matches one big batch', function()
    local function grads(bs, n, cbs)
      fc.manual_seed(99)
      local data = fc.testing.synth_dbunch({ bs = bs, n_train = n, n_valid = 1 })
      data.train.shuffle = false
      local g
      local get = fc.Callback({ name = 'getg', order = 7, run_valid = false, before_step = function(self)
        g = { self.learn.model.a.grad:item(), self.learn.model.b.grad:item() }
      end })
      local cb = { get }
      for _, c in ipairs(cbs or {}) do cb[#cb + 1] = c end
      fc.manual_seed(5)
      local learn = fc.testing.synth_learner({ data = data, cbs = cb, lr = 0.01 })
      learn.logger = U.noop
      learn:fit(1)
      return g, learn
    end
    local g1 = grads(8, 1)
    local g2, l2 = grads(1, 8, { fc.GradientAccumulation(8) })
    assert(math.abs(g1[1] - g2[1]) < 1e-5, g1[1] .. ' vs ' .. g2[1])
    assert(math.abs(g1[2] - g2[2]) < 1e-5)
    assert.are.equal(8, #l2.recorder.losses)
  end)

  it('GradientClip bounds the gradient norm', function()
    local norms = {}
    local after = fc.Callback({ name = 'after', order = 12, before_step = function(self)
      local a, b = self.learn.model.a.grad:item(), self.learn.model.b.grad:item()
      norms[#norms + 1] = math.sqrt(a * a + b * b)
    end })
    local learn = learner()
    learn:fit(1, 1e-3, { cbs = { fc.GradientClip(0.01), after } })
    for _, n in ipairs(norms) do assert(n <= 0.0100001, 'norm ' .. n) end
    assert.are.equal(2, #norms)
  end)

  it('BnFreeze keeps frozen batchnorm statistics', function()
    local nn = fc.nn
    local model = nn.Sequential({ nn.Linear(1, 4), nn.BatchNorm1d(4), nn.Linear(4, 1) })
    fc.manual_seed(4)
    local learn = fc.testing.synth_learner({ model = model, train_bn = false,
      splitter = function(m) return { { m[1].weight, m[1].bias, m[2].weight, m[2].bias }, { m[3].weight, m[3].bias } } end })
    learn.logger = U.noop
    learn:freeze()
    local rm = model[2].running_mean:clone()
    learn:fit(1, 1e-2, { cbs = { fc.BnFreeze() } })
    assert.are.same(rm:totable(), model[2].running_mean:totable())
    learn:fit(1, 1e-2)
    assert.are_not.same(rm:totable(), model[2].running_mean:totable())
  end)

  it('CSVLogger writes the epoch table', function()
    local dir = os.tmpname()
    os.remove(dir)
    local learn = learner({ path = dir })
    local csv = fc.CSVLogger()
    learn:fit(2, nil, { cbs = { csv } })
    local log = csv:read_log()
    assert.are.same({ 'epoch', 'train_loss', 'valid_loss', 'time' }, log.header)
    assert.are.equal(2, #log.rows)
    assert.are.equal(1, log.rows[2][1])
    assert(math.abs(log.rows[2][3] - learn.recorder.values[2][2]) < 1e-9)
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it('MixUp blends inputs and mixes the loss of both targets', function()
    local learn = learner({ n_train = 3 })
    local mix = fc.MixUp(0.4)
    local checked = 0
    local probe = fc.Callback({ name = 'probe', order = 1, before_batch = function(self)
      if not self.learn.training then return end
      local lam = mix.lam
      for _, l in ipairs(lam:totable()) do assert(l >= 0.5 and l <= 1) end
      -- float targets are blended like the inputs
      assert.are.equal(self.learn.x:size(1), lam:numel())
      checked = checked + 1
    end })
    learn:fit(1, nil, { cbs = { mix, probe } })
    assert.are.equal(3, checked)
    -- class targets go through the loss: lerp of the two losses
    local x = fc.randn(4, 3)
    local y, y1 = fc.tensor({ 1, 2, 3, 1 }), fc.tensor({ 2, 2, 1, 3 })
    mix.old_lf, mix.yb1, mix.lam = fc.F.cross_entropy, { y1 }, fc.tensor({ 0.6, 0.7, 0.8, 0.9 })
    mix.learn = { training = true }
    local got = mix:lf(x, y):item()
    local a = fc.F.cross_entropy(x, y1, { reduction = 'none' })
    local b = fc.F.cross_entropy(x, y, { reduction = 'none' })
    local want, lam, ta, tb = 0, mix.lam:totable(), a:totable(), b:totable()
    for i = 1, 4 do want = want + (ta[i] + lam[i] * (tb[i] - ta[i])) / 4 end
    assert(math.abs(got - want) < 1e-5)
  end)

  it('CutMix pastes a box and sets lam to the kept area', function()
    fc.manual_seed(7)
    local cm = fc.CutMix(1)
    local x = fc.arange(2 * 1 * 8 * 8):float():view(2, 1, 8, 8)
    local y = fc.tensor({ 1, 2 })
    local learn = { xb = { x }, yb = { y }, x = x, y = y, loss_func = fc.F.cross_entropy, training = true }
    cm.learn = learn
    cm.stack_y = true
    cm:before_batch()
    local out = learn.xb[1]
    local changed = out:ne(x):sum():item()
    local pasted = 2 * 64 * (1 - cm.lam)
    assert.is_true(cm.lam >= 0 and cm.lam <= 1)
    assert.is_true(changed <= pasted + 1e-9)
    assert.are.equal(0, x:ne(fc.arange(128):float():view(2, 1, 8, 8)):sum():item()) -- input untouched
    local x1, y1, x2, y2 = cm:rand_bbox(8, 8, 0.75)
    assert.is_true(x1 >= 0 and x2 <= 8 and y1 >= 0 and y2 <= 8 and x1 <= x2 and y1 <= y2)
  end)

  it('ActivationStats records mean, std and near-zero share per layer', function()
    local nn = fc.nn
    local model = nn.Sequential({ nn.Linear(1, 3), nn.ReLU(), nn.Linear(3, 1) })
    local learn = learner({ model = model })
    local stats = fc.ActivationStats({ every = 1 })
    learn:fit(1, nil, { cbs = { stats } })
    assert.are.equal(2, #stats.stats)        -- one entry per training batch
    assert.are.equal(2, #stats.stats[1])     -- the two Linear layers
    local ls = stats:layer_stats(1)
    assert.are.equal(2, #ls[1])
    assert.is_true(ls[3][1] >= 0 and ls[3][1] <= 1)
    -- the hook's numbers on a known output
    local r = fc.ActivationStats.hook(stats, nil, nil, fc.tensor({ 0, 0.05, 1, 3 }))
    assert(math.abs(r.mean - 1.0125) < 1e-6)
    assert(math.abs(r.std - 1.402601) < 1e-5)
    assert.are.equal(0.5, r.near_zero)
    assert.is_nil(model[1]._hooks[1]) -- hooks removed at the end
  end)

  it('ShortEpochCallback cuts each pass short', function()
    local learn = learner({ n_train = 10 })
    learn:fit(1, nil, { cbs = { fc.ShortEpochCallback(0.3) } })
    assert.are.equal(3, #learn.recorder.losses)
  end)

  it('ParamScheduler sets any hyper-parameter from pct_train', function()
    local learn = learner({ n_train = 4 })
    local seen = {}
    local probe = fc.Callback({ name = 'probe', order = 61, before_batch = function(self)
      if self.learn.training then seen[#seen + 1] = self.learn.opt.hypers[1].wd end
    end })
    learn:fit(2, nil, { cbs = { fc.ParamScheduler({ wd = fc.SchedLin(0, 0.8) }), probe } })
    for i, want in ipairs({ 0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7 }) do assert(math.abs(seen[i] - want) < 1e-12) end
    assert.are.equal(8, #seen)
    assert.are.same(seen, learn.recorder.hps.wd)
    assert.has_error(function() fc.ParamScheduler(0.1) end)
  end)

  it('ActivationStats histogram matches torch.histc(40, 0, 10)', function()
    local r = fc.ActivationStats.hook({ with_hist = true }, nil, nil,
      fc.tensor({ -1, 0, 0.1, 0.3, 2.6, 9.99, 10, 12 }, { dtype = 'float32' }))
    local h = r.hist:totable()
    assert.are.equal(40, #h)
    assert.are.same({ 2, 1, 1, 2 }, { h[1], h[2], h[11], h[40] })
    assert.are.equal(6, r.hist:sum():item())
  end)

  it('Hook, Hooks and hook_output keep what the hook returns', function()
    local nn = fc.nn
    local model = nn.Sequential({ nn.Linear(2, 3), nn.ReLU() })
    local h = fc.hook_output(model[1])
    local hs = fc.Hooks(fc.flatten_model(model), function(m, _, o) return m:class_name() .. o:size(2) end)
    local x = fc.randn(4, 2):requires_grad_()
    local y = model(x)
    assert.are.same({ 4, 3 }, h.stored:size())
    assert.is_false(h.stored.requires_grad)
    assert.are.same({ 'Linear3', 'ReLU3' }, hs:stored())
    assert.are.equal(2, hs:len())
    h:remove()
    hs:remove()
    h:remove() -- twice is fine
    model(x)
    assert.is_nil(model[1]._hooks[1])
    assert.is_not_nil(y)
  end)

  it('the learner refuses unknown events', function()
    local learn = learner()
    assert.has_error(function() learn:_call('before_everything') end)
  end)
end)

