-- lua/fastc/vision/core.lua — image items and item transforms (fastai's
-- vision/core.py and the item half of vision/augment.py).
--
-- Images are uint8 [C,H,W] tensors (kind 'image'), masks uint8 [1,H,W]
-- (kind 'mask'). Each item transform has two implementations: `c_spec`,
-- the step the C loader runs on its worker threads, and `encodes`, the
-- Lua version for items that are not image files or pipelines with Lua
-- transforms. The Lua version resamples the crop box through one
-- grid_sample (bilinear for images, nearest for masks), after an
-- area-average pre-shrink when the box is 2x or more larger than the output.
return function(fc)
  local vision, data = fc.vision, fc.data
  local Transform, RandTransform = data.Transform, data.RandTransform
  local fmt, floor, ceil = string.format, math.floor, math.ceil

  -- {h, w} from 128 or {128, 160}
  local function hw(size, what)
    if type(size) == 'number' then return { size, size } end
    if type(size) == 'table' and #size == 2 then return { size[1], size[2] } end
    error(fmt('%s: size must be a number or {h, w}', what), 4)
  end
  vision.hw = hw

  -- ---- creation ---------------------------------------------------------------

  -- ImageCreate{channels=3}: a path -> uint8 [C,H,W]; a tensor is taken as
  -- is ([H,W] gains a channel dim). The C loader does this step itself.
  local ImageCreate = Transform:extend('ImageCreate')
  vision.ImageCreate = ImageCreate
  ImageCreate.c_image = true
  function ImageCreate:init(o)
    o = o or {}
    self.channels = o.channels or 3
    self.c_kind = o.kind or 'image'
    self.name = o.name
  end
  function ImageCreate:params() return fmt('{channels: %d}', self.channels) end
  ImageCreate.encodes = function(self, x)
    if fc.is_tensor(x) then
      if x:dim() == 2 then x = x:unsqueeze(1) end
      return x, self.c_kind
    end
    return vision.load_image(tostring(x), { channels = self.channels }), self.c_kind
  end

  -- MaskCreate{codes=}: a mask file (one channel of class codes) -> uint8
  -- [1,H,W]. Its vocab is the codes.
  local MaskCreate = ImageCreate:extend('MaskCreate')
  vision.MaskCreate = MaskCreate
  function MaskCreate:init(codes)
    ImageCreate.init(self, { channels = 1, kind = 'mask' })
    if codes then self.vocab, self.c = codes, #codes end
    self.loss_func = data.loss('CrossEntropyLossFlat', { axis = 2 })
  end
  function MaskCreate:params() return self.vocab and fmt('{codes: %d}', #self.vocab) or nil end

  -- AddMaskCodes(codes): keeps the codes with the loader (for show/decode).
  local AddMaskCodes = Transform:extend('AddMaskCodes')
  vision.AddMaskCodes = AddMaskCodes
  function AddMaskCodes:init(codes) self.codes = codes end
  function AddMaskCodes:c_spec() return false end

  -- ---- resampling (the Lua engine) --------------------------------------------

  local function is_mask(kind) return kind == 'mask' end

  -- Averages k x k blocks of [N,C,H,W] (the last H % k rows and W % k
  -- columns, less than one output pixel's worth, are dropped).
  local function area_shrink(x, kh, kw)
    local h, w = floor(x:size(3) / kh) * kh, floor(x:size(4) / kw) * kw
    if h ~= x:size(3) or w ~= x:size(4) then x = x:narrow(3, 1, h):narrow(4, 1, w) end
    return fc.F.avg_pool2d(x:contiguous(), { kh, kw })
  end
  vision.area_shrink = area_shrink

  -- Reads the box (x0, y0, bw, bh in source pixels; it may extend past the
  -- image) of a [C,H,W] image into an oh x ow image.
  local function resample(img, box, oh, ow, kind, pad_mode, flip)
    local h, w = img:size(2), img:size(3)
    local x0, y0, bw, bh = box[1], box[2], box[3], box[4]
    local x = img:unsqueeze(1):float()
    local mask = is_mask(kind)
    -- area pre-shrink: an integer factor that keeps the box >= the output
    local k = floor(math.min(bw / ow, bh / oh))
    if not mask and k >= 2 and h >= k and w >= k then
      x = area_shrink(x, k, k)
      h, w = x:size(3), x:size(4)
      x0, y0, bw, bh = x0 / k, y0 / k, bw / k, bh / k
    end
    -- normalised (align_corners = false) box edges
    local sx, sy = bw / w, bh / h
    local tx, ty = (2 * x0 + bw) / w - 1, (2 * y0 + bh) / h - 1
    if flip then sx = -sx end
    local theta = fc.tensor({ { { sx, 0, tx }, { 0, sy, ty } } }, { dtype = 'float32' })
    local grid = fc.F.affine_grid(theta, { oh, ow })
    local y = fc.F.grid_sample(x, grid, { mode = mask and 'nearest' or 'bilinear',
      padding_mode = pad_mode or 'zeros' })
    return y[1]:round_():clamp_(0, 255):to('uint8')
  end
  vision.resample = resample

  local PAD_MODES = { zeros = 'zeros', border = 'border', reflection = 'reflection' }
  local function pad_mode_of(p, what)
    p = p or 'reflection'
    if not PAD_MODES[p] then error(fmt('%s: pad_mode must be zeros, border or reflection, got %s', what, tostring(p)), 4) end
    return p
  end

  -- ---- Resize -------------------------------------------------------------------

  -- Resize(size, {method='crop'|'squish'|'pad', pad_mode='reflection'}):
  -- crop takes the largest box of the output's shape (a random position in
  -- training, the centre otherwise); pad fits the whole image and pads;
  -- squish stretches.
  local Resize = Transform:extend('Resize')
  Resize.order = 1
  vision.Resize = Resize
  local METHODS = { crop = true, squish = true, pad = true }
  function Resize:init(size, o)
    o = o or {}
    self.size = hw(size, 'Resize')
    self.method = o.method or 'crop'
    if not METHODS[self.method] then error(fmt('Resize: method must be crop, squish or pad, got %s', tostring(self.method)), 3) end
    self.pad_mode = pad_mode_of(o.pad_mode, 'Resize')
  end
  function Resize:params()
    return fmt('{size: %dx%d, method: %s, pad_mode: %s}', self.size[1], self.size[2], self.method, self.pad_mode)
  end
  function Resize:before_call(b, split_idx, rng)
    if self.method == 'squish' then return end
    if split_idx == 1 then self.pcts = { rng:random(), rng:random() } else self.pcts = { 0.5, 0.5 } end
  end
  -- The source box for an h x w image.
  function Resize:box(h, w)
    local th, tw = self.size[1], self.size[2]
    if self.method == 'squish' then return { 0, 0, w, h } end
    local rw, rh = w / tw, h / th
    local m
    if self.method == 'crop' then m = rw < rh and rw or rh else m = rw > rh and rw or rh end
    local cw, ch = floor(m * tw), floor(m * th)
    local pcts = self.pcts or { 0.5, 0.5 }
    local function trunc(v) return v < 0 and ceil(v) or floor(v) end
    return { trunc(pcts[1] * (w - cw)), trunc(pcts[2] * (h - ch)), cw, ch }
  end
  local function resize_encodes(self, x, kind)
    local box = self:box(x:size(2), x:size(3))
    return resample(x, box, self.size[1], self.size[2], kind, self.pad_mode)
  end
  Resize.encodes = { image = resize_encodes, mask = resize_encodes }
  function Resize:c_spec(split_idx)
    return { 'resize', size = self.size, method = self.method, pad_mode = self.pad_mode, valid = split_idx ~= 1 }
  end

  -- ---- RandomResizedCrop ---------------------------------------------------------

  -- RandomResizedCrop(size, {min_scale=0.08, max_scale=1, ratio={3/4, 4/3},
  -- val_xtra=0.14}): a random box of scale*area and aspect ratio in
  -- training; in validation the whole image squished to size + a margin,
  -- then centre-cropped to size.
  local RandomResizedCrop = Transform:extend('RandomResizedCrop')
  RandomResizedCrop.order = 1
  vision.RandomResizedCrop = RandomResizedCrop
  function RandomResizedCrop:init(size, o)
    o = o or {}
    self.size = hw(size, 'RandomResizedCrop')
    self.min_scale, self.max_scale = o.min_scale or 0.08, o.max_scale or 1
    self.ratio = o.ratio or { 3 / 4, 4 / 3 }
    self.val_xtra = o.val_xtra or 0.14
  end
  function RandomResizedCrop:params()
    return fmt('{size: %dx%d, min_scale: %g, ratio: %.3g-%.3g}', self.size[1], self.size[2], self.min_scale,
      self.ratio[1], self.ratio[2])
  end
  -- The first image-like element of a sample (its size decides the box).
  local function first_image(b)
    if data.is_tuple(b) then
      for i = 1, #b do if fc.is_tensor(b[i]) and b[i]:dim() >= 2 then return b[i] end end
      return nil
    end
    return fc.is_tensor(b) and b or nil
  end
  vision.first_image = first_image

  -- One box per sample, so an image and its mask are cropped alike.
  function RandomResizedCrop:before_call(b, split_idx, rng)
    local x = first_image(b)
    self.cur_box = x and self:box(x:size(-2), x:size(-1), rng, split_idx)
  end
  local function round(v) return floor(v + 0.5) end
  -- The source box (x0, y0, w, h) and, in validation, the final size.
  function RandomResizedCrop:box(h, w, rng, split_idx)
    local th, tw = self.size[1], self.size[2]
    if split_idx ~= 1 then
      local xtra = ceil(math.max(th, tw) * self.val_xtra / 8) * 8
      local fh, fw = th + xtra, tw + xtra
      -- squish to fh x fw, then centre crop th x tw: one box in the source
      local sx, sy = w / fw, h / fh
      return { floor((fw - tw) / 2) * sx, floor((fh - th) / 2) * sy, tw * sx, th * sy }
    end
    local r0, r1 = self.ratio[1], self.ratio[2]
    for _ = 1, 10 do
      local area = rng:uniform(self.min_scale, self.max_scale) * w * h
      local ratio = math.exp(rng:uniform(math.log(r0), math.log(r1)))
      local nw, nh = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
      if nw <= w and nh <= h then return { rng:randint(0, w - nw), rng:randint(0, h - nh), nw, nh } end
    end
    local cw, ch
    if w / h < r0 then cw, ch = w, floor(w / r0)
    elseif w / h > r1 then cw, ch = floor(h * r1), h
    else cw, ch = w, h end
    return { floor((w - cw) / 2), floor((h - ch) / 2), cw, ch }
  end
  local function rrc_encodes(self, x, kind)
    return resample(x, self.cur_box, self.size[1], self.size[2], kind, 'border')
  end
  RandomResizedCrop.encodes = { image = rrc_encodes, mask = rrc_encodes }
  function RandomResizedCrop:c_spec(split_idx)
    return { 'random_resized_crop', size = self.size, scale = { self.min_scale, self.max_scale },
      ratio = self.ratio, valid = split_idx ~= 1, val_xtra = self.val_xtra }
  end

  -- ---- CropPad, RandomCrop -----------------------------------------------------------

  -- CropPad(size, {pad_mode='zeros'}): the centre size box, padding where
  -- the image is smaller.
  local CropPad = Transform:extend('CropPad')
  CropPad.order = 0
  vision.CropPad = CropPad
  function CropPad:init(size, o)
    o = o or {}
    self.size = hw(size, 'CropPad')
    self.pad_mode = pad_mode_of(o.pad_mode or 'zeros', 'CropPad')
  end
  function CropPad:params() return fmt('{size: %dx%d, pad_mode: %s}', self.size[1], self.size[2], self.pad_mode) end
  function CropPad:box(h, w, pcts)
    local th, tw = self.size[1], self.size[2]
    pcts = pcts or { 0.5, 0.5 }
    -- floor, as Python's //: a 13-pixel pad puts 7 before and 6 after
    local function off(n, t, p) return floor(p * (n - t)) end
    return { off(w, tw, pcts[1]), off(h, th, pcts[2]), tw, th }
  end
  local function croppad_encodes(self, x, kind)
    local box = self:box(x:size(2), x:size(3), self.pcts)
    -- a crop/pad of whole pixels: plain copies, no interpolation
    return vision.crop_pad_exact(x, box, self.pad_mode)
  end
  CropPad.encodes = { image = croppad_encodes, mask = croppad_encodes }
  function CropPad:c_spec() return { 'center_crop', size = self.size, pad_mode = self.pad_mode } end

  -- RandomCrop(size): a random size box in training, the centre otherwise.
  local RandomCrop = CropPad:extend('RandomCrop')
  vision.RandomCrop = RandomCrop
  function RandomCrop:before_call(b, split_idx, rng)
    self.pcts = split_idx == 1 and { rng:random(), rng:random() } or { 0.5, 0.5 }
  end
  -- a random position in training has no C form; validation is a centre crop
  function RandomCrop:c_spec(split_idx)
    if split_idx == 1 then return nil end
    return CropPad.c_spec(self)
  end

  -- Pixel-exact crop with padding (zeros, border or reflection) for boxes
  -- of whole pixels.
  function vision.crop_pad_exact(x, box, pad_mode)
    local c, h, w = x:size(1), x:size(2), x:size(3)
    local x0, y0, bw, bh = box[1], box[2], box[3], box[4]
    if x0 >= 0 and y0 >= 0 and x0 + bw <= w and y0 + bh <= h then
      return x:narrow(2, y0 + 1, bh):narrow(3, x0 + 1, bw):contiguous()
    end
    -- sample pixel centres exactly: nearest mode at integer positions
    local sx, sy = bw / w, bh / h
    local tx, ty = (2 * x0 + bw) / w - 1, (2 * y0 + bh) / h - 1
    local theta = fc.tensor({ { { sx, 0, tx }, { 0, sy, ty } } }, { dtype = 'float64' })
    local grid = fc.F.affine_grid(theta, { bh, bw })
    local y = fc.F.grid_sample(x:unsqueeze(1):double(), grid, { mode = 'nearest', padding_mode = pad_mode })
    return y[1]:round_():to('uint8')
  end

  -- ---- FlipItem ---------------------------------------------------------------------

  -- FlipItem(p=0.5): a horizontal mirror with probability p, training only.
  local FlipItem = RandTransform:extend('FlipItem')
  FlipItem.order = 0
  vision.FlipItem = FlipItem
  function FlipItem:init(p) self.p = (type(p) == 'table' and p.p) or p or 0.5 end
  function FlipItem:params() return fmt('{p: %g}', self.p) end
  local function flip(_, x) return x:flip(3):contiguous() end
  FlipItem.encodes = { image = flip, mask = flip }
  function FlipItem:c_spec(split_idx)
    if split_idx ~= 1 then return false end
    return { 'flip', p = self.p }
  end

  -- ---- blocks -------------------------------------------------------------------------

  -- ImageBlock{cls='rgb'|'bw'}: image files (or tensors) to uint8 images;
  -- IntToFloatTensor as its batch transform.
  function vision.ImageBlock(o)
    o = o or {}
    local channels = (o.cls == 'bw' or o.cls == 'BW' or o.channels == 1) and 1 or o.channels or 3
    return data.TransformBlock { type_tfms = { ImageCreate { channels = channels } },
      batch_tfms = { data.IntToFloatTensor() }, name = 'ImageBlock' }
  end

  -- MaskBlock(codes): segmentation masks (pixel values are class codes
  -- 0..n-1, class ids 1..n after IntToFloatTensor).
  function vision.MaskBlock(codes)
    if type(codes) == 'table' and codes.codes then codes = codes.codes end
    return data.TransformBlock { type_tfms = { MaskCreate(codes) }, item_tfms = { AddMaskCodes(codes) },
      batch_tfms = { data.IntToFloatTensor() }, name = 'MaskBlock' }
  end
end
