-- lua/fastc/ext_loss.lua — softmax family and losses (torch.nn.functional's
-- semantics), class ids counted from 1.
--
--   t:softmax(dim), t:log_softmax(dim)          dim 1-based, default -1 (the last)
--   fc.F.cross_entropy(logits, target, {weight=, ignore_index=, label_smoothing=0, reduction='mean'})
--     logits [C], [N,C] or [N,C,d1,...]; target: class ids 1..C (int64, shaped like
--     the logits without dim 2), or class probabilities shaped like the logits
--   fc.F.nll_loss(log_probs, target, {weight=, ignore_index=, reduction=})
--   fc.F.mse_loss / l1_loss(input, target, {reduction=})
--   fc.F.smooth_l1_loss(input, target, {beta=1, reduction=})
--   fc.F.binary_cross_entropy(input, target, {weight=, reduction=})
--   fc.F.binary_cross_entropy_with_logits(input, target, {weight=, pos_weight=, reduction=})
-- ignore_index is a class id in Lua's numbering (e.g. 0, or -100, for none of 1..C).
return function(fc, Tensor, H)
  local C, wrap, raise, fmt = H.C, H.wrap, H.raise, string.format
  local F = fc.F or {}
  fc.F = F

  function Tensor.softmax(t, dim) return wrap(C.fc_softmax(t.p, H.dim(t, dim or -1))) end
  function Tensor.log_softmax(t, dim) return wrap(C.fc_log_softmax(t.p, H.dim(t, dim or -1))) end
  fc.softmax, fc.log_softmax = Tensor.softmax, Tensor.log_softmax
  F.softmax, F.log_softmax = Tensor.softmax, Tensor.log_softmax

  local options = H.options

  local reductions = { none = C.FC_REDUCE_NONE, mean = C.FC_REDUCE_MEAN, sum = C.FC_REDUCE_SUM }
  local function reduction(name, opts)
    local r = reductions[opts.reduction == nil and 'mean' or opts.reduction]
    if not r then
      raise(fmt("%s: reduction must be 'mean', 'sum' or 'none', got %s", name, tostring(opts.reduction)))
    end
    return r
  end

  local number_opt, input_of = H.number_opt, H.input_of
  local function tensor_opt(name, opts, key) return H.tensor_arg(name, opts[key], key) end

  -- Class ids: a tensor as is; a Lua number or (nested) table becomes int64.
  local function class_target(target)
    if H.is_tensor(target) then return target end
    return fc.tensor(target, { dtype = 'int64' })
  end

  local function ignore_index(name, opts)
    local v = number_opt(name, opts, 'ignore_index', nil)
    if v == nil then return C.FC_NO_INDEX end
    if v ~= math.floor(v) then raise(fmt('%s: ignore_index must be an integer, got %s', name, v)) end
    return v
  end

  local CE_OPTS = { weight = true, ignore_index = true, label_smoothing = true, reduction = true }
  function F.cross_entropy(input, target, opts)
    local name = 'cross_entropy'
    opts = options(name, opts, CE_OPTS)
    return wrap(C.fc_cross_entropy(input_of(name, input).p, class_target(target).p,
      tensor_opt(name, opts, 'weight'), ignore_index(name, opts),
      number_opt(name, opts, 'label_smoothing', 0), reduction(name, opts), 1))
  end

  local NLL_OPTS = { weight = true, ignore_index = true, reduction = true }
  function F.nll_loss(input, target, opts)
    local name = 'nll_loss'
    opts = options(name, opts, NLL_OPTS)
    return wrap(C.fc_nll_loss(input_of(name, input).p, class_target(target).p,
      tensor_opt(name, opts, 'weight'), ignore_index(name, opts), reduction(name, opts), 1))
  end

  -- mse_loss / l1_loss: the target may be a number (a 0-dim tensor next to input).
  local REDUCTION_ONLY = { reduction = true }
  for _, name in ipairs { 'mse_loss', 'l1_loss' } do
    local cfn = C['fc_' .. name]
    F[name] = function(input, target, opts)
      opts = options(name, opts, REDUCTION_ONLY)
      input = input_of(name, input)
      return wrap(cfn(input.p, H.tensor(target, input).p, reduction(name, opts)))
    end
  end

  local SMOOTH_OPTS = { beta = true, reduction = true }
  function F.smooth_l1_loss(input, target, opts)
    local name = 'smooth_l1_loss'
    opts = options(name, opts, SMOOTH_OPTS)
    input = input_of(name, input)
    return wrap(C.fc_smooth_l1_loss(input.p, H.tensor(target, input).p,
      number_opt(name, opts, 'beta', 1), reduction(name, opts)))
  end

  local BCE_OPTS = { weight = true, reduction = true }
  function F.binary_cross_entropy(input, target, opts)
    local name = 'binary_cross_entropy'
    opts = options(name, opts, BCE_OPTS)
    input = input_of(name, input)
    return wrap(C.fc_binary_cross_entropy(input.p, H.tensor(target, input).p,
      tensor_opt(name, opts, 'weight'), reduction(name, opts)))
  end

  local BCEL_OPTS = { weight = true, pos_weight = true, reduction = true }
  function F.binary_cross_entropy_with_logits(input, target, opts)
    local name = 'binary_cross_entropy_with_logits'
    opts = options(name, opts, BCEL_OPTS)
    input = input_of(name, input)
    return wrap(C.fc_binary_cross_entropy_with_logits(input.p, H.tensor(target, input).p,
      tensor_opt(name, opts, 'weight'), tensor_opt(name, opts, 'pos_weight'), reduction(name, opts)))
  end
end
