-- lua/fastc/optimizer.lua — fc.optim: fastai's optimizer design.
--
-- An Optimizer holds parameter groups (`param_lists`), one table of
-- hyper-parameters per group (`hypers`) and a state table per parameter
-- (`state[p]`); `step` runs a list of steppers over every parameter that has
-- a gradient. A stepper is fastai's optimizer callback: it reads the hypers
-- and the state, updates the parameter or the state, in order.
--
--   local opt = fc.optim.Adam(model:parameters(), 1e-3)           -- fastai defaults
--   local opt = fc.optim.SGD({body_params, head_params}, {lr = 0.1, mom = 0.9})
--   opt:set_hyper('lr', fc.slice(1e-5, 1e-3))                      -- per group
--   loss:backward(); opt:step(); opt:zero_grad()
--
-- SGD, RMSProp, Adam and RAdam run one fused C call per parameter
-- (runtime/optim.c); `{fused = false}` runs fastai's stepper chain made of
-- tensor ops instead (the same numbers, for reading and testing). QHAdam,
-- Larc/Lars and Lamb are stepper chains; Lookahead wraps any optimizer.
--
-- Names and defaults are fastai's (mom, sqr_mom, eps, wd; Adam's wd 0.01 is
-- decoupled). torch.optim's classes, names and defaults: fc.optim.torch.
-- Hypers that are per-parameter in fastai live in the state: `do_wd = false`
-- (no weight decay, set for norm/bias parameters) and `force_train = true`
-- (trained even in a frozen group, set for batchnorm when train_bn).
return function(fc, Tensor, H)
  local C, check, raise, fmt = H.C, H.check, H.raise, string.format
  local is_tensor = H.is_tensor
  local sqrt, min, floor = math.sqrt, math.min, math.floor
  local class = fc.class or require 'fastc.class'
  local optim = fc.optim or {}
  fc.optim = optim

  -- ---- fc.slice: discriminative values across parameter groups ---------------

  -- fc.slice(lo, hi): lo for the first group, hi for the last, geometric in
  -- between; fc.slice(hi): hi/10 for every group but the last, which gets hi.
  local Slice = class('slice')
  function Slice:init(a, b)
    if b == nil then self.stop = a else self.start, self.stop = a, b end
    for _, v in ipairs { self.start or 1, self.stop } do
      if type(v) ~= 'number' then raise(fmt('slice: bounds must be numbers, got %s', type(v))) end
    end
  end
  Slice.__tostring = function(s)
    return s.start and fmt('slice(%g, %g)', s.start, s.stop) or fmt('slice(%g)', s.stop)
  end
  fc.slice = Slice
  function fc.is_slice(v) return type(v) == 'table' and getmetatable(v) == Slice end

  -- n values from start to stop, each a constant multiple of the previous.
  function optim.even_mults(start, stop, n)
    if n == 1 then return { stop } end
    local step = (stop / start) ^ (1 / (n - 1))
    local out = {}
    for i = 1, n do out[i] = start * step ^ (i - 1) end
    out[n] = stop -- exact, whatever the rounding of the powers
    return out
  end

  -- ---- steppers ------------------------------------------------------------------

  -- A stepper: fn(p, g, state, hyper, opts) with `defaults` (hypers it brings)
  -- and `opts` (fixed settings, fastai's functools.partial arguments).
  local Stepper = class('Stepper')
  optim.Stepper = Stepper
  function Stepper:init(name, defaults, fn, opts)
    self.name, self.defaults, self.fn, self.opts = name, defaults or {}, fn, opts or {}
  end
  Stepper.__call = function(self, p, g, state, hyper) return self.fn(p, g, state, hyper, self.opts) end
  Stepper.__tostring = function(self) return 'stepper ' .. self.name end
  -- A copy with some settings fixed: average_grad:with{dampening = true}.
  function Stepper:with(opts)
    local merged = {}
    for k, v in pairs(self.opts) do merged[k] = v end
    for k, v in pairs(opts) do merged[k] = v end
    return Stepper(self.name, self.defaults, self.fn, merged)
  end
  local function stepper(name, defaults, fn, opts)
    local s = Stepper(name, defaults, fn, opts)
    optim[name] = s
    return s
  end

  -- Weight decay applies unless the parameter's state says do_wd = false.
  local function wd_of(state, hyper)
    if state.do_wd == false then return 0 end
    return hyper.wd or 0
  end
  local function buffer(state, key, p)
    local b = state[key]
    if not b then
      b = fc.zeros_like(p)
      state[key] = b
    end
    return b
  end
  -- fastai's debias(mom, damp, step) = damp * (1 - mom^step) / (1 - mom).
  local function debias(mom, damp, step)
    if mom == 1 then return damp * step end
    return damp * (1 - mom ^ step) / (1 - mom)
  end
  optim.debias = debias

  stepper('weight_decay', { wd = 0 }, function(p, g, state, hyper)
    local wd = wd_of(state, hyper)
    if wd ~= 0 then p:mul_(1 - hyper.lr * wd) end
  end)
  stepper('l2_reg', { wd = 0 }, function(p, g, state, hyper)
    local wd = wd_of(state, hyper)
    if wd ~= 0 then g:add_scaled_(p, wd) end -- in the gradient itself, as fastai does
  end)
  stepper('average_grad', { mom = 0.9 }, function(p, g, state, hyper, opts)
    local mom = hyper.mom
    buffer(state, 'grad_avg', p):mul_(mom):add_scaled_(g, opts.dampening and 1 - mom or 1)
  end, { dampening = false })
  stepper('average_sqr_grad', { sqr_mom = 0.99 }, function(p, g, state, hyper, opts)
    local sqr_mom = hyper.sqr_mom
    buffer(state, 'sqr_avg', p):mul_(sqr_mom):add_scaled_(g * g, opts.dampening and 1 - sqr_mom or 1)
  end, { dampening = true })
  stepper('step_stat', {}, function(p, g, state)
    state.step = (state.step or 0) + 1
  end)
  stepper('sgd_step', {}, function(p, g, state, hyper)
    p:add_scaled_(g, -hyper.lr)
  end)
  stepper('momentum_step', {}, function(p, g, state, hyper)
    p:add_scaled_(state.grad_avg, -hyper.lr)
  end)
  stepper('rms_prop_step', { eps = 1e-8 }, function(p, g, state, hyper)
    p:add_scaled_((state.grad_avg or g) / (state.sqr_avg:sqrt() + hyper.eps), -hyper.lr)
  end)
  stepper('adam_step', {}, function(p, g, state, hyper)
    local d1 = debias(hyper.mom, 1 - hyper.mom, state.step)
    local d2 = debias(hyper.sqr_mom, 1 - hyper.sqr_mom, state.step)
    p:add_scaled_(state.grad_avg / ((state.sqr_avg / d2):sqrt() + hyper.eps), -hyper.lr / d1)
  end)
  stepper('radam_step', {}, function(p, g, state, hyper)
    local mom, sqr_mom, t = hyper.mom, hyper.sqr_mom, state.step
    local d1, d2 = debias(mom, 1 - mom, t), debias(sqr_mom, 1 - sqr_mom, t)
    local r_inf = 2 / (1 - sqr_mom) - 1
    local r = r_inf - 2 * t * sqr_mom ^ t / (1 - sqr_mom ^ t)
    if r > 5 then
      local v = sqrt((r - 4) * (r - 2) * r_inf / ((r_inf - 4) * (r_inf - 2) * r))
      local denom = (state.sqr_avg / d2):sqrt()
      if hyper.eps and hyper.eps ~= 0 then denom = denom + hyper.eps end
      local beta = hyper.beta or 0
      if beta ~= 0 then denom = ((denom * beta):exp() + 1):log() / beta end
      p:add_scaled_(state.grad_avg / denom, -hyper.lr * v / d1)
    else
      p:add_scaled_(state.grad_avg, -hyper.lr / d1)
    end
  end)
  stepper('qhadam_step', {}, function(p, g, state, hyper)
    local d1 = debias(hyper.mom, 1 - hyper.mom, state.step)
    local d2 = debias(hyper.sqr_mom, 1 - hyper.sqr_mom, state.step)
    local nu_1, nu_2 = hyper.nu_1, hyper.nu_2
    local num = g * (1 - nu_1) + state.grad_avg * (nu_1 / d1)
    local den = (g * g * (1 - nu_2) + state.sqr_avg * (nu_2 / d2)):sqrt() + hyper.eps
    p:add_scaled_(num / den, -hyper.lr)
  end)
  -- LARC's layer-wise rate, from the norms of the (already decayed) parameter
  -- and of the gradient; clip keeps it at most lr (LARC) or not (LARS).
  stepper('larc_layer_lr', { trust_coeff = 0.02, wd = 0, eps = 1e-8 }, function(p, g, state, hyper, opts)
    local p_norm, g_norm = p:norm():item(), g:norm():item()
    local lr = hyper.lr
    local local_lr = lr * hyper.trust_coeff * p_norm / (g_norm + p_norm * hyper.wd + hyper.eps)
    state.local_lr = opts.clip and min(lr, local_lr) or local_lr
  end, { clip = true })
  stepper('larc_step', {}, function(p, g, state)
    p:add_scaled_(state.grad_avg or g, -state.local_lr)
  end)
  stepper('lamb_step', {}, function(p, g, state, hyper)
    local d1 = debias(hyper.mom, 1 - hyper.mom, state.step)
    local d2 = debias(hyper.sqr_mom, 1 - hyper.sqr_mom, state.step)
    local r1 = sqrt((p * p):mean():item())
    local step = (state.grad_avg / d1) / ((state.sqr_avg / d2):sqrt() + hyper.eps)
    local r2 = sqrt((step * step):mean():item())
    local q = (r1 == 0 or r2 == 0) and 1 or min(r1 / r2, 10)
    p:add_scaled_(step, -hyper.lr * q)
  end)

  -- The fused steppers: a whole fastai chain in one C call per parameter,
  -- keeping fastai's state names (grad_avg, sqr_avg, step).
  local function decoupled(opts) return opts.decouple_wd and 1 or 0 end
  stepper('fused_sgd', { mom = 0, wd = 0 }, function(p, g, state, hyper, opts)
    local avg = opts.momentum and buffer(state, 'grad_avg', p) or nil
    check(C.fc_sgdw_step(p.p, g.p, avg and avg.p or nil, hyper.lr, avg and hyper.mom or 0,
      wd_of(state, hyper), decoupled(opts)))
  end, { decouple_wd = true, momentum = true })
  stepper('fused_rmsprop', { mom = 0, sqr_mom = 0.99, eps = 1e-8, wd = 0 }, function(p, g, state, hyper, opts)
    local avg = opts.momentum and buffer(state, 'grad_avg', p) or nil
    check(C.fc_rmsprop_step(p.p, g.p, avg and avg.p or nil, buffer(state, 'sqr_avg', p).p, hyper.lr,
      avg and hyper.mom or 0, hyper.sqr_mom, hyper.eps, wd_of(state, hyper), decoupled(opts)))
  end, { decouple_wd = true, momentum = false })
  stepper('fused_adam', { mom = 0.9, sqr_mom = 0.99, eps = 1e-5, wd = 0 }, function(p, g, state, hyper, opts)
    state.step = (state.step or 0) + 1
    check(C.fc_adam_step(p.p, g.p, buffer(state, 'grad_avg', p).p, buffer(state, 'sqr_avg', p).p,
      hyper.lr, hyper.mom, hyper.sqr_mom, hyper.eps, wd_of(state, hyper), decoupled(opts), state.step))
  end, { decouple_wd = true })
  stepper('fused_radam', { mom = 0.9, sqr_mom = 0.99, eps = 1e-5, wd = 0, beta = 0 }, function(p, g, state, hyper, opts)
    state.step = (state.step or 0) + 1
    check(C.fc_radam_step(p.p, g.p, buffer(state, 'grad_avg', p).p, buffer(state, 'sqr_avg', p).p,
      hyper.lr, hyper.mom, hyper.sqr_mom, hyper.eps or 0, wd_of(state, hyper), decoupled(opts),
      hyper.beta or 0, state.step))
  end, { decouple_wd = true })

  -- ---- Optimizer -------------------------------------------------------------------

  local Optimizer = class('Optimizer')
  optim.Optimizer = Optimizer
  local KEEP_ON_CLEAR = { 'force_train', 'do_wd' }

  -- params: a list of tensors (one group), a list of lists of tensors, or a
  -- list of {params = {...}, hyper = value, ...} tables (per-group hypers).
  local function split_params(name, params)
    if type(params) ~= 'table' then raise(fmt('%s: params must be a list of tensors, got %s', name, type(params))) end
    if #params == 0 then raise(name .. ': params is empty') end
    local lists, group_hypers = {}, {}
    if is_tensor(params[1]) then
      lists[1] = params
    else
      for i, g in ipairs(params) do
        if type(g) ~= 'table' or is_tensor(g) then
          raise(fmt('%s: group %d must be a list of tensors, got %s', name, i, type(g)))
        end
        if g.params then
          lists[i] = g.params
          local h = {}
          for k, v in pairs(g) do if k ~= 'params' then h[k] = v end end
          group_hypers[i] = h
        else
          lists[i] = g
        end
      end
    end
    local seen = {}
    for i, pl in ipairs(lists) do
      local copy = {}
      for j, p in ipairs(pl) do
        if not is_tensor(p) then raise(fmt('%s: group %d parameter %d is a %s, not a tensor', name, i, j, type(p))) end
        if seen[p] then raise(fmt('%s: group %d parameter %d appears twice', name, i, j)) end
        seen[p] = true
        copy[j] = p
      end
      lists[i] = copy
    end
    return lists, group_hypers
  end

  -- Optimizer(params, steppers, defaults): defaults override the steppers'
  -- own defaults; every hyper starts the same in every group.
  function Optimizer:init(params, steppers, defaults)
    local name = self:class_name()
    if type(steppers) ~= 'table' then raise(fmt('%s: steppers must be a list, got %s', name, type(steppers))) end
    for i, s in ipairs(steppers) do
      if type(s) ~= 'function' and not (type(s) == 'table' and getmetatable(s) and getmetatable(s).__call) then
        raise(fmt('%s: stepper %d is a %s, not callable', name, i, type(s)))
      end
    end
    self.steppers = steppers
    self.cbs = steppers -- fastai's name
    local merged = {}
    for _, s in ipairs(steppers) do
      if type(s) == 'table' and s.defaults then for k, v in pairs(s.defaults) do merged[k] = v end end
    end
    for k, v in pairs(defaults or {}) do merged[k] = v end
    local group_hypers
    self.param_lists, group_hypers = split_params(name, params)
    self.hypers, self.state = {}, {}
    for i, pl in ipairs(self.param_lists) do
      self.hypers[i] = {}
      for _, p in ipairs(pl) do self.state[p] = {} end
    end
    self:set_hypers(merged)
    for i, h in pairs(group_hypers) do
      for k, v in pairs(h) do self.hypers[i][k] = v end
    end
    self.frozen_idx = 0
  end

  function Optimizer:__tostring()
    local keys = {}
    for k in pairs(self.hypers[1]) do keys[#keys + 1] = k end
    table.sort(keys)
    local parts = {}
    for i, k in ipairs(keys) do parts[i] = fmt('%s=%s', k, tostring(self.hypers[1][k])) end
    return fmt('%s(%d groups; %s)', self:class_name(), #self.param_lists, table.concat(parts, ', '))
  end

  -- {p, param_list, state, hyper} for the groups in [first, last] (all by
  -- default), only those with a gradient when with_grad.
  function Optimizer:all_params(first, last, with_grad)
    local out = {}
    for i = first or 1, last or #self.param_lists do
      local pl, hyper = self.param_lists[i], self.hypers[i]
      for _, p in ipairs(pl) do
        if not with_grad or p.grad ~= nil then out[#out + 1] = { p, pl, self.state[p], hyper } end
      end
    end
    return out
  end

  -- set_hyper(k, v): v a number (or any plain value) for every group, a list
  -- with one value per group, or fc.slice(lo, hi) / fc.slice(hi).
  function Optimizer:set_hyper(k, v)
    local n = #self.param_lists
    if fc.is_slice(v) then
      if v.start then
        v = optim.even_mults(v.start, v.stop, n)
      else
        local vals = {}
        for i = 1, n - 1 do vals[i] = v.stop / 10 end
        vals[n] = v.stop
        v = vals
      end
    end
    if type(v) ~= 'table' then v = { v } end
    if #v == 1 then
      local one = v[1]
      v = {}
      for i = 1, n do v[i] = one end
    end
    if #v ~= n then
      raise(fmt('set_hyper: %d values for %s but there are %d parameter groups', #v, tostring(k), n))
    end
    for i = 1, n do self.hypers[i][k] = v[i] end
  end

  function Optimizer:set_hypers(tbl)
    for k, v in pairs(tbl) do self:set_hyper(k, v) end
  end

  -- param_groups(): torch's view, {params = ..., hyper = ...} per group.
  function Optimizer:param_groups()
    local out = {}
    for i, pl in ipairs(self.param_lists) do
      local g = { params = pl }
      for k, v in pairs(self.hypers[i]) do g[k] = v end
      out[i] = g
    end
    return out
  end

  local function run_steppers(self)
    local steppers, nsteppers = self.steppers, #self.steppers
    for i, pl in ipairs(self.param_lists) do
      local hyper, frozen = self.hypers[i], i <= self.frozen_idx
      for _, p in ipairs(pl) do
        local state = self.state[p]
        local g = (not frozen or state.force_train) and p.grad or nil
        if g then
          for s = 1, nsteppers do steppers[s](p, g, state, hyper) end
        end
      end
    end
  end

  -- Updates every parameter that has a gradient, outside of autograd.
  function Optimizer:step(closure)
    if closure ~= nil then raise(self:class_name() .. ': step takes no closure') end
    fc.no_grad(run_steppers, self)
  end

  -- Drops the gradients (PyTorch's set_to_none): backward makes new ones.
  function Optimizer:zero_grad()
    for _, pl in ipairs(self.param_lists) do
      for _, p in ipairs(pl) do p.grad = nil end
    end
  end

  -- freeze_to(n): groups 1..n get no updates (requires_grad off, their
  -- gradients dropped) except parameters whose state has force_train;
  -- n < 0 counts from the end: freeze_to(-1) trains only the last group.
  function Optimizer:freeze_to(n)
    local ng = #self.param_lists
    if type(n) ~= 'number' or n ~= floor(n) then raise(fmt('freeze_to: n must be an integer, got %s', tostring(n))) end
    self.frozen_idx = n >= 0 and min(n, ng) or math.max(ng + n, 0)
    for i, pl in ipairs(self.param_lists) do
      for _, p in ipairs(pl) do
        local train = i > self.frozen_idx or self.state[p].force_train == true
        p.requires_grad = train
        if not train then p.grad = nil end
      end
    end
  end
  function Optimizer:freeze()
    if #self.param_lists < 2 then raise('freeze: needs more than one parameter group (use a splitter)') end
    self:freeze_to(-1)
  end
  function Optimizer:unfreeze() self:freeze_to(0) end

  -- Forgets the running averages and step counts; keeps force_train/do_wd.
  function Optimizer:clear_state()
    for _, pl in ipairs(self.param_lists) do
      for _, p in ipairs(pl) do
        local old, new = self.state[p], {}
        for _, k in ipairs(KEEP_ON_CLEAR) do new[k] = old[k] end
        self.state[p] = new
      end
    end
  end

  local function copy_table(t)
    local out = {}
    for k, v in pairs(t) do out[k] = v end
    return out
  end

  -- {state = {one table per parameter, in group order}, hypers = {one per group}}:
  -- tensors and plain values; optim.flatten_state makes it a safetensors file.
  function Optimizer:state_dict()
    local state, hypers = {}, {}
    for _, pl in ipairs(self.param_lists) do
      for _, p in ipairs(pl) do state[#state + 1] = copy_table(self.state[p]) end
    end
    for i, h in ipairs(self.hypers) do hypers[i] = copy_table(h) end
    return { state = state, hypers = hypers }
  end

  -- Tensors are copied in: the optimizer never shares state with sd.
  function Optimizer:load_state_dict(sd)
    local name = self:class_name()
    if type(sd) ~= 'table' or type(sd.state) ~= 'table' or type(sd.hypers) ~= 'table' then
      raise(name .. ': load_state_dict expects {state = {...}, hypers = {...}}')
    end
    local nparams = 0
    for _, pl in ipairs(self.param_lists) do nparams = nparams + #pl end
    if #sd.hypers ~= #self.param_lists then
      raise(fmt('%s: state dict has %d parameter groups, the optimizer %d', name, #sd.hypers, #self.param_lists))
    end
    if #sd.state ~= nparams then
      raise(fmt('%s: state dict has state for %d parameters, the optimizer has %d', name, #sd.state, nparams))
    end
    local i = 0
    local states = {}
    for _, pl in ipairs(self.param_lists) do
      for _, p in ipairs(pl) do
        i = i + 1
        local st = {}
        for k, v in pairs(sd.state[i]) do
          if is_tensor(v) then
            if v:numel() ~= p:numel() then
              raise(fmt("%s: state '%s' of parameter %d has %d elements, the parameter %d", name, k, i,
                v:numel(), p:numel()))
            end
            v = v:to(p.dtype):reshape(p:size()):clone()
          end
          st[k] = v
        end
        states[p] = st
      end
    end
    self.state = states
    for g, h in ipairs(sd.hypers) do self.hypers[g] = copy_table(h) end
  end

  -- ---- state dicts as safetensors ----------------------------------------------
  -- Any nested table of tensors, numbers, booleans and strings flattens to
  -- dotted names: tensors by name, everything else as typed strings in the
  -- metadata ('number:0.001', 'boolean:true', 'string:x', 'table:3' for a
  -- table with 3 list items — so empty tables survive too).

  local function encode(v)
    local tv = type(v)
    if tv == 'number' then return 'number:' .. fmt('%.17g', v) end
    if tv == 'boolean' then return 'boolean:' .. tostring(v) end
    if tv == 'string' then return 'string:' .. v end
    return nil
  end

  function optim.flatten_state(sd, prefix)
    prefix = prefix or 'opt'
    local tensors, meta = {}, {}
    local function walk(path, v)
      if is_tensor(v) then
        tensors[path] = v
      elseif type(v) == 'table' and not fc.is_slice(v) then
        meta[path] = 'table:' .. #v
        for k, x in pairs(v) do
          if type(k) ~= 'string' and type(k) ~= 'number' then
            raise(fmt('flatten_state: %s has a %s key', path, type(k)))
          end
          if type(k) == 'string' and (k:find('.', 1, true) or k:match('^%d+$')) then
            raise(fmt("flatten_state: key '%s' under %s cannot be stored (dots or digits only)", k, path))
          end
          walk(path .. '.' .. k, x)
        end
      else
        local s = encode(v)
        if not s then raise(fmt('flatten_state: %s is a %s, which a state file cannot hold', path, type(v))) end
        meta[path] = s
      end
    end
    walk(prefix, sd)
    return tensors, meta
  end

  function optim.unflatten_state(tensors, meta, prefix)
    prefix = prefix or 'opt'
    if not meta[prefix] then raise(fmt("unflatten_state: no state named '%s' in the file", prefix)) end
    local root = {}
    local function put(path, value)
      local node, key = root, nil
      local rest = path:sub(#prefix + 2)
      local parts = {}
      for part in rest:gmatch('[^.]+') do parts[#parts + 1] = part:match('^%d+$') and tonumber(part) or part end
      for i = 1, #parts - 1 do
        key = parts[i]
        if node[key] == nil then node[key] = {} end
        node = node[key]
      end
      node[parts[#parts]] = value
    end
    local function under(path) return path:sub(1, #prefix + 1) == prefix .. '.' end
    -- tables first, shallow to deep, so every value finds its parent
    local tables = {}
    for path, s in pairs(meta) do
      if under(path) and s:match('^table:') then tables[#tables + 1] = path end
    end
    table.sort(tables, function(a, b)
      local _, da = a:gsub('%.', '')
      local _, db = b:gsub('%.', '')
      return da < db or (da == db and a < b)
    end)
    for _, path in ipairs(tables) do put(path, {}) end
    for path, s in pairs(meta) do
      if under(path) then
        local kind, body = s:match('^(%a+):(.*)$')
        if kind == 'number' then put(path, tonumber(body))
        elseif kind == 'boolean' then put(path, body == 'true')
        elseif kind == 'string' then put(path, body)
        elseif kind ~= 'table' then raise(fmt("unflatten_state: %s has an unknown value '%s'", path, s)) end
      end
    end
    for path, t in pairs(tensors) do
      if under(path) then put(path, t) end
    end
    return root
  end

  -- opt:save(path) / opt:load(path): the state dict as a safetensors file.
  function Optimizer:save(path)
    local tensors, meta = optim.flatten_state(self:state_dict())
    fc.save(tensors, path, meta)
    return path
  end
  function Optimizer:load(path)
    local tensors, meta = fc.load(path)
    self:load_state_dict(optim.unflatten_state(tensors, meta))
    return self
  end

  -- ---- fastai's optimizers -----------------------------------------------------------

  -- torch.optim's names, for a helpful error when code is ported as is.
  local TORCH_NAMES = { momentum = 'mom', betas = 'mom and sqr_mom', weight_decay = 'wd',
    alpha = 'sqr_mom', nesterov = 'nothing (fastai has no nesterov)', dampening = 'nothing' }

  -- f(params, lr, opts) or f(params, {lr = ..., ...}); lr defaults to 1e-3.
  local function arguments(name, lr, opts, defaults)
    if type(lr) == 'table' then lr, opts = lr.lr, lr end
    opts = opts or {}
    if type(opts) ~= 'table' then raise(fmt('%s: options must be a table, got %s', name, type(opts))) end
    local out = {}
    for k, v in pairs(defaults) do out[k] = v end
    for k, v in pairs(opts) do
      if k ~= 'lr' then
        if defaults[k] == nil then
          local hint = TORCH_NAMES[k] and fmt(' (fastai calls it %s; torch.optim semantics: fc.optim.torch)', TORCH_NAMES[k]) or ''
          local names = {}
          for d in pairs(defaults) do names[#names + 1] = d end
          table.sort(names)
          raise(fmt('%s: unknown option %q%s; expected lr, %s', name, tostring(k), hint, table.concat(names, ', ')))
        end
        out[k] = v
      end
    end
    lr = lr or opts.lr or 1e-3
    if type(lr) ~= 'number' and not fc.is_slice(lr) and type(lr) ~= 'table' then
      raise(fmt('%s: lr must be a number, got %s', name, type(lr)))
    end
    out.lr = lr
    return out
  end

  -- The hypers an optimizer keeps: everything but construction-time switches.
  local SWITCHES = { decouple_wd = true, fused = true, clip = true, k = true, alpha = true }
  local function make(params, steppers, a)
    local hypers = {}
    for k, v in pairs(a) do if not SWITCHES[k] then hypers[k] = v end end
    return Optimizer(params, steppers, hypers)
  end
  local function decay_stepper(a) return a.decouple_wd and optim.weight_decay or optim.l2_reg end

  function optim.SGD(params, lr, opts)
    local a = arguments('SGD', lr, opts, { mom = 0, wd = 0, decouple_wd = true, fused = true })
    local steppers
    if a.fused then
      steppers = { optim.fused_sgd:with { decouple_wd = a.decouple_wd, momentum = a.mom ~= 0 } }
    elseif a.mom ~= 0 then
      steppers = { decay_stepper(a), optim.average_grad, optim.momentum_step }
    else
      steppers = { decay_stepper(a), optim.sgd_step }
    end
    return make(params, steppers, a)
  end

  function optim.RMSProp(params, lr, opts)
    local a = arguments('RMSProp', lr, opts,
      { sqr_mom = 0.99, mom = 0, eps = 1e-8, wd = 0, decouple_wd = true, fused = true })
    local steppers
    if a.fused then
      steppers = { optim.fused_rmsprop:with { decouple_wd = a.decouple_wd, momentum = a.mom ~= 0 } }
    elseif a.mom ~= 0 then
      steppers = { decay_stepper(a), optim.average_grad, optim.average_sqr_grad, optim.rms_prop_step }
    else
      steppers = { decay_stepper(a), optim.average_sqr_grad, optim.rms_prop_step }
    end
    return make(params, steppers, a)
  end

  function optim.Adam(params, lr, opts)
    local a = arguments('Adam', lr, opts,
      { mom = 0.9, sqr_mom = 0.99, eps = 1e-5, wd = 0.01, decouple_wd = true, fused = true })
    local steppers = a.fused and { optim.fused_adam:with { decouple_wd = a.decouple_wd } }
      or { decay_stepper(a), optim.average_grad:with { dampening = true }, optim.average_sqr_grad,
        optim.step_stat, optim.adam_step }
    return make(params, steppers, a)
  end

  local RADAM_DEFAULTS = { mom = 0.9, sqr_mom = 0.99, eps = 1e-5, wd = 0, beta = 0, decouple_wd = true, fused = true }
  local function radam(params, a)
    local steppers = a.fused and { optim.fused_radam:with { decouple_wd = a.decouple_wd } }
      or { decay_stepper(a), optim.average_grad:with { dampening = true }, optim.average_sqr_grad,
        optim.step_stat, optim.radam_step }
    return make(params, steppers, a)
  end
  function optim.RAdam(params, lr, opts) return radam(params, arguments('RAdam', lr, opts, RADAM_DEFAULTS)) end

  function optim.QHAdam(params, lr, opts)
    local a = arguments('QHAdam', lr, opts,
      { mom = 0.999, sqr_mom = 0.999, nu_1 = 0.7, nu_2 = 1.0, eps = 1e-8, wd = 0, decouple_wd = true })
    return make(params, { decay_stepper(a), optim.average_grad:with { dampening = true },
      optim.average_sqr_grad, optim.step_stat, optim.qhadam_step }, a)
  end

  local function larc(name, clip_default)
    return function(params, lr, opts)
      local a = arguments(name, lr, opts,
        { mom = 0.9, clip = clip_default, trust_coeff = 0.02, eps = 1e-8, wd = 0, decouple_wd = true })
      local steppers = { decay_stepper(a) }
      if a.mom ~= 0 then steppers[#steppers + 1] = optim.average_grad end
      steppers[#steppers + 1] = optim.larc_layer_lr:with { clip = a.clip }
      steppers[#steppers + 1] = optim.larc_step
      return make(params, steppers, a)
    end
  end
  optim.Larc = larc('Larc', true)
  optim.Lars = larc('Lars', false) -- LARS: LARC without clipping
  optim.LARC, optim.LARS = optim.Larc, optim.Lars

  function optim.Lamb(params, lr, opts)
    local a = arguments('Lamb', lr, opts, { mom = 0.9, sqr_mom = 0.99, eps = 1e-5, wd = 0, decouple_wd = true })
    return make(params, { decay_stepper(a), optim.average_grad:with { dampening = true },
      optim.average_sqr_grad, optim.step_stat, optim.lamb_step }, a)
  end
  optim.LAMB = optim.Lamb

  -- ---- Lookahead --------------------------------------------------------------------

  -- Lookahead(opt, {k = 6, alpha = 0.5}): every k steps the slow weights move
  -- alpha of the way to the fast ones, and the fast ones restart from there.
  -- Everything else (hypers, set_hyper, freeze_to, zero_grad ...) is opt's.
  local Lookahead = class('Lookahead')
  optim.Lookahead = Lookahead
  Lookahead.__index = function(self, k)
    local v = Lookahead[k]
    if v ~= nil then return v end
    local opt = rawget(self, 'opt')
    if opt == nil then return nil end
    local ov = opt[k]
    if type(ov) == 'function' then return function(_, ...) return ov(opt, ...) end end
    return ov
  end
  Lookahead.__tostring = function(self) return fmt('Lookahead(k=%d, alpha=%g, %s)', self.k, self.alpha, tostring(self.opt)) end

  function Lookahead:init(opt, opts)
    opts = opts or {}
    if type(opt) ~= 'table' or not opt.step then raise('Lookahead: expects an optimizer to wrap') end
    rawset(self, 'opt', opt)
    self.k, self.alpha = opts.k or 6, opts.alpha or 0.5
    self.count, self.slow_weights = 0, nil
  end

  function Lookahead:step(closure)
    if closure ~= nil then raise('Lookahead: step takes no closure') end
    if not self.slow_weights then self:_copy_weights() end
    self.opt:step()
    self.count = self.count + 1
    if self.count % self.k ~= 0 then return end
    fc.no_grad(function()
      for i, pl in ipairs(self.opt.param_lists) do
        for j, fast in ipairs(pl) do
          local slow = self.slow_weights[i][j]
          slow:lerp_(fast, self.alpha)
          fast:copy_(slow)
        end
      end
    end)
  end

  function Lookahead:_copy_weights()
    local slow = {}
    for i, pl in ipairs(self.opt.param_lists) do
      slow[i] = {}
      for j, p in ipairs(pl) do slow[i][j] = p:detach():clone() end
    end
    self.slow_weights = slow
  end

  function Lookahead:clear_state()
    self.opt:clear_state()
    self.count, self.slow_weights = 0, nil
  end

  function Lookahead:state_dict()
    local sd = self.opt:state_dict()
    sd.count, sd.slow_weights = self.count, self.slow_weights
    return sd
  end

  function Lookahead:load_state_dict(sd)
    self.count = sd.count or 0
    local slow = nil
    if sd.slow_weights then
      slow = {}
      for i, pl in ipairs(sd.slow_weights) do
        slow[i] = {}
        for j, t in ipairs(pl) do slow[i][j] = t:clone() end
      end
    end
    self.slow_weights = slow
    self.opt:load_state_dict { state = sd.state, hypers = sd.hypers }
  end
  Lookahead.save, Lookahead.load = Optimizer.save, Optimizer.load

  -- ranger: Lookahead over RAdam with fastai's settings for it.
  function optim.ranger(params, lr, opts)
    local defaults = {}
    for k, v in pairs(RADAM_DEFAULTS) do defaults[k] = v end
    defaults.mom, defaults.wd, defaults.eps, defaults.k, defaults.alpha = 0.95, 0.01, 1e-6, 6, 0.5
    local a = arguments('ranger', lr, opts, defaults)
    return Lookahead(radam(params, a), { k = a.k, alpha = a.alpha })
  end

  return optim
end
