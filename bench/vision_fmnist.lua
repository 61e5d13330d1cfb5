-- bench/vision_fmnist.lua — issue 7's quality bar: Fashion-MNIST written as
-- a PNG folder (fc.data.fashion_mnist{as = 'folder'}), read back through
-- ImageDataLoaders.from_folder, xresnet18 (one input channel) trained with
-- fit_one_cycle by recipes.image_classify; prints the accuracy and the
-- seconds per epoch. bench/vision_fmnist.py runs the same recipe in PyTorch.
--
--   build/fastlua bench/vision_fmnist.lua [epochs=5] [size=28] [bs=128] [lr=1e-2] [limit] [aug=light] [label_smoothing=0] [notta|tta] [seed=42]
--
-- limit (per class) writes and uses a smaller folder for a quick run.
local fc = require 'fastc'
local epochs, size, bs, lr, limit = tonumber(arg[1]) or 5, tonumber(arg[2]) or 28, tonumber(arg[3]) or 128,
  tonumber(arg[4]) or 1e-2, tonumber(arg[5])
local aug, smoothing, tta, seed = arg[6] or 'light', tonumber(arg[7]) or 0, arg[8] ~= 'notta', tonumber(arg[9]) or 42
local dir = fc.data.fashion_mnist { as = 'folder', limit = limit }
local res = require('recipes.image_classify').run { data = dir, arch = 'xresnet18', size = size, presize = 1,
  min_scale = 1, channels = 1, epochs = epochs, bs = bs, lr = lr, aug = aug, tta = tta, label_smoothing = smoothing, seed = seed,
  out = string.format('/tmp/fastc_fmnist_bench_%d_%d_%g_%s_%d', size, bs, lr, aug, seed) }
print(string.format('RESULT fastc xresnet18 %dpx aug=%s ls=%g bs=%d lr=%g seed=%d: accuracy %.4f (tta %.4f), %.1f s/epoch, %d epochs',
  size, aug, smoothing, bs, lr, seed, res.accuracy, res.tta_accuracy or 0, res.epoch_seconds, epochs))
