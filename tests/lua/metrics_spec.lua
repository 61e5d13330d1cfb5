-- tests/lua/metrics_spec.lua — fc.metrics against values worked by hand
-- (class ids from 1) and, for the sklearn scores, the examples of
-- scikit-learn's documentation.
local fc = require 'fastc'
local M = fc.metrics

local function close(a, b, tol)
  return type(a) == 'number' and math.abs(a - b) <= (tol or 1e-9) * (1 + math.abs(b))
end
local function assert_close(got, want, tol)
  if fc.is_tensor(got) then got = got:item() end
  assert(close(got, want, tol), string.format('got %s, want %.12g', tostring(got), want))
end
local function learner(pred, targ, loss)
  return { pred = pred, yb = { targ }, y = targ, loss = loss }
end
-- Runs a metric over batches of {pred, targ} and returns its value.
local function over(metric, batches)
  metric:reset()
  for _, b in ipairs(batches) do metric:accumulate(learner(b[1], b[2], b[3])) end
  return metric.value
end
local long = function(t) return fc.tensor(t, { dtype = 'int64' }) end

-- Three classes: true 1 1 2 2 2 3, predicted 1 2 2 2 3 3.
-- class 1: tp 1, predicted 1, true 2; class 2: tp 2, 3, 3; class 3: tp 1, 2, 1.
local YT, YP = { 1, 1, 2, 2, 2, 3 }, { 1, 2, 2, 2, 3, 3 }
-- logits whose argmax is YP
local function logits_for(classes, n)
  local rows = {}
  for i, c in ipairs(classes) do
    rows[i] = {}
    for j = 1, n do rows[i][j] = j == c and 2.0 or -1.0 end
  end
  return fc.tensor(rows)
end

describe('batch-averaged metric functions', function()
  it('accuracy, error_rate, top_k_accuracy, accuracy_multi', function()
    local pred = fc.tensor({ { 0.1, 0.9 }, { 0.8, 0.2 }, { 0.3, 0.7 } })
    local targ = long({ 2, 2, 2 })
    assert_close(fc.accuracy(pred, targ), 2 / 3, 1e-6)
    assert_close(fc.error_rate(pred, targ), 1 / 3, 1e-6)
    -- top 2 of each row: {3,4}, {1,2}, {2,4}; targets 4, 3, 2 -> 2 of 3
    local scores = fc.tensor({ { 0.1, 0.2, 0.3, 0.4 }, { 0.9, 0.5, 0.1, 0.0 }, { 0.0, 0.6, 0.1, 0.3 } })
    assert_close(fc.top_k_accuracy(scores, long({ 4, 3, 2 }), 2), 2 / 3, 1e-6)
    assert_close(fc.top_k_accuracy(scores, long({ 4, 2, 4 }), 1), 1 / 3, 1e-6) -- top 1: 4, 1, 2
    -- sigmoid > 0.5 is logit > 0: {1,0},{0,1} against {1,0},{1,1}
    local inp, t = fc.tensor({ { 2, -1 }, { -3, 0.5 } }), fc.tensor({ { 1, 0 }, { 1, 1 } })
    assert_close(fc.accuracy_multi(inp, t), 0.75, 1e-6)
    assert_close(fc.accuracy_multi(inp, t, 0.9), 0.25, 1e-6) -- all below 0.9: only the one 0 target matches
    assert_close(fc.accuracy_multi(fc.tensor({ 0.2, 0.7 }), fc.tensor({ 0, 1 }), 0.5, false), 1, 1e-6)
    assert.has_error(function() fc.accuracy(pred, long({ 1, 2 })) end,
      'metric: expected the same number of elements in prediction and target, got 3 and 2')
  end)

  it('mse, mae, msle', function()
    local inp, targ = fc.tensor({ 2.5, 0.0, 2, 8 }), fc.tensor({ 3, -0.5, 2, 7 })
    assert_close(fc.mse(inp, targ), 0.375, 1e-6)
    assert_close(fc.mae(inp, targ), 0.5, 1e-6)
    local e1 = math.exp(1) - 1
    assert_close(fc.msle(fc.tensor({ 0, e1 }), fc.tensor({ e1, e1 })), 0.5, 1e-6)
  end)

  it('AvgMetric weights each batch by its size; mk_metric wraps functions', function()
    local m = fc.mk_metric(fc.accuracy)
    assert.are.equal('accuracy', m.name)
    assert.is_nil(over(m, {}))
    local v = over(m, {
      { fc.tensor({ { 0.1, 0.9 }, { 0.8, 0.2 }, { 0.3, 0.7 } }), long({ 2, 2, 2 }) }, -- 2 of 3
      { fc.tensor({ { 0.9, 0.1 } }), long({ 2 }) },                                     -- 0 of 1
    })
    assert_close(v, 0.5, 1e-6)
    assert.are.equal(m, fc.mk_metric(m))
    assert.are.equal('error_rate', fc.AvgMetric(fc.error_rate).name)
    assert.are.equal('mine', fc.AvgMetric(function() return 1 end, 'mine').name)
  end)
end)

