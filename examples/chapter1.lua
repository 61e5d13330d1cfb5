-- examples/chapter1.lua — fastai's first-chapter workflow in Lua: a folder
-- of images -> DataBlock -> vision_learner -> fine_tune -> interpretation ->
-- export -> load_learner -> predict on a file.
--
--   build/fastlua examples/chapter1.lua [DIR [ARCH [WEIGHTS]]]
--
-- DIR holds one sub-folder per class (DIR/<class>/*.jpg, or train/ and
-- valid/ splits); without it the script generates an Imagenette-like
-- folder with tools/gen_images.lua. WEIGHTS is a safetensors file for ARCH
-- (tools/convert_torchvision.py writes one from torchvision's weights).
local fc = require 'fastc'
local vision = fc.vision

local dir, arch, weights = arg[1], arg[2] or 'xresnet18', arg[3]
if not dir then
  dir = os.getenv('TMPDIR') or '/tmp'
  dir = dir .. '/fastc_chapter1'
  dofile('tools/gen_images.lua') { dir = dir, train = 60, valid = 15, classes = 3, seed = 1 }
end
local out = dir .. '_out' -- PNGs and the export, outside the image folder
fc.train_util.mkdir_p(out)
fc.manual_seed(42)

-- The data: labels from the parent folder, 20% held out, presizing.
local images = fc.DataBlock {
  blocks = { vision.ImageBlock(), fc.CategoryBlock() },
  get_items = fc.get_image_files,
  splitter = fc.RandomSplitter(0.2, 42),
  get_y = fc.parent_label,
  item_tfms = { vision.Resize(96) },
  batch_tfms = vision.aug_transforms { size = 64, min_scale = 0.75 },
}
local dls = images:dataloaders(dir, { bs = 16 })
print(string.format('%d training and %d validation images; classes: %s', dls.train.dataset:len(),
  dls.valid.dataset:len(), table.concat(dls.vocab, ', ')))
print('a batch: ' .. dls:show_batch { max_n = 8, path = out .. '/batch.png' })

-- The learner: with weights, a pretrained body fine-tuned (frozen for the
-- first epoch); without, trained from scratch with one cycle.
local learn = vision.vision_learner(dls, arch, { pretrained = weights or false, metrics = fc.error_rate, path = out })
if weights then learn:fine_tune(3, 3e-3) else learn:fit_one_cycle(6, 3e-3) end

-- What it gets wrong.
local interp = fc.ClassificationInterpretation.from_learner(learn)
print('confusion matrix: ' .. interp:plot_confusion_matrix())
interp:print_classification_report()
for _, m in ipairs(interp:most_confused { min_val = 1 }) do print(string.format('  %s -> %s: %d', m[1], m[2], m[3])) end
print('top losses: ' .. interp:plot_top_losses(6))

-- Export, load it back as an application would, and predict a file.
local file = learn:export('export.safetensors')
local learn_inf = fc.load_learner(file)
local files = fc.get_image_files(dir)
local item = files[#files]
local label, class_id, probs = learn_inf:predict(item)
print(string.format('predict(%s) = %s (class %d, p = %.3f)', item, label, class_id, probs[class_id]))
