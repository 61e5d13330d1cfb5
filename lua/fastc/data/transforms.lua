-- lua/fastc/data/transforms.lua — fastai's data/transforms.py in Lua:
-- splitters, labellers, column readers, the categorize transforms and the
-- batch transforms every image pipeline uses (IntToFloatTensor, Normalize).
--
-- Splitters take the list of items and return {train_idx, valid_idx}, two
-- Lua lists of 1-based positions. Class ids count from 1, as everywhere in
-- fastc: a vocab is a Lua list, vocab[id] is the label.
return function(fc)
  local data = fc.data
  local Rng = require 'fastc.data.rng'
  local Transform, ItemTransform = data.Transform, data.ItemTransform
  local fmt, floor = string.format, math.floor

  local function opts_or(first, keys, ...)
    -- f(a, b) or f{a=..., b=...}: the options table either way
    if type(first) == 'table' and getmetatable(first) == nil and first[1] == nil then return first end
    local o, args = {}, { first, ... }
    for i, k in ipairs(keys) do o[k] = args[i] end
    return o
  end

  local function seq(n)
    local t = {}
    for i = 1, n do t[i] = i end
    return t
  end

  local function len_of(items)
    if type(items) == 'table' and items.len then return items:len() end
    return #items
  end
  local function item_at(items, i)
    if type(items) == 'table' and items.get then return items:get(i) end
    return items[i]
  end
  data.len_of, data.item_at = len_of, item_at

  -- {train, valid} from a valid mask over 1..n
  local function split_by(n, is_valid)
    local train, valid = {}, {}
    for i = 1, n do
      if is_valid(i) then valid[#valid + 1] = i else train[#train + 1] = i end
    end
    return { train, valid }
  end

  -- ---- splitters -----------------------------------------------------------

  -- RandomSplitter(valid_pct=0.2, seed=nil): a random valid_pct of the items
  -- for validation; the same seed gives the same split.
  function data.RandomSplitter(...)
    local o = opts_or(..., { 'valid_pct', 'seed' }, select(2, ...))
    local valid_pct = o.valid_pct or 0.2
    if valid_pct < 0 or valid_pct > 1 then
      error(fmt('RandomSplitter: valid_pct must be in [0, 1], got %s', valid_pct), 2)
    end
    return function(items)
      local n = len_of(items)
      local seed = o.seed or data.default_rng():seed()
      local perm = Rng('RandomSplitter', seed):perm(n)
      local cut = floor(valid_pct * n)
      local train, valid = {}, {}
      for i = 1, n do
        if i <= cut then valid[#valid + 1] = perm[i] else train[#train + 1] = perm[i] end
      end
      return { train, valid }
    end
  end

  local function name_set(names, default)
    names = names or default
    local set = {}
    if type(names) == 'string' then set[names] = true else for _, n in ipairs(names) do set[n] = true end end
    return set
  end

  -- GrandparentSplitter(train_name='train', valid_name='valid'): by the name
  -- of each file's grandparent directory (path/train/<class>/x.jpg).
  function data.GrandparentSplitter(...)
    local o = opts_or(..., { 'train_name', 'valid_name' }, select(2, ...))
    local tset, vset = name_set(o.train_name, 'train'), name_set(o.valid_name, 'valid')
    return function(items)
      local train, valid = {}, {}
      for i = 1, len_of(items) do
        local gp = data.path_name(data.path_parent(data.path_parent(tostring(item_at(items, i)))))
        if tset[gp] then train[#train + 1] = i end
        if vset[gp] then valid[#valid + 1] = i end
      end
      return { train, valid }
    end
  end

  -- FuncSplitter(f): items where f(item) is true go to validation.
  function data.FuncSplitter(f)
    return function(items)
      return split_by(len_of(items), function(i) return f(item_at(items, i)) and true or false end)
    end
  end

  -- MaskSplitter(mask): mask[i] true -> validation.
  function data.MaskSplitter(mask)
    return function(items)
      return split_by(len_of(items), function(i) return mask[i] and true or false end)
    end
  end

  -- IndexSplitter(valid_idx): those 1-based positions go to validation.
  function data.IndexSplitter(valid_idx)
    return function(items)
      local n, set = len_of(items), {}
      for _, i in ipairs(valid_idx) do
        if i < 1 or i > n or i ~= floor(i) then
          error(fmt('IndexSplitter: index %s out of range for %d items', tostring(i), n), 2)
        end
        set[i] = true
      end
      return split_by(n, function(i) return set[i] end)
    end
  end

  -- FileSplitter(fname): items whose file name is listed (one per line) in
  -- fname go to validation.
  function data.FileSplitter(fname)
    return function(items)
      local f = io.open(fname, 'r')
      if not f then error('FileSplitter: cannot open ' .. fname, 2) end
      local names = {}
      for line in f:lines() do
        line = line:gsub('%s+$', '')
        if line ~= '' then names[line] = true end
      end
      f:close()
      return split_by(len_of(items), function(i) return names[data.path_name(tostring(item_at(items, i)))] end)
    end
  end

  local TRUE_STRINGS = { ['true'] = true, ['True'] = true, ['TRUE'] = true, ['1'] = true, yes = true }
  local function truthy(v)
    if type(v) == 'string' then return TRUE_STRINGS[v] or false end
    if type(v) == 'number' then return v ~= 0 end
    return v and true or false
  end

  -- ColSplitter(col='is_valid', on=nil): rows (of a DataFrame) whose column
  -- is true (true, 1, 'True', 'true'), or equal to `on`, go to validation.
  function data.ColSplitter(...)
    local o = opts_or(..., { 'col', 'on' }, select(2, ...))
    local col = o.col or 'is_valid'
    return function(items)
      return split_by(len_of(items), function(i)
        local row = item_at(items, i)
        local v = row[col]
        if v == nil then error(fmt('ColSplitter: row %d has no column %s', i, tostring(col)), 3) end
        if o.on ~= nil then
          if type(o.on) == 'table' then
            for _, w in ipairs(o.on) do if v == w then return true end end
            return false
          end
          return v == o.on
        end
        return truthy(v)
      end)
    end
  end

  -- TrainTestSplitter(test_size=0.2, {random_state=, stratify=, train_size=,
  -- shuffle=true}): scikit-learn's train_test_split, stratified by the
  -- labels in `stratify` (one per item) when given.
  function data.TrainTestSplitter(test_size, o)
    if type(test_size) == 'table' then o, test_size = test_size, test_size.test_size end
    o = o or {}
    test_size = test_size or 0.2
    return function(items)
      local n = len_of(items)
      local n_test = test_size < 1 and math.ceil(test_size * n) or test_size
      local n_train = o.train_size and (o.train_size < 1 and floor(o.train_size * n) or o.train_size)
        or n - n_test
      if n_test + n_train > n then
        error(fmt('TrainTestSplitter: %d test + %d train items exceed the %d items', n_test, n_train, n), 2)
      end
      local rng = Rng('TrainTestSplitter', o.random_state or data.default_rng():seed())
      if o.shuffle == false then
        if o.stratify then error('TrainTestSplitter: stratify needs shuffle', 2) end
        local train, valid = {}, {}
        for i = 1, n_train do train[i] = i end
        for i = n_train + 1, n_train + n_test do valid[#valid + 1] = i end
        return { train, valid }
      end
      if not o.stratify then
        local perm = rng:perm(n)
        local train, valid = {}, {}
        for i = 1, n_test do valid[i] = perm[i] end
        for i = n_test + 1, n_test + n_train do train[#train + 1] = perm[i] end
        return { train, valid }
      end
      -- per class: its share of the test items, remainders to the largest
      -- fractions, then a shuffle within each class
      local by_class, classes = {}, {}
      for i = 1, n do
        local c = o.stratify[i]
        if by_class[c] == nil then by_class[c] = {}; classes[#classes + 1] = c end
        table.insert(by_class[c], i)
      end
      table.sort(classes, function(a, b) return tostring(a) < tostring(b) end)
      local quota, frac, given = {}, {}, 0
      for _, c in ipairs(classes) do
        local exact = #by_class[c] * n_test / n
        quota[c], frac[c] = floor(exact), exact - floor(exact)
        given = given + quota[c]
      end
      local order = {}
      for i, c in ipairs(classes) do order[i] = c end
      table.sort(order, function(a, b) if frac[a] ~= frac[b] then return frac[a] > frac[b] end
        return tostring(a) < tostring(b) end)
      for k = 1, n_test - given do quota[order[(k - 1) % #order + 1]] = quota[order[(k - 1) % #order + 1]] + 1 end
      local train, valid = {}, {}
      for _, c in ipairs(classes) do
        local members = by_class[c]
        local perm = rng:perm(#members)
        for k = 1, #members do
          local i = members[perm[k]]
          if k <= quota[c] then valid[#valid + 1] = i else train[#train + 1] = i end
        end
      end
      local tperm = rng:perm(#train)
      local shuffled = {}
      for k = 1, math.min(n_train, #train) do shuffled[k] = train[tperm[k]] end
      return { shuffled, valid }
    end
  end

  -- ---- labellers -----------------------------------------------------------

  -- The name of the directory holding the file.
  function data.parent_label(o) return data.path_name(data.path_parent(tostring(o))) end

  -- RegexLabeller(pat, {match=false}): the first group of a Perl-style
  -- regular expression (Python's re syntax, through PCRE2) found in the
  -- item's path; match=true anchors it at the start. {lua=true} reads pat
  -- as a Lua pattern instead.
  function data.RegexLabeller(pat, o)
    o = o or {}
    local finder
    if o.lua then
      local p = o.match and pat:sub(1, 1) ~= '^' and '^' .. pat or pat
      finder = function(s) return s:match(p) end
    else
      local re = data.regex(pat)
      finder = o.match and function(s) return re:match(s) end or function(s) return re:search(s) end
    end
    return setmetatable({ pat = pat }, { __call = function(_, item)
      local s = tostring(item)
      local res = finder(s)
      if res == nil then error(fmt('RegexLabeller: failed to find "%s" in "%s"', pat, s), 2) end
      return res
    end, __tostring = function() return fmt('RegexLabeller(%q)', pat) end })
  end

  -- ColReader(cols, {pref='', suff='', label_delim=nil}): the value of a
  -- column (a name, or a 1-based position) of a row; several columns give
  -- a list. pref/suff wrap the value (file names into paths); label_delim
  -- splits it into a list of labels.
  function data.ColReader(cols, o)
    o = o or {}
    local pref, suff, delim = o.pref or '', o.suff or '', o.label_delim
    local function one(row, c)
      local v = row[c]
      if v == nil then error(fmt('ColReader: the row has no column %s', tostring(c)), 3) end
      if delim then
        local out = {}
        if type(v) == 'string' and v ~= '' then
          for part in (v .. delim):gmatch('(.-)' .. delim:gsub('%p', '%%%0')) do
            if part ~= '' then out[#out + 1] = part end
          end
        end
        return out
      end
      if pref ~= '' or suff ~= '' then return pref .. tostring(v) .. suff end
      return v
    end
    local list = type(cols) == 'table' and cols or nil
    return function(row)
      if not list then return one(row, cols) end
      local out = {}
      for i, c in ipairs(list) do out[i] = one(row, c) end
      return out
    end
  end

  -- ---- DataFrame: rows of a CSV ----------------------------------------------

  -- A table of rows read from a CSV: df.columns (names), df:len(),
  -- df:get(i) (a row: values by column name and by 1-based position),
  -- df:col(name) (a Lua list).
  local DataFrame = require('fastc.class')('DataFrame')
  data.DataFrame = DataFrame

  -- DataFrame(columns, cols_by_name) — columns: names in order; values: a
  -- list per column.
  function DataFrame:init(columns, values)
    self.columns, self.values = columns, values
    self.n = columns[1] and #values[columns[1]] or 0
    self._rows = {}
  end
  function DataFrame:len() return self.n end
  function DataFrame:col(name)
    if type(name) == 'number' then name = self.columns[name] end
    local v = self.values[name]
    if v == nil then error(fmt('DataFrame: no column %s (columns: %s)', tostring(name),
      table.concat(self.columns, ', ')), 2) end
    return v
  end
  function DataFrame:get(i)
    local r = self._rows[i]
    if r then return r end
    if i < 1 or i > self.n then error(fmt('DataFrame: row %d out of range 1..%d', i, self.n), 2) end
    r = {}
    for j, name in ipairs(self.columns) do
      local v = self.values[name][i]
      r[name], r[j] = v, v
    end
    self._rows[i] = r
    return r
  end
  function DataFrame:rows()
    local out = {}
    for i = 1, self.n do out[i] = self:get(i) end
    return out
  end
  function DataFrame:__tostring()
    return fmt('DataFrame: %d rows x %d columns (%s)', self.n, #self.columns, table.concat(self.columns, ', '))
  end

  -- Numbers where a whole column reads as numbers.
  local function convert_column(vals)
    for i = 1, #vals do
      local v = vals[i]
      if type(v) == 'string' and tonumber(v) == nil then return vals end
    end
    local out = {}
    for i = 1, #vals do out[i] = type(vals[i]) == 'string' and tonumber(vals[i]) or vals[i] end
    return out
  end

  -- A small CSV parser (RFC 4180 quotes) for when the C reader is absent.
  local function parse_csv_lua(text, sep)
    local rows, row, field, i, n = {}, {}, {}, 1, #text
    local in_quotes = false
    while i <= n do
      local ch = text:sub(i, i)
      if in_quotes then
        if ch == '"' then
          if text:sub(i + 1, i + 1) == '"' then field[#field + 1] = '"'; i = i + 1 else in_quotes = false end
        else field[#field + 1] = ch end
      elseif ch == '"' then in_quotes = true
      elseif ch == sep then row[#row + 1] = table.concat(field); field = {}
      elseif ch == '\n' or ch == '\r' then
        if ch == '\r' and text:sub(i + 1, i + 1) == '\n' then i = i + 1 end
        row[#row + 1] = table.concat(field); field = {}
        rows[#rows + 1] = row; row = {}
      else field[#field + 1] = ch end
      i = i + 1
    end
    if #field > 0 or #row > 0 then row[#row + 1] = table.concat(field); rows[#rows + 1] = row end
    return rows
  end
  data.parse_csv_lua = parse_csv_lua

  -- read_csv(path, {header=true, sep=','}) -> DataFrame; columns of numbers
  -- become Lua numbers. Without a header the columns are named 1, 2, ...
  -- The C reader (runtime/csv.c) does the work when the loader is built.
  function data.read_csv(path, o)
    o = o or {}
    local header, sep = o.header ~= false, o.sep or o.delimiter or ','
    local cl = data.cloader and data.cloader()
    if cl and cl.read_csv then
      local df = cl.read_csv(path, { header = header, sep = sep })
      return DataFrame(df.names, df.columns)
    end
    local f = io.open(path, 'rb')
    if not f then error('read_csv: cannot open ' .. tostring(path), 2) end
    local text = f:read('*a')
    f:close()
    local rows = parse_csv_lua(text, sep)
    local first = rows[1] or {}
    local width = 0
    for _, r in ipairs(rows) do width = math.max(width, #r) end
    local names, values = {}, {}
    for j = 1, width do names[j] = header and first[j] or j end
    for j, name in ipairs(names) do
      local col = {}
      for i = header and 2 or 1, #rows do col[#col + 1] = rows[i][j] or '' end
      values[name] = convert_column(col)
    end
    return DataFrame(names, values)
  end

  -- ---- losses ----------------------------------------------------------------

  -- fastai's flattened losses: fc.losses.* when the training layer provides
  -- them, else these small equivalents (callable, with activation/decodes).
  local function flat_loss(name, f, activation, decodes, axis)
    return setmetatable({ name = name, axis = axis, activation = activation, decodes = decodes },
      { __call = function(self, out, targ) return f(out, targ, self.axis) end,
        __tostring = function() return name end })
  end
  local function ce(out, targ, axis)
    if axis ~= -1 and axis ~= 2 then out = out:transpose(axis, -1) end
    if out:dim() > 2 and axis ~= 2 then
      out = out:reshape(-1, out:size(-1))
      targ = targ:reshape(-1)
    end
    return fc.F.cross_entropy(out, targ)
  end
  local function loss(name, opts)
    local L = fc.losses
    if L and L[name] then return L[name](opts) end
    opts = opts or {}
    local axis = opts.axis or -1
    if name == 'CrossEntropyLossFlat' then
      return flat_loss(name, ce, function(_, x) return x:softmax(axis) end,
        function(_, x) return x:argmax(axis) end, axis)
    elseif name == 'BCEWithLogitsLossFlat' then
      local thresh = opts.thresh or 0.5
      return flat_loss(name, function(out, targ) return fc.F.binary_cross_entropy_with_logits(out, targ:to(out.dtype)) end,
        function(_, x) return x:sigmoid() end, function(_, x) return x:gt(thresh) end, axis)
    elseif name == 'MSELossFlat' then
      return flat_loss(name, function(out, targ) return fc.F.mse_loss(out:reshape(-1), targ:reshape(-1):to(out.dtype)) end,
        function(_, x) return x end, function(_, x) return x end, axis)
    end
    error('unknown loss ' .. name, 2)
  end
  data.loss = loss

  -- ---- categories ------------------------------------------------------------

  local function sort_labels(list)
    local all_numbers = true
    for _, v in ipairs(list) do if type(v) ~= 'number' then all_numbers = false end end
    if all_numbers then table.sort(list) else
      table.sort(list, function(a, b) return tostring(a) < tostring(b) end)
    end
    return list
  end

  -- The unique labels of `items` (a list, or anything with len/get) in
  -- sorted order, as a Lua list (fastai's CategoryMap). Lists of labels are
  -- flattened (multi-label items).
  function data.CategoryMap(items, o)
    o = o or {}
    local seen, out = {}, {}
    local function add(v)
      if type(v) == 'table' then for _, w in ipairs(v) do add(w) end; return end
      if not seen[v] then seen[v] = true; out[#out + 1] = v end
    end
    for i = 1, len_of(items) do add(item_at(items, i)) end
    if o.sort ~= false then sort_labels(out) end
    if o.add_na then table.insert(out, 1, '#na#') end
    return out
  end

  local function index_of(vocab)
    local o2i = {}
    for i, v in ipairs(vocab) do o2i[v] = i end
    return o2i
  end

  -- Categorize(vocab=nil, {sort=true, add_na=false}): label -> class id
  -- (1-based), decoding back to the label. The vocab comes from the
  -- training labels unless given.
  local Categorize = Transform:extend('Categorize')
  Categorize.order = 1
  data.Categorize = Categorize
  function Categorize:init(vocab, o)
    if type(vocab) == 'table' and vocab[1] == nil and next(vocab) ~= nil then vocab, o = nil, vocab end
    o = o or {}
    self.sort, self.add_na = o.sort ~= false, o.add_na
    self.loss_func = loss('CrossEntropyLossFlat')
    if vocab then self:set_vocab(vocab) end
  end
  function Categorize:set_vocab(vocab)
    self.vocab, self.o2i, self.c = vocab, index_of(vocab), #vocab
  end
  function Categorize:setups(items)
    if self.vocab == nil and items ~= nil then
      self:set_vocab(data.CategoryMap(items, { sort = self.sort, add_na = self.add_na }))
    end
  end
  function Categorize:params() return self.vocab and fmt('{vocab: %d classes}', #self.vocab) or nil end
  Categorize.encodes = function(self, o)
    if self.o2i == nil then error('Categorize: no vocab (give one, or set the transform up on items)', 2) end
    local id = self.o2i[o]
    if id == nil then
      error(fmt('Categorize: label %q is not in the vocab (%d classes: %s%s)', tostring(o), #self.vocab,
        table.concat(self.vocab, ', ', 1, math.min(#self.vocab, 10)), #self.vocab > 10 and ', ...' or ''), 0)
    end
    return id, 'category'
  end
  Categorize.decodes = { category = function(self, id)
    if fc.is_tensor(id) then id = id:item() end
    return self.vocab[id], 'label'
  end }

  -- MultiCategorize(vocab=nil, {add_na}): a list of labels -> a list of ids.
  local MultiCategorize = Categorize:extend('MultiCategorize')
  data.MultiCategorize = MultiCategorize
  function MultiCategorize:init(vocab, o)
    Categorize.init(self, vocab, o)
    self.loss_func = loss('BCEWithLogitsLossFlat')
  end
  MultiCategorize.encodes = function(self, labels)
    local ids = {}
    for i, l in ipairs(labels) do ids[i] = Categorize.encodes(self, l) end
    return ids, 'multicategory_ids'
  end
  MultiCategorize.decodes = { multicategory_ids = function(self, ids)
    local out = {}
    for i, id in ipairs(ids) do out[i] = self.vocab[id] end
    return out, 'labels'
  end }

  -- OneHotEncode(c): a list of ids -> a float32 [c] tensor of 0/1.
  local OneHotEncode = Transform:extend('OneHotEncode')
  OneHotEncode.order = 2
  data.OneHotEncode = OneHotEncode
  function OneHotEncode:init(c) self.c = c end
  function OneHotEncode:setups(items)
    if self.c == nil and items and items.vocab then self.c = #items.vocab end
  end
  OneHotEncode.encodes = { multicategory_ids = function(self, ids)
    local c = self.c or error('OneHotEncode: number of classes unknown', 0)
    local t = fc.zeros(c)
    for _, id in ipairs(ids) do t[id] = 1 end
    return t, 'multicategory'
  end }
  OneHotEncode.decodes = { multicategory = function(_, t)
    local ids = {}
    for i, v in ipairs(t:totable()) do if v > 0.5 then ids[#ids + 1] = i end end
    return ids, 'multicategory_ids'
  end }

  -- EncodedMultiCategorize(vocab): items already one-hot (lists or tensors).
  local EncodedMultiCategorize = Categorize:extend('EncodedMultiCategorize')
  data.EncodedMultiCategorize = EncodedMultiCategorize
  function EncodedMultiCategorize:init(vocab)
    Categorize.init(self, vocab)
    self.loss_func = loss('BCEWithLogitsLossFlat')
  end
  EncodedMultiCategorize.encodes = function(_, o)
    if fc.is_tensor(o) then return o:float(), 'multicategory' end
    return fc.tensor(o, { dtype = 'float32' }), 'multicategory'
  end
  EncodedMultiCategorize.decodes = { multicategory = function(self, t)
    local out = {}
    for i, v in ipairs(t:totable()) do if v > 0.5 then out[#out + 1] = self.vocab[i] end end
    return out, 'labels'
  end }

  -- RegressionSetup(c=nil): numbers (or lists) -> float32 tensors.
  local RegressionSetup = Transform:extend('RegressionSetup')
  data.RegressionSetup = RegressionSetup
  function RegressionSetup:init(c)
    self.c = c
    self.loss_func = loss('MSELossFlat')
  end
  function RegressionSetup:setups(items)
    if self.c ~= nil or items == nil or len_of(items) == 0 then return end
    local o = item_at(items, 1)
    self.c = fc.is_tensor(o) and o:numel() or type(o) == 'table' and #o or 1
  end
  RegressionSetup.encodes = function(_, o)
    if fc.is_tensor(o) then return o:float(), 'regression' end
    return fc.tensor(o, { dtype = 'float32' }), 'regression'
  end
  RegressionSetup.decodes = { regression = function(_, t) return t, 'regression' end }

  -- ---- tensors -----------------------------------------------------------------

  -- ToTensor: images are decoded straight to uint8 tensors here, so this
  -- only marks the place fastai's pipelines have it (order 5).
  local ToTensor = Transform:extend('ToTensor')
  ToTensor.order = 5
  data.ToTensor = ToTensor
  function ToTensor:c_spec() return false end -- nothing for the C loader to do

  -- IntToFloatTensor(div=255, div_mask=1): uint8 images to float32 in [0, 1];
  -- masks to int64 class ids, counted from 1 (pixel code 0 is class 1).
  local IntToFloatTensor = Transform:extend('IntToFloatTensor')
  IntToFloatTensor.order = 10
  data.IntToFloatTensor = IntToFloatTensor
  function IntToFloatTensor:init(o)
    o = o or {}
    self.div, self.div_mask = o.div or 255, o.div_mask or 1
  end
  function IntToFloatTensor:params() return fmt('{div: %g, div_mask: %g}', self.div, self.div_mask) end
  IntToFloatTensor.encodes = {
    image = function(self, x)
      if x:is_floating_point() then return x end
      return x:float():div_(self.div)
    end,
    mask = function(self, x)
      if x.dtype == 'int64' then return x end
      if x:dim() >= 3 and x:size(-3) == 1 then x = x:squeeze(-3) end
      if self.div_mask ~= 1 then x = x:float():div_(self.div_mask):floor_() end
      return x:long():add_(1)
    end,
  }
  IntToFloatTensor.decodes = {
    image = function(self, x)
      if not x:is_floating_point() then return x end
      return (x:clamp(0, 1) * self.div):round_():to('uint8')
    end,
    mask = function(self, x)
      if x.dtype == 'uint8' then return x end
      return ((x - 1) * self.div_mask):to('uint8')
    end,
  }

  local function channel_stat(v, name)
    if fc.is_tensor(v) then return v:float():reshape(1, -1, 1, 1) end
    if type(v) == 'number' then v = { v } end
    if type(v) ~= 'table' then error('Normalize: ' .. name .. ' must be a list of numbers or a tensor', 3) end
    return fc.tensor(v, { dtype = 'float32' }):reshape(1, -1, 1, 1)
  end

  -- Normalize(mean, std) on image batches ([B,C,H,W] floats): (x - mean) /
  -- std per channel; without stats, they come from one batch at setup.
  local Normalize = Transform:extend('Normalize')
  Normalize.order = 99
  data.Normalize = Normalize
  function Normalize:init(mean, std, o)
    if mean ~= nil then self.mean = channel_stat(mean, 'mean') end
    if std ~= nil then self.std = channel_stat(std, 'std') end
    self.axes = (o or {}).axes or { 1, 3, 4 }
  end
  function Normalize.from_stats(mean, std, o) return Normalize(mean, std, o) end
  function Normalize:params()
    if not self.mean then return '{stats from a batch}' end
    local function list(t)
      local v = t:reshape(-1):totable()
      for i = 1, #v do v[i] = fmt('%.4g', v[i]) end
      return '[' .. table.concat(v, ', ') .. ']'
    end
    return fmt('{mean: %s, std: %s}', list(self.mean), list(self.std))
  end
  -- setups(dl): stats of one batch (the transforms before this one applied)
  function Normalize:setups(dl)
    if self.mean ~= nil and self.std ~= nil then return end
    if not (dl and dl.one_batch) then return end
    local x = dl:one_batch()
    self.mean = x:mean(self.axes, true)
    self.std = x:std(self.axes, { keepdim = true }) + 1e-7
  end
  Normalize.encodes = { image = function(self, x)
    if not self.mean then error('Normalize: no stats (give mean and std, or set it up on a DataLoader)', 0) end
    return (x - self.mean) / self.std
  end }
  Normalize.decodes = { image = function(self, x)
    if not self.mean then return x end
    return x * self.std + self.mean
  end }

  -- imagenet_stats etc., as fastai names them: {mean, std}
  data.imagenet_stats = { { 0.485, 0.456, 0.406 }, { 0.229, 0.224, 0.225 } }
  data.cifar_stats = { { 0.491, 0.482, 0.447 }, { 0.247, 0.243, 0.261 } }
  data.mnist_stats = { { 0.131 }, { 0.308 } }

  data.ItemTransform = ItemTransform
end
