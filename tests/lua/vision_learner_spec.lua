-- tests/lua/vision_learner_spec.lua — create_body / create_head as
-- fastai lays them out, vision_learner (pretrained weights from a file,
-- frozen body, three parameter groups, Normalize added, n_in adaptation,
-- export and load_learner), unet_learner and foreground_acc, on tiny
-- generated images.
local fc = require 'fastc'
local vision, M, nn = fc.vision, fc.vision.models, fc.nn
local S = dofile('tests/lua/support.lua')
local tmpdir, rmtree = S.tmpdir, S.rmtree
local function classes(seq)
  local out = {}
  for i, m in ipairs(seq:children()) do out[i] = m:class_name() end
  return out
end
local function numel(params)
  local n = 0
  for _, p in ipairs(params) do n = n + p:numel() end
  return n
end

describe('create_head', function()
  it('is fastai\'s default head: concat pool, two BN-dropout-linear blocks', function()
    local h = vision.create_head(512, 10)
    assert.are.same({ 'AdaptiveConcatPool2d', 'Flatten', 'BatchNorm1d', 'Dropout', 'Linear', 'ReLU', 'BatchNorm1d',
      'Dropout', 'Linear' }, classes(h))
    assert.are.equal(1024, h[3].num_features)
    assert.are.same({ 0.25, 0.5 }, { h[4].p, h[8].p })
    assert.are.same({ 1024, 512, 512, 10 }, { h[5].in_features, h[5].out_features, h[9].in_features, h[9].out_features })
    assert.is_nil(h[5].bias)   -- a Linear after a BN has no bias
    assert.is_nil(h[9].bias)
    assert.is_true(math.abs(h[3].bias[1] - 1e-3) < 1e-9) -- fastai's BatchNorm: bias 1e-3
    assert.are.same({ 2, 10 }, h(fc.randn(2, 512, 3, 3)):size())
  end)

  it('follows lin_ftrs, ps, concat_pool, first_bn, bn_final, lin_first and y_range', function()
    local h = vision.create_head(64, 3, { lin_ftrs = { 32, 16 }, ps = { 0.1, 0.2, 0.3 }, concat_pool = false,
      first_bn = false, bn_final = true, y_range = { 0, 5 } })
    assert.are.same({ 'AdaptiveAvgPool2d', 'Flatten', 'Dropout', 'Linear', 'ReLU', 'BatchNorm1d', 'Dropout', 'Linear',
      'ReLU', 'BatchNorm1d', 'Dropout', 'Linear', 'BatchNorm1d', 'SigmoidRange' }, classes(h))
    assert.are.same({ 64, 32 }, { h[4].in_features, h[4].out_features })
    assert.is_not_nil(h[4].bias) -- no BN before it (first_bn = false)
    assert.are.same({ 0.1, 0.2, 0.3 }, { h[3].p, h[7].p, h[11].p })
    assert.are.equal(0.01, h[13].momentum)
    local y = h(fc.randn(4, 64, 2, 2))
    assert.is_true(y:min():item() > 0 and y:max():item() < 5)
    local lf = vision.create_head(8, 2, { lin_first = true, ps = 0.4 })
    -- fastai zips the blocks with the dropouts left after the first: one block, then the last Linear
    assert.are.same({ 'AdaptiveConcatPool2d', 'Flatten', 'Dropout', 'Linear', 'ReLU', 'BatchNorm1d', 'Dropout',
      'Linear' }, classes(lf))
    assert.are.same({ 0.2, 0.4 }, { lf[3].p, lf[7].p })
    assert.are.same({ 16, 512, 512, 2 }, { lf[4].in_features, lf[4].out_features, lf[8].in_features, lf[8].out_features })
  end)
end)

describe('create_body', function()
  it('cuts at the metadata\'s cut or before the last pooling child', function()
    local body = vision.create_body('resnet18')
    assert.are.same({ 'Conv2d', 'BatchNorm2d', 'ReLU', 'MaxPool2d', 'Sequential', 'Sequential', 'Sequential',
      'Sequential' }, classes(body))
    local m = nn.Sequential { nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2) }
    assert.are.same({ 'Conv2d', 'ReLU' }, classes(vision.create_body(m)))
    assert.are.same({ 'Conv2d' }, classes(vision.create_body(m, { cut = 1 })))
    assert.are.same({ 'Conv2d', 'ReLU', 'AdaptiveAvgPool2d' }, classes(vision.create_body(m, { cut = -2 })))
    assert.are.equal(19, vision.create_body('mobilenet_v2'):len())
    assert.has_error(function() vision.create_body(nn.Sequential { nn.Linear(2, 2) }) end)
  end)

  it('adapts the first conv to n_in like fastai', function()
    local src = M.xresnet18()
    local w = src[1][1].weight
    local sd = src:state_dict()
    local one = vision.create_body('xresnet18', { n_in = 1, pretrained = sd })
    assert.are.same({ 32, 1, 3, 3 }, one[1][1].weight:size())
    assert.is_true((one[1][1].weight - w:sum(2, true)):abs():max():item() < 1e-6)
    local four = vision.create_body('xresnet18', { n_in = 4, pretrained = sd })
    assert.is_true((four[1][1].weight:narrow(2, 1, 3) - w):abs():max():item() == 0)
    assert.are.equal(0, four[1][1].weight:narrow(2, 4, 1):abs():sum():item())
    local two = vision.create_body('xresnet18', { n_in = 2, pretrained = sd })
    assert.is_true((two[1][1].weight - w:narrow(2, 1, 2) * 1.5):abs():max():item() < 1e-6)
    assert.are.same({ 2, 512, 1, 1 }, fc.no_grad(function() return one:eval()(fc.randn(2, 1, 32, 32)) end):size())
  end)
