-- lua/fastc/ext_math.lua — elementwise ops, their in-place forms and operators.
local ffi = require 'ffi'

return function(fc, Tensor, H)
  local C, wrap, check, as_tensor = H.C, H.wrap, H.check, H.tensor
  local huge = math.huge

  -- Binary ops take a tensor or a number on either side.
  local function binary(cfn)
    return function(a, b)
      if not H.is_tensor(a) then a = as_tensor(a, b) end
      return wrap(cfn(a.p, as_tensor(b, a).p))
    end
  end
  local function binary_(cfn)
    return function(a, b)
      check(cfn(a.p, as_tensor(b, a).p))
      return a
    end
  end

  for _, name in ipairs { 'add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum',
    'eq', 'ne', 'lt', 'le', 'gt', 'ge', 'logical_and', 'logical_or' } do
    Tensor[name] = binary(C['fc_' .. name])
    fc[name] = Tensor[name]
  end
  for _, name in ipairs { 'add', 'sub', 'mul', 'div', 'pow' } do
    Tensor[name .. '_'] = binary_(C['fc_' .. name .. '_'])
  end
  -- PyTorch spellings
  Tensor.multiply, Tensor.subtract, Tensor.divide = Tensor.mul, Tensor.sub, Tensor.div
  Tensor.greater, Tensor.less, Tensor.equal_elements = Tensor.gt, Tensor.lt, Tensor.eq

  -- a + alpha * b in one pass (torch.add(a, b, alpha=...)).
  function Tensor.add_scaled(a, b, alpha) return wrap(C.fc_add_scaled(a.p, as_tensor(b, a).p, alpha)) end
  function Tensor.add_scaled_(a, b, alpha)
    check(C.fc_add_scaled_(a.p, as_tensor(b, a).p, alpha))
    return a
  end

  for _, name in ipairs { 'neg', 'abs', 'exp', 'log', 'log1p', 'sqrt', 'rsqrt', 'sin', 'cos',
    'tanh', 'sigmoid', 'relu', 'gelu', 'silu', 'floor', 'ceil', 'round', 'sign' } do
    local f, f_ = C['fc_' .. name], C['fc_' .. name .. '_']
    Tensor[name] = function(t) return wrap(f(t.p)) end
    Tensor[name .. '_'] = function(t) check(f_(t.p)); return t end
    fc[name] = Tensor[name]
  end
  function Tensor.logical_not(t) return wrap(C.fc_logical_not(t.p)) end
  fc.logical_not = Tensor.logical_not

  function Tensor.leaky_relu(t, slope) return wrap(C.fc_leaky_relu(t.p, slope or 0.01)) end
  function Tensor.leaky_relu_(t, slope) check(C.fc_leaky_relu_(t.p, slope or 0.01)); return t end
  -- nil bound: no bound on that side
  function Tensor.clamp(t, lo, hi) return wrap(C.fc_clamp(t.p, lo or -huge, hi or huge)) end
  function Tensor.clamp_(t, lo, hi) check(C.fc_clamp_(t.p, lo or -huge, hi or huge)); return t end
  Tensor.clip = Tensor.clamp
  fc.leaky_relu, fc.clamp = Tensor.leaky_relu, Tensor.clamp

  -- fc.where(cond, a, b); t:where(cond, other) is where(cond, t, other).
  function fc.where(cond, a, b)
    if not H.is_tensor(a) then a = as_tensor(a, H.is_tensor(b) and b or nil) end
    return wrap(C.fc_where(cond.p, a.p, as_tensor(b, a).p))
  end
  function Tensor.where(t, cond, other) return fc.where(cond, t, other) end

  function Tensor.lerp(a, b, w) return wrap(C.fc_lerp(a.p, as_tensor(b, a).p, as_tensor(w, a).p)) end
  function Tensor.lerp_(a, b, w) check(C.fc_lerp_(a.p, as_tensor(b, a).p, as_tensor(w, a).p)); return a end
  fc.lerp = Tensor.lerp

  -- Operators. Lua's == and < must return booleans, so comparisons are the
  -- methods eq/lt/...; `*` is elementwise like PyTorch's.
  local mt = H.mt
  mt.__add = Tensor.add
  mt.__sub = Tensor.sub
  mt.__mul = Tensor.mul
  mt.__div = Tensor.div
  mt.__pow = Tensor.pow
  mt.__unm = Tensor.neg
  mt.__mod = function(a, b)
    if not H.is_tensor(a) then a = as_tensor(a, b) end
    b = as_tensor(b, a)
    return a - (a / b):floor() * b
  end
  function Tensor.remainder(a, b) return mt.__mod(a, b) end
  fc.remainder = Tensor.remainder
  return ffi
end
