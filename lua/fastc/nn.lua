-- lua/fastc/nn.lua — fc.nn: Module, containers, layers and fc.nn.init.
--
-- A Module registers parameters (tensors that require grad), buffers
-- (register_buffer) and child modules by plain assignment:
--
--   local Net = fc.nn.Module:extend('Net')
--   function Net:init()
--     fc.nn.Module.init(self)
--     self.fc1 = fc.nn.Linear(784, 256)
--     self.fc2 = fc.nn.Linear(256, 10)
--   end
--   function Net:forward(x) return self.fc2(self.fc1(x):relu()) end
return function(fc, Tensor, H)
  local class = require 'fastc.class'
  local raise, fmt, sqrt = H.raise, string.format, math.sqrt
  local nn = { init = {} }
  fc.nn = nn
  fc.class = class
  local F = fc.F or {}
  fc.F = F

  -- ---- Module ----------------------------------------------------------------

  local Module = class('Module')
  nn.Module = Module

  function Module:init()
    rawset(self, '_parameters', {})
    rawset(self, '_buffers', {})
    rawset(self, '_modules', {})
    rawset(self, '_order', {}) -- registration order, for stable iteration
    rawset(self, '_hooks', {})
    rawset(self, 'training', true)
  end

  local function registry(self, k)
    local p = rawget(self, '_parameters')
    if not p then raise(fmt('%s: call fc.nn.Module.init(self) in init before assigning fields', self:class_name())) end
    return p[k] or rawget(self, '_buffers')[k] or rawget(self, '_modules')[k]
  end

  Module.__index = function(self, k)
    local cls = getmetatable(self)
    local v = cls[k]
    if v ~= nil then return v end
    if rawget(self, '_parameters') then return registry(self, k) end
  end

  local function is_module(v) return type(v) == 'table' and Module.is_a(v, Module) end
  nn.is_module = is_module

  local function remember(self, k)
    local order = rawget(self, '_order')
    for _, name in ipairs(order) do if name == k then return end end
    order[#order + 1] = k
  end

  Module.__newindex = function(self, k, v)
    local params, buffers, mods = rawget(self, '_parameters'), rawget(self, '_buffers'), rawget(self, '_modules')
    if not params then raise(fmt('%s: call fc.nn.Module.init(self) before assigning %s', self:class_name(), tostring(k))) end
    if H.is_tensor(v) and v.requires_grad then
      params[k], buffers[k], mods[k] = v, nil, nil
      remember(self, k)
    elseif is_module(v) then
      mods[k], params[k], buffers[k] = v, nil, nil
      remember(self, k)
    elseif buffers[k] ~= nil and (H.is_tensor(v) or v == nil) then
      buffers[k] = v
    else
      params[k], mods[k] = nil, nil
      rawset(self, k, v)
    end
  end

  function Module:register_buffer(name, t)
    rawget(self, '_buffers')[name] = t
    remember(self, name)
  end

  function Module:forward()
    raise(fmt('%s has no forward method', self:class_name()))
  end

  -- m(x) runs forward and then the forward hooks: hook(module, inputs, output)
  -- may return a replacement output.
  Module.__call = function(self, ...)
    local out, extra = self:forward(...) -- extra: e.g. a pool's indices
    for _, hook in ipairs(rawget(self, '_hooks')) do
      local r = hook(self, { ... }, out)
      if r ~= nil then out = r end
    end
    return out, extra
  end

  function Module:register_forward_hook(fn)
    local hooks = rawget(self, '_hooks')
    hooks[#hooks + 1] = fn
    return { remove = function()
      for i, h in ipairs(hooks) do if h == fn then table.remove(hooks, i) return end end
    end }
  end

  -- Children in registration order: iterate with for name, m in self:named_children().
  function Module:named_children()
    local list = {}
    local mods = rawget(self, '_modules')
    for _, k in ipairs(rawget(self, '_order')) do
      if mods[k] then list[#list + 1] = { k, mods[k] } end
    end
    local i = 0
    return function()
      i = i + 1
      if list[i] then return list[i][1], list[i][2] end
    end
  end

  function Module:children()
    local out = {}
    for _, m in self:named_children() do out[#out + 1] = m end
    return out
  end

  local function walk(self, prefix, fn)
    fn(prefix, self)
    for name, m in self:named_children() do walk(m, prefix == '' and name or prefix .. '.' .. name, fn) end
  end

  function Module:modules()
    local out = {}
    walk(self, '', function(_, m) out[#out + 1] = m end)
    return out
  end

  local function named_tensors(self, field)
    local out, seen = {}, {}
    walk(self, '', function(prefix, m)
      local tensors = rawget(m, field)
      for _, k in ipairs(rawget(m, '_order')) do
        local t = tensors[k]
        if t and not seen[t] then
          seen[t] = true
          out[#out + 1] = { prefix == '' and k or prefix .. '.' .. k, t }
        end
      end
    end)
    return out
  end

  -- A list of {name, tensor} pairs, parents before children.
  function Module:named_parameters() return named_tensors(self, '_parameters') end
  function Module:named_buffers() return named_tensors(self, '_buffers') end
  function Module:parameters()
    local out = {}
    for i, pair in ipairs(self:named_parameters()) do out[i] = pair[2] end
    return out
  end

  function Module:apply(fn)
    for _, m in ipairs(self:children()) do m:apply(fn) end
    fn(self)
    return self
  end

  function Module:train(on)
    if on == nil then on = true end
    for _, m in ipairs(self:modules()) do rawset(m, 'training', on) end
    return self
  end
  function Module:eval() return self:train(false) end

  function Module:zero_grad()
    for _, p in ipairs(self:parameters()) do p.grad = nil end
  end

  function Module:state_dict()
    local sd = {}
    for _, pair in ipairs(self:named_parameters()) do sd[pair[1]] = pair[2] end
    for _, pair in ipairs(self:named_buffers()) do sd[pair[1]] = pair[2] end
    return sd
  end

  -- Copies values in place (shapes must match); strict (default) also
  -- requires the same set of names. Returns missing and unexpected names.
  function Module:load_state_dict(sd, opts)
    local strict = not (opts and opts.strict == false)
    local own = self:state_dict()
    local missing, unexpected = {}, {}
    for name in pairs(own) do if sd[name] == nil then missing[#missing + 1] = name end end
    for name in pairs(sd) do if own[name] == nil then unexpected[#unexpected + 1] = name end end
    table.sort(missing)
    table.sort(unexpected)
    if strict and (#missing > 0 or #unexpected > 0) then
      raise(fmt('load_state_dict: missing keys [%s], unexpected keys [%s]',
        table.concat(missing, ', '), table.concat(unexpected, ', ')))
    end
    fc.no_grad(function()
      for name, t in pairs(own) do
        local src = sd[name]
        if src ~= nil then
          if table.concat(src:size(), 'x') ~= table.concat(t:size(), 'x') then
            raise(fmt('load_state_dict: %s has shape [%s] in the file but [%s] in the model', name,
              table.concat(src:size(), ','), table.concat(t:size(), ',')))
          end
          t:copy_(src)
        end
      end
    end)
    return missing, unexpected
  end

  -- Moves parameters and buffers (dtype or device), keeping them leaves.
  function Module:to(x)
    for _, m in ipairs(self:modules()) do
      local params, buffers = rawget(m, '_parameters'), rawget(m, '_buffers')
      for k, p in pairs(params) do
        local q = fc.no_grad(function() return p:to(x) end)
        if q.p ~= p.p then params[k] = q:detach():requires_grad_() end
      end
      for k, b in pairs(buffers) do
        -- a dtype move leaves integer buffers (counters) alone, as PyTorch does
        if b:is_floating_point() or type(x) ~= 'string' or x == 'cpu' or x:match('^cuda') then
          buffers[k] = b:to(x)
        end
      end
    end
    return self
  end
  function Module:cuda(i) return self:to('cuda:' .. (i or 0)) end
  function Module:cpu() return self:to('cpu') end
  function Module:float() return self:to('float32') end
  function Module:double() return self:to('float64') end

  function Module:extra_repr() return '' end

  Module.__tostring = function(self)
    local lines = {}
    for name, m in self:named_children() do
      local sub = tostring(m):gsub('\n', '\n  ')
      lines[#lines + 1] = '  (' .. name .. '): ' .. sub
    end
    local head = self:class_name() .. '(' .. self:extra_repr()
    if #lines == 0 then return head .. ')' end
    return head .. '\n' .. table.concat(lines, '\n') .. '\n)'
  end

  -- ---- containers --------------------------------------------------------------

  -- Sequential{a, b, c}: children named '1', '2', ... and reachable as seq[i].
  local Sequential = Module:extend('Sequential')
  nn.Sequential = Sequential
  function Sequential:init(layers)
    Module.init(self)
    for i, m in ipairs(layers or {}) do self:add(m, i) end
  end
  function Sequential:add(m, i)
    if not is_module(m) then raise(fmt('Sequential: element %d is not a module', i or 0)) end
    local n = #rawget(self, '_order') + 1
    self[tostring(n)] = m
    return self
  end
  function Sequential:len() return #rawget(self, '_order') end
  function Sequential:forward(x)
    for _, m in ipairs(self:children()) do x = m(x) end
    return x
  end
  local seq_index = Module.__index
  Sequential.__index = function(self, k)
    if type(k) == 'number' then return rawget(self, '_modules')[tostring(k)] end
    return seq_index(self, k)
  end

  local ModuleList = Module:extend('ModuleList')
  nn.ModuleList = ModuleList
  ModuleList.init = Sequential.init
  ModuleList.add = Sequential.add
  ModuleList.len = Sequential.len
  ModuleList.__index = Sequential.__index
  ModuleList.append = Sequential.add
  function ModuleList:forward() raise('ModuleList has no forward; iterate over its children') end

  -- ---- init ----------------------------------------------------------------------

  local init = nn.init
  local function fans(t)
    local dims = t:dim()
    if dims < 2 then raise('init: fan in/out need a tensor with at least 2 dims') end
    local receptive = 1
    for d = 3, dims do receptive = receptive * t:size(d) end
    return t:size(2) * receptive, t:size(1) * receptive
  end
  nn.init.calculate_fans = fans

  function init.calculate_gain(nonlinearity, param)
    if nonlinearity == 'relu' then return sqrt(2) end
    if nonlinearity == 'tanh' then return 5 / 3 end
    if nonlinearity == 'selu' then return 3 / 4 end
    if nonlinearity == 'leaky_relu' then
      local slope = param or 0.01
      return sqrt(2 / (1 + slope * slope))
    end
    return 1 -- linear, conv, sigmoid
  end

  local function no_grad(f) return function(t, ...) return fc.no_grad(f, t, ...) end end
  init.uniform_ = no_grad(function(t, a, b) return t:uniform_(a or 0, b or 1) end)
  init.normal_ = no_grad(function(t, mean, std) return t:normal_(mean or 0, std or 1) end)
  init.constant_ = no_grad(function(t, v) return t:fill_(v) end)
  init.zeros_ = no_grad(function(t) return t:fill_(0) end)
  init.ones_ = no_grad(function(t) return t:fill_(1) end)
  init.kaiming_uniform_ = no_grad(function(t, opts)
    opts = opts or {}
    local fan_in, fan_out = fans(t)
    local fan = opts.mode == 'fan_out' and fan_out or fan_in
    local bound = sqrt(3) * init.calculate_gain(opts.nonlinearity or 'leaky_relu', opts.a or 0) / sqrt(fan)
    return t:uniform_(-bound, bound)
  end)
  init.kaiming_normal_ = no_grad(function(t, opts)
    opts = opts or {}
    local fan_in, fan_out = fans(t)
    local fan = opts.mode == 'fan_out' and fan_out or fan_in
    return t:normal_(0, init.calculate_gain(opts.nonlinearity or 'leaky_relu', opts.a or 0) / sqrt(fan))
  end)
  init.xavier_uniform_ = no_grad(function(t, gain)
    local fan_in, fan_out = fans(t)
    local bound = (gain or 1) * sqrt(6 / (fan_in + fan_out))
    return t:uniform_(-bound, bound)
  end)
  init.xavier_normal_ = no_grad(function(t, gain)
    local fan_in, fan_out = fans(t)
    return t:normal_(0, (gain or 1) * sqrt(2 / (fan_in + fan_out)))
  end)

  -- PyTorch's default for Linear and Conv: kaiming_uniform_(a = sqrt(5)) for
  -- the weight, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the bias.
  local function reset_affine(weight, bias)
    init.kaiming_uniform_(weight, { a = sqrt(5) })
    if bias then
      local fan_in = fans(weight)
      local bound = fan_in > 0 and 1 / sqrt(fan_in) or 0
      init.uniform_(bias, -bound, bound)
    end
  end
  nn.reset_affine = reset_affine

  local function param(...) return fc.empty(...):requires_grad_() end

  -- ---- layers --------------------------------------------------------------------

  function F.linear(x, w, b)
    local y = x:matmul(w:t())
    if b then y = y + b end
    return y
  end

  local Linear = Module:extend('Linear')
  nn.Linear = Linear
  function Linear:init(in_features, out_features, opts)
    Module.init(self)
    opts = opts or {}
    self.in_features, self.out_features = in_features, out_features
    self.weight = param(out_features, in_features)
    if opts.bias ~= false then self.bias = param(out_features) end
    reset_affine(self.weight, self.bias)
  end
  function Linear:forward(x) return F.linear(x, self.weight, self.bias) end
  function Linear:extra_repr()
    return fmt('in_features=%d, out_features=%d, bias=%s', self.in_features, self.out_features,
      tostring(self.bias ~= nil))
  end

  local Identity = Module:extend('Identity')
  nn.Identity = Identity
  function Identity:forward(x) return x end

  local Flatten = Module:extend('Flatten')
  nn.Flatten = Flatten
  function Flatten:init(start_dim, end_dim)
    Module.init(self)
    self.start_dim, self.end_dim = start_dim or 2, end_dim or -1
  end
  function Flatten:forward(x) return x:flatten(self.start_dim, self.end_dim) end

  -- Activations: a module per function, with an optional argument.
  local function activation(name, fn, repr)
    local A = Module:extend(name)
    function A:init(arg)
      Module.init(self)
      self.arg = arg
    end
    function A:forward(x) return fn(x, self.arg) end
    if repr then function A:extra_repr() return repr(self.arg) end end
    nn[name] = A
    return A
  end
  activation('ReLU', function(x) return x:relu() end)
  activation('GELU', function(x) return x:gelu() end)
  activation('SiLU', function(x) return x:silu() end)
  activation('Sigmoid', function(x) return x:sigmoid() end)
  activation('Tanh', function(x) return x:tanh() end)
  activation('LeakyReLU', function(x, slope) return x:leaky_relu(slope or 0.01) end,
    function(slope) return 'negative_slope=' .. (slope or 0.01) end)
  activation('Softmax', function(x, dim) return x:softmax(dim or -1) end)
  activation('LogSoftmax', function(x, dim) return x:log_softmax(dim or -1) end)

  -- Layers over the functional ops of ext_conv, ext_norm and ext_loss.
  local function pair(v) return type(v) == 'table' and v or { v, v } end

  local Conv2d = Module:extend('Conv2d')
  nn.Conv2d = Conv2d
  function Conv2d:init(cin, cout, kernel, opts)
    Module.init(self)
    opts = opts or {}
    local k = pair(kernel)
    self.in_channels, self.out_channels, self.kernel_size = cin, cout, k
    self.stride, self.padding = pair(opts.stride or 1), pair(opts.padding or 0)
    self.dilation, self.groups = pair(opts.dilation or 1), opts.groups or 1
    if cin % self.groups ~= 0 or cout % self.groups ~= 0 then
      raise(fmt('Conv2d: groups %d must divide in_channels %d and out_channels %d', self.groups, cin, cout))
    end
    self.weight = param(cout, cin / self.groups, k[1], k[2])
    if opts.bias ~= false then self.bias = param(cout) end
    reset_affine(self.weight, self.bias)
  end
  function Conv2d:forward(x)
    return F.conv2d(x, self.weight, self.bias, { stride = self.stride, padding = self.padding,
      dilation = self.dilation, groups = self.groups })
  end
  function Conv2d:extra_repr()
    return fmt('%d, %d, kernel_size={%d,%d}, stride={%d,%d}, padding={%d,%d}', self.in_channels,
      self.out_channels, self.kernel_size[1], self.kernel_size[2], self.stride[1], self.stride[2],
      self.padding[1], self.padding[2])
  end

  local Conv1d = Module:extend('Conv1d')
  nn.Conv1d = Conv1d
  function Conv1d:init(cin, cout, kernel, opts)
    Module.init(self)
    opts = opts or {}
    self.in_channels, self.out_channels, self.kernel_size = cin, cout, kernel
    self.stride, self.padding, self.dilation = opts.stride or 1, opts.padding or 0, opts.dilation or 1
    self.groups = opts.groups or 1
    self.weight = param(cout, cin / self.groups, kernel)
    if opts.bias ~= false then self.bias = param(cout) end
    reset_affine(self.weight, self.bias)
  end
  function Conv1d:forward(x)
    return F.conv1d(x, self.weight, self.bias, { stride = self.stride, padding = self.padding,
      dilation = self.dilation, groups = self.groups })
  end

  local ConvTranspose2d = Module:extend('ConvTranspose2d')
  nn.ConvTranspose2d = ConvTranspose2d
  function ConvTranspose2d:init(cin, cout, kernel, opts)
    Module.init(self)
    opts = opts or {}
    local k = pair(kernel)
    self.in_channels, self.out_channels, self.kernel_size = cin, cout, k
    self.stride, self.padding = pair(opts.stride or 1), pair(opts.padding or 0)
    self.output_padding, self.dilation = pair(opts.output_padding or 0), pair(opts.dilation or 1)
    self.groups = opts.groups or 1
    self.weight = param(cin, cout / self.groups, k[1], k[2])
    if opts.bias ~= false then self.bias = param(cout) end
    -- PyTorch computes fan_in from weight dim 2 here too
    reset_affine(self.weight, self.bias)
  end
  function ConvTranspose2d:forward(x)
    return F.conv_transpose2d(x, self.weight, self.bias, { stride = self.stride, padding = self.padding,
      output_padding = self.output_padding, dilation = self.dilation, groups = self.groups })
  end
  function ConvTranspose2d:extra_repr()
    return fmt('%d, %d, kernel_size={%d,%d}, stride={%d,%d}, padding={%d,%d}, output_padding={%d,%d}',
      self.in_channels, self.out_channels, self.kernel_size[1], self.kernel_size[2], self.stride[1],
      self.stride[2], self.padding[1], self.padding[2], self.output_padding[1], self.output_padding[2])
  end

  -- BatchNorm1d/2d: PyTorch's semantics. momentum = false (or setting
  -- bn.momentum = nil, PyTorch's None) makes the running stats a cumulative
  -- average over the batches seen: the k-th batch weighs 1/k.
  -- track_running_stats = false keeps no stats: batch statistics always.
  local function batch_norm_class(name, dims)
    local BN = Module:extend(name)
    function BN:init(features, opts)
      Module.init(self)
      opts = opts or {}
      self.num_features, self.eps = features, opts.eps or 1e-5
      if opts.momentum == false then self.momentum = nil else self.momentum = opts.momentum or 0.1 end
      self.affine, self.track_running_stats = opts.affine ~= false, opts.track_running_stats ~= false
      if self.affine then
        self.weight = fc.ones(features):requires_grad_()
        self.bias = fc.zeros(features):requires_grad_()
      end
      if self.track_running_stats then
        self:register_buffer('running_mean', fc.zeros(features))
        self:register_buffer('running_var', fc.ones(features))
        self:register_buffer('num_batches_tracked', fc.zeros({}, { dtype = 'int64' }))
      end
    end
    function BN:forward(x)
      if x:dim() ~= dims[1] and x:dim() ~= dims[2] then
        raise(fmt('%s: expected a %d-d or %d-d input, got shape [%s]', name, dims[1], dims[2],
          table.concat(x:size(), ',')))
      end
      local momentum = self.momentum or 0
      if self.training and self.running_mean then
        local n = self.num_batches_tracked
        if n then
          fc.no_grad(function() n:add_(1) end)
          if not self.momentum then momentum = 1 / n:item() end
        end
      end
      return F.batch_norm(x, self.running_mean, self.running_var, { weight = self.weight,
        bias = self.bias, training = self.training or not self.running_mean, momentum = momentum, eps = self.eps })
    end
    function BN:extra_repr()
      return fmt('%d, eps=%g, momentum=%s, affine=%s, track_running_stats=%s', self.num_features, self.eps,
        self.momentum and fmt('%g', self.momentum) or 'nil', tostring(self.affine), tostring(self.track_running_stats))
    end
    nn[name] = BN
  end
  batch_norm_class('BatchNorm1d', { 2, 3 })
  batch_norm_class('BatchNorm2d', { 4, 4 })

  local LayerNorm = Module:extend('LayerNorm')
  nn.LayerNorm = LayerNorm
  function LayerNorm:init(shape, opts)
    Module.init(self)
    opts = opts or {}
    self.normalized_shape = type(shape) == 'table' and shape or { shape }
    self.eps = opts.eps or 1e-5
    if opts.elementwise_affine ~= false then
      self.weight = fc.ones(self.normalized_shape):requires_grad_()
      self.bias = fc.zeros(self.normalized_shape):requires_grad_()
    end
  end
  function LayerNorm:forward(x)
    return F.layer_norm(x, self.normalized_shape, { weight = self.weight, bias = self.bias, eps = self.eps })
  end

  local GroupNorm = Module:extend('GroupNorm')
  nn.GroupNorm = GroupNorm
  function GroupNorm:init(groups, channels, opts)
    Module.init(self)
    opts = opts or {}
    if channels % groups ~= 0 then
      raise(fmt('GroupNorm: %d groups do not divide %d channels', groups, channels))
    end
    self.num_groups, self.num_channels, self.eps = groups, channels, opts.eps or 1e-5
    if opts.affine ~= false then
      self.weight = fc.ones(channels):requires_grad_()
      self.bias = fc.zeros(channels):requires_grad_()
    end
  end
  function GroupNorm:forward(x)
    return F.group_norm(x, self.num_groups, { weight = self.weight, bias = self.bias, eps = self.eps })
  end
  function GroupNorm:extra_repr() return fmt('%d, %d, eps=%g', self.num_groups, self.num_channels, self.eps) end

  local function dropout_class(name, fn)
    local D = Module:extend(name)
    function D:init(p)
      Module.init(self)
      p = p or 0.5
      if type(p) ~= 'number' or p < 0 or p > 1 then raise(fmt('%s: p must be in [0, 1], got %s', name, tostring(p))) end
      self.p = p
    end
    function D:forward(x) return fn(x, { p = self.p, training = self.training }) end
    function D:extra_repr() return 'p=' .. self.p end
    nn[name] = D
  end
  dropout_class('Dropout', function(x, o) return F.dropout(x, o) end)
  dropout_class('Dropout2d', function(x, o) return F.dropout2d(x, o) end)

  -- padding_idx counts from 1 (negative: from the end); that row starts at
  -- zero and gets no gradient.
  local Embedding = Module:extend('Embedding')
  nn.Embedding = Embedding
  function Embedding:init(num, dim, opts)
    Module.init(self)
    opts = opts or {}
    local pad = opts.padding_idx
    if pad ~= nil and pad < 0 then pad = num + 1 + pad end
    if pad ~= nil and (pad < 1 or pad > num or pad ~= math.floor(pad)) then
      raise(fmt('Embedding: padding_idx %s out of range for %d embeddings (valid 1..%d or -%d..-1)',
        tostring(opts.padding_idx), num, num, num))
    end
    self.num_embeddings, self.embedding_dim, self.padding_idx = num, dim, pad
    self.weight = fc.randn(num, dim):requires_grad_()
    if pad then fc.no_grad(function() self.weight[pad]:fill_(0) end) end
  end
  function Embedding:forward(idx) return F.embedding(idx, self.weight, { padding_idx = self.padding_idx }) end
  function Embedding:extra_repr()
    return fmt('%d, %d', self.num_embeddings, self.embedding_dim) ..
      (self.padding_idx and ', padding_idx=' .. self.padding_idx or '')
  end

  -- ---- pooling: PyTorch's option sets, kernels in runtime/ops_pool.c ----------
  -- Sizes print as PyTorch's do: 2 or {2,3}.
  local function size_repr(v)
    if type(v) ~= 'table' then return tostring(v) end
    return '{' .. tostring(v[1]) .. ',' .. tostring(v[2]) .. '}'
  end
  local function check_size(v, what, name)
    if type(v) ~= 'number' and type(v) ~= 'table' then
      raise(fmt('%s: %s must be a number or an {h, w} pair, got %s', name, what, tostring(v)))
    end
  end

  -- MaxPool2d(kernel_size, {stride = kernel_size, padding = 0, dilation = 1,
  --   return_indices = false, ceil_mode = false}); with return_indices the
  -- module returns values, indices (1-based).
  local MaxPool2d = Module:extend('MaxPool2d')
  nn.MaxPool2d = MaxPool2d
  function MaxPool2d:init(kernel_size, opts)
    Module.init(self)
    opts = opts or {}
    check_size(kernel_size, 'kernel_size', 'MaxPool2d')
    self.kernel_size, self.stride = kernel_size, opts.stride or kernel_size
    self.padding, self.dilation = opts.padding or 0, opts.dilation or 1
    self.return_indices, self.ceil_mode = opts.return_indices or false, opts.ceil_mode or false
  end
  function MaxPool2d:forward(x)
    return F.max_pool2d(x, self.kernel_size, { stride = self.stride, padding = self.padding,
      dilation = self.dilation, ceil_mode = self.ceil_mode, return_indices = self.return_indices })
  end
  function MaxPool2d:extra_repr()
    return fmt('kernel_size=%s, stride=%s, padding=%s, dilation=%s, ceil_mode=%s', size_repr(self.kernel_size),
      size_repr(self.stride), size_repr(self.padding), size_repr(self.dilation), tostring(self.ceil_mode))
  end

  -- AvgPool2d(kernel_size, {stride = kernel_size, padding = 0, ceil_mode = false,
  --   count_include_pad = true})
  local AvgPool2d = Module:extend('AvgPool2d')
  nn.AvgPool2d = AvgPool2d
  function AvgPool2d:init(kernel_size, opts)
    Module.init(self)
    opts = opts or {}
    check_size(kernel_size, 'kernel_size', 'AvgPool2d')
    self.kernel_size, self.stride = kernel_size, opts.stride or kernel_size
    self.padding, self.ceil_mode = opts.padding or 0, opts.ceil_mode or false
    self.count_include_pad = opts.count_include_pad ~= false
  end
  function AvgPool2d:forward(x)
    return F.avg_pool2d(x, self.kernel_size, { stride = self.stride, padding = self.padding,
      ceil_mode = self.ceil_mode, count_include_pad = self.count_include_pad })
  end
  function AvgPool2d:extra_repr()
    return fmt('kernel_size=%s, stride=%s, padding=%s', size_repr(self.kernel_size), size_repr(self.stride),
      size_repr(self.padding))
  end

  -- AdaptiveAvgPool2d(output_size) and AdaptiveMaxPool2d(output_size,
  -- {return_indices = false}): a number or {h, w}; a nil entry keeps that
  -- input size.
  local AdaptiveAvgPool2d = Module:extend('AdaptiveAvgPool2d')
  nn.AdaptiveAvgPool2d = AdaptiveAvgPool2d
  function AdaptiveAvgPool2d:init(output_size)
    Module.init(self)
    check_size(output_size, 'output_size', 'AdaptiveAvgPool2d')
    self.output_size = output_size
  end
  function AdaptiveAvgPool2d:forward(x) return F.adaptive_avg_pool2d(x, self.output_size) end
  function AdaptiveAvgPool2d:extra_repr() return 'output_size=' .. size_repr(self.output_size) end

  local AdaptiveMaxPool2d = Module:extend('AdaptiveMaxPool2d')
  nn.AdaptiveMaxPool2d = AdaptiveMaxPool2d
  function AdaptiveMaxPool2d:init(output_size, opts)
    Module.init(self)
    check_size(output_size, 'output_size', 'AdaptiveMaxPool2d')
    self.output_size, self.return_indices = output_size, (opts and opts.return_indices) or false
  end
  function AdaptiveMaxPool2d:forward(x)
    return F.adaptive_max_pool2d(x, self.output_size, { return_indices = self.return_indices })
  end
  function AdaptiveMaxPool2d:extra_repr() return 'output_size=' .. size_repr(self.output_size) end

  -- fastai's AdaptiveConcatPool2d(size = 1): adaptive max and average pools
  -- side by side along the channels (max first), so 2*C channels out.
  local AdaptiveConcatPool2d = Module:extend('AdaptiveConcatPool2d')
  nn.AdaptiveConcatPool2d = AdaptiveConcatPool2d
  function AdaptiveConcatPool2d:init(size)
    Module.init(self)
    self.size = size or 1
    self.ap = AdaptiveAvgPool2d(self.size)
    self.mp = AdaptiveMaxPool2d(self.size)
  end
  function AdaptiveConcatPool2d:forward(x)
    return fc.cat({ self.mp(x), self.ap(x) }, x:dim() - 2)
  end

  return nn
end
