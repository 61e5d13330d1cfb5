-- lua/fastc/optim.lua — fc.optim.torch.SGD, Adam, AdamW: torch.optim's
-- update rules, names and defaults, one fused C call per parameter
-- (runtime/optim.c). fc.optim itself is fastai's optimizer (optimizer.lua);
-- this namespace is for code ported from PyTorch and for comparisons with it.
--
--   local opt = fc.optim.torch.Adam(model:parameters(), {lr = 1e-3})
--   loss:backward(); opt:step(); opt:zero_grad()
--
-- Parameter groups: pass a list of {params = {...}, lr = ...} tables; a
-- group's own settings override the defaults.
return function(fc, Tensor, H)
  local C, check, raise, fmt = H.C, H.check, H.raise, string.format
  local optim = {}
  fc.optim = fc.optim or {}
  fc.optim.torch = optim

  local Optimizer = fc.class('Optimizer')
  optim.Optimizer = Optimizer

  function Optimizer:init(params, defaults, opts)
    opts = opts or {}
    for k, v in pairs(opts) do
      if defaults[k] == nil then raise(fmt('%s: unknown option %q', self:class_name(), k)) end
    end
    local groups = params[1] and type(params[1]) == 'table' and params[1].params and params or { { params = params } }
    self.param_groups = {}
    for i, g in ipairs(groups) do
      local group = {}
      for k, v in pairs(defaults) do group[k] = v end
      for k, v in pairs(opts) do group[k] = v end
      for k, v in pairs(g) do group[k] = v end
      for j, p in ipairs(group.params) do
        if not H.is_tensor(p) then raise(fmt('%s: group %d parameter %d is not a tensor', self:class_name(), i, j)) end
      end
      self.param_groups[i] = group
    end
    self.state = setmetatable({}, { __mode = 'k' }) -- per-parameter state, dropped with the parameter
  end

  function Optimizer:zero_grad()
    for _, group in ipairs(self.param_groups) do
      for _, p in ipairs(group.params) do p.grad = nil end
    end
  end

  function Optimizer:step()
    for _, group in ipairs(self.param_groups) do
      for _, p in ipairs(group.params) do
        local g = p.grad
        if g then
          local state = self.state[p]
          if not state then
            state = { step = 0 }
            self.state[p] = state
          end
          state.step = state.step + 1
          self:update(p, g, state, group)
        end
      end
    end
  end

  local SGD = Optimizer:extend('SGD')
  optim.SGD = SGD
  function SGD:init(params, opts)
    Optimizer.init(self, params,
      { lr = 1e-3, momentum = 0, dampening = 0, weight_decay = 0, nesterov = false }, opts)
  end
  function SGD:update(p, g, state, group)
    if group.momentum ~= 0 and not state.momentum_buffer then state.momentum_buffer = fc.zeros_like(p) end
    check(C.fc_sgd_step(p.p, g.p, state.momentum_buffer and state.momentum_buffer.p or nil, group.lr,
      group.momentum, group.dampening, group.weight_decay, group.nesterov and 1 or 0,
      state.step == 1 and 1 or 0))
  end

  local function adam_class(name, decoupled, default_wd)
    local A = Optimizer:extend(name)
    function A:init(params, opts)
      Optimizer.init(self, params, { lr = 1e-3, betas = { 0.9, 0.999 }, eps = 1e-8,
        weight_decay = default_wd }, opts)
    end
    function A:update(p, g, state, group)
      if not state.exp_avg then
        state.exp_avg, state.exp_avg_sq = fc.zeros_like(p), fc.zeros_like(p)
      end
      check(C.fc_adam_step(p.p, g.p, state.exp_avg.p, state.exp_avg_sq.p, group.lr, group.betas[1],
        group.betas[2], group.eps, group.weight_decay, decoupled, state.step))
    end
    optim[name] = A
    return A
  end
  adam_class('Adam', 0, 0)
  adam_class('AdamW', 1, 1e-2)

  return optim
end
