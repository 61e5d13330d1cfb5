-- tests/lua/vision_recipes_spec.lua — recipes.image_classify end to end
-- through `fastlua -m` on a tiny generated JPEG folder (lr_find, training,
-- export, report, PNGs), and recipes.segment from code on a generated
-- segmentation set; the option parser's errors.
local fc = require 'fastc'
local tmpdir = dofile('tests/lua/support.lua').tmpdir
local function exists(p)
  local f = io.open(p, 'rb')
  if f then f:close() end
  return f ~= nil
end
local function run(cmd)
  local p = io.popen(cmd .. ' 2>&1; echo "exit=$?"')
  local out = p:read('*a')
  p:close()
  local code = tonumber(out:match('exit=(%d+)%s*$'))
  return out:gsub('exit=%d+%s*$', ''), code
end

local FASTLUA = os.getenv('FASTLUA') or 'build/fastlua'

describe('recipes.image_classify', function()
  local dir = tmpdir('ic')
  dofile('tools/gen_images.lua') { dir = dir, train = 6, valid = 3, classes = 3, seed = 4 }

  it('runs as fastlua -m: lr_find, fit_one_cycle, export, report and PNGs', function()
    local out, code = run(string.format("FASTC_NUM_THREADS=1 '%s' -m recipes.image_classify --data '%s' --size 32 " ..
      "--epochs 1 --bs 6 --lr_find_iters 12 --arch xresnet18", FASTLUA, dir))
    assert.are.equal(0, code, out)
    assert.truthy(out:find('lr_find suggests', 1, true), out)
    assert.truthy(out:find('\naccuracy %d%.%d+', 1), out)
    assert.truthy(out:find('weighted avg', 1, true), out)
    local res = dir .. '/image_classify/'
    for _, f in ipairs { 'export.safetensors', 'confusion_matrix.png', 'top_losses.png', 'show_results.png' } do
      assert.is_true(exists(res .. f), f)
    end
    local learn = fc.load_learner(res .. 'export.safetensors')
    assert.are.same({ 'cassette', 'springer', 'tench' }, learn.dls.vocab)
    local y = fc.no_grad(function() return learn.model:eval()(fc.rand(2, 3, 32, 32)) end)
    assert.are.same({ 2, 3 }, y:size())
  end)

  it('is a module too, and refuses unknown options', function()
    local recipe = require 'recipes.image_classify'
    assert.has_error(function() recipe.run { data = dir, bogus = 1 } end, 'image_classify: unknown option "bogus"')
    assert.has_error(function() recipe.run {} end, 'image_classify: --data DIR is required')
    assert.has_error(function() recipe.run { data = dir, aug = 'wild', quiet = true } end,
      "image_classify: --aug must be full, light, flip or none, not 'wild'")
    local out, code = run(string.format("'%s' -m recipes.image_classify --data '%s' --sise 3", FASTLUA, dir))
    assert.are_not.equal(0, code)
    assert.truthy(out:find('unknown option --sise', 1, true), out)
    local help = run(string.format("'%s' -m recipes.image_classify --help", FASTLUA))
    assert.truthy(help:find('usage: fastlua -m recipes.image_classify', 1, true))
  end)
  teardown(function() os.execute("rm -rf '" .. dir .. "'") end)
end)

describe('recipes.segment', function()
  local dir = tmpdir('seg')
  dofile('tools/gen_segmentation.lua') { dir = dir, n = 10, size = 24, classes = 1, seed = 2 }

  it('trains a U-Net from code and reports Dice, with the export and a PNG', function()
    local res = require('recipes.segment').run { data = dir, size = 24, epochs = 1, bs = 4, lr = 1e-3,
      quiet = true, augment = false }
    assert.is_number(res.dice)
    assert.is_true(res.dice >= 0 and res.dice <= 1)
    assert.is_true(res.foreground_acc >= 0 and res.foreground_acc <= 1)
    assert.is_true(exists(res.export))
    assert.is_true(exists(res.show_results))
    assert.truthy(res.table:find('dice', 1, true))
    assert.is_true(res.learn.model:is_a(fc.vision.models.DynamicUnet))
  end)
  teardown(function() os.execute("rm -rf '" .. dir .. "'") end)
end)

describe('examples/chapter1.lua', function()
  it('runs the chapter-1 workflow: DataBlock, training, interpretation, export, load_learner, predict', function()
    local tmp = tmpdir('ch1')
    local out, code = run(string.format("TMPDIR='%s' FASTC_NUM_THREADS=1 '%s' examples/chapter1.lua", tmp, FASTLUA))
    assert.are.equal(0, code, out)
    assert.truthy(out:find('180 training and 45 validation images', 1, true), out)
    local label = out:match('predict%(%S+%) = (%S+) %(class')
    assert.truthy(label == 'cassette' or label == 'springer' or label == 'tench', out)
    for _, f in ipairs { 'batch.png', 'confusion_matrix.png', 'top_losses.png', 'export.safetensors' } do
      assert.is_true(exists(tmp .. '/fastc_chapter1_out/' .. f), f)
    end
    os.execute("rm -rf '" .. tmp .. "'")
  end)
end)
