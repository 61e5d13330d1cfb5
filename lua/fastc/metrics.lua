-- lua/fastc/metrics.lua — fc.metrics: fastai's metrics (also reachable as
-- fc.<name>): the Metric protocol, functions averaged over batches, and
-- scikit-learn's classification and regression scores computed here.
--
-- A metric is an object with `reset()`, `accumulate(learn)` (reading
-- learn.pred, learn.yb, learn.loss), and the fields `value` (nil before any
-- batch) and `name`. A plain function f(pred, targ) given as a metric is
-- averaged over batches by AvgMetric (fc.metrics.mk_metric).
--
--   learn = fc.Learner(dls, model, {metrics = {fc.accuracy, fc.F1Score{average = 'macro'}}})
--
-- Class ids count from 1 (argmax gives 1..C). For the binary averages the
-- positive label is pos_label: by default 2 (the second class) for class
-- ids, 1 for thresholded predictions (0/1), as sklearn's default pos_label=1
-- is the second of the labels 0 and 1.
return function(fc, Tensor, H)
  local raise, fmt = H.raise, string.format
  local is_tensor = H.is_tensor
  local class = fc.class or require 'fastc.class'
  local sqrt, exp = math.sqrt, math.exp
  local metrics = fc.metrics or {}
  fc.metrics = metrics

  -- ---- helpers ----------------------------------------------------------------------

  local function number(v)
    if is_tensor(v) then return v:item() end
    return v
  end

  -- Both flattened, with the same number of elements (fastai's flatten_check).
  local function flatten_check(inp, targ)
    inp, targ = inp:reshape(-1), targ:reshape(-1)
    if inp:numel() ~= targ:numel() then
      raise(fmt('metric: expected the same number of elements in prediction and target, got %d and %d',
        inp:numel(), targ:numel()))
    end
    return inp, targ
  end
  metrics.flatten_check = flatten_check

  local function list_of(t)
    if not is_tensor(t) then return t end
    local v = t:reshape(-1)
    if v.dtype == 'bool' then v = v:to('uint8') end
    return v:to('float64'):totable()
  end

  -- "JaccardCoeff" -> "jaccard_coeff" (fastai's class2attr).
  local function snake(name)
    return (name:gsub('(%l)(%u)', '%1_%2'):gsub('(%u)(%u%l)', '%1_%2'):lower())
  end

  -- The batch size: first dim of the first target (fastai's find_bs).
  local function find_bs(yb)
    local y = yb and yb[1]
    if is_tensor(y) then return y:dim() > 0 and y:size(1) or 1 end
    if type(y) == 'table' then return find_bs(y) end
    raise('metric: learn.yb holds no tensor to take the batch size from')
  end
  metrics.find_bs = find_bs

  -- ---- the Metric protocol ----------------------------------------------------------

  -- Fields `value` and `name` are computed: m.value calls m:get_value().
  local Metric = class('Metric')
  metrics.Metric = Metric
  Metric.__index = function(self, k)
    local cls = getmetatable(self)
    local v = cls[k]
    if v ~= nil then return v end
    if type(k) == 'string' then
      local getter = cls['get_' .. k]
      if getter then return getter(self) end
    end
  end
  function Metric:reset() end
  function Metric:accumulate(learn) end
  function Metric:get_value() raise(self:class_name() .. ': value is not defined') end
  function Metric:get_name()
    local n = self:class_name():gsub('Metric$', '')
    return snake(n)
  end
  Metric.__tostring = function(self) return fmt('%s(%s)', self:class_name(), tostring(self.name)) end

  -- Names of the plain function metrics below, for AvgMetric.
  local func_names = setmetatable({}, { __mode = 'k' })
  function metrics.set_name(f, name) func_names[f] = name; return f end

  -- AvgMetric(func, name): func(pred, targ...) per batch, averaged by batch size.
  local AvgMetric = Metric:extend('AvgMetric')
  metrics.AvgMetric = AvgMetric
  function AvgMetric:init(func, name)
    if type(func) ~= 'function' and not (type(func) == 'table' and getmetatable(func) and getmetatable(func).__call) then
      raise('AvgMetric: expects a function, got ' .. type(func))
    end
    rawset(self, 'func', func)
    rawset(self, '_name', name or func_names[func] or 'metric')
    self:reset()
  end
  function AvgMetric:reset() rawset(self, 'total', 0); rawset(self, 'count', 0) end
  function AvgMetric:accumulate(learn)
    local bs = find_bs(learn.yb)
    local v = fc.no_grad(function() return number(self.func(learn.pred, unpack(learn.yb))) end)
    self.total = self.total + v * bs
    self.count = self.count + bs
  end
  function AvgMetric:get_value() return self.count ~= 0 and self.total / self.count or nil end
  function AvgMetric:get_name() return self._name end

  -- A metric object as is; a function wrapped in AvgMetric.
  function metrics.mk_metric(m)
    if type(m) == 'table' and Metric.is_a(m, Metric) then return m end
    return AvgMetric(m)
  end

  -- AvgLoss: the mean of learn.loss, weighted by batch size.
  local AvgLoss = Metric:extend('AvgLoss')
  metrics.AvgLoss = AvgLoss
  function AvgLoss:init() self:reset() end
  function AvgLoss:reset() rawset(self, 'total', 0); rawset(self, 'count', 0) end
  function AvgLoss:accumulate(learn)
    local bs = find_bs(learn.yb)
    self.total = self.total + number(learn.loss:detach():mean()) * bs
    self.count = self.count + bs
  end
  function AvgLoss:get_value() return self.count ~= 0 and self.total / self.count or nil end
  function AvgLoss:get_name() return 'loss' end

  -- AvgSmoothLoss(beta): exponentially weighted loss, debiased.
  local AvgSmoothLoss = Metric:extend('AvgSmoothLoss')
  metrics.AvgSmoothLoss = AvgSmoothLoss
  function AvgSmoothLoss:init(beta)
    rawset(self, 'beta', beta or 0.98)
    self:reset()
  end
  function AvgSmoothLoss:reset() rawset(self, 'count', 0); rawset(self, 'val', 0) end
  function AvgSmoothLoss:accumulate(learn)
    self.count = self.count + 1
    local loss = number(learn.loss:detach():mean())
    self.val = loss + self.beta * (self.val - loss) -- torch.lerp(loss, val, beta)
  end
  function AvgSmoothLoss:get_value()
    if self.count == 0 then return nil end
    return self.val / (1 - self.beta ^ self.count)
  end -- its name is fastai's default from the class: avg_smooth_loss

  -- ValueMetric(func, name): func() computes the value (e.g. from a callback).
  local ValueMetric = Metric:extend('ValueMetric')
  metrics.ValueMetric = ValueMetric
  function ValueMetric:init(func, name)
    rawset(self, 'func', func)
    rawset(self, 'metric_name', name or func_names[func] or 'value')
  end
  function ValueMetric:get_value() return self.func() end
  function ValueMetric:get_name() return self.metric_name end

  -- AccumMetric(func, {dim_argmax, activation = 'no'|'softmax'|'binary_softmax'|'sigmoid',
  -- thresh, flatten = true, name, ...}): keeps every prediction and target of the
  -- epoch, then func(preds, targs, opts) on all of them. The other options are
  -- passed to func.
  local AccumMetric = Metric:extend('AccumMetric')
  metrics.AccumMetric = AccumMetric
  local ACCUM_OPTS = { dim_argmax = true, activation = true, thresh = true, flatten = true, name = true }
  local ACTIVATIONS = { no = true, softmax = true, binary_softmax = true, sigmoid = true }
  function AccumMetric:init(func, opts)
    opts = opts or {}
    local kwargs = {}
    for k, v in pairs(opts) do if not ACCUM_OPTS[k] then kwargs[k] = v end end
    local activation = opts.activation or 'no'
    if not ACTIVATIONS[activation] then
      raise(fmt("AccumMetric: activation must be 'no', 'softmax', 'binary_softmax' or 'sigmoid', got %s", tostring(activation)))
    end
    rawset(self, 'func', func)
    rawset(self, 'dim_argmax', opts.dim_argmax)
    rawset(self, 'activation', activation)
    rawset(self, 'thresh', opts.thresh)
    rawset(self, 'flatten', opts.flatten ~= false)
    rawset(self, '_name', opts.name or func_names[func] or 'metric')
    rawset(self, 'kwargs', kwargs)
    self:reset()
  end
  function AccumMetric:reset() rawset(self, 'preds', {}); rawset(self, 'targs', {}) end
  function AccumMetric:activate(pred)
    local act = self.activation
    if act == 'softmax' or act == 'binary_softmax' then
      pred = pred:softmax(self.dim_argmax or -1)
      if act == 'binary_softmax' then pred = pred:select(2, pred:size(2)) end
    elseif act == 'sigmoid' then
      pred = pred:sigmoid()
    elseif self.dim_argmax then
      pred = pred:argmax(self.dim_argmax)
    end
    if self.thresh then pred = pred:ge(self.thresh) end
    return pred
  end
  function AccumMetric:accum_values(preds, targs)
    preds, targs = preds:detach(), targs:detach()
    if self.flatten then preds, targs = flatten_check(preds, targs) end
    self.preds[#self.preds + 1] = preds
    self.targs[#self.targs + 1] = targs
  end
  function AccumMetric:accumulate(learn)
    local pred = fc.no_grad(function() return self:activate(learn.pred) end)
    self:accum_values(pred, learn.yb[1])
  end
  function AccumMetric:get_value()
    if #self.preds == 0 then return nil end
    local preds, targs = fc.cat(self.preds, 1), fc.cat(self.targs, 1)
    return number(self.func(preds, targs, self.kwargs))
  end
  -- On one batch: m(preds, targs) (activation not applied, as in fastai).
  AccumMetric.__call = function(self, preds, targs)
    self:reset()
    self:accum_values(preds, targs)
    return self.value
  end
  function AccumMetric:get_name() return self._name end
  function AccumMetric:set_name(n) rawset(self, '_name', n) end

  -- ---- functions averaged per batch -------------------------------------------------

  local function reg(name, f)
    metrics[name] = f
    func_names[f] = name
    return f
  end

  reg('accuracy', function(inp, targ, axis)
    local pred
    pred, targ = flatten_check(inp:argmax(axis or -1), targ)
    return pred:eq(targ):float():mean()
  end)
  reg('error_rate', function(inp, targ, axis) return 1 - metrics.accuracy(inp, targ, axis) end)
  -- the target is among the k highest predictions (k = 5)
  reg('top_k_accuracy', function(inp, targ, k, axis)
    axis = axis or -1
    local _, idx = inp:topk(k or 5, axis)
    targ = targ:unsqueeze(axis):expand_as(idx)
    return idx:eq(targ):float():sum(-1):mean()
  end)
  -- multi-label: (sigmoid(inp) > thresh) == targ, over every element
  reg('accuracy_multi', function(inp, targ, thresh, sigmoid)
    inp, targ = flatten_check(inp, targ)
    if sigmoid ~= false then inp = inp:sigmoid() end
    return inp:gt(thresh or 0.5):eq(targ:ne(0)):float():mean()
  end)
  reg('mse', function(inp, targ)
    inp, targ = flatten_check(inp, targ)
    return fc.F.mse_loss(inp:float(), targ:float())
  end)
  reg('mae', function(inp, targ)
    inp, targ = flatten_check(inp, targ)
    return (inp:float() - targ:float()):abs():mean()
  end)
  reg('msle', function(inp, targ)
    inp, targ = flatten_check(inp, targ)
    return fc.F.mse_loss((inp:float() + 1):log(), (targ:float() + 1):log())
  end)

  -- rmse and exp_rmspe need the whole epoch: AccumMetric instances, as in fastai.
  local function _rmse(inp, targ) return fc.F.mse_loss(inp:float(), targ:float()):sqrt() end
  local function _exp_rmspe(inp, targ)
    inp, targ = inp:float():exp(), targ:float():exp()
    return ((targ - inp) / targ):pow(2):mean():sqrt()
  end
  metrics.rmse = AccumMetric(_rmse, { name = 'rmse' })
  metrics.exp_rmspe = AccumMetric(_exp_rmspe, { name = 'exp_rmspe' })

  -- ---- scikit-learn's scores --------------------------------------------------------
  -- On Lua lists of labels; the functional forms take tensors or lists.

  local function sorted_labels(...)
    local seen, out = {}, {}
    for i = 1, select('#', ...) do
      for _, v in ipairs(select(i, ...)) do
        if not seen[v] then seen[v] = true; out[#out + 1] = v end
      end
    end
    table.sort(out)
    return out
  end

  -- Per-label true positives, predicted and true counts.
  local function label_counts(yt, yp, labels)
    local index = {}
    for i, l in ipairs(labels) do index[l] = i end
    local tp, npred, ntrue = {}, {}, {}
    for i = 1, #labels do tp[i], npred[i], ntrue[i] = 0, 0, 0 end
    for i = 1, #yt do
      local t, p = index[yt[i]], index[yp[i]]
      if t then ntrue[t] = ntrue[t] + 1 end
      if p then npred[p] = npred[p] + 1 end
      if t and yt[i] == yp[i] then tp[t] = tp[t] + 1 end
    end
    return tp, npred, ntrue
  end

  local function ratio(a, b) return b == 0 and 0 or a / b end -- sklearn's zero_division=0

  local AVERAGES = { binary = true, micro = true, macro = true, weighted = true, none = true }

  -- precision, recall and F-beta as sklearn's precision_recall_fscore_support.
  local function prf(y_true, y_pred, opts, which)
    opts = opts or {}
    local yt, yp = list_of(y_true), list_of(y_pred)
    if #yt ~= #yp then raise(fmt('%s: %d targets but %d predictions', which, #yt, #yp)) end
    local average = opts.average == nil and 'binary' or opts.average
    if average == false then average = 'none' end
    if not AVERAGES[average] then
      raise(fmt("%s: average must be 'binary', 'micro', 'macro', 'weighted' or 'none', got %s", which, tostring(average)))
    end
    local beta2 = (opts.beta or 1) ^ 2
    local labels = opts.labels or sorted_labels(yt, yp)
    if average == 'binary' then
      local present = sorted_labels(yt, yp)
      local pos = opts.pos_label or 2
      if #present > 2 then
        raise(fmt("%s: the target is multiclass (%d labels) but average is 'binary'; choose 'micro', 'macro' or 'weighted'",
          which, #present))
      end
      if #present == 2 and present[1] ~= pos and present[2] ~= pos then
        raise(fmt('%s: pos_label %s is not one of the labels %s and %s', which, tostring(pos), present[1], present[2]))
      end
      labels = { pos }
    end
    local tp, npred, ntrue = label_counts(yt, yp, labels)
    local function scores(t, p, n)
      local prec, rec = ratio(t, p), ratio(t, n)
      local f = ratio((1 + beta2) * t, (1 + beta2) * t + beta2 * (n - t) + (p - t))
      return prec, rec, f
    end
    if average == 'micro' then
      local t, p, n = 0, 0, 0
      for i = 1, #labels do t, p, n = t + tp[i], p + npred[i], n + ntrue[i] end
      return scores(t, p, n)
    end
    local P, R, Fs = {}, {}, {}
    for i = 1, #labels do P[i], R[i], Fs[i] = scores(tp[i], npred[i], ntrue[i]) end
    if average == 'binary' then return P[1], R[1], Fs[1] end
    if average == 'none' then return P, R, Fs end
    local total = 0
    for i = 1, #labels do total = total + ntrue[i] end
    local function avg(v)
      local s = 0
      for i = 1, #labels do
        local w = average == 'macro' and 1 / #labels or ratio(ntrue[i], total)
        s = s + v[i] * w
      end
      return s
    end
    return avg(P), avg(R), avg(Fs)
  end

  function metrics.precision_score(y_true, y_pred, opts) return (prf(y_true, y_pred, opts, 'precision_score')) end
  function metrics.recall_score(y_true, y_pred, opts)
    local _, r = prf(y_true, y_pred, opts, 'recall_score')
    return r
  end
  function metrics.fbeta_score(y_true, y_pred, opts)
    local _, _, f = prf(y_true, y_pred, opts, 'fbeta_score')
    return f
  end
  function metrics.f1_score(y_true, y_pred, opts)
    local o = {}
    for k, v in pairs(opts or {}) do o[k] = v end
    o.beta = 1
    local _, _, f = prf(y_true, y_pred, o, 'f1_score')
    return f
  end

  -- Matthews correlation coefficient, multiclass form; 0 when undefined.
  function metrics.matthews_corrcoef(y_true, y_pred)
    local yt, yp = list_of(y_true), list_of(y_pred)
    local labels = sorted_labels(yt, yp)
    local tp, npred, ntrue = label_counts(yt, yp, labels)
    local s, c, tt, pp, tpp = #yt, 0, 0, 0, 0
    for i = 1, #labels do
      c = c + tp[i]
      tt, pp, tpp = tt + ntrue[i] ^ 2, pp + npred[i] ^ 2, tpp + ntrue[i] * npred[i]
    end
    local cov_ytyp, cov_ypyp, cov_ytyt = c * s - tpp, s * s - pp, s * s - tt
    if cov_ypyp * cov_ytyt == 0 then return 0 end
    return cov_ytyp / sqrt(cov_ytyt * cov_ypyp)
  end

  -- Mean recall over the classes present in the target; adjusted: chance is 0.
  function metrics.balanced_accuracy_score(y_true, y_pred, opts)
    opts = opts or {}
    local yt, yp = list_of(y_true), list_of(y_pred)
    local labels = sorted_labels(yt)
    local tp, _, ntrue = label_counts(yt, yp, labels)
    local s = 0
    for i = 1, #labels do s = s + tp[i] / ntrue[i] end
    local score = s / #labels
    if opts.adjusted then
      local chance = 1 / #labels
      score = (score - chance) / (1 - chance)
    end
    return score
  end

  -- Area under the ROC curve of scores for `positive` (booleans), ties
  -- counted half: the Mann-Whitney statistic over average ranks.
  local function binary_auc(scores, positive, what)
    local n = #scores
    local order = {}
    for i = 1, n do order[i] = i end
    table.sort(order, function(a, b) return scores[a] < scores[b] end)
    local rank_sum, npos = 0, 0
    local i = 1
    while i <= n do
      local j = i
      while j < n and scores[order[j + 1]] == scores[order[i]] do j = j + 1 end
      local avg_rank = (i + j) / 2
      for k = i, j do
        if positive[order[k]] then rank_sum, npos = rank_sum + avg_rank, npos + 1 end
      end
      i = j + 1
    end
    local nneg = n - npos
    if npos == 0 or nneg == 0 then
      raise(fmt('%s: only one class present in the target; ROC AUC is not defined then', what))
    end
    return (rank_sum - npos * (npos + 1) / 2) / (npos * nneg)
  end

  -- roc_auc_score(y_true, y_score, {average = 'macro'|'weighted', multi_class = 'ovr'}):
  -- y_score [N] (binary: the score of the larger label) or [N, C] (one column
  -- per class id 1..C, one-vs-rest).
  function metrics.roc_auc_score(y_true, y_score, opts)
    opts = opts or {}
    local yt = list_of(y_true)
    if is_tensor(y_score) and y_score:dim() == 2 then
      local multi = opts.multi_class or 'ovr'
      if multi ~= 'ovr' then raise(fmt("roc_auc_score: multi_class must be 'ovr', got %s", tostring(multi))) end
      local average = opts.average or 'macro'
      if average ~= 'macro' and average ~= 'weighted' then
        raise(fmt("roc_auc_score: average must be 'macro' or 'weighted', got %s", tostring(average)))
      end
      local n, ncls = y_score:size(1), y_score:size(2)
      if #yt ~= n then raise(fmt('roc_auc_score: %d targets but %d rows of scores', #yt, n)) end
      local cols = y_score:t():to('float64'):totable()
      local total, wsum = 0, 0
      for c = 1, ncls do
        local pos, count = {}, 0
        for i = 1, n do
          pos[i] = yt[i] == c
          if pos[i] then count = count + 1 end
        end
        local w = average == 'macro' and 1 or count
        total = total + w * binary_auc(cols[c], pos, fmt('roc_auc_score (class %d)', c))
        wsum = wsum + w
      end
      return total / wsum
    end
    local scores = list_of(y_score)
    if #yt ~= #scores then raise(fmt('roc_auc_score: %d targets but %d scores', #yt, #scores)) end
    local labels = sorted_labels(yt)
    if #labels > 2 then raise('roc_auc_score: the target has more than two labels; pass [N, C] scores') end
    local pos = {}
    for i = 1, #yt do pos[i] = yt[i] == labels[#labels] end
    return binary_auc(scores, pos, 'roc_auc_score')
  end

  -- 1 - SS_res / SS_tot (sklearn: 1 for a perfect fit of a constant, else 0).
  function metrics.r2_score(y_true, y_pred)
    local yt, yp = list_of(y_true), list_of(y_pred)
    local mean = 0
    for i = 1, #yt do mean = mean + yt[i] end
    mean = mean / #yt
    local res, tot = 0, 0
    for i = 1, #yt do
      res = res + (yt[i] - yp[i]) ^ 2
      tot = tot + (yt[i] - mean) ^ 2
    end
    if tot == 0 then return res == 0 and 1 or 0 end
    return 1 - res / tot
  end

  -- ---- sklearn scores as epoch metrics (fastai's skm_to_fastai) ---------------------

  -- func(y_true, y_pred, opts) over the epoch's argmax (axis) or thresholded
  -- predictions.
  local function skm(func, name, opts, extra)
    opts = opts or {}
    local is_class = extra.is_class ~= false
    local thresh = opts.thresh
    local accum = {
      dim_argmax = (is_class and thresh == nil) and (opts.axis or -1) or nil,
      activation = extra.activation or ((is_class and thresh ~= nil) and 'sigmoid' or 'no'),
      thresh = thresh, flatten = extra.flatten, name = name,
    }
    local kw = {}
    for k, v in pairs(opts) do if k ~= 'axis' and k ~= 'thresh' then kw[k] = v end end
    if is_class and kw.pos_label == nil and extra.pos_label then kw.pos_label = thresh and 1 or 2 end
    for k in pairs(kw) do
      if not extra.allowed[k] then
        raise(fmt('%s: unknown option %q', name, tostring(k)))
      end
    end
    local m = AccumMetric(function(preds, targs) return func(targs, preds, kw) end, accum)
    return m
  end

  local PRF_OPTS = { labels = true, pos_label = true, average = true, beta = true }
  local function prf_metric(func, name)
    return function(opts)
      return skm(func, name, opts, { allowed = PRF_OPTS, pos_label = true })
    end
  end
  metrics.Precision = prf_metric(metrics.precision_score, 'precision_score')
  metrics.Recall = prf_metric(metrics.recall_score, 'recall_score')
  metrics.F1Score = prf_metric(metrics.f1_score, 'f1_score')
  function metrics.FBeta(beta, opts)
    if type(beta) ~= 'number' then raise('FBeta: beta must be a number, got ' .. type(beta)) end
    local o = { beta = beta }
    for k, v in pairs(opts or {}) do o[k] = v end
    return skm(metrics.fbeta_score, 'fbeta_score', o, { allowed = PRF_OPTS, pos_label = true })
  end
  function metrics.MatthewsCorrCoef(opts)
    return skm(metrics.matthews_corrcoef, 'matthews_corrcoef', opts, { allowed = {} })
  end
  function metrics.BalancedAccuracy(opts)
    return skm(metrics.balanced_accuracy_score, 'balanced_accuracy_score', opts, { allowed = { adjusted = true } })
  end
  -- single-label multiclass: softmax over the classes, one-vs-rest
  function metrics.RocAuc(opts)
    return skm(metrics.roc_auc_score, 'roc_auc_score', opts,
      { allowed = { average = true, multi_class = true }, activation = 'softmax', flatten = false })
  end
  -- binary: the softmax probability of the second class
  function metrics.RocAucBinary(opts)
    return skm(metrics.roc_auc_score, 'roc_auc_score', opts,
      { allowed = { average = true }, activation = 'binary_softmax' })
  end
  function metrics.R2Score(opts)
    return skm(metrics.r2_score, 'r2_score', opts, { allowed = {}, is_class = false })
  end

  -- ---- segmentation ---------------------------------------------------------------

  -- Dice{axis = 2, pos = 2}: binary segmentation; prediction argmax over the
  -- class dim, foreground where the class id is `pos` (prediction and target).
  local Dice = Metric:extend('Dice')
  metrics.Dice = Dice
  function Dice:init(opts)
    opts = opts or {}
    rawset(self, 'axis', opts.axis or 2)
    rawset(self, 'pos', opts.pos or 2)
    self:reset()
  end
  function Dice:reset() rawset(self, 'inter', 0); rawset(self, 'union', 0) end
  function Dice:accumulate(learn)
    local pred, targ = flatten_check(learn.pred:detach():argmax(self.axis), learn.yb[1])
    pred, targ = pred:eq(self.pos):float(), targ:eq(self.pos):float()
    self.inter = self.inter + (pred * targ):sum():item()
    self.union = self.union + (pred + targ):sum():item()
  end
  function Dice:get_value() return self.union > 0 and 2 * self.inter / self.union or nil end

  local JaccardCoeff = Dice:extend('JaccardCoeff')
  metrics.JaccardCoeff = JaccardCoeff
  function JaccardCoeff:get_value()
    return self.union > 0 and self.inter / (self.union - self.inter) or nil
  end

  -- Perplexity: exp of the average loss (language models).
  local Perplexity = AvgLoss:extend('Perplexity')
  metrics.Perplexity = Perplexity
  function Perplexity:get_value() return self.count ~= 0 and exp(self.total / self.count) or nil end
  function Perplexity:get_name() return 'perplexity' end
  metrics.perplexity = Perplexity()

  -- fc.<name> aliases
  for _, name in ipairs { 'Metric', 'AvgMetric', 'AccumMetric', 'AvgLoss', 'AvgSmoothLoss', 'ValueMetric',
    'accuracy', 'error_rate', 'top_k_accuracy', 'accuracy_multi', 'Precision', 'Recall', 'F1Score',
    'FBeta', 'RocAuc', 'RocAucBinary', 'MatthewsCorrCoef', 'BalancedAccuracy', 'rmse', 'mae', 'mse',
    'msle', 'R2Score', 'exp_rmspe', 'Dice', 'JaccardCoeff', 'Perplexity', 'perplexity', 'mk_metric' } do
    if fc[name] == nil then fc[name] = metrics[name] end
  end
  return metrics
end
