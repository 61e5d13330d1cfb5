-- tests/lua/nn_spec.lua — fc.nn modules, init, state dicts and fc.optim.
local fc = require 'fastc'
local nn = fc.nn

local function close(a, b, tol) return math.abs(a - b) <= (tol or 1e-6) * (1 + math.abs(b)) end

describe('fc.nn.Module', function()
  local Net = nn.Module:extend('Net')
  function Net:init()
    nn.Module.init(self)
    self.fc1 = nn.Linear(4, 3)
    self.act = nn.ReLU()
    self.fc2 = nn.Linear(3, 2, { bias = false })
    self.scale = fc.ones(1):requires_grad_()
    self:register_buffer('steps', fc.zeros(1))
    self.note = 'plain field'
  end
  function Net:forward(x) return self.fc2(self.act(self.fc1(x))) * self.scale end

  it('registers parameters, buffers and children by assignment', function()
    local net = Net()
    local names = {}
    for i, pair in ipairs(net:named_parameters()) do names[i] = pair[1] end
    assert.are.same({ 'scale', 'fc1.weight', 'fc1.bias', 'fc2.weight' }, names)
    assert.are.equal(4, #net:parameters())
    assert.are.equal(3, #net:children())
    assert.are.equal(4, #net:modules())
    assert.are.equal('plain field', net.note)
    assert.are.same({ 3, 4 }, net.fc1.weight:size())
    assert.is_nil(net.fc2.bias)
    assert.is_true(net.fc1:is_a(nn.Linear) and net:is_a(nn.Module))
    local sd = net:state_dict()
    assert.is_not_nil(sd['steps'])
    assert.is_not_nil(sd['fc1.bias'])
  end)

  it('forward, backward and zero_grad', function()
    local net = Net()
    local y = net(fc.randn(5, 4))
    assert.are.same({ 5, 2 }, y:size())
    y:sum():backward()
    for _, p in ipairs(net:parameters()) do assert.is_not_nil(p.grad) end
    net:zero_grad()
    for _, p in ipairs(net:parameters()) do assert.is_nil(p.grad) end
  end)

  it('train/eval flags reach every module', function()
    local net = Net()
    net:eval()
    assert.is_false(net.fc1.training)
    net:train()
    assert.is_true(net.act.training)
  end)

  it('state_dict round trip and strict loading errors', function()
    local a, b = Net(), Net()
    b:load_state_dict(a:state_dict())
    assert.are.same(a.fc1.weight:totable(), b.fc1.weight:totable())
    local ok, e = pcall(function() b:load_state_dict({ ['fc1.weight'] = fc.zeros(3, 4) }) end)
    assert.is_false(ok)
    assert.truthy(e:find('missing keys [fc1.bias, fc2.weight, scale, steps]', 1, true))
    ok, e = pcall(function()
      local sd = a:state_dict()
      sd['fc1.weight'] = fc.zeros(2, 2)
      b:load_state_dict(sd)
    end)
    assert.truthy(e:find('fc1.weight has shape [2,2] in the file but [3,4] in the model', 1, true))
    local missing = b:load_state_dict({ ['fc1.bias'] = fc.ones(3) }, { strict = false })
    assert.are.equal(4, #missing)
    assert.are.same({ 1, 1, 1 }, b.fc1.bias:totable())
  end)

  it('Sequential indexes from 1 and prints its tree', function()
    local seq = nn.Sequential { nn.Linear(2, 3), nn.GELU(), nn.Linear(3, 1) }
    assert.are.equal(3, seq:len())
    assert.is_true(seq[1]:is_a(nn.Linear))
    assert.are.same({ 4, 1 }, seq(fc.randn(4, 2)):size())
    local s = tostring(seq)
    assert.truthy(s:find('(1): Linear(in_features=2, out_features=3, bias=true)', 1, true))
    assert.truthy(s:find('(2): GELU()', 1, true))
  end)

  it('forward hooks see inputs and may replace the output', function()
    local lin = nn.Linear(2, 2)
    local seen
    local h = lin:register_forward_hook(function(m, inputs, out) seen = out; return out * 0 end)
    local y = lin(fc.ones(1, 2))
    assert.is_not_nil(seen)
    assert.are.same({ { 0, 0 } }, y:totable())
    h.remove()
    assert.are_not.same({ { 0, 0 } }, lin(fc.ones(1, 2)):totable())
  end)

  it('default init matches PyTorch bounds', function()
    fc.manual_seed(0)
    local lin = nn.Linear(100, 50)
    local bound = 1 / math.sqrt(100) -- kaiming_uniform(a=sqrt(5)) gives 1/sqrt(fan_in)
    assert.is_true(lin.weight:abs():max():item() <= bound)
    assert.is_true(lin.weight:abs():max():item() > 0.9 * bound)
    assert.is_true(lin.bias:abs():max():item() <= bound)
    local w = fc.empty(256, 128)
    nn.init.kaiming_normal_(w, { nonlinearity = 'relu' })
    assert.is_true(close(w:std():item(), math.sqrt(2 / 128), 0.05))
    nn.init.xavier_uniform_(w)
    assert.is_true(w:abs():max():item() <= math.sqrt(6 / 384))
  end)
end)

describe('fc.optim.torch: torch.optim semantics (fc.optim is fastai, see optimizer_spec)', function()
  local function quadratic_descent(make)
    -- minimise |x - 3|^2 from x = 0
    local x = fc.zeros(1, { dtype = 'float64' }):requires_grad_()
    local opt = make({ x })
    for _ = 1, 200 do
      opt:zero_grad()
      local loss = ((x - 3) ^ 2):sum()
      loss:backward()
      opt:step()
    end
    return x:item()
  end

  it('SGD, Adam and AdamW converge on a quadratic', function()
    assert.is_true(close(quadratic_descent(function(p) return fc.optim.torch.SGD(p, { lr = 0.1 }) end), 3, 1e-6))
    assert.is_true(close(quadratic_descent(function(p) return fc.optim.torch.SGD(p, { lr = 0.05, momentum = 0.9, nesterov = true }) end), 3, 1e-4))
    assert.is_true(close(quadratic_descent(function(p) return fc.optim.torch.Adam(p, { lr = 0.1 }) end), 3, 1e-2))
    assert.is_true(close(quadratic_descent(function(p) return fc.optim.torch.AdamW(p, { lr = 0.1, weight_decay = 0 }) end), 3, 1e-2))
  end)

  it('SGD step matches the formula by hand', function()
    local x = fc.tensor({ 1.0, 2.0 }, { dtype = 'float64' }):requires_grad_()
    local opt = fc.optim.torch.SGD({ x }, { lr = 0.5, weight_decay = 0.1 })
    ;(x * x):sum():backward() -- grad 2x
    opt:step()
    -- x - lr * (2x + 0.1 x) = x (1 - 0.5 * 2.1)
    assert.is_true(close(x[1], 1 - 1.05, 1e-12) and close(x[2], 2 * (1 - 1.05), 1e-12))
  end)

  it('parameter groups override defaults; unknown options are errors', function()
    local a, b = fc.ones(1):requires_grad_(), fc.ones(1):requires_grad_()
    local opt = fc.optim.torch.SGD({ { params = { a } }, { params = { b }, lr = 1 } }, { lr = 0.1 })
    ;(a + b):sum():backward()
    opt:step()
    assert.is_true(close(a:item(), 0.9) and close(b:item(), 0))
    assert.has_error(function() fc.optim.torch.SGD({ a }, { lrr = 1 }) end)
  end)
end)
