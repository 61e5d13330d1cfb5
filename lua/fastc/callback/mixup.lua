-- lua/fastc/callback/mixup.lua — MixUp and CutMix: train on blends of
-- pairs of items; class targets are mixed through the loss (the loss of
-- both targets, weighted by lam), float targets directly.
return function(fc, Tensor, H)
  local U = fc.train_util
  local Callback = fc.Callback
  local log, sqrt, exp = math.log, math.sqrt, math.exp

  -- Draws from the fc generator (fc.manual_seed makes runs repeatable).
  local function uniform() return fc.rand(1):item() end
  local function normal() return fc.randn(1):item() end

  -- Gamma(a, 1) by Marsaglia and Tsang's method.
  local function gamma(a)
    if a < 1 then return gamma(a + 1) * uniform() ^ (1 / a) end
    local d = a - 1 / 3
    local c = 1 / sqrt(9 * d)
    while true do
      local x, v = normal(), nil
      v = 1 + c * x
      if v > 0 then
        v = v * v * v
        local u = uniform()
        if u < 1 - 0.0331 * x ^ 4 or log(u) < 0.5 * x * x + d * (1 - v + log(v)) then return d * v end
      end
    end
  end
  function fc.sample_beta(a, b)
    local x, y = gamma(a), gamma(b)
    return x / (x + y)
  end

  -- lam shaped to broadcast against t (one value per item in dim 1).
  local function per_item(lam, t)
    local shape = { t:size(1) }
    for _ = 2, t:dim() do shape[#shape + 1] = 1 end
    return lam:view(shape)
  end
  local function lerp(a, b, w) return a + (b - a) * w end

  local MixHandler = Callback:extend('MixHandler')
  fc.MixHandler = MixHandler
  MixHandler.run_valid = false
  function MixHandler:init(alpha) self.alpha = alpha or 0.5 end
  function MixHandler:before_train()
    local learn = self.learn
    local lf = learn.loss_func
    self.stack_y = type(lf) == 'table' and lf.y_int or (type(lf) == 'function' and lf == fc.F.cross_entropy) or false
    if self.stack_y then
      self.old_lf = lf
      learn.loss_func = function(pred, ...) return self:lf(pred, ...) end
    end
  end
  function MixHandler:after_train()
    if self.stack_y and self.old_lf then self.learn.loss_func = self.old_lf end
    self.old_lf = nil
  end
  MixHandler.after_cancel_train = MixHandler.after_train
  MixHandler.after_cancel_fit = MixHandler.after_train

  -- The original loss against both targets, blended by lam and reduced by mean.
  function MixHandler:lf(pred, ...)
    if not self.learn.training then return self.old_lf(pred, ...) end
    local a = U.unreduced(self.old_lf, pred, unpack(self.yb1))
    local b = U.unreduced(self.old_lf, pred, ...)
    local lam = self.lam
    if H.is_tensor(lam) and lam:numel() > 1 then lam = per_item(lam, a) end
    return lerp(a, b, lam):mean()
  end

  -- MixUp(alpha = 0.4): x = lerp(x_shuffled, x, lam), lam ~ Beta(alpha, alpha) per item, >= 0.5.
  local MixUp = MixHandler:extend('MixUp')
  fc.MixUp = MixUp
  function MixUp:init(alpha) MixHandler.init(self, alpha or 0.4) end
  function MixUp:before_batch()
    local learn = self.learn
    local x, y = learn.x, learn.y
    local bs = y:size(1)
    local lams = {}
    for i = 1, bs do
      local l = fc.sample_beta(self.alpha, self.alpha)
      lams[i] = math.max(l, 1 - l)
    end
    self.lam = fc.tensor(lams, { dtype = x:type() == 'float64' and 'float64' or 'float32' })
    local shuffle = fc.randperm(bs)
    local xb1 = {}
    for i, t in ipairs(learn.xb) do xb1[i] = t:index_select(1, shuffle) end
    self.yb1 = {}
    for i, t in ipairs(learn.yb) do self.yb1[i] = t:index_select(1, shuffle) end
    local xb = {}
    for i, t in ipairs(learn.xb) do xb[i] = lerp(xb1[i], t, per_item(self.lam, t)) end
    learn.xb = xb
    if not self.stack_y then
      local yb = {}
      for i, t in ipairs(learn.yb) do yb[i] = lerp(self.yb1[i], t, per_item(self.lam, t)) end
      learn.yb = yb
    end
  end

  -- CutMix(alpha = 1): pastes a box of a shuffled image; lam is the area kept.
  local CutMix = MixHandler:extend('CutMix')
  fc.CutMix = CutMix
  function CutMix:init(alpha) MixHandler.init(self, alpha or 1) end

  local function clamp(v, lo, hi) return math.max(lo, math.min(hi, v)) end

  -- The box as 0-based half-open bounds x1, y1, x2, y2.
  function CutMix:rand_bbox(W, Hh, lam)
    local cut_rat = sqrt(1 - lam)
    local cut_w, cut_h = math.floor(W * cut_rat + 0.5), math.floor(Hh * cut_rat + 0.5)
    local cx, cy = math.floor(uniform() * W), math.floor(uniform() * Hh)
    local hw, hh = math.floor(cut_w / 2), math.floor(cut_h / 2)
    return clamp(cx - hw, 0, W), clamp(cy - hh, 0, Hh), clamp(cx + hw, 0, W), clamp(cy + hh, 0, Hh)
  end

  function CutMix:before_batch()
    local learn = self.learn
    local x, y = learn.x, learn.y
    if x:dim() ~= 4 then error('CutMix: expects image batches [N,C,H,W]', 0) end
    local bs, Hh, W = x:size(1), x:size(3), x:size(4)
    local lam = fc.sample_beta(self.alpha, self.alpha)
    local shuffle = fc.randperm(bs)
    local xb1 = x:index_select(1, shuffle)
    self.yb1 = { y:index_select(1, shuffle) }
    local x1, y1, x2, y2 = self:rand_bbox(W, Hh, lam)
    local out = x:clone()
    if x2 > x1 and y2 > y1 then
      fc.no_grad(function()
        out:narrow(3, y1 + 1, y2 - y1):narrow(4, x1 + 1, x2 - x1)
          :copy_(xb1:narrow(3, y1 + 1, y2 - y1):narrow(4, x1 + 1, x2 - x1))
      end)
    end
    local xb = { out }
    for i = 2, #learn.xb do xb[i] = learn.xb[i] end
    learn.xb = xb
    self.lam = 1 - (x2 - x1) * (y2 - y1) / (W * Hh)
    if not self.stack_y then
      local yb = { lerp(self.yb1[1], y, self.lam) }
      learn.yb = yb
    end
  end
end
