-- lua/fastc/testing.lua — fc.testing: fastai's test fixtures.
--
--   local learn = fc.testing.synth_learner{n_train = 10, n_valid = 2, bs = 16, lr = 1e-3}
--   learn:fit(1)   -- y = a*x + b + noise, learning learn.model.a, learn.model.b
return function(fc, Tensor, H)
  local T = {}
  fc.testing = T

  -- DataLoaders of x ~ N(0,1) [n,1] and y = a*x + b + 0.1*noise, n = bs * n_batches.
  function T.synth_dbunch(opts)
    opts = opts or {}
    local a, b, bs = opts.a or 2, opts.b or 3, opts.bs or 16
    local function data(n)
      local x = fc.randn(bs * n, 1)
      return x, x * a + b + fc.randn(bs * n, 1) * 0.1
    end
    local xt, yt = data(opts.n_train or 10)
    local xv, yv = data(opts.n_valid or 2)
    return fc.DataLoaders(fc.TensorDataLoader(xt, yt, { bs = bs, shuffle = true }),
      fc.TensorDataLoader(xv, yv, { bs = bs }))
  end

  -- y = x*a + b with scalar parameters a and b.
  local RegModel = fc.nn.Module:extend('RegModel')
  T.RegModel = RegModel
  function RegModel:init()
    fc.nn.Module.init(self)
    self.a = fc.randn(1):requires_grad_()
    self.b = fc.randn(1):requires_grad_()
  end
  function RegModel:forward(x) return x * self.a + self.b end
  fc.register('testing.RegModel', function() return RegModel() end)

  local function mse_flat(pred, y, opts)
    return fc.F.mse_loss(pred:reshape(-1), y:reshape(-1), opts)
  end
  fc.register_value('testing.mse_flat', mse_flat)

  -- fastai's SGD with momentum 0.9.
  local function sgd_mom(params, lr) return fc.optim.SGD(params, lr, { mom = 0.9 }) end
  T.sgd_mom = sgd_mom
  fc.register_value('testing.sgd_mom', sgd_mom)

  -- synth_learner{n_train = 10, n_valid = 2, bs = 16, lr = 1e-3, data, model,
  -- and any Learner option}: MSE loss, SGD with momentum 0.9.
  function T.synth_learner(opts)
    opts = opts or {}
    local data = opts.data or T.synth_dbunch({ n_train = opts.n_train or opts.n_trn, n_valid = opts.n_valid or opts.n_val,
      bs = opts.bs, a = opts.a, b = opts.b })
    local model = opts.model or fc.build('testing.RegModel')
    local lopts = { lr = opts.lr or 1e-3, opt_func = opts.opt_func or sgd_mom,
      loss_func = opts.loss_func or (fc.MSELossFlat and fc.MSELossFlat()) or mse_flat }
    for _, k in ipairs({ 'cbs', 'metrics', 'path', 'model_dir', 'wd', 'wd_bn_bias', 'train_bn', 'moms', 'splitter' }) do
      if opts[k] ~= nil then lopts[k] = opts[k] end
    end
    return fc.Learner(data, model, lopts)
  end

  -- Records every event it sees (fastai's VerboseCallback, into a list).
  T.VerboseCallback = fc.Callback:extend('VerboseCallback')
  function T.VerboseCallback:init(opts)
    self.events = {}
    self.echo = opts and opts.echo
  end
  for _, e in ipairs(fc.events) do
    T.VerboseCallback[e] = function(self)
      self.events[#self.events + 1] = e
      if self.echo then print(e) end
    end
  end
end
