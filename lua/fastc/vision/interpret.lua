-- lua/fastc/vision/interpret.lua — fastai's interpret.py:
-- fc.Interpretation and fc.ClassificationInterpretation, plus
-- learn:show_results().
--
--   local interp = fc.ClassificationInterpretation.from_learner(learn)
--   print(interp:confusion_matrix())          -- int64 [n, n]: rows actual, columns predicted
--   interp:plot_confusion_matrix()            -- PNG under learn.path, path printed and returned
--   interp:most_confused{min_val = 2}         -- {{actual, predicted, count}, ...}
--   local losses, idx = interp:top_losses(9)  -- idx: 1-based positions in the validation set
--   interp:plot_top_losses(9)                 -- PNG grid: predicted/actual/loss/probability
--   interp:print_classification_report()
--
-- One inference pass (from_learner) gives the predictions, targets,
-- decoded predictions and per-item losses; later calls reuse them.
return function(fc)
  local class, fmt, floor, max, min = fc.class, string.format, math.floor, math.max, math.min
  local vision, data = fc.vision, fc.data

  local Interpretation = class('Interpretation')
  fc.Interpretation = Interpretation

  -- Interpretation(learn, dl, {preds, targs, decoded, losses}): from
  -- predictions already made (from_learner makes them).
  function Interpretation:init(learn, dl, r)
    self.learn, self.dl = learn, dl
    self.preds, self.targs, self.decoded, self.losses = r.preds, r.targs, r.decoded, r.losses
  end

  -- from_learner(learn, {ds_idx = 2, dl, act})
  function Interpretation.from_learner(learn, o)
    o = o or {}
    local cls = o.cls or Interpretation
    local dl = o.dl
    if dl == nil then
      local base = learn.dls[o.ds_idx or 2]
      if base == nil then error(fmt('from_learner: the DataLoaders have no loader %d', o.ds_idx or 2), 2) end
      dl = base.new and base:new({ shuffle = false, drop_last = false }) or base
    end
    local preds, targs, decoded, losses = learn:get_preds({ dl = dl, with_decoded = true, with_loss = true,
      act = o.act })
    return cls(learn, dl, { preds = preds, targs = targs, decoded = decoded, losses = losses })
  end

  -- top_losses(k = all, {largest = true}) -> losses, idx (1-based)
  function Interpretation:top_losses(k, o)
    local n = self.losses:numel()
    k = min(k or n, n)
    local largest = not (o and o.largest == false)
    return self.losses:reshape(-1):topk(k, 1, largest)
  end

  -- The inputs and targets of the items at positions idx (a list), taken
  -- from a second pass over the loader's data (no model involved).
  function Interpretation:items_at(idx)
    local dl = self.dl
    if not dl.tuples then error('plot_top_losses: needs a data-layer DataLoader (with tuples and decode)', 3) end
    local want, pos = {}, 0
    for j, i in ipairs(idx) do want[i] = j end
    local picked, kinds = {}, nil
    for b in dl:tuples() do
      local bs = b[1]:size(1)
      kinds = b.kinds
      for r = 1, bs do
        local j = want[pos + r]
        if j then
          local vals = {}
          for e = 1, #b do vals[e] = fc.is_tensor(b[e]) and b[e]:narrow(1, r, 1) or { b[e][r] } end
          picked[j] = vals
        end
      end
      pos = pos + bs
    end
    local cols = {}
    for e = 1, #kinds do
      local parts = {}
      for j = 1, #idx do parts[j] = picked[j][e] end
      cols[e] = fc.is_tensor(parts[1]) and fc.cat(parts, 1) or parts
    end
    return dl:decode_batch(data.tuple(cols, kinds))
  end

  -- ---- ClassificationInterpretation ---------------------------------------------

  local ClassificationInterpretation = Interpretation:extend('ClassificationInterpretation')
  fc.ClassificationInterpretation = ClassificationInterpretation

  function ClassificationInterpretation:init(learn, dl, r)
    Interpretation.init(self, learn, dl, r)
    local vocab = r.vocab or (dl and dl.vocab) or (learn and learn.dls and learn.dls.vocab)
    if vocab == nil then
      vocab = {}
      for i = 1, self.preds:size(2) do vocab[i] = tostring(i) end
    end
    self.vocab = vocab
  end
  function ClassificationInterpretation.from_learner(learn, o)
    o = o or {}
    local r = {}
    for k, v in pairs(o) do r[k] = v end
    r.cls = ClassificationInterpretation
    return Interpretation.from_learner(learn, r)
  end

  local function ids(t) return t:reshape(-1):to('int64'):totable() end

  -- confusion_matrix(): int64 [n, n], rows the actual class, columns the
  -- predicted one (class ids from 1).
  function ClassificationInterpretation:confusion_matrix()
    local n = #self.vocab
    local cm = {}
    for i = 1, n do
      cm[i] = {}
      for j = 1, n do cm[i][j] = 0 end
    end
    local t, d = ids(self.targs), ids(self.decoded)
    if #t ~= #d then error(fmt('confusion_matrix: %d targets but %d predictions', #t, #d), 2) end
    for k = 1, #t do
      local a, p = t[k], d[k]
      if a < 1 or a > n or p < 1 or p > n then
        error(fmt('confusion_matrix: class id out of range 1..%d (target %d, prediction %d)', n, a, p), 2)
      end
      cm[a][p] = cm[a][p] + 1
    end
    return fc.tensor(cm, { dtype = 'int64' })
  end

  -- most_confused{min_val = 1}: {actual, predicted, count} off the
  -- diagonal with count >= min_val, most frequent first.
  function ClassificationInterpretation:most_confused(o)
    local min_val = (type(o) == 'number' and o) or (o and o.min_val) or 1
    local cm = self:confusion_matrix():totable()
    local res = {}
    for i = 1, #cm do
      for j = 1, #cm do
        if i ~= j and cm[i][j] >= min_val then res[#res + 1] = { self.vocab[i], self.vocab[j], cm[i][j], i, j } end
      end
    end
    table.sort(res, function(a, b)
      if a[3] ~= b[3] then return a[3] > b[3] end
      if a[4] ~= b[4] then return a[4] < b[4] end
      return a[5] < b[5]
    end)
    for k, r in ipairs(res) do res[k] = { r[1], r[2], r[3] } end
    return res
  end

  -- Per-class precision, recall, f1 and support, as scikit-learn's
  -- classification_report: a table and the text.
  function ClassificationInterpretation:classification_report()
    local cm = self:confusion_matrix():totable()
    local n, rows, total, correct = #cm, {}, 0, 0
    for i = 1, n do
      local tp, col, row = cm[i][i], 0, 0
      for j = 1, n do col, row = col + cm[j][i], row + cm[i][j] end
      local p = col > 0 and tp / col or 0
      local r = row > 0 and tp / row or 0
      local f = (p + r) > 0 and 2 * p * r / (p + r) or 0
      rows[i] = { name = tostring(self.vocab[i]), precision = p, recall = r, f1 = f, support = row }
      total, correct = total + row, correct + tp
    end
    local function avg(weighted)
      local s, w = { precision = 0, recall = 0, f1 = 0 }, 0
      for _, r in ipairs(rows) do
        local k = weighted and r.support or 1
        for _, m in ipairs { 'precision', 'recall', 'f1' } do s[m] = s[m] + r[m] * k end
        w = w + k
      end
      for _, m in ipairs { 'precision', 'recall', 'f1' } do s[m] = w > 0 and s[m] / w or 0 end
      s.support = total
      return s
    end
    local report = { classes = rows, accuracy = total > 0 and correct / total or 0, macro = avg(false),
      weighted = avg(true), support = total }
    local width = 12
    for _, r in ipairs(rows) do width = max(width, #r.name) end
    local lines = { fmt('%' .. width .. 's %10s %10s %10s %10s', '', 'precision', 'recall', 'f1-score', 'support'), '' }
    local function line(name, r)
      return fmt('%' .. width .. 's %10.2f %10.2f %10.2f %10d', name, r.precision, r.recall, r.f1, r.support)
    end
    for _, r in ipairs(rows) do lines[#lines + 1] = line(r.name, r) end
    lines[#lines + 1] = ''
    lines[#lines + 1] = fmt('%' .. width .. 's %10s %10s %10.2f %10d', 'accuracy', '', '', report.accuracy, total)
    lines[#lines + 1] = line('macro avg', report.macro)
    lines[#lines + 1] = line('weighted avg', report.weighted)
    report.text = table.concat(lines, '\n')
    return report
  end

  function ClassificationInterpretation:print_classification_report()
    local r = self:classification_report()
    print(r.text)
    return r.text
  end

  local function out_path(self, o, default)
    if o and o.path then return o.path end
    local dir = (self.learn and self.learn.path) or '.'
    fc.train_util.mkdir_p(dir)
    return fc.train_util.join(dir, default)
  end

  -- A titled image grid through fc.plot.image_grid, each image enlarged
  -- (whole pixels) until its cell is min_size wide and holds its title.
  local function titled_grid(images, titles, o, what)
    local longest, w = 0, 1
    for i, img in ipairs(images) do
      longest, w = max(longest, #titles[i]), max(w, img:size(-1))
    end
    local want = max(o.min_size or 128, 6 * longest + 6)
    local scale = max(1, math.ceil(want / w))
    local path = fc.plot.image_grid { images = images, titles = titles, ncol = o.ncols, path = o.path, scale = scale }
    if o.print ~= false then print(fmt('%s: wrote %s (%d images)', what, path, #images)) end
    return path
  end

  -- matplotlib's "Blues", from white to deep blue.
  local function blues(t)
    local lo, mid, hi = { 247, 251, 255 }, { 107, 174, 214 }, { 8, 48, 107 }
    local a, b, u = lo, mid, t * 2
    if t > 0.5 then a, b, u = mid, hi, (t - 0.5) * 2 end
    return { floor(a[1] + (b[1] - a[1]) * u), floor(a[2] + (b[2] - a[2]) * u), floor(a[3] + (b[3] - a[3]) * u) }
  end

  -- plot_confusion_matrix{normalize = false, title = 'Confusion matrix',
  -- norm_dec = 2, path = learn.path/confusion_matrix.png}: a PNG heat map
  -- with the counts (or row fractions) written in the cells. Returns the
  -- path and the layout (cell boxes, the matrix drawn).
  function ClassificationInterpretation:plot_confusion_matrix(o)
    o = o or {}
    local cm = self:confusion_matrix():to('float64')
    local n = cm:size(1)
    if o.normalize then cm = cm / cm:sum(2, true):clamp(1, math.huge) end
    local vals = cm:totable()
    local labels = {}
    local label_w = 0
    for i = 1, n do
      labels[i] = tostring(self.vocab[i])
      label_w = max(label_w, (fc.plot.text_size(labels[i])))
    end
    local cell = max(28, min(64, floor(600 / n)))
    local text_h = select(2, fc.plot.text_size('0'))
    local left, top = label_w + 30, 40
    local W, H = left + n * cell + 20, top + n * cell + label_w + 40
    local cv = fc.plot.Canvas(W, H)
    local title = o.title or 'Confusion matrix'
    cv:text(floor((W - fc.plot.text_size(title)) / 2), 10, title)
    local vmax = 0
    for i = 1, n do for j = 1, n do vmax = max(vmax, vals[i][j]) end end
    local cells = {}
    for i = 1, n do
      cells[i] = {}
      for j = 1, n do
        local x0, y0 = left + (j - 1) * cell, top + (i - 1) * cell
        local t = vmax > 0 and vals[i][j] / vmax or 0
        cv:rect(x0, y0, x0 + cell, y0 + cell, blues(t))
        local s = o.normalize and fmt('%.' .. (o.norm_dec or 2) .. 'f', vals[i][j]) or fmt('%d', vals[i][j])
        local tw = fc.plot.text_size(s)
        cv:text(x0 + floor((cell - tw) / 2), y0 + floor((cell - text_h) / 2), s,
          t > 0.5 and { 255, 255, 255 } or { 20, 20, 20 })
        cells[i][j] = { x0, y0, x0 + cell, y0 + cell }
      end
      local tw = fc.plot.text_size(labels[i])
      cv:text(left - tw - 6, top + (i - 1) * cell + floor((cell - text_h) / 2), labels[i])
      cv:text_up(left + (i - 1) * cell + floor((cell - text_h) / 2), top + n * cell + 6, labels[i])
    end
    cv:frame(left - 1, top - 1, left + n * cell + 1, top + n * cell + 1, { 40, 40, 40 })
    cv:text(left + floor((n * cell - fc.plot.text_size('Predicted')) / 2), H - 16, 'Predicted')
    cv:text_up(4, top + floor((n * cell - fc.plot.text_size('Actual')) / 2), 'Actual')
    local path = cv:save(out_path(self, o, 'confusion_matrix.png'))
    if o.print ~= false then print('plot_confusion_matrix: wrote ' .. path) end
    return path, { cells = cells, matrix = vals, width = W, height = H }
  end

  -- plot_top_losses(k, {largest = true, path, ncols}): the k worst (or
  -- best) predictions as a labelled image grid, each titled
  -- predicted/actual/loss/probability of the prediction. Returns the path
  -- and {titles, idx}.
  function ClassificationInterpretation:plot_top_losses(k, o)
    o = o or {}
    local losses, idx = self:top_losses(k, o)
    local list = ids(idx)
    local items = self:items_at(list)
    local probs = self.preds:index_select(1, idx)
    local dec = ids(self.decoded:reshape(-1):index_select(1, idx))
    local images, titles = {}, {}
    local lv, pv = losses:totable(), probs:max(2):totable()
    for j, it in ipairs(items) do
      local actual = it[2]
      if type(actual) == 'table' then actual = table.concat(actual, ';') end
      local p = type(pv[j]) == 'table' and pv[j][1] or pv[j]
      images[j] = it[1]
      titles[j] = fmt('%s/%s/%.2f/%.2f', tostring(self.vocab[dec[j]]), tostring(actual), lv[j], p)
    end
    local path = titled_grid(images, titles, { path = out_path(self, o, 'top_losses.png'), ncols = o.ncols,
      print = o.print, min_size = o.min_size }, 'plot_top_losses')
    return path, { titles = titles, idx = list }
  end

  -- ---- learn:show_results ----------------------------------------------------------------

  -- learn:show_results{ds_idx = 2, dl, max_n = 9, path, ncols}: one
  -- batch's inputs titled actual/predicted (classification), or for
  -- masks, target and prediction side by side over each image. Writes a
  -- PNG (path printed) and returns its path.
  function fc.Learner.show_results(learn, o)
    o = o or {}
    local dl = o.dl or learn.dls[o.ds_idx or 2]
    if not (dl and dl.one_batch_tuple) then error('show_results: needs a data-layer DataLoader', 2) end
    local b = dl:one_batch_tuple()
    local max_n = min(o.max_n or 9, b[1]:size(1))
    local nin = dl.n_inp or 1
    local xs = {}
    for i = 1, nin do xs[i] = b[i]:narrow(1, 1, max_n) end
    local was = learn.model.training
    learn.model:eval()
    local pred = fc.no_grad(function() return learn.model(unpack(xs)) end)
    learn.model:train(was)
    local lf = learn.loss_func
    if type(lf) == 'table' and lf.decodes then pred = lf:decodes(pred) else pred = pred:argmax(2) end
    local vals, pvals = {}, {}
    for e = 1, #b do
      vals[e] = fc.is_tensor(b[e]) and b[e]:narrow(1, 1, max_n) or b[e]
      pvals[e] = vals[e]
    end
    pvals[nin + 1] = pred
    local truth = dl:decode_batch(data.tuple(vals, b.kinds))
    local guess = dl:decode_batch(data.tuple(pvals, b.kinds))
    local is_mask = b.kinds[nin + 1] == 'mask'
    local path = o.path or out_path({ learn = learn }, o, 'show_results.png')
    local function s(v)
      if type(v) == 'table' then return table.concat(v, ';') end
      if fc.is_tensor(v) then return v:numel() == 1 and fmt('%.3g', v:item()) or 'tensor' end
      return tostring(v)
    end
    if not is_mask then
      local images, titles = {}, {}
      for i = 1, max_n do images[i], titles[i] = truth[i][1], s(truth[i][nin + 1]) .. '/' .. s(guess[i][nin + 1]) end
      return titled_grid(images, titles, { path = path, ncols = o.ncols, print = o.print, min_size = o.min_size },
        'show_results')
    end
    local cells = {}
    for i = 1, max_n do
      local img = truth[i][1]
      cells[#cells + 1] = { image = img, mask = truth[i][nin + 1], title = 'target' }
      cells[#cells + 1] = { image = img, mask = guess[i][nin + 1], title = 'prediction' }
    end
    return vision.image_grid(cells, { path = path, ncols = o.ncols or 2, what = 'show_results', print = o.print,
      min_size = o.min_size })
  end
end