describe('loss metrics', function()
  it('AvgLoss, AvgSmoothLoss, Perplexity, ValueMetric', function()
    local b = { { fc.zeros(3), long({ 1, 1, 1 }), fc.tensor(2.0, { dtype = 'float32' }) }, { fc.zeros(1), long({ 1 }), fc.tensor(4.0, { dtype = 'float32' }) } }
    local avg = fc.AvgLoss()
    assert.are.equal('loss', avg.name)
    assert_close(over(avg, b), 2.5) -- (3 * 2 + 1 * 4) / 4
    -- val = 0.5 val + 0.5 loss: 1, then 2.5; debiased by 1 - 0.5^2
    local smooth = fc.AvgSmoothLoss(0.5)
    assert.are.equal('avg_smooth_loss', smooth.name)
    over(smooth, { b[1] })
    assert_close(smooth.value, 2)
    smooth:accumulate(learner(b[2][1], b[2][2], b[2][3]))
    assert_close(smooth.value, 2.5 / 0.75)
    local ppl = fc.Perplexity()
    assert.are.equal('perplexity', ppl.name)
    assert_close(over(ppl, { { fc.zeros(1), long({ 1 }), fc.tensor(math.log(2)) },
      { fc.zeros(1), long({ 1 }), fc.tensor(math.log(8)) } }), 4, 1e-6)
    local vm = fc.ValueMetric(function() return 42 end, 'answer')
    assert.are.same({ 42, 'answer' }, { vm.value, vm.name })
  end)
end)

