-- tests/lua/norm_spec.lua — normalisation, dropout and embedding through fc.F
-- and fc.nn: values against compositions of plain tensor ops (or by hand),
-- gradients against finite differences, 1-based ids and clear errors.
local fc = require 'fastc'
local F, nn = fc.F, fc.nn

local function close(a, b, tol) return math.abs(a - b) <= (tol or 1e-6) * (1 + math.abs(b)) end
local function all_close(t, u, tol)
  local a, b = t:reshape(-1):totable(), u:reshape(-1):totable()
  if #a ~= #b then return false end
  for i = 1, #a do if not close(a[i], b[i], tol) then return false end end
  return true
end

-- d/dx of sum(f(x) * G) by backward against central differences.
local function numeric_grad_ok(f, x)
  local G = fc.randn(f(x):size(), { dtype = 'float64' })
  x.requires_grad = true
  f(x):backward(G)
  local got = x.grad:reshape(-1):totable()
  x.grad = nil
  x.requires_grad = false
  local flat = x:view(-1)
  for i = 1, x:numel() do
    local x0 = flat[i]
    flat[i] = x0 + 1e-6
    local up = fc.no_grad(function() return (f(x) * G):sum():item() end)
    flat[i] = x0 - 1e-6
    local down = fc.no_grad(function() return (f(x) * G):sum():item() end)
    flat[i] = x0
    if not close(got[i], (up - down) / 2e-6, 1e-5) then
      return false, ('element %d: %g vs %g'):format(i, got[i], (up - down) / 2e-6)
    end
  end
  return true
end

local function error_of(f, ...)
  local ok, e = pcall(f, ...)
  assert.is_false(ok)
  return e
end

-- The normalisation spelled out with tensor ops over `dims`.
local function normalise(x, dims, eps)
  local mean = x:mean(dims, true)
  local var = x:var(dims, { correction = 0, keepdim = true })
  return (x - mean) / (var + eps):sqrt()
end

describe('fc.F.batch_norm', function()
  it('normalises with batch statistics and updates the running ones', function()
    local x = fc.tensor({ { 1, 10 }, { 2, 20 }, { 3, 30 }, { 4, 40 } }, { dtype = 'float64' })
    local rm, rv = fc.zeros(2, { dtype = 'float64' }), fc.ones(2, { dtype = 'float64' })
    local y = F.batch_norm(x, rm, rv, { training = true, momentum = 0.1 })
    assert.is_true(all_close(y, normalise(x, 1, 1e-5), 1e-12))
    -- mean 2.5 / 25, unbiased var 5/3 / 500/3
    assert.is_true(all_close(rm, fc.tensor({ 0.25, 2.5 }, { dtype = 'float64' }), 1e-12))
    assert.is_true(all_close(rv, fc.tensor({ 0.9 + 0.5 / 3, 0.9 + 50 / 3 }, { dtype = 'float64' }), 1e-12))
    local e = F.batch_norm(x, rm, rv, { training = false, eps = 0 })
    assert.is_true(all_close(e:select(2, 1), (x:select(2, 1) - 0.25) / math.sqrt(0.9 + 0.5 / 3), 1e-12))
  end)

  it('takes [N,C,H,W] with weight and bias, and its gradients match finite differences', function()
    fc.manual_seed(1)
    local x = fc.randn(3, 2, 2, 3, { dtype = 'float64' })
    local w, b = fc.tensor({ 0.5, -2 }, { dtype = 'float64' }), fc.tensor({ 1, 0.25 }, { dtype = 'float64' })
    local y = F.batch_norm(x, nil, nil, { weight = w, bias = b })
    local want = normalise(x, { 1, 3, 4 }, 1e-5) * w:view(1, 2, 1, 1) + b:view(1, 2, 1, 1)
    assert.is_true(all_close(y, want, 1e-12))
    assert.is_true(numeric_grad_ok(function(t) return F.batch_norm(t, nil, nil, { weight = w, bias = b }) end, x))
    local rm, rv = fc.randn(2, { dtype = 'float64' }), fc.rand(2, { dtype = 'float64' })
    assert.is_true(numeric_grad_ok(function(t) return F.batch_norm(t, rm, rv, { weight = w }) end, x))
    assert.is_true(numeric_grad_ok(function(t) return F.batch_norm(x, nil, nil, { weight = t, bias = b }) end,
      w:clone()))
    assert.is_true(numeric_grad_ok(function(t) return F.batch_norm(x, rm, rv, { weight = w, bias = t }) end,
      b:clone()))
  end)

  it("act = 'relu' fuses relu in both modes, gradients included", function()
    fc.manual_seed(2)
    local x = fc.randn(4, 3, 5, { dtype = 'float64' })
    local rm, rv = fc.randn(3, { dtype = 'float64' }), fc.rand(3, { dtype = 'float64' }) + 0.5
    for _, training in ipairs { true, false } do
      local o = { training = training, momentum = 0 }
      local fused = F.batch_norm(x, rm, rv, { training = training, momentum = 0, act = 'relu' })
      assert.is_true(all_close(fused, F.batch_norm(x, rm, rv, o):relu(), 1e-12))
      local ok, err = numeric_grad_ok(function(t)
        return F.batch_norm(t, rm, rv, { training = training, momentum = 0, act = 'relu' })
      end, x)
      assert.is_true(ok, err)
    end
    assert.truthy(error_of(F.batch_norm, x, rm, rv, { act = 'gelu' }):find("act must be 'relu' or nil, got gelu", 1, true))
  end)

  it('reports bad arguments with the caller line', function()
    local x = fc.randn(4, 3)
    local e = error_of(function() return F.batch_norm(x, fc.zeros(2), fc.ones(2)) end)
    assert.truthy(e:find('norm_spec.lua:%d+: batch_norm: running_mean must have shape %[3%], got %[2%]'))
    e = error_of(F.batch_norm, x, nil, nil, { momentun = 0.1 })
    assert.truthy(e:find('batch_norm: unknown option "momentun"', 1, true))
    e = error_of(F.batch_norm, fc.randn(1, 3), nil, nil, { training = true })
    assert.truthy(e:find('more than 1 value per channel', 1, true))
  end)
end)

