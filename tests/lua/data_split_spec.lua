-- tests/lua/data_split_spec.lua — getters, splitters, labellers, column
-- readers and CSV reading of the data layer.
local fc = require 'fastc'
-- its own err_of: the pcall must run in this file for errors to name its lines
local function err_of(f, ...)
  local ok, e = pcall(f, ...)
  assert.is_false(ok, 'expected an error')
  return tostring(e)
end
local data = fc.data

local function sorted(t)
  local c = { unpack(t) }
  table.sort(c)
  return c
end

local tmpdir = dofile('tests/lua/support.lua').tmpdir

local function touch(p)
  data.mkdir(data.path_parent(p))
  local f = assert(io.open(p, 'wb'))
  f:write('x')
  f:close()
end

describe('paths and get_files', function()
  it('splits paths into parts', function()
    assert.are.equal('a/b/c.jpg', data.path_join('a', 'b/', 'c.jpg'))
    assert.are.equal('c.jpg', data.path_name('/x/a/b/c.jpg'))
    assert.are.equal('/x/a/b', data.path_parent('/x/a/b/c.jpg'))
    assert.are.equal('c', data.path_stem('a/c.jpg'))
    assert.are.equal('.jpg', data.path_suffix('a/C.JPG'))
    assert.are.equal('', data.path_suffix('a/README'))
  end)

  it('lists files sorted, by extension, skipping hidden ones, limited to folders', function()
    local root = tmpdir('files')
    for _, p in ipairs { 'train/b/2.png', 'train/b/1.jpg', 'train/a/x.JPEG', 'valid/a/y.png',
      'other/z.png', 'top.png', 'notes.txt', '.hidden/q.png', 'train/.h.png' } do
      touch(root .. '/' .. p)
    end
    local all = data.get_files(root)
    assert.are.equal(9 - 2, #all)
    local imgs = data.get_image_files(root)
    local rel = {}
    for i, p in ipairs(imgs) do rel[i] = p:sub(#root + 2) end
    -- a directory's files come before its subdirectories, names sorted
    assert.are.same({ 'top.png', 'other/z.png', 'train/a/x.JPEG', 'train/b/1.jpg', 'train/b/2.png',
      'valid/a/y.png' }, rel)
    local tv = data.get_image_files(root, { folders = { 'train', 'valid' } })
    assert.are.equal(4, #tv)
    assert.are.equal(1, #data.get_files(root, { extensions = { 'txt' } }))
    assert.are.equal(1, #data.get_image_files(root, { recurse = false }))
    assert.truthy(err_of(data.get_files, root .. '/missing'):find('cannot open directory', 1, true))
    os.execute("rm -rf '" .. root .. "'")
  end)
end)

describe('splitters', function()
  local items = {}
  for i = 1, 10 do items[i] = 'item' .. i end

  it('RandomSplitter: a seeded split of valid_pct, disjoint and complete', function()
    local s = data.RandomSplitter(0.3, 42)(items)
    assert.are.equal(7, #s[1])
    assert.are.equal(3, #s[2])
    local all = {}
    for _, i in ipairs(s[1]) do all[#all + 1] = i end
    for _, i in ipairs(s[2]) do all[#all + 1] = i end
    assert.are.same({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, sorted(all))
    assert.are.same(s, data.RandomSplitter { valid_pct = 0.3, seed = 42 }(items))
    assert.are_not.same(sorted(s[2]), sorted(data.RandomSplitter(0.3, 43)(items)[2]))
    assert.are.equal(2, #data.RandomSplitter()(items)[2]) -- default 0.2
    assert.has_error(function() data.RandomSplitter(1.5) end)
  end)

  it('GrandparentSplitter by the grandparent directory name', function()
    local paths = { 'd/train/a/1.png', 'd/valid/a/2.png', 'd/train/b/3.png', 'd/test/b/4.png', 'd/val/b/5.png' }
    assert.are.same({ { 1, 3 }, { 2 } }, data.GrandparentSplitter()(paths))
    assert.are.same({ { 1, 3 }, { 5 } }, data.GrandparentSplitter('train', 'val')(paths))
    assert.are.same({ { 1, 3 }, { 2, 5 } }, data.GrandparentSplitter { valid_name = { 'valid', 'val' } }(paths))
  end)

  it('FuncSplitter, MaskSplitter, IndexSplitter', function()
    assert.are.same({ { 1, 3, 5, 7, 9 }, { 2, 4, 6, 8, 10 } },
      data.FuncSplitter(function(o) return tonumber(o:match('%d+')) % 2 == 0 end)(items))
    local mask = {}
    for i = 1, 10 do mask[i] = i > 8 end
    assert.are.same({ { 1, 2, 3, 4, 5, 6, 7, 8 }, { 9, 10 } }, data.MaskSplitter(mask)(items))
    assert.are.same({ { 1, 3, 4, 5, 6, 7, 8, 9 }, { 2, 10 } }, data.IndexSplitter { 2, 10 }(items))
    assert.truthy(err_of(data.IndexSplitter { 11 }, items):find('index 11 out of range for 10 items', 1, true))
  end)

  it('FileSplitter reads the validation file names', function()
    local d = tmpdir('fs')
    local f = assert(io.open(d .. '/valid.txt', 'w'))
    f:write('b.png\nd.png\n')
    f:close()
    local s = data.FileSplitter(d .. '/valid.txt') { 'x/a.png', 'x/b.png', 'y/c.png', 'y/d.png' }
    assert.are.same({ { 1, 3 }, { 2, 4 } }, s)
    os.execute("rm -rf '" .. d .. "'")
  end)

  it('ColSplitter on a column of booleans, strings or a value', function()
    local rows = { { is_valid = 'False', k = 'a' }, { is_valid = 'True', k = 'b' }, { is_valid = true, k = 'a' },
      { is_valid = 0, k = 'c' } }
    assert.are.same({ { 1, 4 }, { 2, 3 } }, data.ColSplitter()(rows))
    assert.are.same({ { 2, 4 }, { 1, 3 } }, data.ColSplitter('k', 'a')(rows))
    assert.truthy(err_of(data.ColSplitter('nope'), rows):find('no column nope', 1, true))
  end)

  it('TrainTestSplitter: sizes, seeds and stratification', function()
    local n, labels = 20, {}
    for i = 1, n do labels[i] = i <= 15 and 'a' or 'b' end
    local its = {}
    for i = 1, n do its[i] = i end
    local s = data.TrainTestSplitter(0.2, { random_state = 1 })(its)
    assert.are.equal(16, #s[1])
    assert.are.equal(4, #s[2])
    assert.are.same(s, data.TrainTestSplitter(0.2, { random_state = 1 })(its))
    local st = data.TrainTestSplitter(0.2, { random_state = 3, stratify = labels })(its)
    local nb = 0
    for _, i in ipairs(st[2]) do if labels[i] == 'b' then nb = nb + 1 end end
    assert.are.equal(4, #st[2])
    assert.are.equal(1, nb) -- 5 of 20 are 'b': one of the 4 test items
    local ns = data.TrainTestSplitter(0.25, { shuffle = false })(its)
    assert.are.same({ 16, 17, 18, 19, 20 }, ns[2])
  end)
end)

describe('labellers and readers', function()
  it('parent_label is the directory name', function()
    assert.are.equal('cat', data.parent_label('/data/train/cat/001.jpg'))
  end)

  it('RegexLabeller uses Python re syntax through PCRE2', function()
    local lab = data.RegexLabeller([[^(.*)_\d+\.jpg$]])
    assert.are.equal('great_pyrenees', lab('great_pyrenees_173.jpg'))
    assert.are.equal('Abyssinian', data.RegexLabeller('/([^/]+)_\\d+.jpg$')('/pets/Abyssinian_12.jpg'))
    assert.truthy(err_of(lab, 'nope.png'):find('failed to find', 1, true))
    -- match anchors at the start, search does not
    assert.are.equal('b', data.RegexLabeller('(b)')('ab'))
    assert.has_error(function() data.RegexLabeller('(b)', { match = true })('ab') end)
    -- Lua patterns on request
    assert.are.equal('dog', data.RegexLabeller('^(%a+)_%d+', { lua = true })('dog_12.png'))
    assert.truthy(err_of(data.regex, '(unclosed'):find('bad pattern', 1, true))
  end)

  it('ColReader reads by name or position, with prefix, suffix and delimiter', function()
    local row = { fname = 'a', labels = 'x y', 'a', 'x y' }
    assert.are.equal('a', data.ColReader('fname')(row))
    assert.are.equal('a', data.ColReader(1)(row))
    assert.are.equal('imgs/a.jpg', data.ColReader('fname', { pref = 'imgs/', suff = '.jpg' })(row))
    assert.are.same({ 'x', 'y' }, data.ColReader(2, { label_delim = ' ' })(row))
    assert.are.same({ 'a', 'x y' }, data.ColReader { 'fname', 'labels' }(row))
    assert.has_error(function() data.ColReader('missing')(row) end)
  end)

  it('read_csv: header, quotes, numbers and rows', function()
    local d = tmpdir('csv')
    local f = assert(io.open(d .. '/l.csv', 'wb'))
    f:write('name,label,score\r\na.png,"cat, big",1.5\nb.png,dog,2\n"c ""q"".png",cat,3\n')
    f:close()
    local df = data.read_csv(d .. '/l.csv')
    assert.are.same({ 'name', 'label', 'score' }, df.columns)
    assert.are.equal(3, df:len())
    assert.are.same({ 'cat, big', 'dog', 'cat' }, df:col('label'))
    assert.are.same({ 1.5, 2, 3 }, df:col(3))
    local r = df:get(3)
    assert.are.equal('c "q".png', r.name)
    assert.are.equal(r[1], r.name)
    local nh = data.read_csv(d .. '/l.csv', { header = false })
    assert.are.equal(4, nh:len())
    assert.are.equal('name', nh:get(1)[1])
    assert.has_error(function() data.read_csv(d .. '/none.csv') end)
    os.execute("rm -rf '" .. d .. "'")
  end)
end)
