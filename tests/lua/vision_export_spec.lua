-- tests/lua/vision_export_spec.lua — an exported vision Learner keeps its
-- validation pipeline (image opening, item Resize, batch resize, Normalize)
-- so fc.load_learner(file):predict('img.jpg') gives what the trained
-- Learner gives; pipelines with a step that cannot be kept say so.
local fc = require 'fastc'
local vision = fc.vision
local S = dofile('tests/lua/support.lua')
local function maxdiff(a, b) return (a - b):abs():max():item() end

local tmpdir = S.tmpdir

local function dataloaders(dir, extra_item_tfm)
  local item_tfms = { vision.Resize(40) }
  if extra_item_tfm then item_tfms[2] = extra_item_tfm end
  return fc.DataBlock {
    blocks = { vision.ImageBlock(), fc.CategoryBlock() },
    get_items = fc.get_image_files, splitter = fc.GrandparentSplitter(), get_y = fc.parent_label,
    item_tfms = item_tfms,
    batch_tfms = { vision.aug_transforms { size = 32, min_scale = 0.75 }, fc.Normalize.from_stats({ 0.4, 0.5, 0.6 },
      { 0.2, 0.25, 0.3 }) },
  }:dataloaders(dir, { bs = 4, seed = 3 })
end

describe('exported vision learners', function()
  local dir = tmpdir('vexport')
  local out = dir .. '_out'
  dofile('tools/gen_images.lua') { dir = dir, train = 4, valid = 2, classes = 3, seed = 7 }
  local file_a = dir .. '/valid/tench/' .. (io.popen("ls '" .. dir .. "/valid/tench'"):read('*l'))

  it('keeps the validation pipeline: predict on a file matches the trained learner', function()
    fc.manual_seed(1)
    local dls = dataloaders(dir)
    local learn = vision.vision_learner(dls, 'xresnet18', { path = out, metrics = fc.accuracy })
    learn:no_logging(function() learn:no_mbar(function() learn:fit(1, 1e-3) end) end)
    local label, id, probs = learn:predict(file_a)
    local file = learn:export('export.safetensors')
    local back = fc.load_learner(file)
    local label2, id2, probs2 = back:predict(file_a)
    assert.are.equal(label, label2)
    assert.are.equal(id, id2)
    assert.is_true(maxdiff(probs, probs2) < 1e-5)
    -- what was kept, in order; the training-only lighting and flips are gone
    local spec = back.dls.inference
    local function classes(list)
      local names = {}
      for i, s in ipairs(list) do names[i] = s.class end
      return names
    end
    assert.are.same({ 'ImageCreate' }, classes(spec.x[1]))
    assert.are.same({ 'Resize', 'ToTensor' }, classes(spec.after_item))
    -- the affine pass (flip, rotate, zoom, warp) keeps only its resize:
    -- none here, as the random crop sets the size
    assert.are.same({ 'IntToFloatTensor', 'AffineCoordTfm', 'RandomResizedCropGPU', 'Normalize' },
      classes(spec.after_batch))
    assert.is_nil(spec.after_batch[2].args[1].size)
    local norm = spec.after_batch[4].args
    assert.is_true(S.same(norm[1], { 0.4, 0.5, 0.6 }) and S.same(norm[2], { 0.2, 0.25, 0.3 }))
    -- without the pipeline the 40 px resize and the normalisation would be
    -- missing: a raw 32 px centre crop of the file gives other probabilities
    local raw = vision.load_image(file_a):unsqueeze(1):float() / 255
    local x = fc.F.interpolate(raw, { 32, 32 })
    local p_raw = fc.no_grad(function() return fc.softmax(back.model:eval()(x), 2)[1] end)
    assert.is_true(maxdiff(p_raw, probs2) > 1e-3)
  end)

  it('a step it cannot keep: export still works and predict asks for tensors, naming the step', function()
    local lambda = fc.Transform { name = 'my_lambda', encodes = function(_, x) return x end }
    local dls = dataloaders(dir, lambda)
    local spec, why = dls:inference_spec()
    assert.is_nil(spec)
    assert.truthy(why:find('my_lambda', 1, true), why)
    local learn = vision.vision_learner(dls, 'xresnet18', { path = out })
    local back = fc.load_learner(learn:export('export2.safetensors'))
    local ok, err = pcall(function() return back:predict(file_a) end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find('no data pipeline (the transform my_lambda has no export rule', 1, true), err)
    -- tensors still work
    local label = back:predict(fc.rand(3, 32, 32))
    assert.is_true(label == 'cassette' or label == 'springer' or label == 'tench')
  end)

  it('rebuilds transforms from their specs and refuses unknown ones', function()
    local r = fc.data.transform_from_spec { class = 'Resize', args = { { 20, 30 }, { method = 'squish' } } }
    assert.are.same({ 20, 30 }, r.size)
    assert.are.equal('squish', r.method)
    assert.has_error(function() fc.data.transform_from_spec { class = 'Bogus' } end,
      "load_learner: the transform 'Bogus' is not known to this program")
    -- training-only transforms are dropped, plain data only
    assert.is_false(fc.data.transform_spec(vision.FlipItem(0.5)))
    local s = fc.data.transform_spec(fc.Normalize.from_stats({ 0.5 }, { 0.25 }))
    assert.are.same({ { 0.5 }, { 0.25 }, { axes = { 1, 3, 4 } } }, s.args)
  end)

  it('tta without batch_tfms uses the training-time transforms (as fastai)', function()
    fc.manual_seed(2)
    local dls = fc.DataBlock {
      blocks = { vision.ImageBlock(), fc.CategoryBlock() },
      get_items = fc.get_image_files, splitter = fc.GrandparentSplitter(), get_y = fc.parent_label,
      -- squish: the same box in training and validation, so only the flip differs
      item_tfms = { vision.Resize(32, { method = 'squish' }) }, batch_tfms = { vision.Flip { p = 1 } },
    }:dataloaders(dir, { bs = 4, seed = 3 })
    local learn = vision.vision_learner(dls, 'xresnet18', { path = out })
    local aug, plain = learn:tta { n = 1, beta = false }
    -- every training-time batch is mirrored (p = 1): the model on the
    -- mirrored validation images, computed by hand
    local xs = {}
    for xb in dls.valid:iter() do xs[#xs + 1] = xb end
    local x = fc.cat(xs, 1)
    local want = fc.no_grad(function() return fc.softmax(learn.model:eval()(x:flip(4)), 2) end)
    local want_plain = fc.no_grad(function() return fc.softmax(learn.model:eval()(x), 2) end)
    assert.is_true(maxdiff(aug, want) < 1e-5)
    assert.is_true(maxdiff(plain, want_plain) < 1e-5)
    assert.is_true(maxdiff(aug, plain) > 1e-4)
  end)

  teardown(function() os.execute("rm -rf '" .. dir .. "' '" .. out .. "'") end)
end)
