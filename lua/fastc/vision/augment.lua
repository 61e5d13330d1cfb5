-- lua/fastc/vision/augment.lua — batch augmentation on whole tensors
-- (fastai's vision/augment.py, GPU half): flips, rotations, zooms,
-- perspective warps composed into one affine_grid + grid_sample pass, and
-- brightness/contrast composed into one pass in logit space.
--
-- Each random draw is per image, from the batch's own stream (the
-- DataLoader passes Rng(seed, epoch, 'batch', b)), so a seed reproduces the
-- augmented batches exactly. Matrices are built in Lua (a few numbers per
-- image) and the pixels move in C.
return function(fc)
  local vision, data = fc.vision, fc.data
  local Transform, RandTransform = data.Transform, data.RandTransform
  local fmt, floor, pi = string.format, math.floor, math.pi

  -- ---- 3x3 matrices as Lua tables ---------------------------------------------

  local function eye3() return { { 1, 0, 0 }, { 0, 1, 0 }, { 0, 0, 1 } } end
  local function mat3(a, b, c, d, e, f) return { { a, b, c }, { d, e, f }, { 0, 0, 1 } } end
  local function matmul3(a, b)
    local out = {}
    for i = 1, 3 do
      out[i] = {}
      for j = 1, 3 do out[i][j] = a[i][1] * b[1][j] + a[i][2] * b[2][j] + a[i][3] * b[3][j] end
    end
    return out
  end
  vision.matmul3 = matmul3

  -- draw() with probability p, else `neutral` (fastai's _draw_mask)
  local function masked(rng, p, draw, neutral)
    if p >= 1 or rng:random() < p then return draw() end
    return neutral
  end

  -- Solves the 8 coefficients of the perspective map sending p2[i] to p1[i]
  -- (4 points each), Gaussian elimination with partial pivoting.
  local function find_coeffs(p1, p2)
    local A = {}
    for i = 1, 4 do
      local x2, y2, x1, y1 = p2[i][1], p2[i][2], p1[i][1], p1[i][2]
      A[#A + 1] = { x2, y2, 1, 0, 0, 0, -x1 * x2, -x1 * y2, x1 }
      A[#A + 1] = { 0, 0, 0, x2, y2, 1, -y1 * x2, -y1 * y2, y1 }
    end
    for col = 1, 8 do
      local piv = col
      for r = col + 1, 8 do if math.abs(A[r][col]) > math.abs(A[piv][col]) then piv = r end end
      A[col], A[piv] = A[piv], A[col]
      local d = A[col][col]
      if d == 0 then return nil end
      for r = 1, 8 do
        if r ~= col then
          local f = A[r][col] / d
          if f ~= 0 then for k = col, 9 do A[r][k] = A[r][k] - f * A[col][k] end end
        end
      end
    end
    local out = {}
    for i = 1, 8 do out[i] = A[i][9] / A[i][i] end
    return out
  end
  vision.find_coeffs = find_coeffs

  -- Applies one perspective map per image to a grid [B,H,W,2].
  local function apply_perspective(grid, coeffs)
    local B = grid:size(1)
    local cols = {}
    for k = 1, 8 do
      local v = {}
      for i = 1, B do v[i] = coeffs[i][k] end
      cols[k] = fc.tensor(v, { dtype = grid.dtype }):reshape(B, 1, 1)
    end
    local gx, gy = grid:select(4, 1), grid:select(4, 2)
    local den = cols[7] * gx + cols[8] * gy + 1
    if den:eq(0):any():item() then return grid end
    local nx = (cols[1] * gx + cols[2] * gy + cols[3]) / den
    local ny = (cols[4] * gx + cols[5] * gy + cols[6]) / den
    return fc.stack({ nx, ny }, 4)
  end
  vision.apply_perspective = apply_perspective

  -- ---- the affine/coordinate pass ---------------------------------------------

  local function first_of(b)
    while data.is_tuple(b) do b = b[1] end
    return b
  end

  -- fastai's "area" pre-shrink: when the grid covers much more than the
  -- output can show, average-pool first so bilinear sampling does not alias.
  local function shrink_for(x, grid, oh, ow)
    local mn, mx = grid:min():item(), grid:max():item()
    local z = mx > mn and 2 / (mx - mn) or 1
    local d = math.min(x:size(3) / oh, x:size(4) / ow) / 2
    if d > 1 and d > z then
      local h, w = floor(x:size(3) / d), floor(x:size(4) / d)
      local kh, kw = floor(x:size(3) / h), floor(x:size(4) / w)
      if h >= 1 and w >= 1 and (kh > 1 or kw > 1) then return vision.area_shrink(x, kh, kw) end
    end
    return x
  end

  -- AffineCoordTfm{aff_fs=, coord_fs=, size=, mode='bilinear',
  -- pad_mode='reflection', mode_mask='nearest', align_corners=true}
  local AffineCoordTfm = Transform:extend('AffineCoordTfm')
  AffineCoordTfm.order = 30
  vision.AffineCoordTfm = AffineCoordTfm
  function AffineCoordTfm:init(o)
    o = o or {}
    self.aff_fs = o.aff_fs or {}
    self.coord_fs = o.coord_fs or {}
    self.size = o.size and vision.hw(o.size, 'AffineCoordTfm')
    self.mode, self.mode_mask = o.mode or 'bilinear', o.mode_mask or 'nearest'
    self.pad_mode = o.pad_mode or 'reflection'
    self.align_corners = o.align_corners ~= false
    self.names = { o.name or getmetatable(self).__name }
  end
  function AffineCoordTfm:name_of() return table.concat(self.names, '+') end
  function AffineCoordTfm:params()
    return fmt('{size: %s, mode: %s, pad_mode: %s}', self.size and (self.size[1] .. 'x' .. self.size[2]) or 'same',
      self.mode, self.pad_mode)
  end

  function AffineCoordTfm:compose(t)
    for _, f in ipairs(t.aff_fs) do self.aff_fs[#self.aff_fs + 1] = f end
    for _, f in ipairs(t.coord_fs) do self.coord_fs[#self.coord_fs + 1] = f end
    for _, n in ipairs(t.names) do self.names[#self.names + 1] = n end
    self.size = self.size or t.size
  end

  -- The [B,2,3] matrices for this batch (identity in validation, where only
  -- the resize happens), aspect-corrected like fastai's _prepare_mat.
  function AffineCoordTfm:before_call(b, split_idx, rng)
    local x = first_of(b)
    local B, h, w = x:size(1), x:size(-2), x:size(-1)
    self.train = split_idx == 1
    local mats = {}
    for i = 1, B do mats[i] = eye3() end
    if self.train then
      for _, f in ipairs(self.aff_fs) do
        local ms = f(B, rng)
        for i = 1, B do mats[i] = matmul3(mats[i], ms[i]) end
      end
      for _, c in ipairs(self.coord_fs) do c:before_call(B, rng) end
    end
    local theta = {}
    for i = 1, B do
      local m = mats[i]
      theta[i] = { { m[1][1], m[1][2] * h / w, m[1][3] }, { m[2][1] * w / h, m[2][2], m[2][3] } }
    end
    self.mats = mats
    self.theta = fc.tensor(theta, { dtype = 'float32' })
  end

  function AffineCoordTfm:warp(x, mode)
    local oh, ow = x:size(3), x:size(4)
    if self.size then oh, ow = self.size[1], self.size[2] end
    local theta = self.theta:to(x.dtype)
    local grid = fc.F.affine_grid(theta, { oh, ow }, { align_corners = self.align_corners })
    if self.train then for _, c in ipairs(self.coord_fs) do grid = c:apply(grid) end end
    if mode == 'bilinear' then x = shrink_for(x, grid, oh, ow) end
    return fc.F.grid_sample(x, grid, { mode = mode, padding_mode = self.pad_mode, align_corners = self.align_corners })
  end

  AffineCoordTfm.encodes = {
    image = function(self, x) return self:warp(x, self.mode) end,
    mask = function(self, x)
      local add = x:dim() == 3
      local m = add and x:unsqueeze(2) or x
      local y = self:warp(m:float(), self.mode_mask):round_():long()
      return add and y:squeeze(2) or y
    end,
  }

  local function probs(o, p_default)
    o = o or {}
    return o.p or p_default
  end

  -- Flip{p=0.5}: mirror left-right with probability p.
  function vision.Flip(o)
    o = o or {}
    local p = probs(o, 0.5)
    local t = AffineCoordTfm { size = o.size, mode = o.mode, pad_mode = o.pad_mode,
      align_corners = o.align_corners, name = 'Flip' }
    t.aff_fs[1] = function(B, rng)
      local ms = {}
      for i = 1, B do
        local s = masked(rng, p, function() return -1 end, 1)
        ms[i] = mat3(s, 0, 0, 0, 1, 0)
      end
      return ms
    end
    return t
  end

  local DIHEDRAL = { xs = { 1, -1, 1, -1, -1, 1, 1, -1 }, ys = { 1, 1, -1, 1, -1, -1, 1, -1 },
    m0 = { 1, 1, 1, 0, 1, 0, 0, 0 }, m1 = { 0, 0, 0, 1, 0, 1, 1, 1 } }
  -- Dihedral{p=0.5}: one of the 8 flips/quarter turns with probability p.
  function vision.Dihedral(o)
    o = o or {}
    local p = probs(o, 0.5)
    local t = AffineCoordTfm { size = o.size, mode = o.mode, pad_mode = o.pad_mode,
      align_corners = o.align_corners, name = 'Dihedral' }
    t.aff_fs[1] = function(B, rng)
      local ms = {}
      for i = 1, B do
        local k = masked(rng, p, function() return rng:randint(0, 7) end, 0) + 1
        local xs, ys, m0, m1 = DIHEDRAL.xs[k], DIHEDRAL.ys[k], DIHEDRAL.m0[k], DIHEDRAL.m1[k]
        ms[i] = mat3(xs * m0, xs * m1, 0, ys * m1, ys * m0, 0)
      end
      return ms
    end
    return t
  end

  -- Rotate{max_deg=10, p=0.5}
  function vision.Rotate(o)
    o = o or {}
    local p, max_deg = probs(o, 0.5), o.max_deg or 10
    local t = AffineCoordTfm { size = o.size, mode = o.mode, pad_mode = o.pad_mode,
      align_corners = o.align_corners, name = 'Rotate' }
    t.aff_fs[1] = function(B, rng)
      local ms = {}
      for i = 1, B do
        local deg = o.draw or masked(rng, p, function() return rng:uniform(-max_deg, max_deg) end, 0)
        local th = deg * pi / 180
        ms[i] = mat3(math.cos(th), math.sin(th), 0, -math.sin(th), math.cos(th), 0)
      end
      return ms
    end
    return t
  end

  -- Zoom{min_zoom=1, max_zoom=1.1, p=0.5}: zoom in by a random factor
  -- about a random centre.
  function vision.Zoom(o)
    o = o or {}
    local p, lo, hi = probs(o, 0.5), o.min_zoom or 1, o.max_zoom or 1.1
    local t = AffineCoordTfm { size = o.size, mode = o.mode, pad_mode = o.pad_mode,
      align_corners = o.align_corners, name = 'Zoom' }
    t.aff_fs[1] = function(B, rng)
      local ms = {}
      for i = 1, B do
        local s = 1 / (o.draw or masked(rng, p, function() return rng:uniform(lo, hi) end, 1))
        local cx, cy = o.draw_x or rng:random(), o.draw_y or rng:random()
        ms[i] = mat3(s, 0, (1 - s) * (2 * cx - 1), 0, s, (1 - s) * (2 * cy - 1))
      end
      return ms
    end
    return t
  end

  -- Warp{magnitude=0.2, p=0.5}: a random perspective tilt of the corners.
  local WarpCoord = {}
  WarpCoord.__index = WarpCoord
  function WarpCoord:before_call(B, rng)
    local mag, p = self.magnitude, self.p
    local orig = { { -1, -1 }, { -1, 1 }, { 1, -1 }, { 1, 1 } }
    self.coeffs = {}
    for i = 1, B do
      local xt = self.draw_x or masked(rng, p, function() return rng:uniform(-mag, mag) end, 0)
      local yt = self.draw_y or masked(rng, p, function() return rng:uniform(-mag, mag) end, 0)
      local targ = { { -1 - yt, -1 - xt }, { -1 + yt, 1 + xt }, { 1 + yt, -1 + xt }, { 1 - yt, 1 - xt } }
      self.coeffs[i] = find_coeffs(orig, targ) or { 1, 0, 0, 0, 1, 0, 0, 0 }
    end
  end
  function WarpCoord:apply(grid) return apply_perspective(grid, self.coeffs) end

  function vision.Warp(o)
    o = o or {}
    local t = AffineCoordTfm { size = o.size, mode = o.mode, pad_mode = o.pad_mode,
      align_corners = o.align_corners, name = 'Warp' }
    t.coord_fs[1] = setmetatable({ magnitude = o.magnitude or 0.2, p = probs(o, 0.5), draw_x = o.draw_x,
      draw_y = o.draw_y }, WarpCoord)
    return t
  end

  -- ---- lighting -------------------------------------------------------------------

  -- LightingTfm: f(logit(x)) through sigmoid, f composed of per-image
  -- brightness shifts and contrast scales. Training only.
  local LightingTfm = RandTransform:extend('LightingTfm')
  LightingTfm.order = 40
  vision.LightingTfm = LightingTfm
  function LightingTfm:init(fs, name)
    self.fs, self.names = fs, { name or 'LightingTfm' }
  end
  function LightingTfm:name_of() return table.concat(self.names, '+') end
  function LightingTfm:compose(t)
    for _, f in ipairs(t.fs) do self.fs[#self.fs + 1] = f end
    for _, n in ipairs(t.names) do self.names[#self.names + 1] = n end
  end
  function LightingTfm:before_call(b, split_idx, rng)
    self.skip_call = false
    local B = first_of(b):size(1)
    for _, f in ipairs(self.fs) do f.values = f:draw(B, rng) end
  end
  local function per_image(values, x)
    return fc.tensor(values, { dtype = x.dtype }):reshape(-1, 1, 1, 1)
  end
  -- in place on one fresh copy: two allocations for the whole pass
  LightingTfm.encodes = { image = function(self, x)
    local l = x:clamp(1e-7, 1 - 1e-7)
    l:div_(1 - l):log_()
    for _, f in ipairs(self.fs) do
      local v = per_image(f.values, x)
      if f.op == 'add' then l:add_(v) else l:mul_(v) end
    end
    return l:sigmoid_()
  end }

  local function logit(p) return math.log(p / (1 - p)) end

  -- Brightness{max_lighting=0.2, p=0.75}: adds logit(c), c around 0.5.
  function vision.Brightness(o)
    o = o or {}
    local m, p = o.max_lighting or 0.2, probs(o, 0.75)
    return LightingTfm({ { op = 'add', draw = function(_, B, rng)
      local v = {}
      for i = 1, B do
        v[i] = logit(o.draw or masked(rng, p, function() return rng:uniform(0.5 * (1 - m), 0.5 * (1 + m)) end, 0.5))
      end
      return v
    end } }, 'Brightness')
  end

  -- Contrast{max_lighting=0.2, p=0.75}: scales the logits by a factor in
  -- [1 - m, 1 / (1 - m)] (log-uniform).
  function vision.Contrast(o)
    o = o or {}
    local m, p = o.max_lighting or 0.2, probs(o, 0.75)
    return LightingTfm({ { op = 'mul', draw = function(_, B, rng)
      local v = {}
      for i = 1, B do
        v[i] = o.draw or masked(rng, p, function() return math.exp(rng:uniform(math.log(1 - m), -math.log(1 - m))) end, 1)
      end
      return v
    end } }, 'Contrast')
  end

  -- ---- RandomResizedCropGPU ---------------------------------------------------------

  -- RandomResizedCropGPU(size, {min_scale=0.08, ratio={3/4, 4/3},
  -- valid_scale=1}): one random crop for the whole batch, resized.
  local RandomResizedCropGPU = RandTransform:extend('RandomResizedCropGPU')
  RandomResizedCropGPU.order = 30
  RandomResizedCropGPU.split_idx = false -- both splits (validation: centre crop)
  vision.RandomResizedCropGPU = RandomResizedCropGPU
  function RandomResizedCropGPU:init(size, o)
    o = o or {}
    self.size = vision.hw(size, 'RandomResizedCropGPU')
    self.min_scale, self.ratio = o.min_scale or 0.08, o.ratio or { 3 / 4, 4 / 3 }
    self.mode, self.valid_scale = o.mode or 'bilinear', o.valid_scale or 1
  end
  function RandomResizedCropGPU:before_call(b, split_idx, rng)
    self.skip_call = false
    local x = first_of(b)
    local h, w = x:size(-2), x:size(-1)
    local r0, r1 = self.ratio[1], self.ratio[2]
    if split_idx == 1 then
      for _ = 1, 10 do
        local area = rng:uniform(self.min_scale, 1) * w * h
        local ratio = math.exp(rng:uniform(math.log(r0), math.log(r1)))
        local nw, nh = floor(math.sqrt(area * ratio) + 0.5), floor(math.sqrt(area / ratio) + 0.5)
        if nw <= w and nh <= h then
          self.cp = { nh, nw }
          self.tl = { rng:randint(0, h - nh), rng:randint(0, w - nw) }
          return
        end
      end
    end
    local ch, cw
    if w / h < r0 then ch, cw = floor(w / r0), w elseif w / h > r1 then ch, cw = h, floor(h * r1) else ch, cw = h, w end
    if split_idx ~= 1 then ch, cw = floor(ch * self.valid_scale), floor(cw * self.valid_scale) end
    self.cp = { ch, cw }
    self.tl = { floor((h - ch) / 2), floor((w - cw) / 2) }
  end
  RandomResizedCropGPU.encodes = { image = function(self, x)
    x = x:narrow(3, self.tl[1] + 1, self.cp[1]):narrow(4, self.tl[2] + 1, self.cp[2])
    local B = x:size(1)
    local theta = {}
    for i = 1, B do theta[i] = { { 1, 0, 0 }, { 0, 1, 0 } } end
    local grid = fc.F.affine_grid(fc.tensor(theta, { dtype = x.dtype }), self.size, { align_corners = true })
    return fc.F.grid_sample(x:contiguous(), grid, { mode = self.mode, padding_mode = 'reflection', align_corners = true })
  end }

  -- ---- aug_transforms -----------------------------------------------------------------

  -- Merges every affine transform into one pass and every lighting
  -- transform into another (fastai's setup_aug_tfms).
  function vision.setup_aug_tfms(tfms)
    local aff, lig, others = nil, nil, {}
    for _, t in ipairs(data.flatten_tfms(tfms)) do
      if t:is_a(AffineCoordTfm) then
        if aff then aff:compose(t) else aff = t end
      elseif t:is_a(LightingTfm) then
        if lig then lig:compose(t) else lig = t end
      else others[#others + 1] = t end
    end
    local out = {}
    if aff then out[#out + 1] = aff end
    if lig then out[#out + 1] = lig end
    for _, t in ipairs(others) do out[#out + 1] = t end
    return out
  end

  -- aug_transforms{mult=1, do_flip=true, flip_vert=false, max_rotate=10,
  -- min_zoom=1, max_zoom=1.1, max_lighting=0.2, max_warp=0.2, p_affine=0.75,
  -- p_lighting=0.75, xtra_tfms=, size=, mode='bilinear',
  -- pad_mode='reflection', align_corners=true, min_scale=1}
  function vision.aug_transforms(o)
    o = o or {}
    local mult = o.mult or 1
    local function opt(k, d) if o[k] == nil then return d end return o[k] end
    local max_rotate, max_lighting, max_warp = opt('max_rotate', 10) * mult, opt('max_lighting', 0.2) * mult,
      opt('max_warp', 0.2) * mult
    local min_zoom, max_zoom = opt('min_zoom', 1), opt('max_zoom', 1.1)
    local p_affine, p_lighting = opt('p_affine', 0.75), opt('p_lighting', 0.75)
    local min_scale = opt('min_scale', 1)
    local kw = { size = min_scale == 1 and o.size or nil, mode = o.mode, pad_mode = o.pad_mode,
      align_corners = o.align_corners }
    local function with(extra)
      local t = {}
      for k, v in pairs(kw) do t[k] = v end
      for k, v in pairs(extra) do t[k] = v end
      return t
    end
    local res = {}
    if opt('do_flip', true) then
      res[#res + 1] = o.flip_vert and vision.Dihedral(with { p = 0.5 }) or vision.Flip(with { p = 0.5 })
    end
    if max_warp ~= 0 then res[#res + 1] = vision.Warp(with { magnitude = max_warp, p = p_affine }) end
    if max_rotate ~= 0 then res[#res + 1] = vision.Rotate(with { max_deg = max_rotate, p = p_affine }) end
    if min_zoom < 1 or max_zoom > 1 then
      res[#res + 1] = vision.Zoom(with { min_zoom = min_zoom, max_zoom = max_zoom, p = p_affine })
    end
    if max_lighting ~= 0 then
      res[#res + 1] = vision.Brightness { max_lighting = max_lighting, p = p_lighting }
      res[#res + 1] = vision.Contrast { max_lighting = max_lighting, p = p_lighting }
    end
    if min_scale ~= 1 then
      res[#res + 1] = RandomResizedCropGPU(o.size, { min_scale = min_scale, ratio = { 1, 1 } })
    end
    if o.xtra_tfms then res[#res + 1] = o.xtra_tfms end
    return vision.setup_aug_tfms(res)
  end
end
