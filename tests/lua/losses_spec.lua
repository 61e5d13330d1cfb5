-- tests/lua/losses_spec.lua — fastai's flattened losses and PyTorch's loss
-- modules against values worked by hand; activation, decodes, reduction,
-- the axis move for segmentation shapes, gradients, errors.
local fc = require 'fastc'

local ln = math.log
local function close(a, b, tol)
  return type(a) == 'number' and math.abs(a - b) <= (tol or 1e-6) * (1 + math.abs(b))
end
local function assert_close(got, want, tol)
  if fc.is_tensor(got) then got = got:item() end
  assert(close(got, want, tol), string.format('got %s, want %.12g', tostring(got), want))
end
local function assert_values(t, want, tol)
  local got = t:reshape(-1):totable()
  assert(#got == #want, string.format('%d values, want %d', #got, #want))
  for i = 1, #want do
    local g = type(got[i]) == 'boolean' and (got[i] and 1 or 0) or got[i]
    local w = type(want[i]) == 'boolean' and (want[i] and 1 or 0) or want[i]
    assert(close(g, w, tol), string.format('element %d: got %s, want %s', i, tostring(got[i]), tostring(want[i])))
  end
end
local long = function(t) return fc.tensor(t, { dtype = 'int64' }) end

-- Two rows of logits: (0, 0) -> p = 1/2 each; (ln 3, 0) -> p = 3/4, 1/4.
local LOGITS = { { 0, 0 }, { ln(3), 0 } }
local CE_MEAN = (ln(2) + ln(4 / 3)) / 2

describe('fastai flattened losses', function()
  it('CrossEntropyLossFlat: value, activation, decodes, reduction', function()
    local loss = fc.CrossEntropyLossFlat()
    local x = fc.tensor(LOGITS, { dtype = 'float64' })
    assert_close(loss(x, long({ 1, 1 })), CE_MEAN, 1e-12)
    assert_values(loss:activation(x), { 0.5, 0.5, 0.75, 0.25 }, 1e-12)
    assert_values(loss:decodes(loss:activation(x)), { 1, 1 })
    assert.is_true(loss.y_int)
    assert.are.equal('mean', loss.reduction)
    loss.reduction = 'none'
    assert_values(loss(x, long({ 1, 2 })), { ln(2), ln(4) }, 1e-12)
    assert.are.equal('none', loss.func.reduction)
    loss.reduction = 'sum'
    assert_close(loss(x, long({ 1, 1 })), 2 * CE_MEAN, 1e-12)
    assert.has_error(function() loss.reduction = 'avg' end)
    -- int32 targets are widened; weights pass through
    local w = fc.CrossEntropyLossFlat { weight = fc.tensor({ 1, 3 }, { dtype = 'float64' }) }
    -- weighted mean: (1 * ln 2 + 3 * ln 4) / (1 + 3)
    assert_close(w(x, fc.tensor({ 1, 2 }, { dtype = 'int32' })), (ln(2) + 3 * ln(4)) / 4, 1e-12)
    assert.are.equal('FlattenedLoss of CrossEntropyLoss(reduction=mean)', tostring(fc.CrossEntropyLossFlat()))
  end)

  it('CrossEntropyLossFlat{axis = 2} moves the class dim of [N, C, H, W] last', function()
    -- one image of 1 x 2 pixels; pixel 1 logits (0, 0), pixel 2 (ln 3, 0)
    local x = fc.tensor({ { { { 0, ln(3) } }, { { 0, 0 } } } }, { dtype = 'float64' }) -- [1, 2, 1, 2]
    local loss = fc.CrossEntropyLossFlat { axis = 2 }
    assert_close(loss(x, long({ { { 1, 1 } } })), CE_MEAN, 1e-12)
    assert_values(loss:decodes(x), { 1, 1 })
    assert_values(loss:activation(x), { 0.5, 0.75, 0.5, 0.25 }, 1e-12)
    loss.reduction = 'none'
    assert_values(loss(x, long({ { { 1, 2 } } })), { ln(2), ln(4) }, 1e-12)
  end)

  it('gradient of the flattened cross-entropy is (softmax - onehot) / N', function()
    local x = fc.tensor(LOGITS, { dtype = 'float64' }):requires_grad_()
    fc.CrossEntropyLossFlat()(x, long({ 1, 1 })):backward()
    assert_values(x.grad, { -0.25, 0.25, -0.125, 0.125 }, 1e-12)
  end)

  it('BCEWithLogitsLossFlat: floatified targets, sigmoid activation, thresh on probabilities', function()
    local loss = fc.BCEWithLogitsLossFlat()
    local x = fc.tensor({ { 0 }, { ln(3) } }, { dtype = 'float64' })
    -- -log sigmoid(0) = ln 2; -log(1 - sigmoid(ln 3)) = ln 4
    assert_close(loss(x, long({ 1, 0 })), 1.5 * ln(2), 1e-12)
    local probs = loss:activation(x)
    assert_values(probs, { 0.5, 0.75 }, 1e-12)
    assert_values(loss:decodes(probs), { false, true })
    assert_values(fc.BCEWithLogitsLossFlat { thresh = 0.8 }:decodes(probs), { false, false })
    -- pos_weight keeps the shape: no flattening
    local pw = fc.BCEWithLogitsLossFlat { pos_weight = fc.tensor({ 2.0 }, { dtype = 'float64' }) }
    assert.is_false(pw.flatten)
    assert_close(pw(x, fc.tensor({ { 1 }, { 0 } }, { dtype = 'float64' })), (2 * ln(2) + ln(4)) / 2, 1e-12)
    assert.has_error(function() fc.BCEWithLogitsLossFlat { pos_weight = fc.ones(1), flatten = true } end,
      'BCEWithLogitsLossFlat: flatten must be false with pos_weight (its shape follows the classes)')
  end)

  it('MSELossFlat, L1LossFlat, BCELossFlat flatten and floatify', function()
    local inp, targ = fc.tensor({ { 1 }, { 3 } }), long({ 0, 1 })
    assert_close(fc.MSELossFlat()(inp, targ), (1 + 4) / 2)
    assert_close(fc.L1LossFlat()(inp, targ), (1 + 2) / 2)
    assert_close(fc.L1LossFlat { reduction = 'sum' }(inp, targ), 3)
    assert_values(fc.MSELossFlat():activation(inp), { 1, 3 })
    assert_close(fc.BCELossFlat()(fc.tensor({ { 0.5 }, { 0.75 } }), long({ 1, 0 })), 1.5 * ln(2))
    assert.has_error(function() fc.MSELossFlat { reduce = 'sum' } end)
  end)

  it('LabelSmoothingCrossEntropy(Flat): eps / C on every class, (1 - eps) NLL', function()
    local x = fc.tensor(LOGITS, { dtype = 'float64' })
    -- -sum of log-probabilities per row: 2 ln 2, ln(16/3)
    local smooth = (2 * ln(2) + ln(16 / 3)) / 2
    local want = smooth * 0.1 / 2 + 0.9 * CE_MEAN
    assert_close(fc.LabelSmoothingCrossEntropy()(x, long({ 1, 1 })), want, 1e-12)
    local flat = fc.LabelSmoothingCrossEntropyFlat()
    assert_close(flat(x, long({ 1, 1 })), want, 1e-12)
    assert_values(flat:decodes(x), { 1, 1 })
    local sum = fc.LabelSmoothingCrossEntropy { eps = 0.2, reduction = 'sum' }
    assert_close(sum(x, long({ 1, 1 })), (2 * ln(2) + ln(16 / 3)) * 0.2 / 2 + 0.8 * 2 * CE_MEAN, 1e-12)
    local none = fc.LabelSmoothingCrossEntropy { reduction = 'none' }
    assert_values(none(x, long({ 1, 2 })), { 2 * ln(2) * 0.05 + 0.9 * ln(2), ln(16 / 3) * 0.05 + 0.9 * ln(4) }, 1e-12)
  end)

  it('FocalLossFlat: cross-entropy scaled by (1 - p_t)^gamma', function()
    local x = fc.tensor(LOGITS, { dtype = 'float64' })
    -- p_t = 1/2 and 3/4
    local want = (0.25 * ln(2) + ln(4 / 3) / 16) / 2
    local loss = fc.FocalLossFlat()
    assert_close(loss(x, long({ 1, 1 })), want, 1e-12)
    assert_close(fc.FocalLossFlat { gamma = 0 }(x, long({ 1, 1 })), CE_MEAN, 1e-12)
    assert_values(loss:activation(x), { 0.5, 0.5, 0.75, 0.25 }, 1e-12)
  end)

  it('DiceLoss: soft Dice per class from the softmax and the one-hot target', function()
    -- one image, 2 pixels; class probabilities (1/2, 1/2) and (3/4, 1/4); target 1, 2
    local x = fc.tensor({ { { 0, ln(3) }, { 0, 0 } } }, { dtype = 'float64' }) -- [1, 2, 2]
    local t = long({ { 1, 2 } })
    -- class 1: inter 1/2, union 5/4 + 1; class 2: inter 1/4, union 3/4 + 1
    local d1, d2 = 1 / 2.25, 0.5 / 1.75
    local loss = fc.DiceLoss { smooth = 0 }
    assert_close(loss(x, t), (1 - d1) + (1 - d2), 1e-12)
    assert_close(fc.DiceLoss { smooth = 0, reduction = 'mean' }(x, t), ((1 - d1) + (1 - d2)) / 2, 1e-12)
    -- squared: unions 1/4 + 9/16 + 1 and 1/4 + 1/16 + 1
    assert_close(fc.DiceLoss { smooth = 0, square_in_union = true }(x, t),
      (1 - 1 / 1.8125) + (1 - 0.5 / 1.3125), 1e-12)
    assert_close(fc.DiceLoss()(x, t), (1 - (1 + 1e-6) / (2.25 + 1e-6)) + (1 - (0.5 + 1e-6) / (1.75 + 1e-6)), 1e-12)
    assert_values(loss:decodes(x), { 1, 1 })
    local xg = x:clone():requires_grad_()
    loss(xg, t):backward()
    assert.are.same({ 1, 2, 2 }, xg.grad:size())
    assert.has_error(function() loss(x, long({ 1, 2, 1 })) end)
  end)
end)

describe('PyTorch loss modules', function()
  it('compute the functional losses with their options', function()
    local x = fc.tensor(LOGITS, { dtype = 'float64' })
    local nn = fc.nn
    assert_close(nn.CrossEntropyLoss()(x, long({ 1, 1 })), CE_MEAN, 1e-12)
    assert_close(nn.CrossEntropyLoss { reduction = 'sum' }(x, long({ 1, 1 })), 2 * CE_MEAN, 1e-12)
    assert_close(nn.CrossEntropyLoss { ignore_index = 2 }(x, long({ 1, 2 })), ln(2), 1e-12)
    assert_close(nn.NLLLoss()(x:log_softmax(2), long({ 1, 1 })), CE_MEAN, 1e-12)
    local a, b = fc.tensor({ 1, 3 }, { dtype = 'float64' }), fc.tensor({ 0, 1 }, { dtype = 'float64' })
    assert_close(nn.MSELoss()(a, b), 2.5, 1e-12)
    assert_close(nn.L1Loss()(a, b), 1.5, 1e-12)
    -- |d| = 1 and 2 with beta 1: 0.5 * 1 and 2 - 0.5
    assert_close(nn.SmoothL1Loss()(a, b), (0.5 + 1.5) / 2, 1e-12)
    assert_close(nn.SmoothL1Loss { beta = 4 }(a, b), (0.5 / 4 + 0.5 * 4 / 4) / 2, 1e-12)
    -- -log(1 - 0.5) and -log(0.75)
    assert_close(nn.BCELoss()(fc.tensor({ 0.5, 0.75 }, { dtype = 'float64' }), b), CE_MEAN, 1e-12)
    assert_close(nn.BCEWithLogitsLoss()(fc.tensor({ 0, ln(3) }, { dtype = 'float64' }), fc.tensor({ 1, 0 }, { dtype = 'float64' })),
      1.5 * ln(2), 1e-12)
    assert.has_error(function() nn.MSELoss { reductio = 'sum' } end)
    assert.has_error(function() nn.L1Loss { reduction = 'avg' } end)
    assert.truthy(tostring(nn.SmoothL1Loss { beta = 2 }):find('beta=2', 1, true))
  end)
end)
