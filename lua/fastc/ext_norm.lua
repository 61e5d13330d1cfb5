-- lua/fastc/ext_norm.lua — normalisation, dropout and embedding
-- (torch.nn.functional's semantics) over the fused C kernels of
-- runtime/ops_norm.c, ops_dropout.c and ops_embedding.c.
--
--   F.batch_norm(x, running_mean, running_var, {weight=, bias=, training=false, momentum=0.1, eps=1e-5, act=})
--     x [N,C,...]; training (or no running stats given): normalise with the batch
--     statistics and update the running ones in place; otherwise use them.
--     act = 'relu' applies relu in the same pass (never implied).
--   F.layer_norm(x, normalized_shape, {weight=, bias=, eps=1e-5})   over the last dims
--   F.group_norm(x, groups, {weight=, bias=, eps=1e-5})
--   F.dropout(x, {p=0.5, training=true})      Philox mask from fc.manual_seed's generator
--   F.dropout2d(x, {p=0.5, training=true})    whole channels of [N,C,H,W] or [C,H,W]
--   F.embedding(ids, weight, {padding_idx=})  ids count from 1; padding_idx too (negative: from the end)
return function(fc, Tensor, H)
  local C, wrap, raise, fmt = H.C, H.wrap, H.raise, string.format
  local F = fc.F or {}
  fc.F = F

  local options = H.options

  local tensor_arg, number_opt, input_of = H.tensor_arg, H.number_opt, H.input_of

  local BN_OPTS = { weight = true, bias = true, training = true, momentum = true, eps = true, act = true }
  function F.batch_norm(x, rm, rv, opts)
    local name = 'batch_norm'
    opts = options(name, opts, BN_OPTS)
    x = input_of(name, x)
    local act = opts.act
    if act ~= nil and act ~= 'relu' then
      raise(fmt("%s: act must be 'relu' or nil, got %s", name, tostring(act)))
    end
    local cfn = act == 'relu' and C.fc_batch_norm_relu or C.fc_batch_norm
    local training = opts.training or rm == nil
    return wrap(cfn(x.p, tensor_arg(name, rm, 'running_mean'), tensor_arg(name, rv, 'running_var'),
      tensor_arg(name, opts.weight, 'weight'), tensor_arg(name, opts.bias, 'bias'), training and 1 or 0,
      number_opt(name, opts, 'momentum', 0.1), number_opt(name, opts, 'eps', 1e-5)))
  end

  local AFFINE_OPTS = { weight = true, bias = true, eps = true }
  function F.layer_norm(x, shape, opts)
    local name = 'layer_norm'
    opts = options(name, opts, AFFINE_OPTS)
    x = input_of(name, x)
    if type(shape) == 'number' then shape = { shape } end
    if type(shape) ~= 'table' and not H.is_tensor(shape) then
      raise(fmt('%s: normalized_shape must be a number or a table of sizes, got %s', name, type(shape)))
    end
    if H.is_tensor(shape) then shape = shape:totable() end
    local k, nd = #shape, x:dim()
    local ok = k >= 1 and k <= nd
    for i = 1, k do ok = ok and x:size(nd - k + i) == shape[i] end
    if not ok then
      raise(fmt('%s: normalized_shape [%s] does not match the last dims of the input of shape [%s]', name,
        table.concat(shape, ','), table.concat(x:size(), ',')))
    end
    return wrap(C.fc_layer_norm(x.p, k, tensor_arg(name, opts.weight, 'weight'),
      tensor_arg(name, opts.bias, 'bias'), number_opt(name, opts, 'eps', 1e-5)))
  end

  function F.group_norm(x, groups, opts)
    local name = 'group_norm'
    opts = options(name, opts, AFFINE_OPTS)
    x = input_of(name, x)
    if type(groups) ~= 'number' or groups ~= math.floor(groups) then
      raise(fmt('%s: groups must be an integer, got %s', name, tostring(groups)))
    end
    return wrap(C.fc_group_norm(x.p, groups, tensor_arg(name, opts.weight, 'weight'),
      tensor_arg(name, opts.bias, 'bias'), number_opt(name, opts, 'eps', 1e-5)))
  end

  local DROPOUT_OPTS = { p = true, training = true }
  local function dropout_p(name, opts)
    local p = number_opt(name, opts, 'p', 0.5)
    if not (p >= 0 and p <= 1) then raise(fmt('%s: p must be in [0, 1], got %s', name, tostring(p))) end
    return p
  end

  -- Not training, or p = 0: x itself (no copy).
  function F.dropout(x, opts)
    local name = 'dropout'
    opts = options(name, opts, DROPOUT_OPTS)
    x = input_of(name, x)
    local p, training = dropout_p(name, opts), opts.training ~= false
    if not training or p == 0 then return x end
    return wrap(C.fc_dropout(x.p, p, 1))
  end

  -- Zeroes whole channels: one draw per (n, c) of [N,C,...] (per c of a 3-D [C,H,W]).
  function F.dropout2d(x, opts)
    local name = 'dropout2d'
    opts = options(name, opts, DROPOUT_OPTS)
    x = input_of(name, x)
    local p, training = dropout_p(name, opts), opts.training ~= false
    if not training or p == 0 then return x end
    if x:dim() ~= 3 and x:dim() ~= 4 then
      raise(fmt('%s: expected a 3-d [C,H,W] or 4-d [N,C,H,W] input, got shape [%s]', name,
        table.concat(x:size(), ',')))
    end
    if p == 1 then return x * 0 end
    local shape = x:size()
    for d = x:dim() - 1, x:dim() do shape[d] = 1 end
    local mask = fc.no_grad(function()
      return fc.empty(shape, { dtype = x.dtype, device = x.device }):bernoulli_(1 - p):div_(1 - p)
    end)
    return x * mask
  end

  local EMB_OPTS = { padding_idx = true }
  function F.embedding(idx, weight, opts)
    local name = 'embedding'
    opts = options(name, opts, EMB_OPTS)
    if not H.is_tensor(weight) then raise(fmt('%s: weight must be a tensor, got %s', name, type(weight))) end
    local pad = opts.padding_idx
    if pad == nil then
      pad = C.FC_NO_INDEX
    elseif type(pad) ~= 'number' or pad ~= math.floor(pad) then
      raise(fmt('%s: padding_idx must be an integer, got %s', name, tostring(pad)))
    elseif pad < 0 and weight:dim() == 2 then
      pad = weight:size(1) + 1 + pad -- -1: the last row
    end
    return wrap(C.fc_embedding(weight.p, H.index_tensor(idx, name).p, pad, 1))
  end
end