describe('fc.F.layer_norm and group_norm', function()
  it('layer_norm normalises the last dims and checks normalized_shape', function()
    fc.manual_seed(3)
    local x = fc.randn(2, 3, 4, { dtype = 'float64' })
    local w, b = fc.randn(3, 4, { dtype = 'float64' }), fc.randn(3, 4, { dtype = 'float64' })
    assert.is_true(all_close(F.layer_norm(x, { 3, 4 }, { weight = w, bias = b }),
      normalise(x, { 2, 3 }, 1e-5) * w + b, 1e-12))
    assert.is_true(all_close(F.layer_norm(x, 4), normalise(x, 3, 1e-5), 1e-12))
    local ok, err = numeric_grad_ok(function(t) return F.layer_norm(t, { 3, 4 }, { weight = w, bias = b }) end, x)
    assert.is_true(ok, err)
    local e = error_of(F.layer_norm, x, { 4, 3 })
    assert.truthy(e:find('normalized_shape [4,3] does not match the last dims of the input of shape [2,3,4]', 1, true))
    e = error_of(F.layer_norm, x, 4, { weight = fc.ones(3) })
    assert.truthy(e:find('weight of shape [3] does not match the normalised shape [4]', 1, true))
  end)

  it('group_norm normalises groups of channels', function()
    fc.manual_seed(4)
    local x = fc.randn(2, 6, 5, { dtype = 'float64' })
    local w, b = fc.randn(6, { dtype = 'float64' }), fc.randn(6, { dtype = 'float64' })
    local want = normalise(x:reshape(2, 3, 10), 3, 1e-5):view(2, 6, 5) * w:view(1, 6, 1) + b:view(1, 6, 1)
    assert.is_true(all_close(F.group_norm(x, 3, { weight = w, bias = b }), want, 1e-12))
    local ok, err = numeric_grad_ok(function(t) return F.group_norm(t, 3, { weight = w, bias = b }) end, x)
    assert.is_true(ok, err)
    assert.truthy(error_of(F.group_norm, x, 4):find('4 groups do not divide 6 channels', 1, true))
  end)
end)

