-- lua/fastc/ext_data.lua — the data layer (lua/fastc/data/) and vision
-- data (lua/fastc/vision/): fc.data.*, fc.vision.*, and fastai's everyday
-- names at the top level (fc.DataBlock, fc.ImageBlock, fc.RandomSplitter,
-- fc.get_image_files, ...), as `from fastai.vision.all import *` gives them.
return function(fc, Tensor, H)
  fc.data = fc.data or {}
  fc.vision = fc.vision or {}
  require('fastc.data.warp')(fc, Tensor, H)
  for _, name in ipairs { 'fastc.data.transform', 'fastc.data.files', 'fastc.data.transforms',
    'fastc.data.core', 'fastc.data.block', 'fastc.vision.image', 'fastc.vision.core',
    'fastc.vision.augment', 'fastc.data.inference', 'fastc.vision.show', 'fastc.vision.data', 'fastc.data.external' } do
    require(name)(fc, Tensor, H)
  end
  local data, vision = fc.data, fc.vision

  -- vision names shared with fastai's data modules
  vision.imagenet_stats, vision.cifar_stats, vision.mnist_stats =
    data.imagenet_stats, data.cifar_stats, data.mnist_stats
  vision.Normalize, vision.IntToFloatTensor = data.Normalize, data.IntToFloatTensor
  data.ImageBlock, data.MaskBlock = vision.ImageBlock, vision.MaskBlock

  local top = { 'DataBlock', 'TransformBlock', 'CategoryBlock', 'MultiCategoryBlock', 'RegressionBlock',
    'ImageBlock', 'MaskBlock', 'Datasets', 'TfmdLists', 'DataLoader', 'DataLoaders', 'Transform',
    'ItemTransform', 'RandTransform', 'Pipeline', 'get_files', 'get_image_files', 'FileGetter',
    'ImageGetter', 'RandomSplitter', 'GrandparentSplitter', 'FuncSplitter', 'MaskSplitter',
    'IndexSplitter', 'FileSplitter', 'ColSplitter', 'TrainTestSplitter', 'parent_label',
    'RegexLabeller', 'ColReader', 'Categorize', 'MultiCategorize', 'OneHotEncode',
    'EncodedMultiCategorize', 'RegressionSetup', 'ToTensor', 'IntToFloatTensor', 'Normalize',
    'imagenet_stats', 'TensorDataset' }
  for _, k in ipairs(top) do
    if fc[k] == nil then fc[k] = data[k] end
  end
  -- the real data layer replaces a stand-in DataLoaders (fastc.tensor_data)
  fc.DataLoaders = data.DataLoaders
end
