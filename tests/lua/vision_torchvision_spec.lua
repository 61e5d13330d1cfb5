-- tests/lua/vision_torchvision_spec.lua — weights written by
-- tools/convert_torchvision.py from seeded torchvision models (with random
-- BatchNorm statistics, so eval mode has work to do) load with strict =
-- true and give PyTorch's eval-mode logits within 1e-4. Runs only where
-- /usr/bin/python3 imports torchvision; says so and passes otherwise.
local fc = require 'fastc'
local M = fc.vision.models

local function has_torchvision()
  local rc = os.execute('/usr/bin/python3 -c "import torchvision" >/dev/null 2>&1')
  return rc == 0 or rc == true
end

local SCRIPT = [[
import sys, torch, torchvision
sys.path.insert(0, 'tools')
from convert_torchvision import fastc_name, write_safetensors
arch, out, io_path = sys.argv[1], sys.argv[2], sys.argv[3]
torch.manual_seed(3)
m = getattr(torchvision.models, arch)(num_classes=10)
with torch.no_grad():
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5); mod.running_var.uniform_(0.5, 2.0)
            mod.weight.uniform_(0.5, 1.5); mod.bias.uniform_(-0.2, 0.2)
write_safetensors(out, {fastc_name(k): v for k, v in m.state_dict().items()})
x = torch.randn(2, 3, 64, 64)
with torch.no_grad(): y = m.eval()(x)
write_safetensors(io_path, {'x': x, 'y': y})
]]

describe('torchvision weights', function()
  if not has_torchvision() then
    it('are checked only where python3-torchvision is installed (skipped here)', function() end)
    return
  end
  local dir = os.tmpname()
  os.remove(dir)
  os.execute("mkdir -p '" .. dir .. "'")
  local script = dir .. '/make.py'
  local f = assert(io.open(script, 'w'))
  f:write(SCRIPT)
  f:close()

  for _, arch in ipairs { 'resnet18', 'mobilenet_v2' } do
    it(arch .. ' loads strictly and gives the same eval-mode logits as PyTorch', function()
      local w, io_path = dir .. '/' .. arch .. '.safetensors', dir .. '/' .. arch .. '_io.safetensors'
      local rc = os.execute(string.format("/usr/bin/python3 '%s' %s '%s' '%s'", script, arch, w, io_path))
      assert.is_true(rc == 0 or rc == true)
      local m = M[arch] { num_classes = 10 }
      local missing, unexpected = m:load_state_dict(fc.load(w), { strict = true })
      assert.are.same({}, missing)
      assert.are.same({}, unexpected)
      local ref = fc.load(io_path)
      m:eval()
      local y = fc.no_grad(function() return m(ref.x) end)
      local err = (y - ref.y):abs():max():item()
      assert.is_true(err < 1e-4, arch .. ' max |logit difference| ' .. err)
    end)
  end

  it('are recognised under torchvision names too (0-based positions)', function()
    local sd = M.to_torchvision_keys(fc.load(dir .. '/resnet18.safetensors'))
    assert.is_not_nil(sd['layer1.0.conv1.weight'])
    local m = M.resnet18 { num_classes = 10 }
    M.load_weights(m, sd)
    assert.are.same(sd['fc.weight']:totable(), m.fc.weight:totable())
  end)

  it('build the architecture with the file\'s class count for create_body', function()
    local body = fc.vision.create_body('resnet18', { pretrained = dir .. '/resnet18.safetensors' })
    local ref = fc.load(dir .. '/resnet18.safetensors')
    assert.are.same(ref['conv1.weight']:reshape(-1):narrow(1, 1, 20):totable(),
      body[1].weight:reshape(-1):narrow(1, 1, 20):totable())
    assert.are.equal(8, body:len())
    os.execute("rm -rf '" .. dir .. "'")
  end)
end)
