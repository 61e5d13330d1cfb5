-- tests/lua/learner_spec.lua — fc.Learner's methods on fastai's synthetic
-- regression learner (and a small classifier), the tensor data loaders,
-- saving, exporting and the progress display.
local fc = require 'fastc'
local U = fc.train_util

local function learner(opts)
  fc.manual_seed(11)
  opts = opts or {}
  opts.lr = opts.lr or 1e-2
  local learn = fc.testing.synth_learner(opts)
  learn.logger = U.noop
  return learn
end

local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  return d
end
local function rmdir(d) os.execute("rm -rf '" .. d .. "'") end

-- A 3-class classifier on separable 2-d points.
local cls_model = fc.register('spec.cls_model', function(hidden)
  return fc.nn.Sequential({ fc.nn.Linear(2, hidden), fc.nn.ReLU(), fc.nn.Linear(hidden, 3) })
end)
fc.register_value('F.cross_entropy', fc.F.cross_entropy)
-- cross-entropy with fastai's activation/decodes protocol
local ce_loss = fc.register_value('spec.ce_loss', setmetatable({
  activation = function(_, x) return x:softmax(2) end,
  decodes = function(_, x) return x:argmax(2) end,
}, { __call = function(_, p, y) return fc.F.cross_entropy(p, y) end }))
local function classifier(opts)
  fc.manual_seed(12)
  local function data(n)
    local y = fc.randint(1, 4, { n })
    local centers = fc.tensor({ { 0, 3 }, { 3, 0 }, { -3, -3 } }, { dtype = 'float32' })
    return centers:index_select(1, y) + fc.randn(n, 2) * 0.3, y
  end
  local xt, yt = data(96)
  local xv, yv = data(32)
  local dls = fc.DataLoaders(fc.TensorDataLoader(xt, yt, { bs = 16, shuffle = true }),
    fc.TensorDataLoader(xv, yv, { bs = 16 }), { c = 3, vocab = { 'up', 'right', 'down' } })
  local o = { loss_func = fc.F.cross_entropy, lr = 1e-2 }
  for k, v in pairs(opts or {}) do o[k] = v end
  local learn = fc.Learner(dls, cls_model(8), o)
  learn.logger = U.noop
  return learn
end

