-- lua/fastc/vision/data.lua — ImageDataLoaders and SegmentationDataLoaders
-- (fastai's vision/data.py): the usual DataBlocks in one call.
--
--   local dls = fc.vision.ImageDataLoaders.from_folder(path, {
--     item_tfms = {fc.vision.Resize(128)}, batch_tfms = fc.vision.aug_transforms{}, bs = 64})
return function(fc)
  local vision, data = fc.vision, fc.data

  -- Loader options: everything except the DataBlock's own keys.
  local BLOCK_KEYS = { train = true, valid = true, valid_pct = true, vocab = true, item_tfms = true,
    batch_tfms = true, img_cls = true, fn_col = true, folder = true, suff = true, label_col = true,
    label_delim = true, y_block = true, valid_col = true, codes = true, header = true, delimiter = true,
    csv_fname = true, fnames = true }
  local function loader_opts(o, path)
    local d = { path = path }
    for k, v in pairs(o) do if not BLOCK_KEYS[k] then d[k] = v end end
    return d
  end

  local function splitter_for(o)
    return data.RandomSplitter(o.valid_pct or 0.2, o.seed)
  end

  local ImageDataLoaders = {}
  vision.ImageDataLoaders = ImageDataLoaders

  -- from_folder(path, {train='train', valid='valid', valid_pct=, seed=,
  -- vocab=, item_tfms=, batch_tfms=, bs=, ...}): path/train/<class>/*.jpg
  -- and path/valid/<class>/*.jpg (or a random valid_pct of everything).
  function ImageDataLoaders.from_folder(path, o)
    o = o or {}
    local train, valid = o.train or 'train', o.valid or 'valid'
    local splitter, get_items
    if o.valid_pct == nil then
      splitter = data.GrandparentSplitter(train, valid)
      get_items = function(p) return data.get_image_files(p, { folders = { train, valid } }) end
    else
      splitter = data.RandomSplitter(o.valid_pct, o.seed)
      get_items = data.get_image_files
    end
    local dblock = data.DataBlock {
      blocks = { vision.ImageBlock { cls = o.img_cls }, data.CategoryBlock(o.vocab) },
      get_items = get_items, splitter = splitter, get_y = data.parent_label,
      item_tfms = o.item_tfms, batch_tfms = o.batch_tfms }
    return dblock:dataloaders(path, loader_opts(o, path))
  end

  -- from_path_func(path, fnames, label_func, {valid_pct=0.2, seed=, ...}):
  -- label_func sees the whole path.
  function ImageDataLoaders.from_path_func(path, fnames, label_func, o)
    o = o or {}
    local dblock = data.DataBlock {
      blocks = { vision.ImageBlock { cls = o.img_cls }, data.CategoryBlock(o.vocab) },
      splitter = splitter_for(o), get_y = label_func, item_tfms = o.item_tfms, batch_tfms = o.batch_tfms }
    return dblock:dataloaders(fnames, loader_opts(o, path))
  end

  -- from_name_func: label_func sees the file name only.
  function ImageDataLoaders.from_name_func(path, fnames, label_func, o)
    return ImageDataLoaders.from_path_func(path, fnames, function(p) return label_func(data.path_name(p)) end, o)
  end

  -- from_path_re / from_name_re(path, fnames, pat, ...): the first group of
  -- a regular expression (Python's re syntax) in the path / file name.
  function ImageDataLoaders.from_path_re(path, fnames, pat, o)
    return ImageDataLoaders.from_path_func(path, fnames, data.RegexLabeller(pat), o)
  end
  function ImageDataLoaders.from_name_re(path, fnames, pat, o)
    return ImageDataLoaders.from_name_func(path, fnames, data.RegexLabeller(pat), o)
  end

  -- from_lists(path, fnames, labels, {valid_pct=0.2, seed=, y_block=, ...})
  function ImageDataLoaders.from_lists(path, fnames, labels, o)
    o = o or {}
    local items = {}
    for i, f in ipairs(fnames) do items[i] = { f, labels[i] } end
    local dblock = data.DataBlock {
      blocks = { vision.ImageBlock { cls = o.img_cls }, o.y_block or data.CategoryBlock(o.vocab) },
      splitter = splitter_for(o), get_x = function(r) return r[1] end, get_y = function(r) return r[2] end,
      item_tfms = o.item_tfms, batch_tfms = o.batch_tfms }
    return dblock:dataloaders(items, loader_opts(o, path))
  end

  -- from_df(df, path='.', {valid_pct=0.2, seed=, fn_col=1, folder=, suff='',
  -- label_col=2, label_delim=, y_block=, valid_col=, ...}): columns counted
  -- from 1 (or named).
  function ImageDataLoaders.from_df(df, path, o)
    o = o or {}
    path = path or '.'
    local pref = (o.folder and data.path_join(path, o.folder) or path) .. '/'
    local label_col = o.label_col or 2
    local multi = (type(label_col) == 'table' and #label_col > 1) or o.label_delim ~= nil
    local y_block = o.y_block or (multi and data.MultiCategoryBlock() or data.CategoryBlock(o.vocab))
    local splitter = o.valid_col and data.ColSplitter(o.valid_col) or splitter_for(o)
    local dblock = data.DataBlock {
      blocks = { vision.ImageBlock { cls = o.img_cls }, y_block },
      get_x = data.ColReader(o.fn_col or 1, { pref = pref, suff = o.suff or '' }),
      get_y = data.ColReader(label_col, { label_delim = o.label_delim }),
      splitter = splitter, item_tfms = o.item_tfms, batch_tfms = o.batch_tfms }
    return dblock:dataloaders(df, loader_opts(o, path))
  end

  -- from_csv(path, {csv_fname='labels.csv', header=true, delimiter=',', ...})
  function ImageDataLoaders.from_csv(path, o)
    o = o or {}
    local df = data.read_csv(data.path_join(path, o.csv_fname or 'labels.csv'),
      { header = o.header, sep = o.delimiter })
    return ImageDataLoaders.from_df(df, path, o)
  end

  local SegmentationDataLoaders = {}
  vision.SegmentationDataLoaders = SegmentationDataLoaders

  -- from_label_func(path, fnames, label_func, {valid_pct=0.2, seed=, codes=,
  -- item_tfms=, batch_tfms=, bs=}): label_func maps an image path to its
  -- mask file.
  function SegmentationDataLoaders.from_label_func(path, fnames, label_func, o)
    o = o or {}
    local dblock = data.DataBlock {
      blocks = { vision.ImageBlock { cls = o.img_cls }, vision.MaskBlock(o.codes) },
      splitter = splitter_for(o), get_y = label_func, item_tfms = o.item_tfms, batch_tfms = o.batch_tfms }
    return dblock:dataloaders(fnames, loader_opts(o, path))
  end
end