describe('fc.F.dropout', function()
  it('keeps about 1-p of the values, scaled, reproducibly from the seed', function()
    fc.manual_seed(7)
    local y = F.dropout(fc.ones(20000), { p = 0.25 })
    local kept = y:ne(0):sum():item()
    assert.is_true(kept > 14700 and kept < 15300)
    assert.is_true(close(y:amax():item(), 1 / 0.75, 1e-6) and y:amin():item() == 0)
    fc.manual_seed(7)
    assert.is_true(F.dropout(fc.ones(20000), { p = 0.25 }):eq(y):all():item())
  end)

  it('is the identity (the same tensor) in eval mode or for p = 0; p = 1 drops all', function()
    local x = fc.randn(3, 4)
    assert.is_true(rawequal(F.dropout(x, { training = false }), x))
    assert.is_true(rawequal(F.dropout(x, { p = 0 }), x))
    assert.are.equal(0, F.dropout(x, { p = 1 }):abs():sum():item())
    assert.truthy(error_of(F.dropout, x, { p = 2 }):find('dropout: p must be in [0, 1], got 2', 1, true))
  end)

  it('passes the gradient through the kept elements only', function()
    local x = (fc.rand(50, 40, { dtype = 'float64' }) + 1):requires_grad_()
    local y = F.dropout(x, { p = 0.5 })
    local g = fc.randn(50, 40, { dtype = 'float64' })
    y:backward(g)
    local want = fc.where(y:ne(0), g * 2, fc.zeros(50, 40, { dtype = 'float64' }))
    assert.is_true(all_close(x.grad, want, 1e-12))
  end)

  it('dropout2d drops whole channels', function()
    fc.manual_seed(9)
    local y = F.dropout2d(fc.ones(8, 16, 3, 3), { p = 0.5 })
    local per_channel = y:sum({ 3, 4 })
    local zeros = per_channel:eq(0):sum():item()
    assert.are.equal(8 * 16, zeros + per_channel:eq(18):sum():item())
    assert.is_true(zeros > 20 and zeros < 108)
  end)
end)

describe('fc.F.embedding', function()
  it('takes 1-based ids of any shape; repeated ids add up; the padding row gets no gradient', function()
    local w = fc.tensor({ { 0, 1 }, { 10, 11 }, { 20, 21 } }, { dtype = 'float32' }):requires_grad_()
    local y = F.embedding({ { 3, 1 }, { 2, 3 } }, w, { padding_idx = 2 })
    assert.are.same({ { { 20, 21 }, { 0, 1 } }, { { 10, 11 }, { 20, 21 } } }, y:totable())
    y:sum():backward()
    assert.are.same({ { 1, 1 }, { 0, 0 }, { 2, 2 } }, w.grad:totable())
    w.grad = nil
    F.embedding(fc.tensor({ 3, 3, 1 }, { dtype = 'int32' }), w, { padding_idx = -1 }):sum():backward()
    assert.are.same({ { 1, 1 }, { 0, 0 }, { 0, 0 } }, w.grad:totable())
  end)

  it('names the bad id in Lua numbering', function()
    local w = fc.randn(5, 2)
    assert.truthy(error_of(F.embedding, { 1, 6 }, w):find('embedding: index 6 out of range for a weight of 5 rows (valid 1..5)', 1, true))
    assert.truthy(error_of(F.embedding, { 0 }, w):find('index 0 out of range', 1, true))
    assert.truthy(error_of(F.embedding, { 1 }, w, { padding_idx = 9 }):find('padding_idx 9 out of range', 1, true))
  end)
end)

