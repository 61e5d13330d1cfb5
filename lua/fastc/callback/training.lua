-- lua/fastc/callback/training.lua — GradientAccumulation, GradientClip,
-- BnFreeze, ShortEpochCallback.
return function(fc, Tensor, H)
  local U = fc.train_util
  local Callback = fc.Callback

  -- Stops each pass after pct of its batches.
  local ShortEpochCallback = Callback:extend('ShortEpochCallback')
  fc.ShortEpochCallback = ShortEpochCallback
  function ShortEpochCallback:init(pct, short_valid)
    self.pct, self.short_valid = pct or 0.01, short_valid ~= false
  end
  function ShortEpochCallback:after_batch()
    local learn = self.learn
    if learn.iter / learn.n_iter < self.pct then return end
    if learn.training then error(fc.CancelTrainException) end
    if self.short_valid then error(fc.CancelValidException) end
  end

  -- GradientAccumulation(n_acc = 32): steps once n_acc items have added
  -- their (rescaled) gradients, like one batch of n_acc items.
  local GradientAccumulation = Callback:extend('GradientAccumulation')
  fc.GradientAccumulation = GradientAccumulation
  GradientAccumulation.order, GradientAccumulation.run_valid = 6, false
  function GradientAccumulation:init(n_acc) self.n_acc = n_acc or 32 end
  function GradientAccumulation:before_fit() self.count = 0 end
  function GradientAccumulation:after_loss()
    local learn = self.learn
    learn.loss_grad = learn.loss_grad / (self.n_acc / U.find_bs(learn.yb))
  end
  function GradientAccumulation:before_step()
    self.count = self.count + U.find_bs(self.learn.yb)
    if self.count < self.n_acc then error(fc.CancelBatchException) end -- skips step and zero_grad
    self.count = 0
  end

  -- Rescales gradients so their total norm is at most max_norm.
  function fc.clip_grad_norm_(params, max_norm, norm_type)
    norm_type = norm_type or 2
    local grads = {}
    for _, p in ipairs(params) do
      local g = p.grad
      if g then grads[#grads + 1] = g end
    end
    if #grads == 0 then return 0 end
    local total
    if norm_type == math.huge then
      total = 0
      for _, g in ipairs(grads) do total = math.max(total, g:abs():max():item()) end
    else
      total = 0
      for _, g in ipairs(grads) do total = total + g:abs():pow(norm_type):sum():item() end
      total = total ^ (1 / norm_type)
    end
    local coef = max_norm / (total + 1e-6)
    if coef < 1 then
      for _, g in ipairs(grads) do g:mul_(coef) end
    end
    return total
  end

  -- GradientClip(max_norm = 1, norm_type = 2)
  local GradientClip = Callback:extend('GradientClip')
  fc.GradientClip = GradientClip
  GradientClip.order = 11
  function GradientClip:init(max_norm, norm_type) self.max_norm, self.norm_type = max_norm or 1, norm_type or 2 end
  function GradientClip:before_step()
    self.last_norm = fc.clip_grad_norm_(self.learn.model:parameters(), self.max_norm, self.norm_type)
  end

  local function is_bn(m)
    for _, name in ipairs({ 'BatchNorm1d', 'BatchNorm2d', 'BatchNorm3d' }) do
      if fc.nn[name] and m:is_a(fc.nn[name]) then return true end
    end
    return false
  end

  -- Puts every batchnorm whose parameters are frozen in eval mode, so its
  -- running statistics stay as they are.
  function fc.set_bn_eval(model, use_eval)
    use_eval = use_eval ~= false
    for _, m in ipairs(model:modules()) do
      local p = m:parameters()[1]
      if is_bn(m) and p and not p.requires_grad then
        if use_eval then m:eval() else m:train() end
      end
    end
  end

  local BnFreeze = Callback:extend('BnFreeze')
  fc.BnFreeze = BnFreeze
  BnFreeze.run_valid = false
  function BnFreeze:before_train() fc.set_bn_eval(self.learn.model) end
  function BnFreeze:before_batch() fc.set_bn_eval(self.learn.model) end
end