describe('sklearn scores', function()
  it('precision, recall and F-beta with every average', function()
    -- per class P = 1, 2/3, 1/2; R = 1/2, 2/3, 1; supports 2, 3, 1
    assert_close(M.precision_score(YT, YP, { average = 'macro' }), 13 / 18)
    assert_close(M.recall_score(YT, YP, { average = 'macro' }), 13 / 18)
    assert_close(M.f1_score(YT, YP, { average = 'macro' }), 2 / 3)
    assert_close(M.precision_score(YT, YP, { average = 'micro' }), 4 / 6)
    assert_close(M.f1_score(YT, YP, { average = 'micro' }), 4 / 6)
    assert_close(M.precision_score(YT, YP, { average = 'weighted' }), 0.75)
    assert_close(M.recall_score(YT, YP, { average = 'weighted' }), 4 / 6)
    local p = M.precision_score(YT, YP, { average = 'none' })
    assert.is_true(close(p[1], 1) and close(p[2], 2 / 3) and close(p[3], 0.5))
    -- F2 = 5 tp / (5 tp + 4 fn + fp): 5/9, 2/3, 5/6
    assert_close(M.fbeta_score(YT, YP, { beta = 2, average = 'macro' }), 37 / 54)
    assert.has_error(function() M.f1_score(YT, YP) end,
      "f1_score: the target is multiclass (3 labels) but average is 'binary'; choose 'micro', 'macro' or 'weighted'")
    -- binary, positive class 2: tp 2, predicted 3, true 4
    local bt, bp = { 1, 2, 2, 1, 2, 2 }, { 2, 2, 1, 1, 1, 2 }
    assert_close(M.precision_score(bt, bp), 2 / 3)
    assert_close(M.recall_score(bt, bp), 0.5)
    assert_close(M.f1_score(bt, bp), 4 / 7)
    assert_close(M.precision_score(bt, bp, { pos_label = 1 }), 1 / 3)
    assert_close(M.recall_score(bt, bp, { pos_label = 1 }), 0.5)
    -- nothing predicted positive: zero_division gives 0
    assert_close(M.precision_score({ 1, 2 }, { 1, 1 }), 0)
    assert.has_error(function() M.precision_score({ 1, 2 }, { 1, 2 }, { pos_label = 3 }) end,
      'precision_score: pos_label 3 is not one of the labels 1 and 2')
  end)

  it('Matthews correlation and balanced accuracy', function()
    -- s = 6, c = 4, true counts 2 3 1, predicted 1 3 2: (24 - 13) / sqrt(22 * 22)
    assert_close(M.matthews_corrcoef(YT, YP), 0.5)
    assert_close(M.matthews_corrcoef({ 1, 1 }, { 1, 1 }), 0)
    -- true counts 2 2, predicted 3 1: (12 - 8) / sqrt(8 * 6)
    assert_close(M.matthews_corrcoef({ 2, 2, 1, 1 }, { 2, 1, 1, 1 }), 1 / math.sqrt(3))
    -- sklearn's example: y_true [+1 +1 +1 -1], y_pred [+1 -1 +1 +1] -> -0.333
    assert_close(M.matthews_corrcoef({ 2, 2, 2, 1 }, { 2, 1, 2, 2 }), -1 / 3)
    assert_close(M.balanced_accuracy_score(YT, YP), 13 / 18)
    assert_close(M.balanced_accuracy_score(YT, YP, { adjusted = true }), 7 / 12)
    -- sklearn's example: y_true [0 1 0 0 1 0], y_pred [0 1 0 0 0 1] -> 0.625
    assert_close(M.balanced_accuracy_score({ 1, 2, 1, 1, 2, 1 }, { 1, 2, 1, 1, 1, 2 }), 0.625)
  end)

  it('ROC AUC: binary with ties, multiclass one-vs-rest', function()
    -- sklearn's example
    assert_close(M.roc_auc_score({ 1, 1, 2, 2 }, { 0.1, 0.4, 0.35, 0.8 }), 0.75)
    -- a tie between a positive and the negatives counts half
    assert_close(M.roc_auc_score({ 1, 2, 1, 2 }, { 0.5, 0.5, 0.5, 0.9 }), 0.75)
    local probs = fc.tensor({ { 0.6, 0.3, 0.1 }, { 0.2, 0.5, 0.3 }, { 0.1, 0.2, 0.7 }, { 0.3, 0.4, 0.3 } })
    -- classes 1 and 2 separate perfectly; class 3: pairs 1, 1, 1, 0.5 of 4
    assert_close(M.roc_auc_score({ 1, 2, 3, 3 }, probs), (1 + 1 + 0.875) / 3)
    assert_close(M.roc_auc_score({ 1, 2, 3, 3 }, probs, { average = 'weighted' }), (1 + 1 + 2 * 0.875) / 4)
    assert.has_error(function() M.roc_auc_score({ 1, 1 }, { 0.1, 0.2 }) end)
  end)

  it('R2 score (sklearn example)', function()
    assert_close(M.r2_score({ 3, -0.5, 2, 7 }, { 2.5, 0.0, 2, 8 }), 1 - 1.5 / 29.1875)
    assert_close(M.r2_score({ 1, 1 }, { 1, 1 }), 1)
    assert_close(M.r2_score({ 1, 1 }, { 1, 2 }), 0)
  end)
end)

