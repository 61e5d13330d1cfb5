-- lua/fastc/data/external.lua — datasets already on this machine.
--
-- fc.data.fashion_mnist{as='tensors'} reads Debian's dataset-fashion-mnist
-- (/usr/share/datasets/fashion-mnist), or the directory in FASTC_DATA (or
-- opts.path) holding the four IDX files; as='folder' writes it out once as
-- PNG files, <dest>/train/<class>/<n>.png and <dest>/valid/<class>/<n>.png,
-- for the image-folder pipeline, and returns <dest>.
return function(fc)
  local data = fc.data
  local fmt = string.format

  local FILES = {
    x_train = 'train-images-idx3-ubyte', y_train = 'train-labels-idx1-ubyte',
    x_valid = 't10k-images-idx3-ubyte', y_valid = 't10k-labels-idx1-ubyte',
  }
  data.fashion_mnist_classes = { 'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt',
    'Sneaker', 'Bag', 'Ankle boot' }

  local function find_file(dir, name)
    for _, suffix in ipairs { '.gz', '' } do
      local p = data.path_join(dir, name .. suffix)
      if data.exists(p) then return p end
    end
  end

  -- The directory with the IDX files: opts.path, $FASTC_DATA (itself or its
  -- fashion-mnist subdirectory), then Debian's.
  local function find_dir(o)
    local tried = {}
    local candidates = {}
    if o.path then candidates[#candidates + 1] = o.path end
    local env = os.getenv('FASTC_DATA')
    if env and env ~= '' then
      candidates[#candidates + 1] = env
      candidates[#candidates + 1] = data.path_join(env, 'fashion-mnist')
    end
    candidates[#candidates + 1] = '/usr/share/datasets/fashion-mnist'
    for _, dir in ipairs(candidates) do
      tried[#tried + 1] = dir
      if find_file(dir, FILES.x_train) then return dir end
    end
    error(fmt('fashion_mnist: no %s[.gz] in %s; install the Debian package dataset-fashion-mnist or set FASTC_DATA',
      FILES.x_train, table.concat(tried, ', ')), 3)
  end

  local function load_tensors(dir)
    local out = {}
    for key, name in pairs(FILES) do
      local t = fc.read_idx(find_file(dir, name))
      if key:sub(1, 1) == 'y' then t = t:long():add_(1) end -- class ids from 1
      out[key] = t
    end
    return out
  end

  local function safe_name(label) return (label:gsub('[^%w%-_. ]', '_')) end

  -- Writes the PNG folder into dest (via a temporary sibling renamed into
  -- place, so a half-written folder is never taken for a finished one).
  local function write_folder(t, dest, limit)
    local tmp = dest .. '.partial'
    if data.is_dir(tmp) then os.execute(fmt("rm -rf '%s'", tmp:gsub("'", "'\\''"))) end
    for _, split in ipairs { 'train', 'valid' } do
      for _, c in ipairs(data.fashion_mnist_classes) do data.mkdir(data.path_join(tmp, split, safe_name(c))) end
      local x, y = t['x_' .. split], t['y_' .. split]
      local n = x:size(1)
      if limit then n = math.min(n, limit) end
      local ys = y:narrow(1, 1, n):totable()
      for i = 1, n do
        local label = safe_name(data.fashion_mnist_classes[ys[i]])
        fc.vision.save_png(data.path_join(tmp, split, label, fmt('%05d.png', i)), x[i])
      end
    end
    data.rename(tmp, dest)
  end

  -- fashion_mnist{as='tensors'|'folder', path=, dest=, limit=}
  -- 'tensors': {x_train = uint8 [60000,28,28], y_train = int64 [60000]
  -- (ids 1..10), x_valid, y_valid (10000), vocab = class names}.
  -- 'folder': the path of the PNG folder (written on first use; `limit`
  -- writes only the first n images of each split, for tests).
  function data.fashion_mnist(o)
    o = o or {}
    local as = o.as or 'tensors'
    if as ~= 'tensors' and as ~= 'folder' then
      error(fmt("fashion_mnist: as must be 'tensors' or 'folder', got %s", tostring(as)), 2)
    end
    local dir = find_dir(o)
    local t = load_tensors(dir)
    t.vocab, t.path = data.fashion_mnist_classes, dir
    if as == 'tensors' then return t end
    local base = os.getenv('FASTC_DATA') or ((os.getenv('HOME') or '/tmp') .. '/.cache/fastc')
    local dest = o.dest or data.path_join(base, o.limit and fmt('fashion_mnist_png_%d', o.limit) or 'fashion_mnist_png')
    if not data.is_dir(dest) then
      data.mkdir(data.path_parent(dest))
      write_folder(t, dest, o.limit)
    end
    return dest
  end
end
