-- lua/fastc/callback/hook.lua — forward hooks (fc.Hook, fc.Hooks,
-- fc.hook_output(s)), HookCallback and ActivationStats.
return function(fc, Tensor, H)
  local class, fmt = fc.class, string.format
  local U = fc.train_util
  local Callback = fc.Callback

  -- Hook(module, fn(module, inputs, output)): keeps fn's result in .stored.
  local Hook = class('Hook')
  fc.Hook = Hook
  function Hook:init(m, hook_func, opts)
    opts = opts or {}
    self.hook_func, self.detach = hook_func, opts.detach ~= false
    self.stored, self.removed = nil, false
    self.handle = m:register_forward_hook(function(mod, input, output)
      if self.detach and H.is_tensor(output) then output = output:detach() end
      self.stored = fc.no_grad(self.hook_func, mod, input, output)
    end)
  end
  function Hook:remove()
    if not self.removed then
      self.handle.remove()
      self.removed = true
    end
  end

  local Hooks = class('Hooks')
  fc.Hooks = Hooks
  function Hooks:init(modules, hook_func, opts)
    self.hooks = {}
    for i, m in ipairs(modules) do self.hooks[i] = Hook(m, hook_func, opts) end
  end
  function Hooks:len() return #self.hooks end
  function Hooks:stored()
    local out = {}
    for i, h in ipairs(self.hooks) do out[i] = h.stored end
    return out
  end
  function Hooks:remove() for _, h in ipairs(self.hooks) do h:remove() end end

  local function keep_output(_, _, o) return o end
  function fc.hook_output(m, opts) return Hook(m, keep_output, opts) end
  function fc.hook_outputs(ms, opts) return Hooks(ms, keep_output, opts) end

  -- The leaf modules of a model (fastai's flatten_model).
  function fc.flatten_model(model)
    local out = {}
    for _, m in ipairs(model:modules()) do
      if #m:children() == 0 then out[#out + 1] = m end
    end
    return out
  end

  local function has_params(m) return #m:parameters() > 0 end

  -- HookCallback{modules, every, remove_end = true, include_paramless = false}
  -- with a hook(self, module, inputs, output) method.
  local HookCallback = Callback:extend('HookCallback')
  fc.HookCallback = HookCallback
  function HookCallback:init(opts)
    opts = opts or {}
    self.modules, self.every, self.remove_end = opts.modules, opts.every, opts.remove_end ~= false
    self.include_paramless = opts.include_paramless or false
    if opts.hook then self.hook_fn = opts.hook end
  end
  function HookCallback:_hook_func()
    local f = self.hook_fn or self.hook
    return function(m, i, o) return f(self, m, i, o) end
  end
  function HookCallback:before_fit()
    if not self.modules then
      self.modules = {}
      for _, m in ipairs(fc.flatten_model(self.learn.model)) do
        if self.include_paramless or has_params(m) then self.modules[#self.modules + 1] = m end
      end
    end
    if not self.every then self:_register() end
  end
  function HookCallback:before_batch()
    if not self.every then return end
    if self.learn.training and self.learn.train_iter % self.every == 0 then self:_register() end
  end
  function HookCallback:after_batch()
    if not self.every then return end
    if self.learn.training and self.learn.train_iter % self.every == 0 then self:_remove() end
  end
  function HookCallback:after_fit()
    if self.remove_end then self:_remove() end
  end
  function HookCallback:_register() self.hooks = Hooks(self.modules, self:_hook_func()) end
  function HookCallback:_remove()
    if self.hooks then self.hooks:remove() end
    self.hooks = nil
  end
  function HookCallback:hook() end

  -- ActivationStats{every, modules, with_hist}: mean, std and the share of
  -- values <= 0.05 of every layer's output, per training batch.
  local ActivationStats = HookCallback:extend('ActivationStats')
  fc.ActivationStats = ActivationStats
  ActivationStats.order = -20
  function ActivationStats:init(opts)
    HookCallback.init(self, opts)
    self.with_hist = (opts or {}).with_hist or false
  end
  function ActivationStats:before_fit()
    HookCallback.before_fit(self)
    self.stats = {}
    self.plot_dir = self.learn.path -- plots are often drawn after fit removed the callback
  end
  function ActivationStats:hook(_, _, o)
    o = o:to('float32')
    local res = { mean = o:mean():item(), std = o:std():item(), near_zero = o:le(0.05):sum():item() / o:numel() }
    if self.with_hist then
      -- 40 bins over [0, 10], like torch.histc(40, 0, 10)
      local inside = o:ge(0):logical_and(o:le(10))
      local bins = (o * 4):floor():clamp(0, 39):masked_select(inside):to('int64')
      local counts = fc.zeros(40):scatter_add(1, bins + 1, fc.ones(bins:numel()))
      res.hist = counts
    end
    return res
  end
  function ActivationStats:after_batch()
    local learn = self.learn
    if learn.training and (not self.every or learn.train_iter % self.every == 0) and self.hooks then
      self.stats[#self.stats + 1] = self.hooks:stored()
    end
    HookCallback.after_batch(self)
  end
  -- {means, stds, near_zeros} of layer idx over the recorded batches.
  function ActivationStats:layer_stats(idx)
    local means, stds, nz = {}, {}, {}
    for i, s in ipairs(self.stats) do
      local l = s[idx]
      means[i], stds[i], nz[i] = l.mean, l.std, l.near_zero
    end
    return { means, stds, nz }
  end
  -- plot_layer_stats(idx, {path}): three PNGs (mean, std, % near zero).
  function ActivationStats:plot_layer_stats(idx, opts)
    opts = opts or {}
    local stats = self:layer_stats(idx)
    local base = opts.path or U.join(self.plot_dir or '.', fmt('activation_stats_%d', idx))
    local paths = {}
    for i, title in ipairs({ 'mean', 'std', 'near_zero' }) do
      local xs = {}
      for j = 1, #stats[i] do xs[j] = j - 1 end
      paths[i] = U.plot({ series = { { x = xs, y = stats[i], label = title } }, title = title, xlabel = 'batch',
        ylabel = title, path = base .. '_' .. title .. '.png' })
    end
    return paths
  end
end
