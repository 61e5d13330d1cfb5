-- lua/fastc/ext_linalg.lua — matrix products on OpenBLAS (runtime/ops_matmul.c).
--
--   a:matmul(b), fc.matmul(a, b)   torch.matmul: 1-D dot, 2-D, 1-D promoted, batched N-D
--                                  with broadcast batch dims
--   a:mm(b)                        2-D @ 2-D only
--   a:bmm(b)                       3-D @ 3-D with one batch size (no broadcasting)
--   a:mv(v)                        2-D @ 1-D
--   c:addmm(a, b, {beta=1, alpha=1})  beta * c + alpha * (a @ b), c broadcasts
--   a:dot(b), a:outer(b)           1-D vectors
-- `*` stays elementwise (ext_math), as in PyTorch.
return function(fc, Tensor, H)
  local C, wrap, raise, is_tensor = H.C, H.wrap, H.raise, H.is_tensor
  local fmt = string.format

  local function shape(t) return tostring(t:size()) end

  -- Both operands must be tensors: a Lua number is not a matrix.
  local function operands(op, a, b)
    if not is_tensor(a) then raise(fmt('%s: expected a tensor, got %s', op, type(a))) end
    if not is_tensor(b) then raise(fmt('%s: expected a tensor as the second operand, got %s', op, type(b))) end
  end

  local function dims(op, a, b, na, nb, what)
    if a:dim() ~= na or b:dim() ~= nb then
      raise(fmt('%s: expects %s, got shapes %s and %s', op, what, shape(a), shape(b)))
    end
  end

  function Tensor.matmul(a, b)
    operands('matmul', a, b)
    return wrap(C.fc_matmul(a.p, b.p))
  end

  function Tensor.mm(a, b)
    operands('mm', a, b)
    dims('mm', a, b, 2, 2, '2-D matrices')
    return wrap(C.fc_matmul(a.p, b.p))
  end

  function Tensor.bmm(a, b)
    operands('bmm', a, b)
    dims('bmm', a, b, 3, 3, '3-D batches of matrices')
    if a:size(1) ~= b:size(1) then
      raise(fmt('bmm: batch sizes differ, got shapes %s and %s', shape(a), shape(b)))
    end
    return wrap(C.fc_matmul(a.p, b.p))
  end

  function Tensor.mv(a, v)
    operands('mv', a, v)
    dims('mv', a, v, 2, 1, 'a 2-D matrix and a 1-D vector')
    return wrap(C.fc_matmul(a.p, v.p))
  end

  function Tensor.dot(a, b)
    operands('dot', a, b)
    return wrap(C.fc_dot(a.p, b.p))
  end

  function Tensor.outer(a, b)
    operands('outer', a, b)
    return wrap(C.fc_outer(a.p, b.p))
  end

  -- c:addmm(a, b, {beta = 1, alpha = 1}) = beta * c + alpha * (a @ b); c may
  -- be a Lua number. With beta = 0, c is not read (NaN in it does not leak).
  function Tensor.addmm(c, a, b, opts)
    operands('addmm', a, b)
    if opts ~= nil and type(opts) ~= 'table' then
      raise(fmt('addmm: options must be a table like {beta = 1, alpha = 1}, got %s', type(opts)))
    end
    opts = opts or {}
    local beta, alpha = opts.beta or 1, opts.alpha or 1
    if type(beta) ~= 'number' or type(alpha) ~= 'number' then
      raise(fmt('addmm: beta and alpha must be numbers, got %s and %s', type(beta), type(alpha)))
    end
    if type(c) == 'number' then
      c = wrap(C.fc_scalar(c, a.p.dtype, a.p.device))
    elseif not is_tensor(c) then
      raise(fmt('addmm: expected a tensor or a number to add, got %s', type(c)))
    end
    return wrap(C.fc_addmm(c.p, a.p, b.p, beta, alpha))
  end

  fc.matmul, fc.mm, fc.bmm, fc.mv = Tensor.matmul, Tensor.mm, Tensor.bmm, Tensor.mv
  fc.dot, fc.outer, fc.addmm = Tensor.dot, Tensor.outer, Tensor.addmm
end
