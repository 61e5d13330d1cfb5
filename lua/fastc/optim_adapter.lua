-- lua/fastc/optim_adapter.lua — INTERIM: gives the torch-style optimizers of
-- optim.lua (fc.optim.SGD/Adam/AdamW) the fastai Optimizer interface the
-- Learner drives (param_lists, hypers, set_hyper, freeze_to, state dicts),
-- until fastai's stepper Optimizer lands in fc.optim. The Learner only uses
-- it when opt_func is one of those classes.
--
-- fastai names: lr, mom, sqr_mom, eps, wd. Adam here is fastai's Adam
-- (mom 0.9, sqr_mom 0.99, eps 1e-5, decoupled wd 0.01).
return function(fc, Tensor, H)
  local class, fmt = fc.class, string.format
  local U = fc.train_util

  local Adapter = class('OptimizerAdapter')
  fc.OptimizerAdapter = Adapter

  local DEFAULTS = {
    SGD = { mom = 0, wd = 0 },
    Adam = { mom = 0.9, sqr_mom = 0.99, eps = 1e-5, wd = 0.01 },
    AdamW = { mom = 0.9, sqr_mom = 0.99, eps = 1e-5, wd = 0.01 },
  }

  function Adapter.is_torch_style(f)
    return type(f) == 'table' and type(rawget(f, 'update')) == 'function' and DEFAULTS[rawget(f, '__name')] ~= nil
  end

  -- params: a flat list of tensors (one group) or a list of lists.
  function Adapter:init(cls, params, lr, opts)
    self.cls = cls
    local kind = cls.__name
    local groups = (params[1] and not H.is_tensor(params[1])) and params or { params }
    self.param_lists = {}
    for i, g in ipairs(groups) do
      local list = {}
      for j, p in ipairs(g) do
        if not H.is_tensor(p) then error(fmt('%s: group %d parameter %d is not a tensor', kind, i, j), 3) end
        list[j] = p
      end
      self.param_lists[i] = list
    end
    self.hypers = {}
    for i = 1, #self.param_lists do
      local h = { lr = lr or 1e-3 }
      for k, v in pairs(DEFAULTS[kind]) do h[k] = v end
      for k, v in pairs(opts or {}) do h[k] = v end
      self.hypers[i] = h
    end
    self.state = {}   -- per parameter: do_wd, force_train (kept on clear_state)
    self.inner = {}   -- per parameter: the update rule's buffers
    self.frozen_idx = 0
    self.update = cls.update
  end

  function Adapter:all_params()
    local out = {}
    for gi, list in ipairs(self.param_lists) do
      for _, p in ipairs(list) do out[#out + 1] = { p, gi } end
    end
    return out
  end

  function Adapter:set_hyper(name, v)
    local vals = fc.slice_values(v, #self.hypers, 'set_hyper ' .. name)
    for i, h in ipairs(self.hypers) do h[name] = vals[i] end
  end
  function Adapter:set_hypers(t) for k, v in pairs(t) do self:set_hyper(k, v) end end

  -- The torch-style group settings of fastai hypers.
  local function torch_group(kind, h, wd)
    if kind == 'SGD' then
      return { lr = h.lr, momentum = h.mom, dampening = 0, weight_decay = wd, nesterov = false }
    end
    return { lr = h.lr, betas = { h.mom, h.sqr_mom }, eps = h.eps, weight_decay = wd }
  end

  function Adapter:step()
    local kind = self.cls.__name
    -- fastai's Adam decouples weight decay: run it as AdamW
    local rule = kind == 'Adam' and fc.optim.AdamW.update or self.update
    for gi, list in ipairs(self.param_lists) do
      local h = self.hypers[gi]
      local with_wd, no_wd = torch_group(kind, h, h.wd or 0), torch_group(kind, h, 0)
      if kind == 'SGD' and (h.wd or 0) ~= 0 then
        -- fastai's SGD decays weights decoupled too: p *= 1 - lr*wd before the step
        with_wd.weight_decay = 0
      end
      for _, p in ipairs(list) do
        local g = p.grad
        if g then
          local st = self.state[p]
          local do_wd = not (st and st.do_wd == false)
          if kind == 'SGD' and do_wd and (h.wd or 0) ~= 0 then
            fc.no_grad(function() p:mul_(1 - h.lr * h.wd) end)
          end
          local inner = self.inner[p]
          if not inner then
            inner = { step = 0 }
            self.inner[p] = inner
          end
          inner.step = inner.step + 1
          rule(self, p, g, inner, do_wd and with_wd or no_wd)
        end
      end
    end
  end

  function Adapter:zero_grad()
    for _, list in ipairs(self.param_lists) do
      for _, p in ipairs(list) do p.grad = nil end
    end
  end

  -- Groups before n (a count; negative counts from the end) stop training,
  -- except parameters marked force_train (batchnorm with train_bn).
  function Adapter:freeze_to(n)
    local ng = #self.param_lists
    self.frozen_idx = n >= 0 and n or ng + n
    if self.frozen_idx >= ng then
      io.stderr:write(fmt('freeze_to: freezing %d groups; there are only %d\n', self.frozen_idx, ng))
    end
    for gi, list in ipairs(self.param_lists) do
      local on = gi > self.frozen_idx
      for _, p in ipairs(list) do
        local st = self.state[p]
        p:requires_grad_(on or (st ~= nil and st.force_train == true))
      end
    end
  end
  function Adapter:freeze() self:freeze_to(-1) end
  function Adapter:unfreeze() self:freeze_to(0) end

  function Adapter:clear_state()
    self.inner = {}
  end

  -- Tensors and plain values only: {hypers = {...}, state = {[i] = {...}}},
  -- parameters numbered in param_lists order.
  function Adapter:state_dict()
    local state = {}
    for i, pair in ipairs(self:all_params()) do
      local inner = self.inner[pair[1]]
      if inner then
        local s = {}
        for k, v in pairs(inner) do s[k] = v end
        state[i] = s
      end
    end
    local hypers = {}
    for i, h in ipairs(self.hypers) do
      hypers[i] = {}
      for k, v in pairs(h) do hypers[i][k] = v end
    end
    return { state = state, hypers = hypers }
  end

  function Adapter:load_state_dict(sd)
    local params = self:all_params()
    if #(sd.hypers or {}) ~= #self.hypers then
      error(fmt('load_state_dict: %d parameter groups in the state, %d in the optimizer', #(sd.hypers or {}), #self.hypers), 2)
    end
    for i, h in ipairs(sd.hypers) do
      for k, v in pairs(h) do self.hypers[i][k] = v end
    end
    self.inner = {}
    for i, s in pairs(sd.state or {}) do
      local p = params[i] and params[i][1]
      if not p then error(fmt('load_state_dict: state for parameter %d, the optimizer has %d', i, #params), 2) end
      local inner = {}
      for k, v in pairs(s) do inner[k] = H.is_tensor(v) and v:clone() or v end
      self.inner[p] = inner
    end
  end

  -- opt_func for the Learner: fc.optim_adapt(fc.optim.SGD, {mom = 0.9}).
  function fc.optim_adapt(cls, opts)
    return function(params, lr) return Adapter(cls, params, lr, opts) end
  end
  U.torch_style = Adapter.is_torch_style
end
