-- tests/lua/vision_interpret_spec.lua — ClassificationInterpretation on a
-- hand-made prediction set (every number worked by hand), from_learner
-- through get_preds, the PNGs it writes, and learn:show_results.
local fc = require 'fastc'
local vision = fc.vision
local tmpdir = dofile('tests/lua/support.lua').tmpdir

-- 8 items, 3 classes a b c: targets and the predicted ids
local TARGS = { 1, 1, 2, 2, 2, 3, 3, 1 }
local DECODED = { 1, 2, 2, 3, 2, 3, 1, 1 }
local LOSSES = { 0.1, 2.0, 0.3, 1.5, 0.2, 0.4, 3.0, 0.05 }

local function hand_made()
  local preds = fc.zeros(8, 3)
  for i, d in ipairs(DECODED) do preds[{ i, d }] = 0.8 end
  return fc.ClassificationInterpretation(nil, nil, { preds = preds, targs = fc.tensor(TARGS, { dtype = 'int64' }),
    decoded = fc.tensor(DECODED, { dtype = 'int64' }), losses = fc.tensor(LOSSES), vocab = { 'a', 'b', 'c' } })
end

describe('ClassificationInterpretation', function()
  it('counts the confusion matrix (rows actual, columns predicted)', function()
    local interp = hand_made()
    assert.are.same({ { 2, 1, 0 }, { 0, 2, 1 }, { 1, 0, 1 } }, interp:confusion_matrix():totable())
    assert.are.equal('int64', interp:confusion_matrix().dtype)
  end)

  it('lists the most confused pairs, most frequent first', function()
    local interp = hand_made()
    assert.are.same({ { 'a', 'b', 1 }, { 'b', 'c', 1 }, { 'c', 'a', 1 } }, interp:most_confused())
    assert.are.same({}, interp:most_confused { min_val = 2 })
    interp.decoded = fc.tensor({ 2, 2, 2, 3, 2, 3, 1, 1 }, { dtype = 'int64' })
    assert.are.same({ { 'a', 'b', 2 }, { 'b', 'c', 1 }, { 'c', 'a', 1 } }, interp:most_confused())
    assert.are.same({ { 'a', 'b', 2 } }, interp:most_confused { min_val = 2 })
  end)

  it('gives the top losses with 1-based positions', function()
    local losses, idx = hand_made():top_losses(3)
    assert.are.same({ 7, 2, 4 }, idx:totable())
    assert.are.same({ 3.0, 2.0, 1.5 }, losses:totable())
    local _, low = hand_made():top_losses(2, { largest = false })
    assert.are.same({ 8, 1 }, low:totable())
  end)

  it('reports precision, recall and f1 as scikit-learn does', function()
    local r = hand_made():classification_report()
    local function near(a, b) return math.abs(a - b) < 1e-9 end
    -- a: predicted a 3 times (2 right), actual a 3 times (2 found)
    assert.is_true(near(r.classes[1].precision, 2 / 3) and near(r.classes[1].recall, 2 / 3))
    -- b: predicted 3 times (2 right), actual 3
    assert.is_true(near(r.classes[2].precision, 2 / 3) and near(r.classes[2].recall, 2 / 3))
    -- c: predicted 2 times (1 right), actual 2 (1 found)
    assert.is_true(near(r.classes[3].precision, 0.5) and near(r.classes[3].f1, 0.5))
    assert.are.same({ 3, 3, 2 }, { r.classes[1].support, r.classes[2].support, r.classes[3].support })
    assert.is_true(near(r.accuracy, 5 / 8))
    assert.is_true(near(r.macro.precision, (2 / 3 + 2 / 3 + 0.5) / 3))
    assert.is_true(near(r.weighted.recall, (2 / 3 * 3 + 2 / 3 * 3 + 0.5 * 2) / 8))
    assert.truthy(r.text:find('weighted avg', 1, true))
    assert.truthy(r.text:find('\n%s+accuracy%s+0%.6%d%s+8\n'))
  end)

  it('draws the confusion matrix as a PNG heat map', function()
    local dir = tmpdir('cm')
    local path, layout = hand_made():plot_confusion_matrix { path = dir .. '/cm.png', print = false }
    local png = fc.read_png(path)
    assert.are.same({ layout.height, layout.width, 3 }, png:size())
    local function pixel(cell) return png[{ cell[2] + 3, cell[1] + 3 }]:totable() end
    local full, empty = pixel(layout.cells[1][1]), pixel(layout.cells[1][3])
    assert.is_true(full[3] > full[1] + 60)                     -- the largest count: deep blue
    assert.is_true(empty[1] > 230 and empty[2] > 230)          -- zero: near white
    local _, norm = hand_made():plot_confusion_matrix { path = dir .. '/cmn.png', normalize = true, print = false }
    assert.is_true(math.abs(norm.matrix[1][1] - 2 / 3) < 1e-9)
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it('comes from a Learner through get_preds (identity model: preds are softmax(x))', function()
    local x = fc.zeros(8, 3)
    for i, d in ipairs(DECODED) do x[{ i, d }] = 2.0 end
    local y = fc.tensor(TARGS, { dtype = 'int64' })
    local dls = fc.DataLoaders(fc.TensorDataLoader(x, y, { bs = 3 }), fc.TensorDataLoader(x, y, { bs = 3 }),
      { c = 3, vocab = { 'a', 'b', 'c' } })
    local learn = fc.Learner(dls, fc.nn.Identity(), { loss_func = fc.losses.CrossEntropyLossFlat() })
    local interp = fc.ClassificationInterpretation.from_learner(learn)
    assert.are.same({ { 2, 1, 0 }, { 0, 2, 1 }, { 1, 0, 1 } }, interp:confusion_matrix():totable())
    -- a row with 2 at the target: loss -log(e^2 / (e^2 + 2)); elsewhere -log(1 / (e^2 + 2))
    local e2 = math.exp(2)
    local right, wrong = -math.log(e2 / (e2 + 2)), -math.log(1 / (e2 + 2))
    local losses = interp.losses:totable()
    for i = 1, 8 do
      local want = TARGS[i] == DECODED[i] and right or wrong
      assert.is_true(math.abs(losses[i] - want) < 1e-5, 'loss ' .. i)
    end
    assert.is_true(math.abs(interp.preds[{ 1, 1 }] - e2 / (e2 + 2)) < 1e-5)
  end)
end)

describe('plot_top_losses and show_results', function()
  local gen = dofile('tools/gen_images.lua')
  local dir = tmpdir('tl')
  gen { dir = dir, train = 4, valid = 3, classes = 3, seed = 5 }

  it('draw the worst predictions titled predicted/actual/loss/probability', function()
    local dls = vision.ImageDataLoaders.from_folder(dir, { item_tfms = { vision.Resize(20) }, bs = 4, seed = 1 })
    local model = fc.nn.Sequential { fc.nn.Conv2d(3, 4, 3), fc.nn.AdaptiveAvgPool2d(1), fc.nn.Flatten(),
      fc.nn.Linear(4, 3) }
    local learn = fc.Learner(dls, model, { path = dir })
    local interp = fc.ClassificationInterpretation.from_learner(learn)
    assert.are.equal(9, interp.losses:numel())
    local path, info = interp:plot_top_losses(4, { print = false })
    assert.are.equal(dir .. '/top_losses.png', path)
    assert.are.equal(3, fc.read_png(path):size(3))
    local losses, idx = interp:top_losses(4)
    local targs, dec, probs = interp.targs:totable(), interp.decoded:totable(), interp.preds
    for j, i in ipairs(idx:totable()) do
      local want = string.format('%s/%s/%.2f/%.2f', dls.vocab[dec[i]], dls.vocab[targs[i]], losses[j],
        probs[i]:max():item())
      assert.are.equal(want, info.titles[j])
    end
    local sr = learn:show_results { print = false, max_n = 4 }
    assert.are.equal(dir .. '/show_results.png', sr)
  end)
  teardown(function() os.execute("rm -rf '" .. dir .. "'") end)
end)
