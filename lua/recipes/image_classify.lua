-- lua/recipes/image_classify.lua — train an image classifier on a folder,
-- fastai's chapter-1 way, and report on it.
--
--   fastlua -m recipes.image_classify --data DIR [--arch xresnet18 --size 128 --epochs 5
--           --lr 3e-3 --bs 64 --pretrained FILE --out DIR]
--
--   local recipe = require 'recipes.image_classify'
--   local res = recipe.run{data = 'imagenette', size = 64, epochs = 2}
--   print(res.accuracy, res.export, res.confusion_matrix)
--
-- DIR holds train/<class>/*.jpg and valid/<class>/*.jpg (or, with
-- --valid_pct, class folders anywhere under DIR split at random). The steps:
--   1. presizing: Resize(size * presize) as the item transform (on the
--      loader's worker threads), then aug_transforms{size, min_scale = 0.75}
--      on whole batches — the crop and augmentation in one resampling;
--   2. vision_learner(arch) — with --pretrained FILE (a safetensors file,
--      e.g. from tools/convert_torchvision.py) the body is frozen and the
--      data normalised with the arch's statistics;
--   3. lr_find when --lr is not given (its valley suggestion);
--   4. fine_tune(epochs, lr) with pretrained weights, else
--      fit_one_cycle(epochs, lr);
--   5. export to OUT/export.safetensors (fc.load_learner reads it back);
--   6. the report: the epoch table, accuracy, time per epoch, the
--      classification report, the most confused classes, and PNGs of the
--      confusion matrix, the top losses and a batch of results in OUT.
local fc = require 'fastc'
local U = require 'recipes.util'

local M = {}
local NAME = ...

M.defaults = {
  data = '', arch = 'xresnet18', size = 128, presize = 1.25, epochs = 5, lr = 0, bs = 64, pretrained = '',
  valid_pct = 0, seed = 42, out = '', lr_find_iters = 100, min_scale = 0.75, workers = 0, quiet = false,
  channels = 3, aug = 'full', tta = false, label_smoothing = 0,
}

M.help = [[
usage: fastlua -m recipes.image_classify --data DIR [options]
  --data DIR         image folder: train/<class>/*, valid/<class>/* (required)
  --arch NAME        xresnet18|xresnet34|xresnet50|resnet18|resnet34|resnet50|mobilenet_v2 (xresnet18)
  --size N           training image size in pixels (128)
  --presize X        the item Resize is size*X before the batch crop (1.25)
  --epochs N         epochs (5)
  --lr X             learning rate; 0 runs lr_find first (0)
  --bs N             batch size (64)
  --pretrained FILE  safetensors weights for the arch: fine_tune instead of fit_one_cycle
  --valid_pct X      split a random fraction off instead of using train/ and valid/ (0)
  --channels N       1 for grey images (3)
  --aug KIND         full: fastai's aug_transforms; light: flips and zoom only;
                     flip: flips only; none: no batch augmentation (full)
  --label_smoothing X  LabelSmoothingCrossEntropy{eps = X} as the loss (0: cross-entropy)
  --tta              also report the accuracy of learn:tta() (flips, zoom)
  --seed N           seed for the split, shuffles and augmentation (42)
  --out DIR          where the export and PNGs go (DIR/image_classify)
  --lr_find_iters N  lr_find iterations (100)
  --workers N        loader threads (0: one per core)
  --quiet            no epoch table or report printing
]]

local function say(o, ...) if not o.quiet then print(...) end end

-- The batch transforms for --aug: full is fastai's aug_transforms; light
-- keeps the flips and the zoom (warps, rotations and lighting changes cost
-- accuracy on small images in a few epochs); flip only flips; none only
-- crops to size.
local AUG = {
  full = {},
  light = { max_rotate = 0, max_warp = 0, max_lighting = 0 },
  flip = { max_rotate = 0, max_warp = 0, max_lighting = 0, max_zoom = 1 },
  none = { do_flip = false, max_rotate = 0, max_warp = 0, max_lighting = 0, max_zoom = 1 },
}
local function batch_tfms(o)
  local a = AUG[o.aug]
  if not a then error(string.format("image_classify: --aug must be full, light, flip or none, not '%s'", o.aug), 3) end
  local t = { size = o.size, min_scale = o.min_scale }
  for k, v in pairs(a) do t[k] = v end
  return fc.vision.aug_transforms(t)
end

local function accuracy_of(preds, targs)
  return (preds:argmax(2):eq(targs)):float():mean():item()
end

-- run(opts): trains and reports; returns {learn, dls, lr, accuracy,
-- valid_loss, epoch_seconds, export, confusion_matrix, top_losses,
-- show_results, table (the epoch table text), interp}.
function M.run(o)
  o = U.with_defaults('image_classify', M.defaults, o)
  local vision = fc.vision
  local out = o.out ~= '' and o.out or (o.data .. '/image_classify')
  fc.train_util.mkdir_p(out)
  fc.manual_seed(o.seed)
  local pre = math.floor(o.size * o.presize + 0.5)
  local dls = vision.ImageDataLoaders.from_folder(o.data, {
    valid_pct = o.valid_pct > 0 and o.valid_pct or nil, seed = o.seed, bs = o.bs,
    img_cls = o.channels == 1 and 'bw' or nil, num_workers = o.workers > 0 and o.workers or nil,
    item_tfms = { vision.Resize(pre) },
    batch_tfms = batch_tfms(o) })
  dls.path = out
  say(o, string.format('image_classify: %d training and %d validation images, %d classes (%s)',
    dls.train.dataset:len(), dls.valid.dataset:len(), dls.c, table.concat(dls.vocab, ', ')))
  local pretrained = o.pretrained ~= '' and o.pretrained or false
  local loss_func = o.label_smoothing > 0 and fc.losses.LabelSmoothingCrossEntropy { eps = o.label_smoothing } or nil
  local learn = vision.vision_learner(dls, o.arch, { pretrained = pretrained, n_in = o.channels,
    metrics = { fc.accuracy, fc.error_rate }, path = out, loss_func = loss_func })
  local lr = o.lr
  if lr == 0 then
    local sug = learn:lr_find { num_it = o.lr_find_iters, show_plot = false }
    lr = sug.valley
    say(o, string.format('image_classify: lr_find suggests %.3g (valley)', lr))
  end
  local t0 = U.now()
  local function train()
    if pretrained then learn:fine_tune(o.epochs, lr) else learn:fit_one_cycle(o.epochs, lr) end
  end
  if o.quiet then learn:no_logging(function() learn:no_mbar(train) end) else train() end
  local seconds = (U.now() - t0) / (o.epochs + (pretrained and 1 or 0)) -- fine_tune adds a frozen epoch
  local header, rows = U.epoch_table(learn) -- before get_preds starts a new record
  local export = learn:export('export.safetensors')
  local interp = fc.ClassificationInterpretation.from_learner(learn)
  local cm_path = interp:plot_confusion_matrix { print = not o.quiet }
  local tl_path = interp:plot_top_losses(math.min(9, interp.losses:numel()), { print = not o.quiet })
  local sr_path = learn:show_results { print = not o.quiet }
  local cm = interp:confusion_matrix()
  local correct, total = 0, 0
  for i, row in ipairs(cm:totable()) do
    for j, v in ipairs(row) do
      total = total + v
      if i == j then correct = correct + v end
    end
  end
  local tta_accuracy
  if o.tta then
    local p, t = learn:tta()
    tta_accuracy = accuracy_of(p, t)
  end
  local text = U.table(header, rows)
  local res = { learn = learn, dls = dls, lr = lr, accuracy = total > 0 and correct / total or 0,
    valid_loss = interp.losses:mean():item(), epoch_seconds = seconds, export = export,
    tta_accuracy = tta_accuracy, confusion_matrix = cm_path, top_losses = tl_path, show_results = sr_path, table = text, interp = interp }
  if not o.quiet then
    print('\n' .. text)
    print(string.format('\naccuracy %.4f  valid loss %.4f  lr %.3g  %.1f s/epoch  (%s, %d px, bs %d)', res.accuracy,
      res.valid_loss, lr, seconds, o.arch, o.size, o.bs))
    if tta_accuracy then print(string.format('accuracy with tta %.4f', tta_accuracy)) end
    interp:print_classification_report()
    local mc = interp:most_confused { min_val = 1 }
    if #mc > 0 then
      print('most confused (actual -> predicted: count):')
      for i = 1, math.min(5, #mc) do print(string.format('  %s -> %s: %d', mc[i][1], mc[i][2], mc[i][3])) end
    end
    print('exported ' .. export)
  end
  return res
end

U.main(NAME, M, 'image_classify')

return M
