-- lua/fastc/ext_linalg.lua — matmul and friends (OpenBLAS underneath).
return function(fc, Tensor, H)
  local C, wrap, raise, fmt = H.C, H.wrap, H.raise, string.format

  function Tensor.matmul(a, b) return wrap(C.fc_matmul(a.p, b.p)) end
  function Tensor.mm(a, b)
    if a:dim() ~= 2 or b:dim() ~= 2 then
      raise(fmt('mm: expects 2-D matrices, got %d-D and %d-D', a:dim(), b:dim()))
    end
    return wrap(C.fc_matmul(a.p, b.p))
  end
  function Tensor.bmm(a, b)
    if a:dim() ~= 3 or b:dim() ~= 3 then
      raise(fmt('bmm: expects 3-D batches, got %d-D and %d-D', a:dim(), b:dim()))
    end
    if a:size(1) ~= b:size(1) then
      raise(fmt('bmm: batch sizes %d and %d differ', a:size(1), b:size(1)))
    end
    return wrap(C.fc_matmul(a.p, b.p))
  end
  function Tensor.mv(a, v) return wrap(C.fc_matmul(a.p, v.p)) end
  function Tensor.dot(a, b) return wrap(C.fc_dot(a.p, b.p)) end
  function Tensor.outer(a, b) return wrap(C.fc_outer(a.p, b.p)) end
  -- c:addmm(a, b, {beta = 1, alpha = 1}) = beta * c + alpha * (a @ b)
  function Tensor.addmm(c, a, b, opts)
    opts = opts or {}
    return wrap(C.fc_addmm(c.p, a.p, b.p, opts.beta or 1, opts.alpha or 1))
  end
  fc.matmul, fc.mm, fc.bmm, fc.mv = Tensor.matmul, Tensor.mm, Tensor.bmm, Tensor.mv
  fc.dot, fc.outer, fc.addmm = Tensor.dot, Tensor.outer, Tensor.addmm
end
