-- lua/fastc/vision/models/init.lua — fc.vision.models: the architectures
-- (resnet18/34/50/101/152 and mobilenet_v2 laid out like torchvision,
-- xresnet18/34/50/101/152 as fastai's), their metadata and weight files.
--
--   local m = fc.vision.models.resnet18{num_classes = 10}
--   fc.vision.models.load_weights(m, 'resnet18.safetensors')
--
-- Architectures are functions of an options table that return a module;
-- each is registered by name with its metadata: `cut` (where create_body
-- cuts: a negative count of children dropped from the end, or a function
-- of the model), `split` (a function of the Learner's Sequential{body,
-- head} giving parameter groups), `stats` (the normalisation the weights
-- expect) and `classifier` (the state-dict name of the last layer's
-- weight, whose first size is the number of classes in a weight file).
--
-- State-dict names: fastc's Sequential children are named '1', '2', ...
-- where PyTorch's are '0', '1', ... Every other name is the same, so a
-- torchvision key maps to ours by adding one to each all-digit segment
-- (layer1.0.downsample.0.weight -> layer1.1.downsample.1.weight):
-- models.torchvision_keys(sd) does that, to_torchvision_keys the reverse.
-- tools/convert_torchvision.py writes files with our names already.
return function(fc)
  local nn, F = fc.nn, fc.F
  local fmt = string.format
  local vision = fc.vision
  local models = vision.models or {}
  vision.models = models

  local archs, metas, name_of = {}, {}, setmetatable({}, { __mode = 'k' })
  models.archs, models.metas = archs, metas

  -- register_arch(name, fn, meta): models[name] = fn, found by name or by fn.
  function models.register_arch(name, fn, meta)
    if type(name) ~= 'string' or type(fn) ~= 'function' then
      error('register_arch: expects a name and a function(opts) -> module', 2)
    end
    archs[name], metas[name], name_of[fn], models[name] = fn, meta or models.default_meta, name, fn
    return fn
  end

  -- The registered name of an architecture (a name or a registered function), or nil.
  function models.arch_name(arch)
    if type(arch) == 'string' then return archs[arch] and arch or nil end
    return name_of[arch]
  end

  -- The architecture function for a name or function.
  function models.arch_fn(arch)
    if type(arch) == 'string' then
      local fn = archs[arch]
      if not fn then
        local names = {}
        for k in pairs(archs) do names[#names + 1] = k end
        table.sort(names)
        error(fmt("unknown architecture '%s' (known: %s)", arch, table.concat(names, ', ')), 3)
      end
      return fn
    end
    if type(arch) ~= 'function' then error('arch must be a registered name or a function(opts) -> module', 3) end
    return arch
  end

  function models.meta_of(arch)
    local name = models.arch_name(arch)
    return name and metas[name] or models.default_meta
  end

  -- ---- parameter groups -----------------------------------------------------------

  -- The parameters of a list of modules, in order, each once.
  local function params_of(mods)
    local out, seen = {}, {}
    for _, m in ipairs(mods) do
      for _, p in ipairs(m:parameters()) do
        if not seen[p] then
          seen[p] = true
          out[#out + 1] = p
        end
      end
    end
    return out
  end
  models.params_of = params_of

  -- Children i..j (1-based, inclusive; j defaults to the last) of a Sequential.
  local function kids(seq, i, j)
    local all = seq:children()
    local out = {}
    for k = i, j or #all do out[#out + 1] = all[k] end
    return out
  end
  models.children_range = kids

  -- fastai's default_split: the body, then the rest.
  local function default_split(m) return { params_of({ m[1] }), params_of(kids(m, 2)) } end
  models.default_split = default_split
  -- The body's first n children, the rest of the body, then the head.
  local function body_split(n)
    return function(m) return { params_of(kids(m[1], 1, n)), params_of(kids(m[1], n + 1)), params_of(kids(m, 2)) } end
  end
  local imagenet_stats = fc.data.imagenet_stats

  local xresnet_split, resnet_split, mobilenet_split = body_split(3), body_split(6), body_split(7)
  -- registered, so an exported Learner names its splitter
  fc.register_value('vision.default_split', default_split)
  fc.register_value('vision.xresnet_split', xresnet_split)
  fc.register_value('vision.resnet_split', resnet_split)
  fc.register_value('vision.mobilenet_split', mobilenet_split)

  models.default_meta = { cut = nil, split = default_split }
  models.resnet_meta = { cut = -2, split = resnet_split, stats = imagenet_stats, classifier = 'fc.weight' }
  models.xresnet_meta = { cut = -4, split = xresnet_split, stats = imagenet_stats, classifier = '12.weight' }
  -- fastai has no MobileNet metadata; ours cuts to `features` (19 blocks,
  -- so DynamicUnet finds its size changes) and splits it at 1/8 scale.
  models.mobilenet_meta = { cut = function(m) return m.features end, split = mobilenet_split, stats = imagenet_stats,
    classifier = 'classifier.2.weight' }

  -- ---- fused BN + ReLU --------------------------------------------------------------

  local function has_hooks(m) return m and #rawget(m, '_hooks') > 0 end

  -- relu(bn(x)) in one pass for a plain BatchNorm2d (BatchNorm2d's forward
  -- with the fused kernel); a module with hooks goes the long way so
  -- the hooks still see each layer.
  function models.bn_relu(bn, x, relu)
    if getmetatable(bn) ~= nn.BatchNorm2d or has_hooks(bn) or has_hooks(relu) then
      local y = bn(x)
      if relu then return relu(y) end
      return y:relu()
    end
    local momentum = bn.momentum or 0
    local rm = bn.running_mean
    if bn.training and rm then
      local n = bn.num_batches_tracked
      if n then
        fc.no_grad(function() n:add_(1) end)
        if not bn.momentum then momentum = 1 / n:item() end
      end
    end
    return F.batch_norm(x, rm, bn.running_var, { weight = bn.weight, bias = bn.bias,
      training = bn.training or not rm, momentum = momentum, eps = bn.eps, act = 'relu' })
  end

  -- ---- state-dict names and weight files ---------------------------------------------

  local function map_keys(sd, delta)
    local out = {}
    for k, v in pairs(sd) do
      local parts = {}
      for seg in k:gmatch('[^.]+') do
        if seg:match('^%d+$') then seg = tostring(tonumber(seg) + delta) end
        parts[#parts + 1] = seg
      end
      out[table.concat(parts, '.')] = v
    end
    return out
  end
  -- torchvision's names (0-based positions) -> ours (1-based).
  function models.torchvision_keys(sd) return map_keys(sd, 1) end
  -- ours -> torchvision's.
  function models.to_torchvision_keys(sd) return map_keys(sd, -1) end

  local function same_keys(a, b)
    for k in pairs(a) do if b[k] == nil then return false end end
    for k in pairs(b) do if a[k] == nil then return false end end
    return true
  end

  -- A weight file (or a state-dict table) with our names: files written
  -- with torchvision's 0-based names are recognised (when theirs do not
  -- match the model and the mapped ones do) and renamed.
  function models.read_weights(src, model)
    local sd = src
    if type(src) == 'string' then
      local f = io.open(src, 'rb')
      if not f then error(fmt('pretrained: no weight file %s', src), 3) end
      f:close()
      sd = fc.load(src)
    end
    if model then
      local own = model:state_dict()
      if not same_keys(sd, own) then
        local mapped = models.torchvision_keys(sd)
        if same_keys(mapped, own) then sd = mapped end
      end
    end
    return sd
  end

  -- load_weights(model, path_or_sd, {strict = true}): read_weights then
  -- load_state_dict.
  function models.load_weights(model, src, o)
    local sd = models.read_weights(src, model)
    return model:load_state_dict(sd, { strict = not (o and o.strict == false) })
  end

  for _, file in ipairs { 'resnet', 'xresnet', 'mobilenet', 'unet' } do
    require('fastc.vision.models.' .. file)(fc)
  end
  return models
end
