-- lua/fastc/vision/learner.lua — fastai's vision/learner.py: cut a
-- (pretrained) architecture to its body, add a head, and make a Learner.
--
--   local learn = fc.vision.vision_learner(dls, 'resnet34', {pretrained = 'resnet34.safetensors',
--     metrics = fc.error_rate})
--   learn:fine_tune(1)
--   local seg = fc.vision.unet_learner(mask_dls, 'resnet18', {metrics = {fc.foreground_acc, fc.Dice()}})
--
-- `pretrained` is a safetensors file (tools/convert_torchvision.py writes
-- one from torchvision), a state-dict table, true (the file
-- <arch>.safetensors in $FASTC_WEIGHTS or ~/.cache/fastc/weights), or
-- false (random weights; the default, since nothing is downloaded here).
return function(fc)
  local nn, layers, vision = fc.nn, fc.layers, fc.vision
  local models = vision.models
  local fmt = string.format

  -- ---- create_body -----------------------------------------------------------------

  local function is_pool_type(m) return m:class_name():match('Pool[123]d$') ~= nil end
  local function has_pool_type(m)
    if is_pool_type(m) then return true end
    for _, c in ipairs(m:children()) do if has_pool_type(c) then return true end end
    return false
  end
  vision.has_pool_type = has_pool_type

  -- The weight file `pretrained = true` means for an architecture.
  function vision.default_weights(name)
    local dir = os.getenv('FASTC_WEIGHTS') or ((os.getenv('HOME') or '.') .. '/.cache/fastc/weights')
    return dir .. '/' .. tostring(name) .. '.safetensors'
  end

  -- The weights `pretrained` names (nil for none), as a state dict.
  local function pretrained_sd(arch, pretrained)
    if not pretrained then return nil end
    if type(pretrained) == 'table' then return pretrained end
    local path = pretrained
    if pretrained == true then
      local name = models.arch_name(arch)
      path = vision.default_weights(name)
      local f = io.open(path, 'rb')
      if not f then
        error(fmt('pretrained = true: no weight file %s (nothing is downloaded; write one with ' ..
          'tools/convert_torchvision.py, or pass pretrained = path)', path), 4)
      end
      f:close()
    end
    return models.read_weights(path)
  end

  -- The architecture's model with the pretrained weights loaded (its
  -- class count taken from the file's classifier).
  function vision.build_arch(arch, pretrained, o)
    local fn, meta = models.arch_fn(arch), models.meta_of(arch)
    local sd = pretrained_sd(arch, pretrained)
    local n = (o and o.num_classes) or 1000
    if sd and meta.classifier and sd[meta.classifier] then n = sd[meta.classifier]:size(1) end
    if sd and meta.classifier and not sd[meta.classifier] then
      local mapped = models.torchvision_keys(sd)
      if mapped[meta.classifier] then n = mapped[meta.classifier]:size(1) end
    end
    local model = fn({ num_classes = n, n_out = n })
    if sd then models.load_weights(model, sd) end
    return model
  end

  -- The module holding the first parameter, its parent and its name there.
  local function first_layer(model)
    local name = model:named_parameters()[1][1]
    local parts = {}
    for seg in name:gmatch('[^.]+') do parts[#parts + 1] = seg end
    local parent, child, key = nil, model, nil
    for i = 1, #parts - 1 do
      parent, key = child, parts[i]
      child = rawget(child, '_modules')[key]
    end
    return child, parent, key
  end

  -- fastai's _update_first_layer: a first Conv2d for n_in channels; with
  -- pretrained weights, 1 channel sums the RGB kernels, 2 take the first two
  -- times 1.5, more keep RGB in the first three and zeros after.
  function vision.update_first_layer(model, n_in, pretrained)
    if n_in == 3 or n_in == nil then return model end
    local conv, parent, key = first_layer(model)
    if not conv:is_a(nn.Conv2d) then
      error(fmt('n_in: changing the input channels needs a Conv2d first layer, found %s', conv:class_name()), 3)
    end
    if conv.in_channels ~= 3 then
      error(fmt('n_in: expected a first layer with 3 input channels, found %d', conv.in_channels), 3)
    end
    local new = nn.Conv2d(n_in, conv.out_channels, conv.kernel_size, { stride = conv.stride, padding = conv.padding,
      dilation = conv.dilation, groups = conv.groups, bias = conv.bias ~= nil })
    if pretrained then
      fc.no_grad(function()
        local w = conv.weight
        if n_in == 1 then new.weight:copy_(w:sum(2, true))
        elseif n_in == 2 then new.weight:copy_(w:narrow(2, 1, 2) * 1.5)
        else
          new.weight:fill_(0)
          new.weight:narrow(2, 1, 3):copy_(w)
        end
        if conv.bias then new.bias:copy_(conv.bias) end
      end)
    end
    if parent == nil then error('n_in: the model itself is the first layer', 3) end
    parent[key] = new
    return model
  end

  -- cut_model(model, cut): a number keeps that many children (negative:
  -- drops that many from the end, as Python's [:cut]); a function gets the model.
  function vision.cut_model(model, cut)
    if type(cut) == 'function' then return cut(model) end
    if type(cut) ~= 'number' then error('cut must be a number or a function', 3) end
    local kids = model:children()
    local n = cut < 0 and #kids + cut or cut
    return nn.Sequential(models.children_range(model, 1, n))
  end

  -- create_body(arch_or_model, {n_in = 3, pretrained = false, cut}): the
  -- model (built from the architecture, with its pretrained weights) cut
  -- before its pooling layer (or at the metadata's/given cut).
  function vision.create_body(arch, o)
    o = o or {}
    local model, meta
    if nn.is_module(arch) then model, meta = arch, models.default_meta
    else model, meta = vision.build_arch(arch, o.pretrained), models.meta_of(arch) end
    vision.update_first_layer(model, o.n_in or 3, o.pretrained)
    local cut = o.cut
    if cut == nil then cut = meta.cut end
    if cut == nil then
      local kids = model:children()
      for i = #kids, 1, -1 do
        if has_pool_type(kids[i]) then cut = i - 1 break end
      end
      if cut == nil then error('create_body: no pooling layer to cut at; pass cut', 2) end
    end
    return vision.cut_model(model, cut)
  end

  -- ---- create_head ------------------------------------------------------------------

  -- create_head(nf, n_out, {lin_ftrs, ps = 0.5, pool = true, concat_pool =
  -- true, first_bn = true, bn_final = false, lin_first = false, y_range}):
  -- pool (max and average side by side) -> Flatten -> BatchNorm1d, Dropout,
  -- Linear per step of nf -> lin_ftrs... -> n_out, ReLU between; dropout
  -- ps/2 before the hidden layers and ps before the last.
  function vision.create_head(nf, n_out, o)
    o = o or {}
    local pool = o.pool ~= false
    local concat = o.concat_pool ~= false
    if pool and concat then nf = nf * 2 end
    local ftrs = { nf }
    for _, v in ipairs(o.lin_ftrs or { 512 }) do ftrs[#ftrs + 1] = v end
    ftrs[#ftrs + 1] = n_out
    local bns = { o.first_bn ~= false }
    for i = 2, #ftrs - 1 do bns[i] = true end
    local ps = o.ps == nil and 0.5 or o.ps
    if type(ps) == 'number' then
      local list = {}
      for i = 1, #ftrs - 2 do list[i] = ps / 2 end
      list[#list + 1] = ps
      ps = list
    else
      local copy = {}
      for i, v in ipairs(ps) do copy[i] = v end
      ps = copy
    end
    local list = {}
    if pool then
      list[1] = concat and nn.AdaptiveConcatPool2d() or nn.AdaptiveAvgPool2d(1)
      list[2] = nn.Flatten()
    end
    if o.lin_first then list[#list + 1] = nn.Dropout(table.remove(ps, 1)) end
    -- as fastai's zip: as many blocks as there are dropout values left
    for i = 1, math.min(#ftrs - 1, #ps) do
      local act = i < #ftrs - 1 and nn.ReLU() or nil
      for _, m in ipairs(layers.lin_bn_drop(ftrs[i], ftrs[i + 1], { bn = bns[i], p = ps[i], act = act,
        lin_first = o.lin_first })) do
        list[#list + 1] = m
      end
    end
    if o.lin_first then list[#list + 1] = nn.Linear(ftrs[#ftrs - 1], n_out) end
    if o.bn_final then list[#list + 1] = nn.BatchNorm1d(ftrs[#ftrs], { momentum = 0.01 }) end
    if o.y_range then list[#list + 1] = layers.SigmoidRange(o.y_range[1], o.y_range[2]) end
    return nn.Sequential(list)
  end

  -- fastai's num_features_model: the channels out of m on a dummy image
  -- (32 pixels, doubled until the model accepts it).
  function vision.num_features_model(m)
    local sz, last = 32, nil
    while sz <= 2048 do
      local ok, out = pcall(models.dummy_eval, m, { sz, sz })
      if ok then return out:size(2) end
      last, sz = out, sz * 2
    end
    error(last, 0)
  end

  -- ---- create_vision_model ----------------------------------------------------------

  local MODEL_OPTS = { pretrained = true, cut = true, n_in = true, init = true, custom_head = true, concat_pool = true,
    pool = true, lin_ftrs = true, ps = true, first_bn = true, bn_final = true, lin_first = true, y_range = true }
  local UNET_OPTS = { pretrained = true, cut = true, n_in = true, init = true, last_cross = true, bottle = true,
    y_range = true, act_cls = true, blur = true, self_attention = true, img_size = true }

  -- create_vision_model(arch, n_out, {pretrained, cut, n_in = 3, init =
  -- kaiming_normal_ (false: none), custom_head, ...create_head's options}):
  -- Sequential{body, head}.
  function vision.create_vision_model(arch, n_out, o)
    o = o or {}
    for k in pairs(o) do
      if not MODEL_OPTS[k] then error(fmt('create_vision_model: unknown option %q', tostring(k)), 2) end
    end
    local body = vision.create_body(arch, { n_in = o.n_in, pretrained = o.pretrained, cut = o.cut })
    local head = o.custom_head
    if head == nil then
      head = vision.create_head(vision.num_features_model(body), n_out, o)
    end
    body:train()
    local model = nn.Sequential { body, head }
    if o.init ~= false then layers.apply_init(head, o.init or nil) end
    return model
  end

  -- create_unet_model(arch, n_out, img_size, {pretrained, cut, n_in,
  -- ...DynamicUnet's options})
  function vision.create_unet_model(arch, n_out, img_size, o)
    o = o or {}
    for k in pairs(o) do
      if not UNET_OPTS[k] then error(fmt('create_unet_model: unknown option %q', tostring(k)), 2) end
    end
    local body = vision.create_body(arch, { n_in = o.n_in, pretrained = o.pretrained, cut = o.cut })
    return models.DynamicUnet(body, n_out, img_size, { last_cross = o.last_cross, bottle = o.bottle,
      y_range = o.y_range, act_cls = o.act_cls, init = o.init, blur = o.blur, self_attention = o.self_attention })
  end

  -- ---- registered builders (so learn:export / fc.load_learner can rebuild) ------

  local function plain(v)
    local t = type(v)
    if t == 'number' or t == 'string' or t == 'boolean' or t == 'nil' then return true end
    if t ~= 'table' or getmetatable(v) ~= nil then return false end
    for k, x in pairs(v) do
      if not plain(k) or not plain(x) then return false end
    end
    return true
  end

  local function without_pretrained(o)
    local r = {}
    for k, v in pairs(o) do if k ~= 'pretrained' then r[k] = v end end
    return r
  end

  local build_vision = fc.register('vision.create_vision_model', function(arch, n_out, o)
    return vision.create_vision_model(arch, n_out, o)
  end)
  local build_unet = fc.register('vision.create_unet_model', function(arch, n_out, img_size, o)
    return vision.create_unet_model(arch, n_out, img_size, o)
  end)

  -- The model from `make`; when the architecture has a name and the options
  -- are plain data, it comes from the registered builder (with random
  -- weights, then the pretrained ones copied in) so export can name it.
  local function tagged(arch, o, make, registered, ...)
    local name = models.arch_name(arch)
    local rest = without_pretrained(o)
    if not (name and plain(rest)) then return make() end
    if not o.pretrained then return registered(name, ...) end
    local model = make()
    local shell = registered(name, ...)
    shell:load_state_dict(model:state_dict())
    return shell
  end

  function vision.vision_model(arch, n_out, o)
    return tagged(arch, o, function() return vision.create_vision_model(arch, n_out, o) end, build_vision, n_out,
      without_pretrained(o))
  end
  function vision.unet_model(arch, n_out, img_size, o)
    return tagged(arch, o, function() return vision.create_unet_model(arch, n_out, img_size, o) end, build_unet,
      n_out, img_size, without_pretrained(o))
  end

  -- ---- learners ----------------------------------------------------------------------

  local LEARNER_OPTS = { loss_func = true, opt_func = true, lr = true, splitter = true, cbs = true, metrics = true,
    path = true, model_dir = true, wd = true, wd_bn_bias = true, train_bn = true, moms = true }

  local function split_opts(o, model_opts, what)
    local lo, mo = {}, {}
    for k, v in pairs(o) do
      if LEARNER_OPTS[k] then lo[k] = v
      elseif model_opts[k] then mo[k] = v
      elseif k ~= 'normalize' and k ~= 'n_out' then error(fmt('%s: unknown option %q', what, tostring(k)), 3) end
    end
    return lo, mo
  end

  -- Every loader's after_batch Pipeline (none for loaders without one).
  local function batch_pipelines(dls)
    local out = {}
    for _, dl in ipairs(dls.loaders or {}) do
      local p = type(dl) == 'table' and rawget(dl, 'after_batch')
      if type(p) == 'table' and p.fs then out[#out + 1] = p end
    end
    return out
  end

  -- fastai's _add_norm: with pretrained weights, the architecture's stats as
  -- a Normalize batch transform, unless the loaders already normalise.
  function vision.add_norm(dls, meta, pretrained, n_in)
    if not pretrained or not meta.stats then return false end
    if (n_in or 3) ~= #meta.stats[1] then return false end
    local pipes = batch_pipelines(dls)
    for _, p in ipairs(pipes) do
      for _, t in ipairs(p.fs) do
        if type(t) == 'table' and t.is_a and t:is_a(fc.data.Normalize) then return false end
      end
    end
    if #pipes == 0 then return false end
    local norm = fc.data.Normalize.from_stats(meta.stats[1], meta.stats[2])
    for _, p in ipairs(pipes) do p:add(norm) end
    return true
  end

  local function n_out_of(dls, o, what)
    local n = o.n_out or (dls and dls.c)
    if not n then
      error(fmt('%s: n_out is not given and the data has no c (number of classes); pass n_out', what), 3)
    end
    return n
  end

  -- The data's flat loss in a form learn:export can name. Until loss
  -- objects record how they were made (the Learner's registry does that
  -- once it knows fc.losses classes), the data layer's CrossEntropyLossFlat
  -- and BCEWithLogitsLossFlat are rebuilt through a registered constructor
  -- from the only options the data layer sets (axis, thresh).
  local flat_loss = fc.register('vision.flat_loss', function(name, o) return fc.losses[name](o) end)
  local function exportable_loss(lf)
    if lf == nil or fc.recipe_of(lf) ~= nil or not fc.losses then return lf end
    for _, name in ipairs { 'CrossEntropyLossFlat', 'BCEWithLogitsLossFlat' } do
      if fc.losses[name] and getmetatable(lf) == fc.losses[name] then
        return flat_loss(name, { axis = lf.axis, thresh = name == 'BCEWithLogitsLossFlat' and lf.thresh or nil })
      end
    end
    return lf
  end

  local function make_learner(dls, model, lo)
    if lo.loss_func == nil and dls then lo.loss_func = exportable_loss(dls.loss_func) end
    return fc.Learner(dls, model, lo)
  end

  local function finish(learn, arch, o, meta, n_out)
    learn.arch, learn.normalize, learn.n_out = models.arch_name(arch) or arch, o.normalize ~= false, n_out
    learn.pretrained = o.pretrained or false
    if o.pretrained then learn:freeze() end
    return learn
  end

  -- vision_learner(dls, arch, {pretrained = false, n_out = dls.c, normalize =
  -- true, n_in = 3, cut, init, custom_head, lin_ftrs, ps, concat_pool, pool,
  -- first_bn, bn_final, lin_first, y_range, ...Learner's options}): the
  -- body frozen when pretrained, the arch's Normalize added to the data,
  -- parameter groups from the arch's split.
  function vision.vision_learner(dls, arch, o)
    o = o or {}
    local lo, mo = split_opts(o, MODEL_OPTS, 'vision_learner')
    local n_out = n_out_of(dls, o, 'vision_learner')
    local meta = models.meta_of(arch)
    if o.normalize ~= false then vision.add_norm(dls, meta, o.pretrained, o.n_in) end
    local model = vision.vision_model(arch, n_out, mo)
    lo.splitter = lo.splitter or meta.split
    return finish(make_learner(dls, model, lo), arch, o, meta, n_out)
  end
  vision.cnn_learner = vision.vision_learner

  -- unet_learner(dls, arch, {pretrained = false, n_out = dls.c, normalize =
  -- true, n_in = 3, cut, last_cross, bottle, y_range, img_size, ...Learner's
  -- options}): a DynamicUnet on the arch's body, sized from one batch.
  function vision.unet_learner(dls, arch, o)
    o = o or {}
    local lo, mo = split_opts(o, UNET_OPTS, 'unet_learner')
    local n_out = n_out_of(dls, o, 'unet_learner')
    local meta = models.meta_of(arch)
    if o.normalize ~= false then vision.add_norm(dls, meta, o.pretrained, o.n_in) end
    local img_size = mo.img_size
    mo.img_size = nil
    if not img_size then
      local x = dls.train:one_batch()
      img_size = { x:size(-2), x:size(-1) }
    end
    local model = vision.unet_model(arch, n_out, img_size, mo)
    lo.splitter = lo.splitter or meta.split
    return finish(make_learner(dls, model, lo), arch, o, meta, n_out)
  end

  -- ---- metrics --------------------------------------------------------------------------

  -- foreground_acc(pred, targ, {bkg_idx = 1, axis = 2}): pixel accuracy
  -- over the pixels whose target is not the background class (class ids
  -- count from 1, so the background of codes {'bg', ...} is 1).
  local function foreground_acc(inp, targ, bkg_idx, axis)
    bkg_idx, axis = bkg_idx or 1, axis or 2
    if targ:dim() == inp:dim() then targ = targ:squeeze(axis) end
    local mask = targ:ne(bkg_idx)
    local n = mask:sum():item()
    if n == 0 then return fc.tensor(0 / 0) end
    local hit = inp:argmax(axis):eq(targ):logical_and(mask)
    return fc.tensor(hit:sum():item() / n)
  end
  fc.metrics.foreground_acc = fc.metrics.set_name(foreground_acc, 'foreground_acc')
  if fc.foreground_acc == nil then fc.foreground_acc = foreground_acc end

  for _, k in ipairs { 'vision_learner', 'cnn_learner', 'unet_learner', 'create_body', 'create_head',
    'create_vision_model', 'create_unet_model' } do
    if fc[k] == nil then fc[k] = vision[k] end
  end
end
