-- lua/fastc/losses.lua — loss functions as objects.
--
-- PyTorch's loss modules over the C losses of ext_loss.lua:
--   fc.nn.CrossEntropyLoss{weight, ignore_index, label_smoothing, reduction = 'mean'},
--   NLLLoss, MSELoss, L1Loss, SmoothL1Loss{beta}, BCELoss{weight},
--   BCEWithLogitsLoss{weight, pos_weight}
-- and fastai's flattened losses (fc.losses, also fc.<name>), which move the
-- class axis last and flatten input and target before the loss, and carry
-- the `activation` and `decodes` the Learner applies to predictions:
--   local loss = fc.CrossEntropyLossFlat{axis = 2}       -- [N, C, H, W] logits
--   loss(logits, targ); loss:activation(logits); loss:decodes(probs)
--   loss.reduction = 'none'                              -- per item, e.g. top losses
-- Class ids count from 1; axis counts dims from 1 (-1 = last).
return function(fc, Tensor, H)
  local raise, fmt = H.raise, string.format
  local is_tensor = H.is_tensor
  local class = fc.class or require 'fastc.class'
  local nn, F = fc.nn, fc.F
  local losses = fc.losses or {}
  fc.losses = losses

  local check_options = H.options
  local function set_of(list)
    local s = {}
    for _, k in ipairs(list) do s[k] = true end
    return s
  end

  local REDUCTIONS = { mean = true, sum = true, none = true }
  local function reduce(name, loss, reduction)
    if reduction == 'mean' then return loss:mean() end
    if reduction == 'sum' then return loss:sum() end
    if reduction == 'none' then return loss end
    raise(fmt("%s: reduction must be 'mean', 'sum' or 'none', got %s", name, tostring(reduction)))
  end

  -- ---- PyTorch's loss modules ---------------------------------------------------

  local function loss_module(name, fn, option_names)
    if nn[name] then return nn[name] end
    local allowed = set_of(option_names)
    allowed.reduction = true
    local L = nn.Module:extend(name)
    function L:init(opts)
      nn.Module.init(self)
      opts = check_options(name, opts, allowed)
      for _, k in ipairs(option_names) do
        local v = opts[k]
        if is_tensor(v) then self:register_buffer(k, v) elseif v ~= nil then self[k] = v end
      end
      self.reduction = opts.reduction or 'mean'
      if not REDUCTIONS[self.reduction] then
        raise(fmt("%s: reduction must be 'mean', 'sum' or 'none', got %s", name, tostring(self.reduction)))
      end
    end
    function L:forward(input, target)
      local o = { reduction = self.reduction }
      for _, k in ipairs(option_names) do o[k] = self[k] end
      return fn(input, target, o)
    end
    function L:extra_repr()
      local parts = { 'reduction=' .. self.reduction }
      for _, k in ipairs(option_names) do
        local v = self[k]
        if v ~= nil and not is_tensor(v) then parts[#parts + 1] = k .. '=' .. tostring(v) end
      end
      return table.concat(parts, ', ')
    end
    nn[name] = L
    return L
  end
  loss_module('CrossEntropyLoss', F.cross_entropy, { 'weight', 'ignore_index', 'label_smoothing' })
  loss_module('NLLLoss', F.nll_loss, { 'weight', 'ignore_index' })
  loss_module('MSELoss', F.mse_loss, {})
  loss_module('L1Loss', F.l1_loss, {})
  loss_module('SmoothL1Loss', F.smooth_l1_loss, { 'beta' })
  loss_module('BCELoss', F.binary_cross_entropy, { 'weight' })
  loss_module('BCEWithLogitsLoss', F.binary_cross_entropy_with_logits, { 'weight', 'pos_weight' })

  -- ---- fastai's losses ----------------------------------------------------------

  -- FocalLoss{gamma = 2, weight, reduction = 'mean'}: cross-entropy scaled
  -- by (1 - p_t)^gamma, p_t the probability given to the target.
  local FocalLoss = nn.Module:extend('FocalLoss')
  losses.FocalLoss = FocalLoss
  local FOCAL_OPTS = set_of { 'gamma', 'weight', 'reduction' }
  function FocalLoss:init(opts)
    nn.Module.init(self)
    opts = check_options('FocalLoss', opts, FOCAL_OPTS)
    self.gamma, self.reduction = opts.gamma or 2, opts.reduction or 'mean'
    if opts.weight then self:register_buffer('weight', opts.weight) end
  end
  function FocalLoss:forward(inp, targ)
    local ce = F.cross_entropy(inp, targ, { weight = self.weight, reduction = 'none' })
    local p_t = (-ce):exp()
    return reduce('FocalLoss', (1 - p_t):pow(self.gamma) * ce, self.reduction)
  end

  -- LabelSmoothingCrossEntropy{eps = 0.1, weight, reduction = 'mean'}: fastai's
  -- form, eps/C spread over the classes (class dim 2) plus (1 - eps) NLL.
  local LabelSmoothingCrossEntropy = nn.Module:extend('LabelSmoothingCrossEntropy')
  losses.LabelSmoothingCrossEntropy = LabelSmoothingCrossEntropy
  local LS_OPTS = set_of { 'eps', 'weight', 'reduction' }
  function LabelSmoothingCrossEntropy:init(opts)
    nn.Module.init(self)
    opts = check_options('LabelSmoothingCrossEntropy', opts, LS_OPTS)
    self.eps, self.reduction = opts.eps or 0.1, opts.reduction or 'mean'
    if opts.weight then self:register_buffer('weight', opts.weight) end
    rawset(self, 'y_int', true)
  end
  function LabelSmoothingCrossEntropy:forward(output, target)
    local c = output:size(2)
    local log_preds = output:log_softmax(2)
    local loss
    if self.reduction == 'sum' then
      loss = -log_preds:sum()
    else
      loss = -log_preds:sum(2)
      if self.reduction == 'mean' then loss = loss:mean() end
    end
    local nll = F.nll_loss(log_preds, target:long(), { weight = self.weight, reduction = self.reduction })
    return loss * (self.eps / c) + nll * (1 - self.eps)
  end
  function LabelSmoothingCrossEntropy:activation(out) return out:softmax(-1) end
  function LabelSmoothingCrossEntropy:decodes(out) return out:argmax(-1) end

  -- BaseLoss(loss, {axis = -1, flatten = true, floatify = false, is_2d = true}):
  -- `loss` (a module or function of input and target) on the input with
  -- `axis` moved last and flattened to [-1, C] (is_2d) or [-1], the target
  -- to [-1]. `reduction` reads and writes the wrapped loss's.
  local BaseLoss = class('BaseLoss')
  losses.BaseLoss = BaseLoss
  BaseLoss.__index = function(self, k)
    if k == 'reduction' then return rawget(self, 'func').reduction end
    return getmetatable(self)[k]
  end
  BaseLoss.__newindex = function(self, k, v)
    if k == 'reduction' then
      if not REDUCTIONS[v] then raise(fmt("reduction must be 'mean', 'sum' or 'none', got %s", tostring(v))) end
      rawget(self, 'func').reduction = v
    else
      rawset(self, k, v)
    end
  end
  function BaseLoss:init(func, opts)
    opts = opts or {}
    rawset(self, 'func', func)
    self.axis = opts.axis or -1
    self.flatten = opts.flatten ~= false
    self.floatify = opts.floatify == true
    self.is_2d = opts.is_2d ~= false
  end
  local function axis_last(x, axis)
    if axis == -1 or axis == x:dim() or x:dim() < 2 then return x end
    if axis > x:dim() then return x end
    return x:transpose(axis, -1):contiguous()
  end
  BaseLoss.__call = function(self, inp, targ)
    inp, targ = axis_last(inp, self.axis), axis_last(targ, self.axis)
    if self.floatify and targ.dtype ~= 'float16' and not targ:is_floating_point() then targ = targ:float() end
    if targ.dtype == 'int32' then targ = targ:long() end
    if self.flatten then
      inp = self.is_2d and inp:reshape(-1, inp:size(-1)) or inp:reshape(-1)
      targ = targ:reshape(-1)
    end
    return self.func(inp, targ)
  end
  BaseLoss.__tostring = function(self) return 'FlattenedLoss of ' .. tostring(self.func) end
  function BaseLoss:activation(x) return x end
  function BaseLoss:decodes(x) return x end

  local function flat_class(name, make_func, opts_allowed, defaults, setup)
    local allowed = set_of(opts_allowed)
    for _, k in ipairs { 'axis', 'flatten', 'floatify' } do allowed[k] = true end
    local cls = BaseLoss:extend(name)
    function cls:init(opts)
      opts = check_options(name, opts, allowed)
      local func_opts, base_opts = {}, {}
      for k, v in pairs(opts) do
        if k == 'axis' or k == 'flatten' or k == 'floatify' or k == 'thresh' then base_opts[k] = v else func_opts[k] = v end
      end
      for k, v in pairs(defaults) do if base_opts[k] == nil then base_opts[k] = v end end
      if setup then setup(self, opts, base_opts) end
      BaseLoss.init(self, make_func(func_opts), base_opts)
    end
    losses[name] = cls
    return cls
  end

  local CE = flat_class('CrossEntropyLossFlat', nn.CrossEntropyLoss,
    { 'weight', 'ignore_index', 'label_smoothing', 'reduction' }, {})
  CE.y_int = true
  function CE:activation(x) return x:softmax(self.axis) end
  function CE:decodes(x) return x:argmax(self.axis) end

  local Focal = flat_class('FocalLossFlat', FocalLoss, { 'gamma', 'weight', 'reduction' }, {})
  Focal.y_int = true
  function Focal:activation(x) return x:softmax(self.axis) end
  function Focal:decodes(x) return x:argmax(self.axis) end

  local LSF = flat_class('LabelSmoothingCrossEntropyFlat', LabelSmoothingCrossEntropy,
    { 'eps', 'weight', 'reduction' }, {})
  LSF.y_int = true
  function LSF:activation(x) return x:softmax(-1) end
  function LSF:decodes(x) return x:argmax(-1) end

  -- thresh applies to probabilities: decodes follows activation.
  local BCEF = flat_class('BCEWithLogitsLossFlat', nn.BCEWithLogitsLoss,
    { 'weight', 'pos_weight', 'reduction', 'thresh' }, { floatify = true, is_2d = false },
    function(self, opts, base)
      if opts.pos_weight ~= nil then
        if opts.flatten == true then
          raise('BCEWithLogitsLossFlat: flatten must be false with pos_weight (its shape follows the classes)')
        end
        base.flatten = false
      end
      self.thresh = opts.thresh or 0.5
    end)
  function BCEF:activation(x) return x:sigmoid() end
  function BCEF:decodes(x) return x:gt(self.thresh) end

  flat_class('BCELossFlat', nn.BCELoss, { 'weight', 'reduction' }, { floatify = true, is_2d = false })
  flat_class('MSELossFlat', nn.MSELoss, { 'reduction' }, { floatify = true, is_2d = false })
  flat_class('L1LossFlat', nn.L1Loss, { 'reduction' }, { floatify = true, is_2d = false })

  -- DiceLoss{axis = 2, smooth = 1e-6, reduction = 'sum', square_in_union = false}:
  -- 1 - soft Dice per item and class, from the softmax over `axis` and the
  -- target's class ids (1..C) one-hot along it.
  local DiceLoss = class('DiceLoss')
  losses.DiceLoss = DiceLoss
  local DICE_OPTS = set_of { 'axis', 'smooth', 'reduction', 'square_in_union' }
  function DiceLoss:init(opts)
    opts = check_options('DiceLoss', opts, DICE_OPTS)
    self.axis, self.smooth = opts.axis or 2, opts.smooth or 1e-6
    self.reduction, self.square_in_union = opts.reduction or 'sum', opts.square_in_union == true
  end
  function DiceLoss:one_hot(targ, classes)
    local masks = {}
    for c = 1, classes do masks[c] = targ:eq(c):float() end
    return fc.stack(masks, self.axis)
  end
  DiceLoss.__call = function(self, pred, targ)
    local onehot = self:one_hot(targ, pred:size(self.axis))
    if table.concat(onehot:size(), 'x') ~= table.concat(pred:size(), 'x') then
      raise(fmt('DiceLoss: prediction %s and one-hot target %s differ (the target holds class ids, not one-hot)',
        tostring(pred:size()), tostring(onehot:size())))
    end
    local p = self:activation(pred)
    local sum_dims = {}
    for d = 3, p:dim() do sum_dims[#sum_dims + 1] = d end
    local function total(x) return #sum_dims > 0 and x:sum(sum_dims) or x end -- [N, C] has nothing to sum
    local inter = total(p * onehot)
    local union = self.square_in_union and total(p * p + onehot) or total(p + onehot)
    local dice = (inter * 2 + self.smooth) / (union + self.smooth)
    return reduce('DiceLoss', 1 - dice, self.reduction)
  end
  function DiceLoss:activation(x) return x:softmax(self.axis) end
  function DiceLoss:decodes(x) return x:argmax(self.axis) end

  for _, name in ipairs { 'BaseLoss', 'CrossEntropyLossFlat', 'FocalLoss', 'FocalLossFlat',
    'LabelSmoothingCrossEntropy', 'LabelSmoothingCrossEntropyFlat', 'BCEWithLogitsLossFlat',
    'BCELossFlat', 'MSELossFlat', 'L1LossFlat', 'DiceLoss' } do
    if fc[name] == nil then fc[name] = losses[name] end
  end
  return losses
end
