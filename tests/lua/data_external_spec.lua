-- tests/lua/data_external_spec.lua — fc.data.fashion_mnist from Debian's
-- dataset-fashion-mnist (skipped cleanly where it is not installed).
local fc = require 'fastc'
local data = fc.data

local have = data.exists('/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz')
  or (os.getenv('FASTC_DATA') and os.getenv('FASTC_DATA') ~= '')

describe('fashion_mnist', function()
  it('names the package to install when the files are missing', function()
    local ok, err = pcall(data.fashion_mnist, { path = '/nonexistent' })
    if have then
      assert.is_true(ok) -- falls back to the installed copy
    else
      assert.is_false(ok)
      assert.truthy(tostring(err):find('dataset-fashion-mnist', 1, true))
    end
    assert.has_error(function() data.fashion_mnist { as = 'numpy' } end)
  end)

  if not have then
    pending('dataset-fashion-mnist is not installed')
    return
  end

  it('loads the tensors: shapes, dtypes, 1-based balanced labels', function()
    local t = data.fashion_mnist { as = 'tensors' }
    assert.are.same({ 60000, 28, 28 }, t.x_train:size())
    assert.are.same({ 10000, 28, 28 }, t.x_valid:size())
    assert.are.equal('uint8', t.x_train.dtype)
    assert.are.equal('int64', t.y_train.dtype)
    assert.are.equal(10, #t.vocab)
    assert.are.equal('Ankle boot', t.vocab[10])
    -- 6000 training and 1000 test images per class, ids 1..10
    local ytr = t.y_train:totable()
    local c = {}
    for _, v in ipairs(ytr) do c[v] = (c[v] or 0) + 1 end
    for k = 1, 10 do assert.are.equal(6000, c[k]) end
    assert.are.equal(1, t.y_valid:min():item())
    assert.are.equal(10, t.y_valid:max():item())
    -- the published first labels: Ankle boot, T-shirt/top (train); Ankle boot, Pullover (test)
    assert.are.same({ 10, 1 }, t.y_train:narrow(1, 1, 2):totable())
    assert.are.same({ 10, 3 }, t.y_valid:narrow(1, 1, 2):totable())
    local x0 = t.x_train[1]:float()
    assert.is_true(x0:max():item() == 255 and x0:min():item() == 0)
  end)

  it('writes a PNG folder once, readable by from_folder', function()
    local dest = os.tmpname()
    os.remove(dest)
    local path = data.fashion_mnist { as = 'folder', dest = dest, limit = 30 }
    assert.are.equal(dest, path)
    local files = data.get_image_files(path)
    assert.are.equal(60, #files)
    assert.truthy(data.is_dir(path .. '/train/Ankle boot'))
    assert.truthy(data.is_dir(path .. '/valid/T-shirt_top'))
    -- already there: nothing rewritten
    assert.are.equal(path, data.fashion_mnist { as = 'folder', dest = dest, limit = 30 })
    local t = data.fashion_mnist()
    local img = fc.vision.load_image(path .. '/train/Ankle boot/00001.png', { channels = 1 })
    assert.are.same(t.x_train[1]:unsqueeze(1):totable(), img:totable())
    local dls = fc.vision.ImageDataLoaders.from_folder(path, { bs = 8, seed = 1,
      img_cls = 'bw', item_tfms = {} })
    local xb, yb = dls.valid:one_batch()
    assert.are.same({ 8, 1, 28, 28 }, xb:size())
    assert.are.equal(8, yb:size(1))
    os.execute("rm -rf '" .. dest .. "'")
  end)
end)