describe('fc.nn normalisation layers', function()
  it('BatchNorm2d tracks batches (int64) and its running stats, PyTorch style', function()
    fc.manual_seed(10)
    local bn = nn.BatchNorm2d(3)
    assert.are.equal('int64', bn.num_batches_tracked.dtype)
    local x = fc.randn(4, 3, 2, 2) * 3 + 1
    local y = bn(x)
    assert.are.equal(1, bn.num_batches_tracked:item())
    assert.is_true(all_close(bn.running_mean, x:mean({ 1, 3, 4 }) * 0.1, 1e-5))
    assert.is_true(all_close(bn.running_var, x:var({ 1, 3, 4 }) * 0.1 + 0.9, 1e-5))
    assert.is_true(all_close(y, normalise(x, { 1, 3, 4 }, 1e-5), 1e-5))
    y:sum():backward()
    assert.are.same({ 3 }, bn.weight.grad:size())
    bn:eval()
    local e = bn(x)
    assert.are.equal(1, bn.num_batches_tracked:item())
    local rm, rv = bn.running_mean:view(1, 3, 1, 1), bn.running_var:view(1, 3, 1, 1)
    assert.is_true(all_close(e, (x - rm) / (rv + 1e-5):sqrt(), 1e-5))
    assert.is_not_nil(bn:state_dict().num_batches_tracked)
    bn:double()
    assert.are.equal('int64', bn.num_batches_tracked.dtype)
    assert.are.equal('float64', bn.running_mean.dtype)
    assert.truthy(tostring(bn):find('BatchNorm2d(3, eps=1e-05, momentum=0.1, affine=true, track_running_stats=true)', 1, true))
  end)

  it('momentum = false averages the batches cumulatively', function()
    local bn = nn.BatchNorm1d(2, { momentum = false, affine = false })
    local f32 = { dtype = 'float32' }
    local batches = { fc.tensor({ { 1, 10 }, { 3, 30 } }, f32), fc.tensor({ { 5, -4 }, { 9, 0 } }, f32),
      fc.tensor({ { 0, 0 }, { 0, 1 }, { 3, 2 } }, f32) }
    for _, b in ipairs(batches) do bn(b) end
    assert.are.equal(3, bn.num_batches_tracked:item())
    assert.is_true(all_close(bn.running_mean, fc.tensor({ 10 / 3, 19 / 3 }), 1e-6))
    assert.is_true(all_close(bn.running_var, fc.tensor({ 13 / 3, 209 / 3 }), 1e-6))
    assert.truthy(tostring(bn):find('momentum=nil', 1, true))
  end)

  it('track_running_stats = false keeps no buffers and always uses the batch', function()
    local bn = nn.BatchNorm1d(2, { track_running_stats = false })
    assert.is_nil(bn.running_mean)
    assert.is_nil(bn:state_dict().num_batches_tracked)
    bn:eval()
    local x = fc.randn(5, 2, 3)
    assert.is_true(all_close(bn(x), normalise(x, { 1, 3 }, 1e-5), 1e-5))
    assert.truthy(error_of(function() return bn(fc.randn(5)) end):find('expected a 2%-d or 3%-d input'))
  end)

  it('LayerNorm, GroupNorm, Dropout, Dropout2d and Embedding', function()
    local ln = nn.LayerNorm({ 3, 4 })
    local x = fc.randn(2, 3, 4)
    assert.is_true(all_close(ln(x), normalise(x, { 2, 3 }, 1e-5), 1e-5))
    local gn = nn.GroupNorm(2, 4)
    assert.are.same({ 2, 4, 3 }, gn(fc.randn(2, 4, 3)):size())
    assert.truthy(error_of(nn.GroupNorm, 3, 4):find('GroupNorm: 3 groups do not divide 4 channels', 1, true))
    local d = nn.Dropout(0.5)
    local ones = fc.ones(100)
    assert.is_true(d(ones):eq(0):any():item())
    d:eval()
    assert.is_true(rawequal(d(ones), ones))
    assert.truthy(error_of(nn.Dropout, 1.5):find('Dropout: p must be in [0, 1]', 1, true))
    local d2 = nn.Dropout2d(0.5)
    assert.are.same({ 2, 3, 4, 4 }, d2(fc.ones(2, 3, 4, 4)):size())
    local emb = nn.Embedding(5, 3, { padding_idx = 2 })
    assert.are.same({ 0, 0, 0 }, emb.weight[2]:totable())
    local out = emb(fc.tensor({ { 2, 5 } }))
    assert.are.same({ 1, 2, 3 }, out:size())
    out:sum():backward()
    assert.are.same({ 0, 0, 0 }, emb.weight.grad[2]:totable())
    assert.are.same({ 1, 1, 1 }, emb.weight.grad[5]:totable())
    assert.are.equal(5, nn.Embedding(5, 3, { padding_idx = -1 }).padding_idx)
    assert.truthy(error_of(nn.Embedding, 5, 3, { padding_idx = 6 }):find('padding_idx 6 out of range', 1, true))
    assert.truthy(tostring(emb):find('Embedding(5, 3, padding_idx=2)', 1, true))
  end)
end)