end)

describe('vision_learner', function()
  local gen = dofile('tools/gen_images.lua')
  local dir = tmpdir('vl')
  gen { dir = dir, train = 6, valid = 3, classes = 3, seed = 2 }
  local function dls()
    return vision.ImageDataLoaders.from_folder(dir, { item_tfms = { vision.Resize(24) }, bs = 6, seed = 1 })
  end
  local weights = dir .. '/resnet18.safetensors'
  local ref = M.resnet18()
  fc.save(ref:state_dict(), weights)

  it('loads pretrained weights, freezes the body, splits in three groups and normalises', function()
    local d = dls()
    local learn = vision.vision_learner(d, 'resnet18', { pretrained = weights, metrics = fc.accuracy })
    local model = learn.model
    assert.are.same({ 'Sequential', 'Sequential' }, classes(model))
    assert.are.same(ref.conv1.weight:totable(), model[1][1].weight:totable())
    assert.are.same(ref.layer4[2].bn2.running_var:totable(), model[1][8][2].bn2.running_var:totable())
    assert.are.equal(3, model[2][9].out_features)
    -- fastai's _resnet_split: conv1..layer2, layer3..layer4, the head
    local groups = learn.splitter(model)
    assert.are.equal(3, #groups)
    local r = ref
    assert.are.equal(numel(M.params_of { r.conv1, r.bn1, r.layer1, r.layer2 }), numel(groups[1]))
    assert.are.equal(numel(M.params_of { r.layer3, r.layer4 }), numel(groups[2]))
    assert.are.equal(numel(model[2]:parameters()), numel(groups[3]))
    assert.are.equal(2, learn.opt.frozen_idx)
    assert.is_false(model[1][1].weight.requires_grad)
    assert.is_false(model[1][8][1].conv1.weight.requires_grad)
    assert.is_true(model[1][2].weight.requires_grad)   -- BN trains (train_bn)
    assert.is_true(model[2][5].weight.requires_grad)
    -- Normalize with the ImageNet stats joined every loader's batch transforms, once
    local function norms(dl)
      local n, mean = 0, nil
      for _, t in ipairs(dl.after_batch.fs) do
        if t:is_a(fc.data.Normalize) then n, mean = n + 1, t.mean:reshape(-1):totable() end
      end
      return n, mean
    end
    local n, mean = norms(d.train)
    assert.are.equal(1, n)
    assert.is_true(math.abs(mean[1] - 0.485) < 1e-6)
    assert.are.equal(1, (norms(d.valid)))
    vision.vision_learner(d, 'resnet18', { pretrained = weights })
    assert.are.equal(1, (norms(d.train)))
    local x = d.train:one_batch()
    assert.is_true(x:min():item() < -0.5) -- normalised, not in [0, 1]
    learn:fit(1, 1e-3)
    assert.are.same(ref.conv1.weight:totable(), model[1][1].weight:totable()) -- frozen
    learn:unfreeze()
    assert.is_true(model[1][1].weight.requires_grad)
  end)

  it('trains from scratch without Normalize or freezing, and exports', function()
    local d = dls()
    local learn = vision.vision_learner(d, 'xresnet18', { metrics = fc.error_rate, lin_ftrs = { 32 } })
    for _, t in ipairs(d.train.after_batch.fs) do assert.is_false(t:is_a(fc.data.Normalize)) end
    assert.are.equal(3, #learn.splitter(learn.model))
    assert.is_true(learn.model[1][1][1].weight.requires_grad)
    assert.are.equal(32, learn.model[2][5].out_features)
    learn:fit_one_cycle(1, 1e-3)
    local file = learn:export(dir .. '/export.safetensors')
    local back = fc.load_learner(file)
    local x = d.valid:one_batch()
    learn.model:eval()
    back.model:eval()
    local a = fc.no_grad(function() return learn.model(x) end)
    local b = fc.no_grad(function() return back.model(x) end)
    assert.is_true((a - b):abs():max():item() < 1e-5)
    assert.are.same(d.vocab, back.dls.vocab)
  end)

  it('refuses unknown options and architectures, and needs n_out without classes', function()
    assert.has_error(function() vision.vision_learner(dls(), 'resnet18', { bogus = 1 }) end,
      'vision_learner: unknown option "bogus"')
    assert.has_error(function() vision.vision_learner(dls(), 'resnet7') end)
    assert.has_error(function() vision.vision_learner(dls(), 'resnet18', { pretrained = dir .. '/none.safetensors' }) end)
  end)

  it('handles multi-label (BCE, accuracy_multi) and regression (y_range) data', function()
    local files = fc.data.get_image_files(dir .. '/train')
    local labels, nums = {}, {}
    for i = 1, #files do labels[i], nums[i] = (i % 2 == 0) and { 'a', 'b' } or { 'b' }, i / 10 end
    local o = { item_tfms = { vision.Resize(20) }, bs = 4, seed = 1, valid_pct = 0.25 }
    o.y_block = fc.MultiCategoryBlock()
    local dm = vision.ImageDataLoaders.from_lists(dir, files, labels, o)
    local learn = vision.vision_learner(dm, 'xresnet18', { metrics = fc.accuracy_multi })
    assert.are.equal(2, learn.model[2][9].out_features)
    learn:fit(1, 1e-3)
    local acc = learn:validate()[2]
    assert.is_true(acc >= 0 and acc <= 1)
    -- predict names the classes whose probability passes the threshold (0.5)
    local names, _, probs = learn:predict({ files[1] }) -- an item is a row here (get_x = r[1])
    local want = {}
    for i, v in ipairs { 'a', 'b' } do if probs[i] > 0.5 then want[#want + 1] = v end end
    assert.are.same(want, names)
    o.y_block = fc.RegressionBlock()
    local dr = vision.ImageDataLoaders.from_lists(dir, files, nums, o)
    local reg = vision.vision_learner(dr, 'xresnet18', { n_out = 1, y_range = { 0, 2 } })
    assert.is_true(reg.model[2][10]:is_a(fc.layers.SigmoidRange))
    reg:fit(1, 1e-3)
    local preds = reg:get_preds()
    assert.is_true(preds:min():item() > 0 and preds:max():item() < 2)
  end)

  it('cnn_learner is vision_learner', function() assert.are.equal(vision.vision_learner, vision.cnn_learner) end)
  teardown(function() rmtree(dir) end)
end)

describe('unet_learner', function()
  local gen = dofile('tools/gen_segmentation.lua')
  local dir = tmpdir('unet')
  local out = gen { dir = dir, n = 12, size = 24, classes = 2, seed = 1 }

  it('builds a DynamicUnet whose output has the input size, and trains', function()
    local d = vision.SegmentationDataLoaders.from_label_func(dir, out.images,
      function(p) return (p:gsub('/images/', '/labels/')) end, { codes = out.codes, bs = 4, seed = 1, valid_pct = 0.25 })
    assert.are.equal(3, d.c)
    local learn = vision.unet_learner(d, 'resnet18', { metrics = { fc.foreground_acc, fc.Dice() } })
    assert.is_true(learn.model:is_a(M.DynamicUnet))
    assert.are.equal(3, #learn.splitter(learn.model))
    local x, y = d.train:one_batch()
    local p = learn.model(x)
    assert.are.same({ x:size(1), 3, 24, 24 }, p:size())
    learn:fit(1, 1e-3)
    local path = learn:show_results { path = dir .. '/seg.png', print = false }
    local png = fc.read_png(path)
    assert.are.equal(3, png:size(3))
  end)
  teardown(function() rmtree(dir) end)
end)

describe('foreground_acc', function()
  it('counts pixel accuracy outside the background class (hand-worked)', function()
    -- 2 classes, logits [1, 2, 2, 2]: predicted ids {{1, 2}, {2, 2}}
    local pred = fc.tensor({ { { { 3, 0 }, { 0, 0 } }, { { 1, 2 }, { 5, 1 } } } })
    local targ = fc.tensor({ { { 1, 2 }, { 1, 1 } } }, { dtype = 'int64' })
    -- foreground pixels: only (1,2), predicted 2: 1/1
    assert.are.equal(1, fc.foreground_acc(pred, targ):item())
    targ = fc.tensor({ { { 2, 2 }, { 2, 1 } } }, { dtype = 'int64' })
    -- foreground (1,1) pred 1 wrong, (1,2) right, (2,1) right: 2/3
    assert.is_true(math.abs(fc.foreground_acc(pred, targ):item() - 2 / 3) < 1e-6)
    -- with background id 2, pixel (2,2) is the only foreground (target 1, predicted 2)
    assert.are.equal(0, fc.foreground_acc(pred, targ, 2):item())
    assert.are.equal('foreground_acc', fc.mk_metric(fc.foreground_acc).name)
  end)
end)