describe('epoch metrics (AccumMetric)', function()
  it('Precision, Recall, F1Score, FBeta over the argmax of several batches', function()
    local batches = {
      { logits_for({ 1, 2, 2 }, 3), long({ 1, 1, 2 }) },
      { logits_for({ 2, 3, 3 }, 3), long({ 2, 2, 3 }) },
    }
    local f1 = fc.F1Score { average = 'macro' }
    assert.are.equal('f1_score', f1.name)
    assert_close(over(f1, batches), 2 / 3)
    assert_close(over(fc.Precision { average = 'weighted' }, batches), 0.75)
    assert_close(over(fc.Recall { average = 'micro' }, batches), 4 / 6)
    assert_close(over(fc.FBeta(2, { average = 'macro' }), batches), 37 / 54)
    assert_close(over(fc.MatthewsCorrCoef(), batches), 0.5)
    assert_close(over(fc.BalancedAccuracy(), batches), 13 / 18)
    -- binary classes 1/2: positive class 2
    assert_close(over(fc.Precision(), { { logits_for({ 2, 2, 1, 1, 1, 2 }, 2), long({ 1, 2, 2, 1, 2, 2 }) } }), 2 / 3)
    assert.has_error(function() fc.Precision { averge = 'macro' } end)
  end)

  it('thresholded multi-label predictions go through a sigmoid; pos_label is 1 then', function()
    -- logits > 0 <=> sigmoid > 0.5: predictions 1 0 1 1, targets 1 1 0 1
    local m = fc.Precision { thresh = 0.5 }
    local v = over(m, { { fc.tensor({ { 3, -2 }, { 1, 4 } }), fc.tensor({ { 1, 1 }, { 0, 1 } }) } })
    assert_close(v, 2 / 3) -- tp 2 of 3 predicted
  end)

  it('RocAuc takes a softmax over the classes, RocAucBinary the second column', function()
    local probs = { { 0.6, 0.3, 0.1 }, { 0.2, 0.5, 0.3 }, { 0.1, 0.2, 0.7 }, { 0.3, 0.4, 0.3 } }
    local logits = fc.tensor(probs):log() + 1 -- softmax undoes both
    assert_close(over(fc.RocAuc(), { { logits, long({ 1, 2, 3, 3 }) } }), (1 + 1 + 0.875) / 3, 1e-6)
    -- second-class probabilities 0.1 0.4 0.35 0.8 (sklearn's example)
    local p2 = { 0.1, 0.4, 0.35, 0.8 }
    local rows = {}
    for i, p in ipairs(p2) do rows[i] = { math.log(1 - p), math.log(p) } end
    assert_close(over(fc.RocAucBinary(), { { fc.tensor(rows), long({ 1, 1, 2, 2 }) } }), 0.75, 1e-6)
  end)

  it('rmse, exp_rmspe and R2Score over the epoch', function()
    local b = { { fc.tensor({ 2.5, 0.0 }), fc.tensor({ 3, -0.5 }) }, { fc.tensor({ 2, 8 }), fc.tensor({ 2, 7 }) } }
    assert_close(over(fc.rmse, b), math.sqrt(0.375), 1e-6)
    assert.are.equal('rmse', fc.rmse.name)
    assert_close(over(fc.R2Score(), b), 1 - 1.5 / 29.1875, 1e-6)
    -- exp: predictions 1, 2 against 2, 2: sqrt(mean(0.5^2, 0))
    assert_close(over(fc.exp_rmspe, { { fc.tensor({ 0, math.log(2) }), fc.tensor({ math.log(2), math.log(2) }) } }),
      math.sqrt(0.125), 1e-6)
    -- called on one batch directly
    assert_close(fc.rmse(fc.tensor({ 1, 2 }), fc.tensor({ 1, 4 })), math.sqrt(2), 1e-6)
  end)

  it('AccumMetric with a custom function, activation and name', function()
    local m = fc.AccumMetric(function(p, t) return (p - t):abs():max() end,
      { activation = 'sigmoid', name = 'max_err' })
    assert.are.equal('max_err', m.name)
    assert_close(over(m, { { fc.tensor({ 0, 100 }), fc.tensor({ 0, 0 }) } }), 1, 1e-6)
    assert.is_nil(over(m, {}))
    assert.has_error(function() fc.AccumMetric(print, { activation = 'relu' }) end)
  end)
end)

describe('segmentation metrics', function()
  it('Dice and JaccardCoeff on the foreground class', function()
    -- one image, 2 classes, 4 pixels; predicted classes 2 2 1 1, target 2 1 1 2
    local pred = fc.tensor({ { { 0, 0, 1, 1 }, { 1, 1, 0, 0 } } })
    local targ = long({ { 2, 1, 1, 2 } })
    local dice = fc.Dice()
    assert.are.equal('dice', dice.name)
    -- intersection 1, union 2 + 2
    assert_close(over(dice, { { pred, targ } }), 2 * 1 / 4)
    local jac = fc.JaccardCoeff()
    assert.are.equal('jaccard_coeff', jac.name)
    assert_close(over(jac, { { pred, targ }, { pred, targ } }), 2 / (8 - 2))
    assert.is_nil(over(fc.Dice(), {}))
  end)
end)
