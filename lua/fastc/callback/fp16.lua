-- lua/fastc/callback/fp16.lua — fastai's MixedPrecision callback and
-- learn:to_fp16() / learn:to_bf16() / learn:to_fp32().
--
--   learn:to_bf16()                        -- autocast to bfloat16, no loss scaling
--   learn:to_fp16{init_scale = 2^16}       -- autocast to float16 + a GradScaler
--   learn:fit(3); learn:to_fp32()
--
-- The model keeps float32 parameters (the master weights); autocast lowers
-- the forward and the loss from before_batch to after_loss, predictions come
-- back as float32, and with float16 the loss is scaled before backward and
-- the gradients unscaled before the step, which is skipped (CancelStepException)
-- when one of them is not finite. learn.scaler and learn.mixed_precision.scales
-- (the scale after each step taken) are there during fit, as in fastai.
return function(fc, Tensor, H)
  local Callback, amp, fmt = fc.Callback, fc.amp, string.format

  local MODES = { fp16 = 'float16', float16 = 'float16', half = 'float16', bf16 = 'bfloat16', bfloat16 = 'bfloat16' }
  local SCALER_OPTS = { init_scale = true, growth_factor = true, backoff_factor = true, growth_interval = true }

  local MixedPrecision = Callback:extend('MixedPrecision')
  fc.MixedPrecision = MixedPrecision
  MixedPrecision.order = 10

  -- MixedPrecision{amp_mode = 'fp16' | 'bf16', and GradScaler's options}
  function MixedPrecision:init(opts)
    opts = opts or {}
    local mode = MODES[opts.amp_mode or 'fp16']
    if not mode then
      error(fmt("MixedPrecision: amp_mode must be 'fp16' or 'bf16', got %s", tostring(opts.amp_mode)), 3)
    end
    self.amp_mode = mode
    self.kwargs = {}
    for k, v in pairs(opts) do
      if k ~= 'amp_mode' then
        if not SCALER_OPTS[k] then
          error(fmt('MixedPrecision: unknown option %q (amp_mode or a GradScaler option)', tostring(k)), 3)
        end
        self.kwargs[k] = v
      end
    end
  end

  -- bfloat16 has float32's range, so it needs no loss scaling (fastai).
  function MixedPrecision:before_fit()
    local kw = { enabled = self.amp_mode == 'float16' }
    for k, v in pairs(self.kwargs) do kw[k] = v end
    self.autocast = amp.Autocast { dtype = self.amp_mode }
    self.learn.scaler = amp.GradScaler(kw)
    self.scales = {}
  end

  function MixedPrecision:before_batch() self.autocast:enter() end

  local function to_float(x)
    if H.is_tensor(x) then
      return (x.p.dtype == H.C.FC_FLOAT16 or x.p.dtype == H.C.FC_BFLOAT16) and x:float() or x
    end
    if type(x) == 'table' and getmetatable(x) == nil then
      local out = {}
      for k, v in pairs(x) do out[k] = to_float(v) end
      return out
    end
    return x
  end
  function MixedPrecision:after_pred() self.learn.pred = to_float(self.learn.pred) end
  function MixedPrecision:after_loss() self.autocast:exit() end

  function MixedPrecision:before_backward() self.learn.loss_grad = self.learn.scaler:scale(self.learn.loss_grad) end

  -- The callback stands in for the optimizer (param_groups and a step that
  -- only notes it ran), so the scaler's own skip decision becomes a
  -- CancelStepException and the real step runs in the Learner's loop.
  function MixedPrecision:before_step()
    self.skipped = true
    self.learn.scaler:step(self)
    if self.skipped then error(fc.CancelStepException) end
    self.scales[#self.scales + 1] = self.learn.scaler:get_scale()
  end
  function MixedPrecision:after_step() self.learn.scaler:update() end
  function MixedPrecision:param_groups() return self.learn.opt:param_groups() end
  function MixedPrecision:step() self.skipped = false end

  -- A batch cancelled between before_batch and after_loss leaves no scope open.
  function MixedPrecision:after_cancel_batch() self.autocast:exit() end
  function MixedPrecision:after_fit()
    if self.autocast then self.autocast:exit() end
    self.autocast, self.learn.scaler = nil, nil
  end

  local Learner = fc.Learner
  -- fastai's to_fp16(**GradScaler options): float16 autocast with loss scaling.
  function Learner:to_fp16(opts)
    local o = { amp_mode = 'fp16' }
    for k, v in pairs(opts or {}) do o[k] = v end
    self:remove_cb(MixedPrecision)
    return self:add_cb(MixedPrecision(o))
  end
  function Learner:to_bf16()
    self:remove_cb(MixedPrecision)
    return self:add_cb(MixedPrecision { amp_mode = 'bf16' })
  end
  function Learner:to_fp32() return self:remove_cb(MixedPrecision) end
end
