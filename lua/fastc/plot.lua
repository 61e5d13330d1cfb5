-- lua/fastc/plot.lua — fc.plot: line charts and image grids as PNG files,
-- drawn here into an RGB buffer (text from the C runtime's bitmap font) and
-- written by fc_write_png. Nothing is printed; each call returns the path
-- and the layout it drew (pixel boxes, the data-to-pixel mapping), which
-- callers and tests can use.
--
--   fc.plot.lines{series = {{x = lrs, y = losses, label = 'loss'}}, xscale = 'log',
--                 title = 'lr_find', xlabel = 'Learning Rate', ylabel = 'Loss', path = 'lr.png'}
--   fc.plot.image_grid{images = {chw_uint8, ...}, titles = {'cat', ...}, ncol = 4, path = 'b.png'}
--
-- series fields: x (list or 1-D tensor; default 1..n), y, label, color
-- ({r, g, b}; default the next of a 10-colour palette), style ('line',
-- 'points' or 'both'), width (line thickness in pixels, default 2).
return function(fc, Tensor, H)
  local ffi = require 'ffi'
  local C, check, raise, fmt = H.C, H.check, H.raise, string.format
  local floor, ceil, log10, max, min, abs = math.floor, math.ceil, math.log10, math.max, math.min, math.abs
  local class = fc.class or require 'fastc.class'
  local plot = fc.plot or {}
  fc.plot = plot

  local WHITE = { 255, 255, 255 }
  local GRID, FRAME, TEXT = { 225, 225, 225 }, { 40, 40, 40 }, { 20, 20, 20 }
  -- matplotlib's tab10, the colours fastai's plots come in
  local PALETTE = {
    { 31, 119, 180 }, { 255, 127, 14 }, { 44, 160, 44 }, { 214, 39, 40 }, { 148, 103, 189 },
    { 140, 86, 75 }, { 227, 119, 194 }, { 127, 127, 127 }, { 188, 189, 34 }, { 23, 190, 207 },
  }
  plot.PALETTE = PALETTE

  -- ---- Canvas: an RGB buffer with the few primitives the plots need -----------

  local Canvas = class('Canvas')
  plot.Canvas = Canvas
  local color_buf = ffi.new('uint8_t[3]')

  function Canvas:init(w, h, bg)
    if type(w) ~= 'number' or type(h) ~= 'number' or w < 1 or h < 1 or w ~= floor(w) or h ~= floor(h) then
      raise(fmt('Canvas: size must be positive integers, got %s x %s', tostring(w), tostring(h)))
    end
    self.w, self.h = w, h
    self.buf = ffi.new('uint8_t[?]', w * h * 3)
    self:rect(0, 0, w, h, bg or WHITE)
  end

  function Canvas:pixel(x, y, c)
    if x < 0 or y < 0 or x >= self.w or y >= self.h then return end
    local i = (y * self.w + x) * 3
    local b = self.buf
    b[i], b[i + 1], b[i + 2] = c[1], c[2], c[3]
  end

  function Canvas:get(x, y)
    local i = (y * self.w + x) * 3
    return { self.buf[i], self.buf[i + 1], self.buf[i + 2] }
  end

  -- Fills [x0, x1) x [y0, y1), clipped.
  function Canvas:rect(x0, y0, x1, y1, c)
    x0, y0 = max(floor(x0), 0), max(floor(y0), 0)
    x1, y1 = min(floor(x1), self.w), min(floor(y1), self.h)
    local b, w = self.buf, self.w
    for y = y0, y1 - 1 do
      for x = x0, x1 - 1 do
        local i = (y * w + x) * 3
        b[i], b[i + 1], b[i + 2] = c[1], c[2], c[3]
      end
    end
  end

  function Canvas:frame(x0, y0, x1, y1, c)
    self:rect(x0, y0, x1, y0 + 1, c)
    self:rect(x0, y1 - 1, x1, y1, c)
    self:rect(x0, y0, x0 + 1, y1, c)
    self:rect(x1 - 1, y0, x1, y1, c)
  end

  -- A line of the given width, clipped to `clip` ({x0, y0, x1, y1}) if given.
  function Canvas:line(x0, y0, x1, y1, c, width, clip)
    width = width or 1
    local n = max(abs(x1 - x0), abs(y1 - y0), 1)
    n = ceil(n)
    local lo, hi = -floor((width - 1) / 2), floor(width / 2)
    local cx0, cy0, cx1, cy1 = 0, 0, self.w, self.h
    if clip then cx0, cy0, cx1, cy1 = clip[1], clip[2], clip[3], clip[4] end
    for s = 0, n do
      local x = floor(x0 + (x1 - x0) * s / n + 0.5)
      local y = floor(y0 + (y1 - y0) * s / n + 0.5)
      for dy = lo, hi do
        for dx = lo, hi do
          local px, py = x + dx, y + dy
          if px >= cx0 and px < cx1 and py >= cy0 and py < cy1 then self:pixel(px, py, c) end
        end
      end
    end
  end

  local function set_color(c) color_buf[0], color_buf[1], color_buf[2] = c[1], c[2], c[3] end

  function Canvas:text(x, y, s, c, scale)
    set_color(c or TEXT)
    check(C.fc_draw_text(self.buf, self.w, self.h, 3, floor(x), floor(y), tostring(s), color_buf, scale or 1))
  end

  function plot.text_size(s, scale)
    scale = scale or 1
    return C.fc_text_width(tostring(s)) * scale, C.fc_text_height(tostring(s)) * scale
  end

  -- Text reading upwards, its box's top-left at (x, y).
  function Canvas:text_up(x, y, s, c, scale)
    local tw, th = plot.text_size(s, scale)
    local tmp = Canvas(tw + 2, th + 4, WHITE)
    tmp:text(1, 1, s, c, scale)
    -- (u, v) in tmp goes to (x + v, y + tw + 1 - u): a quarter turn anticlockwise
    for v = 0, tmp.h - 1 do
      for u = 0, tmp.w - 1 do
        local p = tmp:get(u, v)
        if p[1] ~= 255 or p[2] ~= 255 or p[3] ~= 255 then self:pixel(x + v, y + tmp.w - 1 - u, p) end
      end
    end
  end

  -- Copies an HWC uint8 image (1, 3 or 4 channels) with its top-left at (x, y),
  -- each pixel repeated `scale` times each way.
  function Canvas:blit(ptr, iw, ih, ic, x, y, scale)
    scale = scale or 1
    for v = 0, ih * scale - 1 do
      local sy = floor(v / scale)
      for u = 0, iw * scale - 1 do
        local i = (sy * iw + floor(u / scale)) * ic
        local r = ptr[i]
        local g, b = r, r
        if ic >= 3 then g, b = ptr[i + 1], ptr[i + 2] end
        self:pixel(x + u, y + v, { r, g, b })
      end
    end
  end

  function Canvas:save(path)
    if type(path) ~= 'string' or path == '' then raise('plot: path must be a non-empty string') end
    check(C.fc_write_png(path, self.w, self.h, 3, self.buf))
    return path
  end

  -- ---- axes ---------------------------------------------------------------------

  local function values_of(v, what)
    if fc.is_tensor(v) then
      if v:dim() > 1 then raise(fmt('plot: %s must be 1-D, got shape %s', what, tostring(v:size()))) end
      return v:to('float64'):totable()
    end
    if type(v) ~= 'table' then raise(fmt('plot: %s must be a list or a tensor, got %s', what, type(v))) end
    for i = 1, #v do
      if type(v[i]) ~= 'number' then raise(fmt('plot: %s[%d] is a %s, not a number', what, i, type(v[i]))) end
    end
    return v
  end

  local function finite(v) return v == v and v ~= math.huge and v ~= -math.huge end

  -- An axis: scale, data range [lo, hi] and the pixel range it maps to.
  local function make_axis(scale, lo, hi, p0, p1)
    local t = scale == 'log' and log10 or function(v) return v end
    local tlo, thi = t(lo), t(hi)
    return { scale = scale, lo = lo, hi = hi, p0 = p0, p1 = p1,
      to_px = function(v) return p0 + (t(v) - tlo) / (thi - tlo) * (p1 - p0) end }
  end

  -- The data range with a margin of 5% of the span (or of the decades).
  local function padded_range(vals, scale, what)
    local lo, hi = math.huge, -math.huge
    for _, v in ipairs(vals) do
      if finite(v) then
        if scale == 'log' and v <= 0 then
          raise(fmt("plot: %s scale 'log' needs positive values, got %s", what, tostring(v)))
        end
        lo, hi = min(lo, v), max(hi, v)
      end
    end
    if lo > hi then raise(fmt('plot: no finite %s values to plot', what)) end
    if scale == 'log' then
      if lo == hi then return lo / 10, hi * 10 end
      local f = (hi / lo) ^ 0.05
      return lo / f, hi * f
    end
    if lo == hi then return lo - 1, hi + 1 end
    local pad = (hi - lo) * 0.05
    return lo - pad, hi + pad
  end

  -- "Nice" ticks: steps of 1, 2 or 5 times a power of ten, 4 to 10 of them.
  local function linear_ticks(lo, hi)
    local raw = (hi - lo) / 6
    local mag = 10 ^ floor(log10(raw))
    local norm = raw / mag
    local step = (norm < 1.5 and 1 or norm < 3 and 2 or norm < 7 and 5 or 10) * mag
    local ticks = {}
    for k = ceil(lo / step - 1e-9), floor(hi / step + 1e-9) do ticks[#ticks + 1] = k * step end
    return ticks, step
  end

  local function log_ticks(lo, hi)
    local ticks = {}
    for k = ceil(log10(lo) - 1e-9), floor(log10(hi) + 1e-9) do ticks[#ticks + 1] = 10 ^ k end
    if #ticks < 2 then -- under a decade: 1, 2, 5 times the powers of ten
      ticks = {}
      for k = floor(log10(lo)), ceil(log10(hi)) do
        for _, m in ipairs { 1, 2, 5 } do
          local v = m * 10 ^ k
          if v >= lo * (1 - 1e-9) and v <= hi * (1 + 1e-9) then ticks[#ticks + 1] = v end
        end
      end
    end
    return ticks
  end

  local function tick_label(v, step, scale)
    if scale == 'log' then
      local k = floor(log10(v) + 0.5)
      if abs(v - 10 ^ k) <= 1e-9 * v and (k < -3 or k > 4) then return fmt('1e%d', k) end
      return (fmt('%.6g', v))
    end
    if abs(v) < step * 1e-6 then return '0' end
    if abs(v) >= 1e5 or abs(v) < 1e-3 then return (fmt('%.2e', v):gsub('%.?0+e', 'e')) end
    local decimals = -floor(log10(step) + 1e-9)
    if decimals <= 0 then decimals = 0 end -- also turns -0 into 0 for the format
    return fmt('%.' .. decimals .. 'f', v)
  end

  local LEGEND_PLACES = { ['upper right'] = true, ['upper left'] = true, ['lower right'] = true, ['lower left'] = true }
  local LINE_OPTS = { series = true, title = true, xlabel = true, ylabel = true, xscale = true, yscale = true,
    path = true, width = true, height = true, legend = true }
  local STYLES = { line = true, points = true, both = true }

  local function check_opts(name, opts, allowed)
    if type(opts) ~= 'table' then raise(fmt('%s: expects an options table', name)) end
    for k in pairs(opts) do
      if not allowed[k] then raise(fmt('%s: unknown option %q', name, tostring(k))) end
    end
  end

  -- ---- fc.plot.lines --------------------------------------------------------------

  function plot.lines(opts)
    check_opts('plot.lines', opts, LINE_OPTS)
    if type(opts.path) ~= 'string' then raise('plot.lines: path is required') end
    local series = opts.series
    if type(series) ~= 'table' or #series == 0 then raise('plot.lines: series must be a non-empty list') end
    local xscale, yscale = opts.xscale or 'linear', opts.yscale or 'linear'
    for _, s in ipairs { xscale, yscale } do
      if s ~= 'linear' and s ~= 'log' then raise(fmt("plot.lines: scales are 'linear' or 'log', got %s", tostring(s))) end
    end
    local W, Hh = opts.width or 640, opts.height or 480

    -- data
    local all_x, all_y, data = {}, {}, {}
    for i, s in ipairs(series) do
      if type(s) ~= 'table' then raise(fmt('plot.lines: series %d must be a table', i)) end
      local y = values_of(s.y, fmt('series %d y', i))
      local x
      if s.x ~= nil then
        x = values_of(s.x, fmt('series %d x', i))
      else
        x = {}
        for j = 1, #y do x[j] = j end
      end
      if #x ~= #y then raise(fmt('plot.lines: series %d has %d x values but %d y values', i, #x, #y)) end
      local style = s.style or 'line'
      if not STYLES[style] then raise(fmt("plot.lines: series %d style must be 'line', 'points' or 'both'", i)) end
      data[i] = { x = x, y = y, label = s.label, style = style, width = s.width or 2,
        color = s.color or PALETTE[(i - 1) % #PALETTE + 1] }
      for j = 1, #x do
        if finite(x[j]) and finite(y[j]) then
          all_x[#all_x + 1], all_y[#all_y + 1] = x[j], y[j]
        end
      end
    end
    local xlo, xhi = padded_range(all_x, xscale, 'x')
    local ylo, yhi = padded_range(all_y, yscale, 'y')
    local function ticks(scale, lo, hi)
      if scale == 'log' then return log_ticks(lo, hi), nil end
      return linear_ticks(lo, hi)
    end
    local xticks, xstep = ticks(xscale, xlo, xhi)
    local yticks, ystep = ticks(yscale, ylo, yhi)
    local ylabels, ylabel_w = {}, 0
    for i, v in ipairs(yticks) do
      ylabels[i] = tick_label(v, ystep, yscale)
      ylabel_w = max(ylabel_w, (plot.text_size(ylabels[i])))
    end

    -- layout: title on top, y label and tick labels left, x label below
    local left = 12 + (opts.ylabel and 16 or 0) + ylabel_w + 8
    local top = opts.title and 36 or 14
    local bottom = 28 + (opts.xlabel and 18 or 0)
    local box = { left, top, W - 16, Hh - bottom }
    if box[3] - box[1] < 20 or box[4] - box[2] < 20 then
      raise(fmt('plot.lines: %dx%d is too small for the axes', W, Hh))
    end
    local xa = make_axis(xscale, xlo, xhi, box[1], box[3] - 1)
    local ya = make_axis(yscale, ylo, yhi, box[4] - 1, box[2])
    local cv = Canvas(W, Hh, WHITE)

    -- grid, ticks, tick labels
    for i, v in ipairs(xticks) do
      local px = floor(xa.to_px(v) + 0.5)
      cv:rect(px, box[2], px + 1, box[4], GRID)
      cv:rect(px, box[4], px + 1, box[4] + 5, FRAME)
      local label = tick_label(v, xstep, xscale)
      local tw = plot.text_size(label)
      cv:text(px - floor(tw / 2), box[4] + 8, label, TEXT)
      xticks[i] = { value = v, px = px, label = label }
    end
    for i, v in ipairs(yticks) do
      local py = floor(ya.to_px(v) + 0.5)
      cv:rect(box[1], py, box[3], py + 1, GRID)
      cv:rect(box[1] - 5, py, box[1], py + 1, FRAME)
      local tw = plot.text_size(ylabels[i])
      cv:text(box[1] - 8 - tw, py - 4, ylabels[i], TEXT)
      yticks[i] = { value = v, px = py, label = ylabels[i] }
    end
    cv:frame(box[1] - 1, box[2] - 1, box[3] + 1, box[4] + 1, FRAME)

    -- the data, clipped to the box
    for _, d in ipairs(data) do
      local prev
      for j = 1, #d.x do
        local x, y = d.x[j], d.y[j]
        local ok = finite(x) and finite(y) and (xscale ~= 'log' or x > 0) and (yscale ~= 'log' or y > 0)
        if ok then
          local px, py = xa.to_px(x), ya.to_px(y)
          if d.style ~= 'points' and prev then cv:line(prev[1], prev[2], px, py, d.color, d.width, box) end
          if d.style ~= 'line' then
            cv:line(px, py, px, py, d.color, d.width + 4, box)
          end
          prev = { px, py }
        else
          prev = nil -- a gap
        end
      end
    end

    -- labels and title
    if opts.title then
      local tw = plot.text_size(opts.title, 2)
      cv:text(floor((box[1] + box[3]) / 2 - tw / 2), 8, opts.title, TEXT, 2)
    end
    if opts.xlabel then
      local tw = plot.text_size(opts.xlabel)
      cv:text(floor((box[1] + box[3]) / 2 - tw / 2), box[4] + 26, opts.xlabel, TEXT)
    end
    if opts.ylabel then
      local tw = plot.text_size(opts.ylabel)
      cv:text_up(8, floor((box[2] + box[4]) / 2 - tw / 2), opts.ylabel, TEXT)
    end

    -- legend: a line sample and the label of each labelled series
    local legend
    local labelled = {}
    for _, d in ipairs(data) do if d.label then labelled[#labelled + 1] = d end end
    if #labelled > 0 and opts.legend ~= false then
      local place = opts.legend or 'upper right'
      if not LEGEND_PLACES[place] then raise(fmt('plot.lines: unknown legend place %q', tostring(place))) end
      local lw = 0
      for _, d in ipairs(labelled) do lw = max(lw, (plot.text_size(tostring(d.label)))) end
      local bw, bh = 8 + 24 + 6 + lw + 8, 6 + 14 * #labelled
      local bx = place:find('right') and box[3] - bw - 8 or box[1] + 8
      local by = place:find('upper') and box[2] + 8 or box[4] - bh - 8
      cv:rect(bx, by, bx + bw, by + bh, WHITE)
      cv:frame(bx, by, bx + bw, by + bh, { 160, 160, 160 })
      legend = { bx, by, bx + bw, by + bh, entries = {} }
      for i, d in ipairs(labelled) do
        local ly = by + 3 + (i - 1) * 14 + 6
        cv:line(bx + 8, ly, bx + 32, ly, d.color, d.width)
        cv:text(bx + 38, ly - 4, tostring(d.label), TEXT)
        legend.entries[i] = { label = d.label, x0 = bx + 8, x1 = bx + 32, y = ly, color = d.color }
      end
    end

    local path = cv:save(opts.path)
    return path, { plot = box, width = W, height = Hh, x_to_px = xa.to_px, y_to_px = ya.to_px,
      xlim = { xlo, xhi }, ylim = { ylo, yhi }, xticks = xticks, yticks = yticks, legend = legend,
      colors = (function()
        local out = {}
        for i, d in ipairs(data) do out[i] = d.color end
        return out
      end)() }
  end

  -- ---- fc.plot.image_grid ------------------------------------------------------------

  -- An image as {ptr, w, h, channels, keep}: uint8 (or float in [0, 1])
  -- [C, H, W] with C 1, 3 or 4, or [H, W].
  local function image_of(t, i)
    if not fc.is_tensor(t) then raise(fmt('image_grid: image %d is a %s, not a tensor', i, type(t))) end
    if t:dim() == 2 then t = t:unsqueeze(1) end
    if t:dim() ~= 3 or not (t:size(1) == 1 or t:size(1) == 3 or t:size(1) == 4) then
      raise(fmt('image_grid: image %d must be [C, H, W] with C 1, 3 or 4 (or [H, W]), got %s', i, tostring(t:size())))
    end
    if t:is_floating_point() then t = (t * 255):round():clamp(0, 255) end
    if t.dtype ~= 'uint8' then t = t:to('uint8') end
    local hwc = t:permute(2, 3, 1):contiguous()
    return { ptr = ffi.cast('const uint8_t *', hwc:data_ptr()), w = t:size(3), h = t:size(2), c = t:size(1), keep = hwc }
  end

  local GRID_OPTS = { images = true, titles = true, ncol = true, path = true, scale = true, pad = true }

  function plot.image_grid(opts)
    check_opts('plot.image_grid', opts, GRID_OPTS)
    if type(opts.path) ~= 'string' then raise('plot.image_grid: path is required') end
    local images = opts.images
    if type(images) ~= 'table' or #images == 0 then raise('plot.image_grid: images must be a non-empty list') end
    local titles, scale, pad = opts.titles or {}, opts.scale or 1, opts.pad or 6
    local n = #images
    local ncol = opts.ncol or min(n, ceil(math.sqrt(n)))
    local nrow = ceil(n / ncol)
    local imgs, cw, ch = {}, 1, 1
    for i, t in ipairs(images) do
      imgs[i] = image_of(t, i)
      cw, ch = max(cw, imgs[i].w * scale), max(ch, imgs[i].h * scale)
    end
    local has_titles = next(titles) ~= nil
    local th = has_titles and 14 or 0
    cw = max(cw, 8)
    local W = ncol * (cw + pad) + pad
    local Hh = nrow * (ch + th + pad) + pad
    local cv = Canvas(W, Hh, WHITE)
    local cells = {}
    for i, img in ipairs(imgs) do
      local col, row = (i - 1) % ncol, floor((i - 1) / ncol)
      local x0, y0 = pad + col * (cw + pad), pad + row * (ch + th + pad)
      local title = titles[i]
      if title then
        title = tostring(title)
        local maxc = floor(cw / 6)
        if #title > maxc then title = title:sub(1, max(maxc - 1, 1)) .. '~' end
        local tw = plot.text_size(title)
        cv:text(x0 + floor((cw - tw) / 2), y0 + 2, title, TEXT)
      end
      local ix, iy = x0 + floor((cw - img.w * scale) / 2), y0 + th
      cv:blit(img.ptr, img.w, img.h, img.c, ix, iy, scale)
      cells[i] = { ix, iy, ix + img.w * scale, iy + img.h * scale }
    end
    local path = cv:save(opts.path)
    return path, { cells = cells, width = W, height = Hh, ncol = ncol, nrow = nrow }
  end

  -- fc.read_png(path): the file as a uint8 tensor [H, W, C].
  function fc.read_png(path)
    if type(path) ~= 'string' then raise('read_png: path must be a string') end
    return H.wrap(C.fc_read_png(path))
  end
  return plot
end
