-- lua/fastc/vision/image.lua — reading and writing image files from Lua.
--
-- fc.vision.load_image(path, {channels=3}) decodes through the C loader's
-- decoder when it is built (libjpeg-turbo + stb_image), else through
-- Debian's libstb directly; fc.vision.save_png(path, img) writes a uint8
-- [C,H,W] (or [H,W]) tensor with stb_image_write. Both go through the FFI:
-- the C runtime needs no image-writing code of its own.
local ffi = require 'ffi'

pcall(ffi.cdef, [[
unsigned char *stbi_load(const char *filename, int *x, int *y, int *channels_in_file, int desired_channels);
void stbi_image_free(void *retval_from_stbi_load);
const char *stbi_failure_reason(void);
int stbi_write_png(const char *filename, int w, int h, int comp, const void *data, int stride_in_bytes);
]])

return function(fc)
  local vision, data = fc.vision, fc.data
  local fmt = string.format

  local stb
  local function load_stb()
    if stb == nil then
      for _, name in ipairs { 'stb', 'libstb.so.0' } do
        local ok, lib = pcall(ffi.load, name)
        if ok then stb = lib; break end
      end
      stb = stb or false
    end
    return stb or error('images: libstb is not available (Debian package libstb0)', 3)
  end

  -- HWC bytes -> uint8 [C,H,W]
  local function chw_from_hwc(ptr, h, w, c)
    local t = fc.from_buffer(ptr, 'uint8', { h, w, c })
    return t:permute(3, 1, 2):contiguous()
  end

  local function decode_stb(path, channels)
    local lib = load_stb()
    local w, h, n = ffi.new('int[1]'), ffi.new('int[1]'), ffi.new('int[1]')
    local px = lib.stbi_load(path, w, h, n, channels)
    if px == nil then
      error(fmt('load_image: cannot decode %s (%s)', path, ffi.string(lib.stbi_failure_reason())), 0)
    end
    local ok, t = pcall(chw_from_hwc, px, h[0], w[0], channels)
    lib.stbi_image_free(px)
    if not ok then error(t, 0) end
    return t
  end

  -- load_image(path, {channels=3}) -> uint8 [C,H,W]
  function vision.load_image(path, o)
    o = o or {}
    local channels = o.channels or 3
    if type(path) ~= 'string' then error('load_image: path must be a string', 2) end
    local cl = data.cloader()
    if cl and cl.decode then return cl.decode(path, { channels = channels }) end
    return decode_stb(path, channels)
  end
  vision.decode_stb = decode_stb

  -- save_png(path, img): img uint8 [C,H,W] with C = 1, 3 or 4, or [H,W].
  function vision.save_png(path, img)
    local cl = not pcall(load_stb) and data.cloader()
    if cl and cl.write then cl.write(path, img); return path end
    local lib = load_stb()
    if not fc.is_tensor(img) then error('save_png: expects a tensor', 2) end
    if img:dim() == 2 then img = img:unsqueeze(1) end
    if img:dim() ~= 3 then error(fmt('save_png: expects [C,H,W] or [H,W], got %s', tostring(img:size())), 2) end
    local c, h, w = img:size(1), img:size(2), img:size(3)
    if c ~= 1 and c ~= 3 and c ~= 4 then error(fmt('save_png: %d channels (expected 1, 3 or 4)', c), 2) end
    if img.dtype ~= 'uint8' then img = img:clamp(0, 255):round():to('uint8') end
    local hwc = img:permute(2, 3, 1):contiguous()
    if lib.stbi_write_png(path, w, h, c, hwc:data_ptr(), w * c) == 0 then
      error('save_png: cannot write ' .. path, 2)
    end
    return path
  end
end
