-- lua/fastc/amp.lua — mixed precision: autocast scopes and dynamic loss scaling.
--
--   local loss = fc.autocast('bf16', function() return loss_fn(model(x), y) end)
--   fc.autocast({dtype = 'fp16', enabled = use_amp}, fn, ...)   -- fn(...)'s results
--   local ac = fc.autocast{dtype = 'bf16'}; ac:enter(); ...; ac:exit()   -- across events
--   local scaler = fc.amp.GradScaler{init_scale = 2^16}
--   scaler:scale(loss):backward(); scaler:step(opt); scaler:update()
--
-- Autocast follows PyTorch: inside a scope each listed op casts its floating
-- inputs (not float64) before running: 'lower' ops (matmul, linear, conv) to
-- the scope's dtype, 'fp32' ops (the losses, and on CUDA softmax, norms and
-- sums as well) to float32; every other op runs on the dtypes it is given.
-- The lists are per device type: CPU tensors get PyTorch 1.13's CPU lists,
-- CUDA tensors its CUDA lists. Parameters stay float32 (the master weights):
-- their casts are recorded by autograd, so gradients arrive in float32. A
-- float32 leaf that requires grad is cast once per outermost scope (cached).
--
-- This is a policy on the Lua functions (Tensor methods, fc.*, fc.F.*), set
-- up when fastc loads, before the loss modules capture F's functions.
return function(fc, Tensor, H)
  local C, raise, fmt, is_tensor = H.C, H.raise, string.format, H.is_tensor
  local ffi = require 'ffi'
  local class = fc.class or require 'fastc.class'
  local select, unpack, type, pairs = select, unpack, type, pairs
  local amp = fc.amp or {}
  fc.amp = amp

  local F32, F64 = C.FC_FLOAT32, C.FC_FLOAT64
  local LOW = { [C.FC_FLOAT16] = 'float16', [C.FC_BFLOAT16] = 'bfloat16' }
  local DTYPES = { bf16 = C.FC_BFLOAT16, bfloat16 = C.FC_BFLOAT16, fp16 = C.FC_FLOAT16, float16 = C.FC_FLOAT16,
    half = C.FC_FLOAT16 }
  local DEVICES = { cpu = C.FC_CPU, cuda = C.FC_CUDA }

  -- ---- the op lists ------------------------------------------------------------

  -- PyTorch 1.13's CPU autocast (checked op by op against torch.autocast('cpu')):
  -- softmax, norms and sum/mean keep their input dtype there.
  local CPU_POLICY = {
    matmul = 'lower', mm = 'lower', bmm = 'lower', addmm = 'lower', linear = 'lower',
    conv1d = 'lower', conv2d = 'lower',
    conv_transpose2d = 'fp32', prod = 'fp32',
    cross_entropy = 'fp32', nll_loss = 'fp32', mse_loss = 'fp32', l1_loss = 'fp32', smooth_l1_loss = 'fp32',
    binary_cross_entropy = 'fp32', binary_cross_entropy_with_logits = 'fp32',
  }
  -- PyTorch's CUDA autocast: more ops are kept in float32, and
  -- binary_cross_entropy is refused (unsafe on half probabilities).
  local CUDA_POLICY = {
    matmul = 'lower', mm = 'lower', mv = 'lower', bmm = 'lower', addmm = 'lower', linear = 'lower',
    conv1d = 'lower', conv2d = 'lower', conv_transpose2d = 'lower',
    softmax = 'fp32', log_softmax = 'fp32', layer_norm = 'fp32', group_norm = 'fp32', norm = 'fp32',
    sum = 'fp32', prod = 'fp32', cumsum = 'fp32', cumprod = 'fp32', logsumexp = 'fp32',
    exp = 'fp32', log = 'fp32', log1p = 'fp32', pow = 'fp32', rsqrt = 'fp32',
    cross_entropy = 'fp32', nll_loss = 'fp32', mse_loss = 'fp32', l1_loss = 'fp32', smooth_l1_loss = 'fp32',
    binary_cross_entropy_with_logits = 'fp32', binary_cross_entropy = 'ban',
    dot = 'promote',
  }
  local POLICIES = { [C.FC_CPU] = CPU_POLICY, [C.FC_CUDA] = CUDA_POLICY }
  amp.policies = { cpu = CPU_POLICY, cuda = CUDA_POLICY }

  -- ---- scope state ---------------------------------------------------------------

  -- One state for the Lua state (fastc runs Lua on one thread). `nesting`
  -- counts the entered scopes; the cast cache lives until it drops to 0.
  local state = { enabled = false, dtype = C.FC_BFLOAT16, device = nil, cache_enabled = true }
  local nesting, cache = 0, {}

  function amp.is_enabled() return state.enabled end
  function amp.get_dtype() return H.dtype_names[state.dtype] end
  fc.is_autocast_enabled = amp.is_enabled
  -- The policy an op gets on a device ('cpu' or 'cuda'): 'lower', 'fp32',
  -- 'promote', 'ban' or nil (runs as given).
  function amp.policy(op, device) return amp.policies[device or 'cpu'][op] end

  local function address(t) return tonumber(ffi.cast('intptr_t', t.p)) end

  local function cast(t, dtype)
    local p = t.p
    local d = p.dtype
    if d == dtype or d == F64 or not LOW[d] and d ~= F32 then return t end
    if state.device and p.device.type ~= state.device then return t end
    -- weights: float32 leaves that require grad, cast once per scope
    local cacheable = state.cache_enabled and d == F32 and LOW[dtype] and p.requires_grad ~= 0 and p.grad_fn == nil
    if cacheable then
      local key = address(t) * 4 + dtype
      local hit = cache[key]
      if hit then return hit end
      local c = t:to(LOW[dtype])
      cache[key] = c
      return c
    end
    return t:to(H.dtype_names[dtype])
  end

  -- Options tables may carry tensors too (a loss's weight): copied with casts.
  local function cast_arg(a, dtype)
    if is_tensor(a) then return cast(a, dtype) end
    if type(a) == 'table' and getmetatable(a) == nil then
      local copy
      for k, v in pairs(a) do
        if is_tensor(v) then
          local c = cast(v, dtype)
          if c ~= v then
            copy = copy or {}
            copy[k] = c
          end
        end
      end
      if copy then
        for k, v in pairs(a) do if copy[k] == nil then copy[k] = v end end
        return copy
      end
    end
    return a
  end

  local function widest(args, n)
    local best
    for i = 1, n do
      local a = args[i]
      if is_tensor(a) then
        local d = a.p.dtype
        if d == F64 then return F64 end
        if d == F32 then best = F32 elseif LOW[d] and best == nil then best = d end
      end
    end
    return best
  end

  local function first_device(args, n)
    for i = 1, n do
      local a = args[i]
      if is_tensor(a) then return a.p.device.type end
    end
  end

  local function run(op, f, ...)
    local n = select('#', ...)
    local args = { ... }
    local dev = first_device(args, n)
    if dev == nil or (state.device and dev ~= state.device) then return f(...) end
    local policy = POLICIES[dev][op]
    local target
    if policy == 'lower' then target = state.dtype
    elseif policy == 'fp32' then target = F32
    elseif policy == 'promote' then target = widest(args, n)
    elseif policy == 'ban' then
      raise(fmt('%s: unsafe to autocast on %s (half probabilities lose the tails); use '
        .. 'binary_cross_entropy_with_logits, or run it outside the autocast scope', op,
        dev == C.FC_CUDA and 'cuda' or 'cpu'))
    end
    if not target then return f(...) end
    for i = 1, n do args[i] = cast_arg(args[i], target) end
    return f(unpack(args, 1, n))
  end

  -- Each function is wrapped once; every table slot holding it (aliases like
  -- fc.matmul == Tensor.matmul) gets the same wrapper.
  local wrappers = {}
  local function wrapper(op, f)
    local w = wrappers[f]
    if w then return w end
    w = function(...)
      if not state.enabled then return f(...) end
      return run(op, f, ...)
    end
    wrappers[f] = w
    wrappers[w] = w
    return w
  end

  local F = fc.F
  local SLOTS = {
    { Tensor, { 'matmul', 'mm', 'bmm', 'mv', 'addmm', 'dot', 'prod', 'softmax', 'log_softmax', 'norm', 'sum',
      'cumsum', 'cumprod', 'logsumexp', 'exp', 'log', 'log1p', 'pow', 'rsqrt' } },
    { fc, { 'matmul', 'mm', 'bmm', 'mv', 'addmm', 'dot', 'prod', 'softmax', 'log_softmax', 'norm', 'sum',
      'cumsum', 'cumprod', 'logsumexp', 'exp', 'log', 'log1p', 'pow', 'rsqrt' } },
    { F, { 'linear', 'conv1d', 'conv2d', 'conv_transpose2d', 'softmax', 'log_softmax', 'layer_norm',
      'group_norm', 'cross_entropy', 'nll_loss', 'mse_loss', 'l1_loss', 'smooth_l1_loss',
      'binary_cross_entropy', 'binary_cross_entropy_with_logits' } },
  }
  for _, slot in ipairs(SLOTS) do
    local tbl = slot[1]
    for _, name in ipairs(slot[2]) do
      local f = rawget(tbl, name)
      if type(f) == 'function' then tbl[name] = wrapper(name, f) end
    end
  end
  -- `a ^ b` on tensors is Tensor.pow's metamethod
  if H.mt.__pow and wrappers[H.mt.__pow] then H.mt.__pow = wrappers[H.mt.__pow] end

  -- ---- scopes ----------------------------------------------------------------------

  local AC_OPTS = { dtype = true, enabled = true, device = true, cache_enabled = true }

  local function dtype_of(d, device)
    if d == nil then return device == C.FC_CUDA and C.FC_FLOAT16 or C.FC_BFLOAT16 end
    local id = DTYPES[d]
    if not id then
      raise(fmt("autocast: dtype must be 'bf16'/'bfloat16' or 'fp16'/'float16'/'half', got %s", tostring(d)))
    end
    return id
  end

  local Autocast = class('Autocast')
  amp.Autocast = Autocast
  function Autocast:init(opts)
    if type(opts) == 'string' then opts = { dtype = opts } end
    opts = H.options('autocast', opts, AC_OPTS)
    local device = opts.device
    if device ~= nil and not DEVICES[device] then
      raise(fmt("autocast: device must be 'cpu' or 'cuda', got %s", tostring(device)))
    end
    self.device = device and DEVICES[device] or nil
    self.dtype = dtype_of(opts.dtype, self.device)
    self.enabled = opts.enabled ~= false
    self.cache_enabled = opts.cache_enabled ~= false
  end

  function Autocast:enter()
    if self.prev then raise('autocast: this scope is already entered; exit it first or make another') end
    self.prev = { enabled = state.enabled, dtype = state.dtype, device = state.device,
      cache_enabled = state.cache_enabled }
    state.enabled, state.dtype, state.device = self.enabled, self.dtype, self.device
    state.cache_enabled = self.cache_enabled
    nesting = nesting + 1
    return self
  end

  -- Restores the state the scope found; a scope not entered is left alone,
  -- so a callback can exit defensively.
  function Autocast:exit()
    local prev = self.prev
    if not prev then return self end
    self.prev = nil
    state.enabled, state.dtype, state.device, state.cache_enabled = prev.enabled, prev.dtype, prev.device,
      prev.cache_enabled
    nesting = nesting - 1
    if nesting == 0 then cache = {} end
    return self
  end
  function Autocast:is_entered() return self.prev ~= nil end

  -- scope(fn, ...): fn(...) inside the scope; the state is restored when fn raises.
  function Autocast:__call(fn, ...)
    if type(fn) ~= 'function' then raise(fmt('autocast: expected a function to run, got %s', type(fn))) end
    self:enter()
    local res = { pcall(fn, ...) }
    self:exit()
    if not res[1] then error(res[2], 0) end
    return unpack(res, 2, table.maxn(res))
  end

  -- fc.autocast(dtype_or_opts, fn, ...) runs fn; without fn, the scope object.
  function fc.autocast(opts, fn, ...)
    local scope = Autocast(opts)
    if fn == nil then return scope end
    return scope(fn, ...)
  end
  amp.autocast = fc.autocast

  -- ---- dynamic loss scaling ------------------------------------------------------

  local f32box = ffi.new('float[1]')
  local function to_f32(x)
    f32box[0] = x
    return f32box[0]
  end

  -- GradScaler{init_scale = 2^16, growth_factor = 2, backoff_factor = 0.5,
  -- growth_interval = 2000, enabled = true}: torch.cuda.amp.GradScaler.
  local GradScaler = class('GradScaler')
  amp.GradScaler = GradScaler
  local GS_OPTS = { init_scale = true, growth_factor = true, backoff_factor = true, growth_interval = true,
    enabled = true }

  local function positive(name, v, what)
    if type(v) ~= 'number' or not (v > 0) or v == math.huge then
      raise(fmt('GradScaler: %s must be a positive finite number, got %s', name, tostring(v)))
    end
    if what == 'int' and v ~= math.floor(v) then raise(fmt('GradScaler: %s must be an integer, got %s', name, v)) end
    return v
  end

  function GradScaler:init(opts)
    opts = H.options('GradScaler', opts, GS_OPTS)
    self.enabled = opts.enabled ~= false
    self._scale = to_f32(positive('init_scale', opts.init_scale or 2 ^ 16))
    if self._scale == math.huge then raise(fmt('GradScaler: init_scale %g overflows float32', opts.init_scale)) end
    self.growth_factor = positive('growth_factor', opts.growth_factor or 2)
    self.backoff_factor = positive('backoff_factor', opts.backoff_factor or 0.5)
    self.growth_interval = positive('growth_interval', opts.growth_interval or 2000, 'int')
    if self.growth_factor <= 1 then raise(fmt('GradScaler: growth_factor must be > 1, got %s', self.growth_factor)) end
    if self.backoff_factor >= 1 then raise(fmt('GradScaler: backoff_factor must be < 1, got %s', self.backoff_factor)) end
    self._growth_tracker = 0
    self._opt_states = setmetatable({}, { __mode = 'k' })
  end

  function GradScaler:is_enabled() return self.enabled end
  function GradScaler:get_scale() return self.enabled and self._scale or 1.0 end
  function GradScaler:get_growth_tracker() return self._growth_tracker end

  local function opt_state(self, opt)
    local s = self._opt_states[opt]
    if not s then
      s = { stage = 'ready', found_inf = false }
      self._opt_states[opt] = s
    end
    return s
  end

  -- loss * scale; a table of tensors gives a table of scaled tensors.
  function GradScaler:scale(outputs)
    if not self.enabled then return outputs end
    if is_tensor(outputs) then
      return outputs * fc.scalar_tensor(self._scale, { dtype = 'float32', device = outputs.device })
    end
    if type(outputs) ~= 'table' then
      raise(fmt('GradScaler:scale: expected a tensor or a table of tensors, got %s', type(outputs)))
    end
    local out = {}
    for k, v in pairs(outputs) do out[k] = self:scale(v) end
    return out
  end

  local function param_groups(opt)
    local pg = opt.param_groups
    if type(pg) == 'function' then return pg(opt) end
    if type(pg) == 'table' then return pg end
    raise('GradScaler: the optimizer has no param_groups')
  end

  -- Divides every gradient of opt by the scale, noting whether any held an
  -- inf or a NaN (then step skips the update).
  function GradScaler:unscale_(opt)
    if not self.enabled then return end
    local s = opt_state(self, opt)
    if s.stage == 'unscaled' then
      raise('GradScaler:unscale_: already called on this optimizer since the last update()')
    elseif s.stage == 'stepped' then
      raise('GradScaler:unscale_: called after step(); call update() first')
    end
    local inv, found = 1 / self._scale, false
    for gi, group in ipairs(param_groups(opt)) do
      for pi, p in ipairs(group.params) do
        local g = p.grad
        if g ~= nil then
          local rc = C.fc_amp_unscale_(g.p, inv)
          if rc < 0 then
            raise(fmt('GradScaler:unscale_: parameter %d of group %d: %s', pi, gi, ffi.string(C.fc_last_error())))
          end
          if rc == 1 then found = true end
        end
      end
    end
    s.stage, s.found_inf = 'unscaled', found
  end

  -- Unscales (unless unscale_ ran) and steps opt unless a gradient was not
  -- finite. Returns what opt:step returned, nil when skipped.
  function GradScaler:step(opt, ...)
    if not self.enabled then return opt:step(...) end
    local s = opt_state(self, opt)
    if s.stage == 'stepped' then raise('GradScaler:step: already called since the last update()') end
    if s.stage == 'ready' then self:unscale_(opt) end
    local ret
    if not s.found_inf then ret = opt:step(...) end
    s.stage = 'stepped'
    return ret
  end

  -- After a skipped step the scale backs off; after growth_interval steps in
  -- a row without one it grows (unless that overflows float32). new_scale
  -- sets it outright.
  function GradScaler:update(new_scale)
    if not self.enabled then return end
    if new_scale ~= nil then
      if is_tensor(new_scale) then new_scale = new_scale:item() end
      self._scale = to_f32(positive('new_scale', new_scale))
    else
      local any_state, found = false, false
      for _, s in pairs(self._opt_states) do
        if s.stage ~= 'ready' then any_state = true end
        found = found or s.found_inf
      end
      if not any_state then raise('GradScaler:update: no inf checks were recorded; call step() or unscale_() first') end
      if found then
        self._scale = to_f32(self._scale * self.backoff_factor)
        self._growth_tracker = 0
      else
        local successful = self._growth_tracker + 1
        if successful == self.growth_interval then
          local grown = to_f32(self._scale * self.growth_factor)
          if grown < math.huge then self._scale = grown end
          self._growth_tracker = 0
        else
          self._growth_tracker = successful
        end
      end
    end
    self._opt_states = setmetatable({}, { __mode = 'k' })
  end

  -- Whether the last step of opt was skipped (nil before any step).
  function GradScaler:found_inf(opt)
    local s = self._opt_states[opt]
    return s and s.found_inf
  end

  function GradScaler:state_dict()
    if not self.enabled then return {} end
    return { scale = self._scale, growth_factor = self.growth_factor, backoff_factor = self.backoff_factor,
      growth_interval = self.growth_interval, _growth_tracker = self._growth_tracker }
  end

  function GradScaler:load_state_dict(sd)
    if not self.enabled then raise('GradScaler:load_state_dict: the scaler is disabled') end
    if type(sd) ~= 'table' or sd.scale == nil then raise('GradScaler:load_state_dict: not a GradScaler state') end
    self._scale = to_f32(positive('scale', sd.scale))
    self.growth_factor = sd.growth_factor or self.growth_factor
    self.backoff_factor = sd.backoff_factor or self.backoff_factor
    self.growth_interval = sd.growth_interval or self.growth_interval
    self._growth_tracker = sd._growth_tracker or 0
  end

  function GradScaler:__tostring()
    return fmt('GradScaler(scale=%g, growth_factor=%g, backoff_factor=%g, growth_interval=%d, enabled=%s)',
      self._scale, self.growth_factor, self.backoff_factor, self.growth_interval, tostring(self.enabled))
  end
end
