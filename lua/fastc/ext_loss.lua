-- lua/fastc/ext_loss.lua — softmax family and losses (fc.F), class ids from 1.
return function(fc, Tensor, H)
  local C, wrap, raise, fmt = H.C, H.wrap, H.raise, string.format
  local F = fc.F or {}
  fc.F = F

  function Tensor.softmax(t, dim) return wrap(C.fc_softmax(t.p, H.dim(t, dim or -1))) end
  function Tensor.log_softmax(t, dim) return wrap(C.fc_log_softmax(t.p, H.dim(t, dim or -1))) end
  fc.softmax, fc.log_softmax = Tensor.softmax, Tensor.log_softmax
  F.softmax, F.log_softmax = Tensor.softmax, Tensor.log_softmax

  local reductions = { none = C.FC_REDUCE_NONE, mean = C.FC_REDUCE_MEAN, sum = C.FC_REDUCE_SUM }
  local function reduction(opts)
    local r = reductions[opts.reduction or 'mean']
    if not r then raise(fmt("unknown reduction %q (expected 'mean', 'sum' or 'none')", tostring(opts.reduction))) end
    return r
  end
  local function ptr(t) return t and t.p or nil end
  local function target_of(target)
    if H.is_tensor(target) then return target end
    return fc.tensor(target, { dtype = 'int64' })
  end

  -- F.cross_entropy(logits, target, {weight=, ignore_index=, label_smoothing=0, reduction='mean'})
  function F.cross_entropy(input, target, opts)
    opts = opts or {}
    return wrap(C.fc_cross_entropy(input.p, target_of(target).p, ptr(opts.weight),
      opts.ignore_index or C.FC_NO_INDEX, opts.label_smoothing or 0, reduction(opts), 1))
  end
  function F.nll_loss(input, target, opts)
    opts = opts or {}
    return wrap(C.fc_nll_loss(input.p, target_of(target).p, ptr(opts.weight),
      opts.ignore_index or C.FC_NO_INDEX, reduction(opts), 1))
  end
  function F.mse_loss(input, target, opts)
    return wrap(C.fc_mse_loss(input.p, H.tensor(target, input).p, reduction(opts or {})))
  end
  function F.l1_loss(input, target, opts)
    return wrap(C.fc_l1_loss(input.p, H.tensor(target, input).p, reduction(opts or {})))
  end
  function F.smooth_l1_loss(input, target, opts)
    opts = opts or {}
    return wrap(C.fc_smooth_l1_loss(input.p, H.tensor(target, input).p, opts.beta or 1, reduction(opts)))
  end
  function F.binary_cross_entropy(input, target, opts)
    opts = opts or {}
    return wrap(C.fc_binary_cross_entropy(input.p, H.tensor(target, input).p, ptr(opts.weight), reduction(opts)))
  end
  function F.binary_cross_entropy_with_logits(input, target, opts)
    opts = opts or {}
    return wrap(C.fc_binary_cross_entropy_with_logits(input.p, H.tensor(target, input).p, ptr(opts.weight),
      ptr(opts.pos_weight), reduction(opts)))
  end
end