describe('tensor data', function()
  it('batches, shuffles reproducibly with a seed, drops the last batch on request', function()
    local x, y = fc.arange(1, 11):float():view(10, 1), fc.arange(1, 11)
    local dl = fc.TensorDataLoader(x, y, { bs = 4 })
    assert.are.equal(3, dl:len())
    assert.are.equal(10, dl.dataset:len())
    local sizes = {}
    for xb, yb in dl:iter() do sizes[#sizes + 1] = xb:size(1) .. ':' .. yb[1] end
    assert.are.same({ '4:1', '4:5', '2:9' }, sizes)
    assert.are.equal(2, fc.TensorDataLoader(x, y, { bs = 4, drop_last = true }):len())
    local function order(seed)
      local out = {}
      for _, yb in fc.TensorDataLoader(x, y, { bs = 10, shuffle = true, seed = seed }):iter() do out = yb:totable() end
      return out
    end
    assert.are.same(order(3), order(3))
    assert.are_not.same(order(3), order(4))
    local sorted = order(3)
    table.sort(sorted)
    assert.are.same(y:totable(), sorted)
    local xb, yb = dl:one_batch()
    assert.are.same({ 1, 2, 3, 4 }, yb:totable())
    assert.are.same({ 4, 1 }, xb:size())
    assert.has_error(function() fc.TensorDataLoader(x, fc.arange(3), {}) end)
    assert.has_error(function() fc.TensorDataLoader(x, y, { batch_size = 3 }) end)
  end)

  it('DataLoaders: train, valid, [1], [2], datasets and options', function()
    local x, y = fc.randn(8, 2), fc.randn(8, 1)
    local dls = fc.DataLoaders(fc.TensorDataLoader(x, y), fc.TensorDataLoader(x, y), { c = 1, vocab = { 'a' } })
    assert.are.equal(dls.train, dls[1])
    assert.are.equal(dls.valid, dls[2])
    assert.are.equal(2, dls:len())
    local tx, ty = dls.valid_ds:tensors()
    assert.are.equal(x, tx)
    assert.are.equal(y, ty)
    assert.are.equal(1, dls.c)
    assert.are.same({ 8, 2 }, ({ dls:one_batch() })[1]:size())
    assert.has_error(function() fc.DataLoaders(dls.train, dls.valid, { bs = 3 }) end)
    -- the training loader may carry c, vocab and loss_func instead
    local dls2 = fc.DataLoaders(fc.TensorDataLoader(x, y, { c = 2, vocab = { 'p', 'q' }, loss_func = fc.F.mse_loss }),
      fc.TensorDataLoader(x, y))
    assert.are.equal(2, dls2.c)
    assert.are.same({ 'p', 'q' }, dls2.vocab)
    assert.are.equal(fc.F.mse_loss, dls2.loss_func)
    assert.are.equal(2, dls2.train:new({ bs = 4 }).c)
  end)
end)

describe('fc.Learner', function()
  it('takes fastai defaults and the loss from the data', function()
    local dls = fc.testing.synth_dbunch()
    assert.has_error(function() fc.Learner(dls, fc.testing.RegModel()) end)
    dls.loss_func = fc.F.mse_loss
    local learn = fc.Learner(dls, fc.testing.RegModel())
    assert.are.equal(fc.F.mse_loss, learn.loss_func)
    assert.are.equal(1e-3, learn.lr)
    assert.are.same({ 0.95, 0.85, 0.95 }, learn.moms)
    assert.are.equal('models', learn.model_dir)
    assert.are.equal(3, #learn.cbs)
    assert.is_not_nil(learn.recorder)
    assert.is_not_nil(learn.progress)
    assert.is_not_nil(learn.train_eval)
    assert.are.equal(1, learn.n_epoch)
    assert.has_error(function() fc.Learner(dls, fc.testing.RegModel(), { learning_rate = 1 }) end)
  end)

  it('fits the synthetic regression', function()
    local learn = learner({ n_train = 10 })
    learn:fit(8, 0.05)
    assert(math.abs(learn.model.a:item() - 2) < 0.1, learn.model.a:item())
    assert(math.abs(learn.model.b:item() - 3) < 0.1, learn.model.b:item())
    assert.is_true(learn.recorder.values[8][2] < 0.05)
    assert.is_nil(learn.pred)
    assert.is_nil(learn.dl)
  end)

  it('fit sets lr and wd, reset_opt makes a fresh optimizer', function()
    local learn = learner()
    learn:fit(1, 0.05, { wd = 0.1 })
    assert.are.equal(0.05, learn.opt.hypers[1].lr)
    assert.are.equal(0.1, learn.opt.hypers[1].wd)
    local opt = learn.opt
    learn:fit(1)
    assert.are.equal(opt, learn.opt)
    assert.are.equal(1e-2, learn.opt.hypers[1].lr)
    learn:fit(1, nil, { reset_opt = true })
    assert.are_not.equal(opt, learn.opt)
    assert.has_error(function() learn:fit(1, nil, { bad = 1 }) end)
  end)

  it('one_batch trains on a given batch', function()
    local learn = learner()
    learn:create_opt()
    learn.training, learn.n_iter, learn.n_epoch, learn.pct_train, learn.train_iter = true, 1, 1, 0, 0
    local x = fc.tensor({ { 1 }, { 2 } }, { dtype = 'float32' })
    local y = x * 2 + 3
    local a0 = learn.model.a:item()
    learn:remove_cb(learn.recorder)
    learn:one_batch(0, { x, y })
    assert.are_not.equal(a0, learn.model.a:item())
    assert.are.equal(x, learn.x)
    assert.are.equal(y, learn.y)
    assert.are.equal(0, learn.iter)
  end)

  it('create_opt marks norm and bias parameters', function()
    local nn = fc.nn
    local model = nn.Sequential({ nn.Linear(1, 4), nn.BatchNorm1d(4), nn.Linear(4, 1) })
    local learn = learner({ model = model })
    local opt = learn:create_opt()
    assert.is_false(opt.state[model[2].weight].do_wd)
    assert.is_false(opt.state[model[1].bias].do_wd)
    assert.is_nil((opt.state[model[1].weight] or {}).do_wd)
    assert.is_true(opt.state[model[2].bias].force_train)
    assert.is_nil((opt.state[model[1].bias] or {}).force_train)
  end)

  it('freeze, freeze_to and unfreeze follow the splitter groups', function()
    local nn = fc.nn
    local model = nn.Sequential({ nn.Linear(1, 4), nn.BatchNorm1d(4), nn.Linear(4, 1) })
    local splitter = function(m)
      return { { m[1].weight, m[1].bias }, { m[2].weight, m[2].bias }, { m[3].weight, m[3].bias } }
    end
    local learn = learner({ model = model, splitter = splitter })
    learn:freeze()
    assert.is_false(model[1].weight.requires_grad)
    assert.is_true(model[2].weight.requires_grad) -- batchnorm trains (train_bn)
    assert.is_true(model[3].weight.requires_grad)
    learn:fit(1)
    learn:freeze_to(1)
    assert.is_false(model[1].bias.requires_grad)
    assert.is_true(model[3].bias.requires_grad)
    learn:unfreeze()
    assert.is_true(model[1].weight.requires_grad)
    learn:fit(1, fc.slice(1e-4, 1e-2))
    local h = learn.opt.hypers
    assert(math.abs(h[1].lr - 1e-4) < 1e-12 and math.abs(h[2].lr - 1e-3) < 1e-12 and math.abs(h[3].lr - 1e-2) < 1e-12)
  end)

  it('fine_tune: a frozen cycle, then all groups with discriminative lrs', function()
    local nn = fc.nn
    local model = nn.Sequential({ nn.Linear(1, 4), nn.Linear(4, 1) })
    local learn = learner({ model = model, splitter = function(m) return { m[1]:parameters(), m[2]:parameters() } end })
    local body0 = model[1].weight:clone()
    local lrs = {}
    local probe = fc.Callback({ name = 'probe', order = 70, before_fit = function(self)
      lrs[#lrs + 1] = { self.learn.opt.hypers[1].lr, self.learn.opt.hypers[2].lr, model[1].weight.requires_grad }
    end, after_fit = function(self)
      if #lrs == 1 then assert.are.same(body0:totable(), model[1].weight:totable()) end
    end })
    learn:fine_tune(1, 2e-3, { cbs = { probe } })
    assert.are.equal(2, #lrs)
    assert.is_false(lrs[1][3])
    assert.is_true(lrs[2][3])
    assert.are_not.same(body0:totable(), model[1].weight:totable())
  end)

  it('validate returns the valid loss and metrics', function()
    local learn = classifier({ metrics = { function(pred, y) return pred:argmax(2):eq(y):float():mean() end } })
    learn:fit(3, 0.05)
    local res = learn:validate()
    assert.are.equal(2, #res)
    assert.is_true(res[2] > 0.9)
    local preds, targs = learn:get_preds({ act = function(x) return x end })
    local loss = fc.F.cross_entropy(preds, targs):item()
    assert(math.abs(loss - res[1]) < 1e-5, loss .. ' vs ' .. res[1])
    local res_train = learn:validate({ ds_idx = 1 })
    assert.are.equal(2, #res_train)
  end)

  it('get_preds: inputs, decoded, losses; activation from the loss', function()
    local learn = learner()
    learn:fit(1)
    local inp, preds, targs, dec, losses = learn:get_preds({ with_input = true, with_decoded = true, with_loss = true })
    assert.are.same({ 32, 1 }, inp:size())
    assert.are.same({ 32, 1 }, preds:size())
    assert.are.same({ 32, 1 }, targs:size())
    assert.are.equal(preds, dec)
    assert.are.same({ 32 }, losses:size())
    local _, want = learn.dls.valid_ds:tensors()
    assert.are.same(want:totable(), targs:totable())
    local d = (preds - targs):pow(2):view(-1):totable()
    for i = 1, 32 do assert(math.abs(d[i] - losses[i]) < 1e-5) end
    -- shuffled loaders are read in order
    local p2, t2 = learn:get_preds({ ds_idx = 1 })
    local x1 = learn.dls.train_ds:tensors()
    assert.are.same((x1 * learn.model.a + learn.model.b):totable(), p2:totable())
    assert.are.equal(160, t2:size(1))
    -- a plain list of batches
    local p3 = learn:get_preds({ dl = { { fc.ones(2, 1), fc.ones(2, 1) } } })
    assert.are.same({ 2, 1 }, p3:size())
  end)

  it('get_preds applies a loss activation and decodes', function()
    local learn = classifier({ loss_func = ce_loss })
    learn:fit(2, 0.05)
    local preds, targs, dec = learn:get_preds({ with_decoded = true })
    local sums = preds:sum(2):totable()
    for _, s in ipairs(sums) do assert(math.abs(s - 1) < 1e-5) end
    assert.are.same(preds:argmax(2):totable(), dec:totable())
    assert.are.same({ 32 }, targs:size())
    local label, cls, probs = learn:predict(fc.tensor({ 3, 0 }, { dtype = 'float32' }))
    assert.are.equal('right', label)
    assert.are.equal(2, cls)
    assert.are.same({ 3 }, probs:size())
  end)

  it('tta blends augmented and plain predictions', function()
    local learn = learner()
    local plain = learn:get_preds()
    local preds, targs = learn:tta({ n = 2, beta = 0.25, batch_tfms = function(x, y) return x + 1, y end })
    local a, b = learn.model.a:item(), learn.model.b:item()
    local aug = learn:get_preds({ dl = learn.dls.valid:new({ after_batch = function(x, y) return x + 1, y end }) })
    local want = (aug + (plain - aug) * 0.25):totable()
    local got = preds:totable()
    for i = 1, #want do assert(math.abs(want[i][1] - got[i][1]) < 1e-5) end
    assert.are.equal(32, targs:size(1))
    assert(a == learn.model.a:item() and b == learn.model.b:item())
    local mx = learn:tta({ n = 1, use_max = true, batch_tfms = function(x, y) return x + 1, y end })
    assert.are.same(fc.where(plain:gt(aug), plain, aug):totable(), mx:totable())
  end)

  it('save and load round trip the model and the optimizer state', function()
    local dir = tmpdir()
    local learn = learner({ path = dir })
    learn:fit(1)
    local file = learn:save('ck')
    assert.are.equal(dir .. '/models/ck.safetensors', file)
    local a, b = learn.model.a:item(), learn.model.b:item()
    local buf = learn.opt:state_dict().state[1].grad_avg:totable()
    learn:fit(1)
    assert.are_not.equal(a, learn.model.a:item())
    learn:load('ck')
    assert.are.equal(a, learn.model.a:item())
    assert.are.equal(b, learn.model.b:item())
    assert.are.same(buf, learn.opt:state_dict().state[1].grad_avg:totable())
    -- a fresh learner gets the same weights; without the optimizer too
    local other = learner({ path = dir })
    other:load('ck', { with_opt = false })
    assert.are.equal(a, other.model.a:item())
    learn:save('noopt', { with_opt = false })
    local _, meta = fc.load(dir .. '/models/noopt.safetensors')
    assert.is_nil(meta.with_opt)
    assert.has_error(function() learn:load('missing') end)
    rmdir(dir)
  end)

  it('export names fastai loss objects by class and arguments', function()
    local dir = tmpdir()
    local learn = classifier({ path = dir, loss_func = fc.CrossEntropyLossFlat({ label_smoothing = 0.1 }) })
    learn:fit(1, 0.05)
    local back = fc.load_learner(learn:export('m.safetensors'))
    assert.is_true(back.loss_func:is_a(fc.CrossEntropyLossFlat))
    local x, y = fc.randn(4, 3), fc.tensor({ 1, 2, 3, 1 })
    assert(math.abs(back.loss_func(x, y):item() - learn.loss_func(x, y):item()) < 1e-7)
    assert.are.same(learn:get_preds():totable(), back:get_preds({ dl = learn.dls.valid }):totable())
    rmdir(dir)
  end)

  it('export and fc.load_learner rebuild the learner from registered parts', function()
    local dir = tmpdir()
    local learn = classifier({ path = dir, loss_func = ce_loss })
    learn:fit(2, 0.05)
    local file = learn:export()
    assert.are.equal(dir .. '/export.safetensors', file)
    local back = fc.load_learner(file)
    assert.are.same(learn.model[1].weight:totable(), back.model[1].weight:totable())
    assert.are.same({ 'up', 'right', 'down' }, back.dls.vocab)
    assert.are.equal(3, back.dls.c)
    assert.are.equal(ce_loss, back.loss_func)
    local x = fc.tensor({ -3, -3 }, { dtype = 'float32' })
    assert.are.equal('down', back:predict(x))
    assert.are.equal(learn:predict(x), back:predict(x))
    -- an unregistered model cannot be exported
    local plain = fc.Learner(learn.dls, fc.nn.Sequential({ fc.nn.Linear(2, 3) }), { loss_func = fc.F.cross_entropy,
      path = dir })
    assert.has_error(function() plain:export() end)
    assert.has_error(function() fc.load_learner(dir .. '/nope.safetensors') end)
    rmdir(dir)
  end)

  it('lr_find stops on divergence, restores the weights and suggests', function()
    local dir = tmpdir()
    local learn = learner({ path = dir, n_train = 10 })
    local a, b = learn.model.a:item(), learn.model.b:item()
    local sug = learn:lr_find({ show_plot = false, suggest_funcs = { fc.SuggestionMethod.valley,
      fc.SuggestionMethod.minimum, fc.SuggestionMethod.steep } })
    local rec = learn.recorder
    assert.is_true(#rec.lrs < 100)                 -- stopped early: the loss blew up
    assert.is_true(rec.losses[#rec.losses] > 4 * math.min(unpack(rec.losses)))
    assert.are.equal(a, learn.model.a:item())      -- weights restored
    assert.are.equal(b, learn.model.b:item())
    assert.is_false(U.file_exists(dir .. '/models/_tmp.safetensors'))
    assert.are.equal(sug[1], sug.valley)
    assert.is_true(sug.valley > 1e-7 and sug.valley < 10)
    assert.is_true(sug.minimum > 0 and sug.steep > 0)
    -- lrs grow exponentially from start_lr
    assert(math.abs(rec.lrs[1] - 1e-7) < 1e-15)
    assert(math.abs(rec.lrs[2] / rec.lrs[1] - 10 ^ (8 / 100)) < 1e-9)
    local sug2 = learn:lr_find({ show_plot = false, num_it = 10, stop_div = false, suggest_funcs = {} })
    assert.are.equal(10, #learn.recorder.lrs)
    assert.is_nil(sug2[1])
    rmdir(dir)
  end)

  it('summary lists layers, shapes and parameter counts', function()
    local nn = fc.nn
    local model = nn.Sequential({ nn.Linear(1, 4), nn.ReLU(), nn.Linear(4, 1) })
    local learn = learner({ model = model })
    local text = learn:summary()
    assert.truthy(text:find('Linear%s+1 x 4%s+8%s+true'))
    assert.truthy(text:find('ReLU%s+1 x 4'))
    assert.truthy(text:find('Total params: 13', 1, true))
    assert.truthy(text:find('Total trainable params: 13', 1, true))
    assert.truthy(text:find('  - Recorder', 1, true))
    learn.splitter = function(m) return { m[1]:parameters(), m[3]:parameters() } end
    learn:freeze()
    text = learn:summary()
    assert.truthy(text:find('Total non-trainable params: 8', 1, true))
    assert.truthy(text:find('frozen up to parameter group #1', 1, true))
  end)

  it('show_training_loop names the callbacks at each event', function()
    local learn = learner()
    local out = {}
    local old = _G.print
    _G.print = function(s) out[#out + 1] = s end
    local ok, text = pcall(function() return learn:show_training_loop() end)
    _G.print = old
    assert.is_true(ok, text)
    assert.truthy(text:find('Start Fit\n   %- before_fit%s+: %[TrainEvalCallback, Recorder, ProgressCallback%]'))
    assert.truthy(text:find('after_cancel_fit'))
    assert.are.equal(text, out[1])
  end)

  it('no_bar and no_logging', function()
    local learn = learner()
    local logs = {}
    learn.logger = function(l) logs[#logs + 1] = l end
    learn:no_bar(function(l)
      assert.is_nil(l.progress)
      l:fit(1)
    end)
    assert.is_not_nil(learn.progress)
    assert.are.equal(1, #logs)
    assert.are.equal(0, logs[1][1])
    assert.are.equal('string', type(logs[1][4]))
    learn:no_logging(function(l) l:fit(1) end)
    assert.are.equal(1, #logs)
  end)

  it('the progress callback draws a bar with ETA and the epoch table', function()
    local learn = learner()
    local path = os.tmpname()
    local f = io.open(path, 'w')
    learn:remove_cb(learn.progress)
    learn:add_cb(fc.ProgressCallback({ out = f, show_bar = true }))
    learn.logger = U.print_log
    learn:fit(2)
    f:close()
    local text = io.open(path):read('*a')
    os.remove(path)
    assert.truthy(text:find('epoch%s+train_loss%s+valid_loss%s+time\n'))
    assert.truthy(text:find('%[K0%s+%d+%.%d+%s+%d+%.%d+%s+00:00\n'))
    assert.truthy(text:find('%[K1%s+%d+%.%d+%s+%d+%.%d+%s+00:00\n'))
    assert.truthy(text:find('|' .. string.rep('#', 30) .. '| 100%% 10/10 %[00:00<00:00%]'))
    assert.are.equal(U.print_log, learn.logger) -- restored after fit
    assert.are.equal('00:05', U.format_time(5.2))
    assert.are.equal('1:01:01', U.format_time(3661))
  end)

  it('plots the loss and lr when fc.plot is available', function()
    if not (fc.plot and fc.plot.lines) then
      pending('fc.plot.lines is not in this build')
      return
    end
    local dir = tmpdir()
    local learn = learner({ path = dir })
    learn:fit(2)
    local p = learn.recorder:plot_loss({ skip_start = 0 })
    assert.is_true(U.file_exists(p))
    assert.is_true(U.file_exists(learn.recorder:plot_lr()))
    learn:fit_one_cycle(1)
    local sched = learn.recorder:plot_sched()
    assert.are.equal(2, #sched) -- lr and mom
    assert.is_true(U.file_exists(sched[1]) and U.file_exists(sched[2]))
    local graph = fc.ShowGraphCallback()
    learn:fit(2, nil, { cbs = { graph } })
    assert.is_true(U.file_exists(graph.last_path))
    local stats = fc.ActivationStats({ modules = { learn.model } })
    learn:fit(1, nil, { cbs = { stats } })
    for _, path in ipairs(stats:plot_layer_stats(1)) do assert.is_true(U.file_exists(path)) end
    local old = _G.print
    _G.print = function() end
    local ok, err = pcall(function() learn:lr_find({ num_it = 30 }) end)
    _G.print = old
    assert.is_true(ok, err)
    assert.is_true(U.file_exists(dir .. '/lr_find.png'))
    rmdir(dir)
  end)
end)
