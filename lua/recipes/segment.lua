-- lua/recipes/segment.lua — train a U-Net on an image/mask folder and
-- report on it.
--
--   fastlua -m recipes.segment --data DIR [--arch resnet18 --size 64 --epochs 5 --lr 1e-3 --bs 8]
--
--   local recipe = require 'recipes.segment'
--   local res = recipe.run{data = dir, size = 64, epochs = 3}
--   print(res.dice, res.foreground_acc, res.export)
--
-- DIR holds images/NAME and labels/NAME<label_suffix>.png (one channel of
-- class codes 0..n-1, e.g. from tools/gen_segmentation.lua) and codes.txt
-- (one class name per line; or --codes a,b,c). A random valid_pct of the
-- images is held out. unet_learner(arch) builds a DynamicUnet on the
-- arch's body; lr_find runs when --lr is not given; fit_one_cycle (or
-- fine_tune with --pretrained FILE) trains with foreground_acc, Dice and
-- JaccardCoeff (class 2 against the rest, as fastai's binary Dice);
-- the export, a show_results PNG and a metrics table follow.
local fc = require 'fastc'
local U = require 'recipes.util'

local M = {}
local NAME = ...

M.defaults = {
  data = '', arch = 'resnet18', size = 64, epochs = 5, lr = 0, bs = 8, pretrained = '', valid_pct = 0.2,
  seed = 42, out = '', codes = '', label_suffix = '', lr_find_iters = 100, workers = 0, quiet = false,
  augment = true,
}

M.help = [[
usage: fastlua -m recipes.segment --data DIR [options]
  --data DIR          images/ and labels/ (same names) and codes.txt (required)
  --arch NAME         resnet18|resnet34|xresnet18|xresnet34|mobilenet_v2 ... (resnet18)
  --size N            image size in pixels (64)
  --epochs N          epochs (5)
  --lr X              learning rate; 0 runs lr_find first (0)
  --bs N              batch size (8)
  --pretrained FILE   safetensors weights for the arch's body: fine_tune
  --valid_pct X       fraction held out for validation (0.2)
  --codes a,b,c       class names when DIR has no codes.txt
  --label_suffix S    labels/NAME_S.png for images/NAME.ext ('')
  --no-augment        no flips/rotations on training batches
  --seed N            (42)
  --out DIR           where the export and PNGs go (DIR/segment)
  --lr_find_iters N   (100)
  --workers N         loader threads (0: one per core)
  --quiet             no tables or report printing
]]

local function read_codes(o)
  if o.codes ~= '' then
    local out = {}
    for c in o.codes:gmatch('[^,]+') do out[#out + 1] = c end
    return out
  end
  local f = io.open(o.data .. '/codes.txt', 'r')
  if not f then error('segment: no codes.txt in ' .. o.data .. ' (or give --codes a,b,c)', 3) end
  local out = {}
  for line in f:lines() do
    line = line:match('^%s*(.-)%s*$')
    if line ~= '' then out[#out + 1] = line end
  end
  f:close()
  return out
end

-- run(opts): {learn, dls, lr, dice, jaccard, foreground_acc, valid_loss,
-- epoch_seconds, export, show_results, table}
function M.run(o)
  o = U.with_defaults('segment', M.defaults, o)
  local vision, data = fc.vision, fc.data
  local out = o.out ~= '' and o.out or (o.data .. '/segment')
  fc.train_util.mkdir_p(out)
  fc.manual_seed(o.seed)
  local codes = read_codes(o)
  local fnames = data.get_image_files(o.data .. '/images')
  local function label_of(p)
    local base = data.path_name(p):gsub('%.[^.]+$', '')
    return o.data .. '/labels/' .. base .. o.label_suffix .. '.png'
  end
  local dls = vision.SegmentationDataLoaders.from_label_func(o.data, fnames, label_of, {
    codes = codes, valid_pct = o.valid_pct, seed = o.seed, bs = o.bs,
    num_workers = o.workers > 0 and o.workers or nil, item_tfms = { vision.Resize(o.size) },
    batch_tfms = o.augment and vision.aug_transforms { max_warp = 0 } or nil })
  dls.path = out
  if not o.quiet then
    print(string.format('segment: %d training and %d validation images, codes: %s', dls.train.dataset:len(),
      dls.valid.dataset:len(), table.concat(codes, ', ')))
  end
  local pretrained = o.pretrained ~= '' and o.pretrained or false
  local dice, jacc = fc.Dice(), fc.JaccardCoeff()
  local learn = vision.unet_learner(dls, o.arch, { pretrained = pretrained, path = out,
    metrics = { fc.foreground_acc, dice, jacc } })
  local lr = o.lr
  if lr == 0 then
    lr = learn:lr_find({ num_it = o.lr_find_iters, show_plot = false }).valley
    if not o.quiet then print(string.format('segment: lr_find suggests %.3g (valley)', lr)) end
  end
  local t0 = U.now()
  local function train()
    if pretrained then learn:fine_tune(o.epochs, lr) else learn:fit_one_cycle(o.epochs, lr) end
  end
  if o.quiet then learn:no_logging(function() learn:no_mbar(train) end) else train() end
  local seconds = (U.now() - t0) / (o.epochs + (pretrained and 1 or 0))
  local header, rows = U.epoch_table(learn)
  local last = rows[#rows] or {}
  local col = {}
  for j, h in ipairs(header) do col[h] = j end
  local res = { learn = learn, dls = dls, lr = lr, valid_loss = last[col.valid_loss], dice = last[col.dice],
    jaccard = last[col.jaccard_coeff], foreground_acc = last[col.foreground_acc], epoch_seconds = seconds,
    table = U.table(header, rows) }
  res.export = learn:export('export.safetensors')
  res.show_results = learn:show_results { max_n = 6, print = not o.quiet }
  if not o.quiet then
    print('\n' .. res.table)
    print(string.format('\ndice %.4f  jaccard %.4f  foreground_acc %.4f  lr %.3g  %.1f s/epoch  (%s, %d px, bs %d)',
      res.dice or 0 / 0, res.jaccard or 0 / 0, res.foreground_acc or 0 / 0, lr, seconds, o.arch, o.size, o.bs))
    print('exported ' .. res.export)
  end
  return res
end

U.main(NAME, M, 'segment')

return M
