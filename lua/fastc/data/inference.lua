-- lua/fastc/data/inference.lua — what an exported Learner keeps of its
-- data pipeline, so that after fc.load_learner `learn:predict('cat.jpg')`
-- opens, resizes and normalises the file as validation did (fastai keeps
-- the whole pickled DataLoaders for this; fastc keeps plain data).
--
-- A transform class opts in with data.exportable(cls, args_of): args_of(t)
-- returns the constructor arguments that rebuild t's validation behaviour
-- (plain numbers, strings, booleans and tables of them), or false when t
-- does nothing outside training. Transforms limited to training
-- (split_idx == 1) are dropped without asking.
--
--   local spec = dls:inference_spec()      -- nil, why: when a step cannot be kept
--   local dls2 = fc.data.DataLoaders.for_inference(spec, {vocab = ..., c = ...})
--   dls2:test_dl({'a.jpg', 'b.png'})       -- ImageCreate, item tfms, batch tfms
return function(fc)
  local data = fc.data
  local fmt = string.format
  local exportable = {}

  function data.exportable(cls, args_of)
    exportable[cls.__name] = { cls = cls, args_of = args_of }
  end

  local function is_plain(v, depth)
    local t = type(v)
    if t == 'number' or t == 'string' or t == 'boolean' then return true end
    if t ~= 'table' or getmetatable(v) ~= nil or depth > 8 then return false end
    for k, x in pairs(v) do
      if not (type(k) == 'number' or type(k) == 'string') or not is_plain(x, depth + 1) then return false end
    end
    return true
  end

  -- {class = name, args = {...}}, false (nothing to do at inference), or
  -- nil and the reason.
  local function spec_of(t)
    if t.split_idx == 1 then return false end
    local mt = getmetatable(t)
    local e = mt and exportable[mt.__name]
    if not e or e.cls ~= mt then
      return nil, fmt('the transform %s has no export rule (data.exportable)', tostring(t))
    end
    local args = e.args_of(t)
    if args == false then return false end
    if args == nil then return nil, fmt('the transform %s was never set up', tostring(t)) end
    if not is_plain(args, 0) then return nil, fmt('the transform %s has arguments that are not plain data', tostring(t)) end
    return { class = mt.__name, args = args }
  end
  data.transform_spec = spec_of

  local function specs_of(list, skip_getters)
    local out = {}
    for _, t in ipairs(list) do
      if not (skip_getters and rawget(t, 'is_getter')) then
        local s, why = spec_of(t)
        if s == nil then return nil, why end
        if s then out[#out + 1] = s end
      end
    end
    return out
  end

  function data.transform_from_spec(s)
    local e = exportable[s.class]
    if not e then error(fmt("load_learner: the transform '%s' is not known to this program", tostring(s.class)), 3) end
    local args = s.args or {}
    return e.cls(unpack(args, 1, table.maxn(args)))
  end

  local function rebuild(specs)
    local out = {}
    for i, s in ipairs(specs or {}) do out[i] = data.transform_from_spec(s) end
    return out
  end

  -- The validation loader's input pipelines (getters left out: predict
  -- takes what the block creates from, a file path or an image tensor),
  -- item and batch transforms. nil and a reason when one cannot be kept.
  function data.DataLoaders:inference_spec()
    local dl = self.valid or self.train
    local ds = dl and dl.dataset
    if getmetatable(dl) ~= data.DataLoader or not (ds and ds.tls) then
      return nil, 'the loaders are not built from Datasets'
    end
    local spec = { n_inp = ds.n_inp, x = {}, bs = dl.bs }
    for j = 1, ds.n_inp do
      local s, why = specs_of(ds.tls[j].tfms.fs, true)
      if not s then return nil, why end
      spec.x[j] = s
    end
    local why
    spec.after_item, why = specs_of(dl.after_item.fs)
    if not spec.after_item then return nil, why end
    spec.after_batch, why = specs_of(dl.after_batch.fs)
    if not spec.after_batch then return nil, why end
    return spec
  end

  -- DataLoaders for an exported Learner: no items, but test_dl(items)
  -- builds a validation-style loader from the kept pipeline.
  function data.DataLoaders.for_inference(spec, o)
    local dls = data.DataLoaders(nil, nil, o)
    dls.inference = spec
    return dls
  end

  function data.DataLoaders:_inference_dl(items, o)
    local spec = self.inference
    local tls = {}
    for j = 1, spec.n_inp do
      tls[j] = data.TfmdLists(items, rebuild(spec.x[j]), { split_idx = 2, do_setup = false })
    end
    local ds = data.Datasets(nil, nil, { tls = tls, n_inp = spec.n_inp, split_idx = 2 })
    return data.DataLoader(ds, { bs = o.bs or spec.bs or 64, split_idx = 2, after_item = rebuild(spec.after_item),
      after_batch = rebuild(spec.after_batch) })
  end

  -- ---- the built-in transforms' rules ---------------------------------------------

  local vision = fc.vision
  local function list_of(t) return t:reshape(-1):totable() end
  local function size_of(t) return { t.size[1], t.size[2] } end
  local rules = {
    [data.ToTensor] = function() return {} end,
    [data.IntToFloatTensor] = function(t) return { { div = t.div, div_mask = t.div_mask } } end,
    [data.Normalize] = function(t)
      if not t.mean then return nil end -- never set up: nothing to keep
      return { list_of(t.mean), list_of(t.std), { axes = t.axes } }
    end,
    [vision.ImageCreate] = function(t) return { { channels = t.channels, kind = t.c_kind, name = t.name } } end,
    [vision.AddMaskCodes] = function(t) return { t.codes } end,
    [vision.Resize] = function(t) return { size_of(t), { method = t.method, pad_mode = t.pad_mode } } end,
    [vision.RandomResizedCrop] = function(t)
      return { size_of(t), { min_scale = t.min_scale, max_scale = t.max_scale, ratio = t.ratio, val_xtra = t.val_xtra } }
    end,
    [vision.CropPad] = function(t) return { size_of(t), { pad_mode = t.pad_mode } } end,
    [vision.RandomCrop] = function(t) return { size_of(t), { pad_mode = t.pad_mode } } end,
    -- outside training an affine transform only resizes to its size
    [vision.AffineCoordTfm] = function(t)
      return { { size = t.size and size_of(t), mode = t.mode, mode_mask = t.mode_mask, pad_mode = t.pad_mode,
        align_corners = t.align_corners, name = 'Resize' } }
    end,
    [vision.RandomResizedCropGPU] = function(t)
      return { size_of(t), { min_scale = t.min_scale, ratio = t.ratio, mode = t.mode, valid_scale = t.valid_scale } }
    end,
  }
  for cls, args_of in pairs(rules) do data.exportable(cls, args_of) end
end
