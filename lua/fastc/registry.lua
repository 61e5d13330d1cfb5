-- lua/fastc/registry.lua — named constructors and values, so an exported
-- Learner can be rebuilt from a manifest instead of serialised code.
--
--   local cnn = fc.register('fashion_cnn', function(opts) return fc.nn.Sequential{...} end)
--   local model = cnn({c = 10})          -- tagged: fashion_cnn with args {{c = 10}}
--   fc.register_value('F.cross_entropy', fc.F.cross_entropy)
--   fc.build('fashion_cnn', {c = 10})    -- what load_learner does
--
-- Arguments must be plain data (numbers, strings, booleans, tables of them).
-- Also here: flatten/unflatten, which store nested tables of tensors and
-- plain values in a safetensors file (tensors by path, plain values in the
-- metadata).
return function(fc, Tensor, H)
  local fmt = string.format
  local U = fc.train_util
  local constructors, values, names_of = {}, {}, setmetatable({}, { __mode = 'k' })
  fc.registry = { constructors = constructors, values = values }

  local TAG = '__fc_constructor'

  function fc.register(name, fn)
    if type(name) ~= 'string' then error('fc.register: name must be a string', 2) end
    if type(fn) ~= 'function' and not (type(fn) == 'table' and getmetatable(fn) and getmetatable(fn).__call) then
      error(fmt('fc.register(%q): expected a function or callable', name), 2)
    end
    local function build(...)
      local obj = fn(...)
      if type(obj) == 'table' then rawset(obj, TAG, { name = name, args = { ... }, n = select('#', ...) }) end
      return obj
    end
    constructors[name] = build
    return build
  end

  function fc.register_value(name, v)
    if type(name) ~= 'string' then error('fc.register_value: name must be a string', 2) end
    values[name] = v
    names_of[v] = name
    return v
  end

  function fc.build(name, ...)
    local f = constructors[name]
    if not f then error(fmt("fc.build: no constructor registered as '%s' (fc.register it first)", name), 2) end
    return f(...)
  end

  -- How to rebuild v: {constructor = name, args = {...}} or {value = name}, or nil.
  function fc.recipe_of(v)
    if type(v) == 'table' then
      local tag = rawget(v, TAG)
      if tag then return { constructor = tag.name, args = tag.args, n = tag.n } end
    end
    local name = names_of[v]
    if name then return { value = name } end
    return nil
  end

  function fc.from_recipe(r)
    if r.constructor then
      local f = constructors[r.constructor]
      if not f then error(fmt("load_learner: constructor '%s' is not registered in this program", r.constructor), 3) end
      return f(unpack(r.args or {}, 1, r.n or #(r.args or {})))
    end
    if r.value then
      local v = values[r.value]
      if v == nil then error(fmt("load_learner: value '%s' is not registered in this program", r.value), 3) end
      return v
    end
  end

  -- What an exported Learner commonly names: the functional losses and the optimizers.
  for _, name in ipairs({ 'cross_entropy', 'nll_loss', 'mse_loss', 'l1_loss', 'smooth_l1_loss',
    'binary_cross_entropy', 'binary_cross_entropy_with_logits' }) do
    if fc.F and fc.F[name] then fc.register_value('F.' .. name, fc.F[name]) end
  end
  for name, opt in pairs(fc.optim or {}) do
    if type(opt) == 'function' or (type(opt) == 'table' and rawget(opt, 'update')) then
      fc.register_value('optim.' .. name, opt)
    end
  end

  -- Loss objects (fc.losses classes) remember the arguments they were made
  -- with, so an exported Learner can name its loss: 'losses.CrossEntropyLossFlat'.
  local class_names = {}
  for name, cls in pairs(fc.losses or {}) do
    if type(cls) == 'table' and rawget(cls, '__index') and rawget(cls, '__name') then
      class_names[cls] = 'losses.' .. name
      constructors['losses.' .. name] = cls
    end
  end
  for cls in pairs(class_names) do
    local init = rawget(cls, 'init')
    if init then
      rawset(cls, 'init', function(self, ...)
        if rawget(self, TAG) == nil then -- the outermost init: the class actually built
          rawset(self, TAG, { name = class_names[getmetatable(self)], args = { ... }, n = select('#', ...) })
        end
        return init(self, ...)
      end)
    end
  end

  -- ---- nested tables <-> safetensors names and metadata --------------------

  -- Keys become path segments: strings as is, numbers as '#n'.
  local function segment(k)
    if type(k) == 'number' then return '#' .. fmt('%.17g', k) end
    if type(k) ~= 'string' or k:find('/', 1, true) or k:sub(1, 1) == '#' then
      error(fmt('flatten: key %s cannot be stored', tostring(k)), 4)
    end
    return k
  end
  local function unsegment(s)
    if s:sub(1, 1) == '#' then return tonumber(s:sub(2)) end
    return s
  end

  local function encode(v, path)
    local t = type(v)
    if t == 'number' then return 'n:' .. fmt('%.17g', v) end
    if t == 'boolean' then return v and 'b:1' or 'b:0' end
    if t == 'string' then return 's:' .. v end
    error(fmt('flatten: %s holds a %s, which cannot be stored', path, t), 4)
  end
  local function decode(s)
    local kind, rest = s:sub(1, 1), s:sub(3)
    if kind == 'n' then return tonumber(rest) end
    if kind == 'b' then return rest == '1' end
    if kind == 's' then return rest end
    if kind == 'e' then return {} end
    error('unflatten: bad metadata value ' .. s, 3)
  end

  -- flatten(tbl, prefix, tensors, meta): tensors[prefix..path] = tensor,
  -- meta[prefix..path] = encoded plain value.
  function U.flatten(tbl, prefix, tensors, meta)
    local function walk(v, path)
      if H.is_tensor(v) then tensors[path] = v
      elseif type(v) == 'table' then
        if next(v) == nil then meta[path] = 'e:' end
        for k, x in pairs(v) do walk(x, path .. '/' .. segment(k)) end
      else meta[path] = encode(v, path) end
    end
    for k, x in pairs(tbl) do walk(x, prefix .. segment(k)) end
    return tensors, meta
  end

  -- The inverse, over the names starting with prefix.
  function U.unflatten(prefix, tensors, meta)
    local root = {}
    local function put(name, v)
      local rest = name:sub(#prefix + 1)
      local node, parts = root, {}
      for seg in rest:gmatch('[^/]+') do parts[#parts + 1] = unsegment(seg) end
      for i = 1, #parts - 1 do
        node[parts[i]] = node[parts[i]] or {}
        node = node[parts[i]]
      end
      node[parts[#parts]] = v
    end
    for name, t in pairs(tensors) do
      if name:sub(1, #prefix) == prefix then put(name, t) end
    end
    for name, s in pairs(meta) do
      if name:sub(1, #prefix) == prefix then put(name, decode(s)) end
    end
    return root
  end
end
