-- lua/fastc/ext_autograd.lua — requires_grad, .grad, backward, no_grad.
local ffi = require 'ffi'

return function(fc, Tensor, H)
  local C, wrap, check, raise = H.C, H.wrap, H.check, H.raise

  H.props.requires_grad = function(t) return t.p.requires_grad ~= 0 end
  H.props.is_leaf = function(t) return C.fc_is_leaf(t.p) ~= 0 end
  H.props.grad_fn = function(t)
    local name = C.fc_grad_fn_name(t.p)
    return name ~= nil and ffi.string(name) or nil
  end
  H.props.grad = function(t)
    local g = C.fc_get_grad(t.p)
    return g ~= nil and wrap(g) or nil
  end

  H.setters.requires_grad = function(t, v) check(C.fc_set_requires_grad(t.p, v and 1 or 0)) end
  H.setters.grad = function(t, g)
    if g ~= nil and not H.is_tensor(g) then raise('grad must be a tensor or nil') end
    check(C.fc_set_grad(t.p, g and g.p or nil))
  end

  function Tensor.requires_grad_(t, on)
    check(C.fc_set_requires_grad(t.p, (on == nil or on) and 1 or 0))
    return t
  end

  -- t:backward(), t:backward(grad), t:backward(grad, {retain_graph = true})
  function Tensor.backward(t, grad, opts)
    if type(grad) == 'table' and not H.is_tensor(grad) then opts, grad = grad, nil end
    opts = opts or {}
    check(C.fc_backward(t.p, grad and H.tensor(grad, t).p or nil, opts.retain_graph and 1 or 0))
  end

  function Tensor.detach(t) return wrap(C.fc_detach(t.p)) end
  function Tensor.zero_grad(t) check(C.fc_set_grad(t.p, nil)) end

  -- Runs fn with grad mode set, restoring the previous mode even on error.
  local function with_grad_mode(enabled, fn, ...)
    local previous = C.fc_is_grad_enabled()
    C.fc_set_grad_enabled(enabled)
    local results = { pcall(fn, ...) }
    C.fc_set_grad_enabled(previous)
    if not results[1] then error(results[2], 0) end
    return unpack(results, 2, table.maxn(results))
  end
  function fc.no_grad(fn, ...) return with_grad_mode(0, fn, ...) end
  function fc.enable_grad(fn, ...) return with_grad_mode(1, fn, ...) end
  function fc.set_grad_enabled(on) C.fc_set_grad_enabled(on and 1 or 0) end
  function fc.is_grad_enabled() return C.fc_is_grad_enabled() ~= 0 end
end
