-- examples/train_fashion_mnist.lua — the small CNN (four stride-2 3x3
-- conv+BN+ReLU blocks 1->16->32->64->128, global average pool, Linear
-- 128->10) trained with fit_one_cycle on Fashion-MNIST from Debian's
-- dataset-fashion-mnist, then evaluated on the 10k test images.
--
--   build/fastlua examples/train_fashion_mnist.lua [epochs] [lr] [bs]
local fc = require 'fastc'
local nn = fc.nn

local epochs = tonumber(arg and arg[1]) or 3
local lr = tonumber(arg and arg[2]) or 1e-2
local bs = tonumber(arg and arg[3]) or 128
local DATA = os.getenv('FASHION_MNIST') or '/usr/share/datasets/fashion-mnist'
local CLASSES = { 'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag',
  'Ankle boot' }

-- Images as float32 [N,1,28,28] normalised with the training set's
-- statistics; labels as 1-based class ids.
local function load(split)
  local prefix = DATA .. '/' .. split
  local images = fc.read_idx(prefix .. '-images-idx3-ubyte.gz')
  local labels = fc.read_idx(prefix .. '-labels-idx1-ubyte.gz')
  return images:float():div(255):unsqueeze(2), labels:long() + 1
end

local conv_bn = function(cin, cout)
  return nn.Sequential {
    nn.Conv2d(cin, cout, 3, { stride = 2, padding = 1, bias = false }),
    nn.BatchNorm2d(cout), nn.ReLU() }
end

-- Registered, so learn:export() can name it and fc.load_learner rebuild it.
local cnn = fc.register('examples.fashion_cnn', function(c)
  return nn.Sequential {
    conv_bn(1, 16), conv_bn(16, 32), conv_bn(32, 64), conv_bn(64, 128),
    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, c) }
end)

fc.manual_seed(42)
local xtrain, ytrain = load('train')
local xtest, ytest = load('t10k')
local mean, std = xtrain:mean(), xtrain:std()
xtrain, xtest = (xtrain - mean) / std, (xtest - mean) / std


local dls = fc.DataLoaders(fc.TensorDataLoader(xtrain, ytrain, { bs = bs, shuffle = true, c = 10, vocab = CLASSES }),
  fc.TensorDataLoader(xtest, ytest, { bs = 1000 }))
local learn = fc.Learner(dls, cnn(10), { loss_func = fc.CrossEntropyLossFlat(), metrics = { fc.accuracy } })

local t0 = fc.train_util.now()
learn:fit_one_cycle(epochs, lr)
local seconds = fc.train_util.now() - t0

local preds, targs = learn:get_preds()
local acc = fc.accuracy(preds, targs):item()
print(string.format('test accuracy %.2f%% after %d epochs (%.1f s training)', acc * 100, epochs, seconds))
