-- lua/fastc/data/files.lua — paths and directories for the data layer:
-- listing (get_files, get_image_files), path parts, mkdir -p, and regular
-- expressions (PCRE2, the syntax of Python's re that fastai's labellers use).
--
-- Paths are plain strings joined with '/'. Listing goes through the C
-- library's opendir/readdir (the dirent layout glibc uses on Linux).
local ffi = require 'ffi'

-- Declared under our own names where possible; a declaration another module
-- already made is fine, since every pointer is cast to our types.
pcall(ffi.cdef, [[
struct fc_dirent { uint64_t d_ino; int64_t d_off; unsigned short d_reclen;
                   unsigned char d_type; char d_name[256]; };
]])
pcall(ffi.cdef, 'void *opendir(const char *name);')
pcall(ffi.cdef, 'void *readdir(void *dir);')
pcall(ffi.cdef, 'int closedir(void *dir);')
pcall(ffi.cdef, 'int mkdir(const char *path, unsigned int mode);')
pcall(ffi.cdef, 'int access(const char *path, int mode);')
pcall(ffi.cdef, 'int rename(const char *oldpath, const char *newpath);')
pcall(ffi.cdef, 'char *strerror(int errnum);')

local C = ffi.C
local dirent_p = ffi.typeof('struct fc_dirent *')
local DT_DIR, DT_REG, DT_LNK, DT_UNKNOWN = 4, 8, 10, 0

return function(fc)
  local data = fc.data
  local fmt = string.format

  -- ---- path parts ----------------------------------------------------------

  local function strip(p) return (p:gsub('/+$', '')) end
  function data.path_join(a, ...)
    local out = a
    for i = 1, select('#', ...) do
      local b = select(i, ...)
      if b:sub(1, 1) == '/' then out = b else out = strip(out) .. '/' .. b end
    end
    return out
  end
  function data.path_name(p) return strip(p):match('([^/]*)$') end
  function data.path_parent(p)
    local s = strip(p)
    local parent = s:match('^(.*)/[^/]*$')
    if parent == nil then return '.' end
    return parent == '' and '/' or parent
  end
  function data.path_stem(p)
    local name = data.path_name(p)
    return name:match('^(.+)%.[^.]*$') or name
  end
  -- '.jpg' (lower-cased), or '' without one
  function data.path_suffix(p)
    local ext = data.path_name(p):match('^.+(%.[^.]*)$')
    return ext and ext:lower() or ''
  end

  local function is_dir(p)
    local d = C.opendir(p)
    if d == nil then return false end
    C.closedir(d)
    return true
  end
  data.is_dir = is_dir
  function data.exists(p) return C.access(p, 0) == 0 end

  -- mkdir -p; errors name the directory.
  function data.mkdir(p)
    if is_dir(p) then return p end
    local parent = data.path_parent(p)
    if parent ~= p and parent ~= '.' and parent ~= '/' then data.mkdir(parent) end
    if C.mkdir(p, tonumber('755', 8)) ~= 0 and not is_dir(p) then
      error(fmt('mkdir: cannot create directory %s (%s)', p, ffi.string(C.strerror(ffi.errno()))), 2)
    end
    return p
  end

  function data.rename(a, b)
    if C.rename(a, b) ~= 0 then
      error(fmt('rename: %s -> %s failed (%s)', a, b, ffi.string(C.strerror(ffi.errno()))), 2)
    end
  end

  -- Names in a directory (no '.' or '..'), sorted, with whether each is a
  -- directory.
  local function list_dir(p, followlinks)
    local d = C.opendir(p)
    if d == nil then
      error(fmt('get_files: cannot open directory %s (%s)', p, ffi.string(C.strerror(ffi.errno()))), 3)
    end
    local names, dirs = {}, {}
    while true do
      local e = C.readdir(d)
      if e == nil then break end
      e = ffi.cast(dirent_p, e)
      local name = ffi.string(e.d_name)
      if name ~= '.' and name ~= '..' then
        local t = e.d_type
        local full = p .. '/' .. name
        local dir = t == DT_DIR
        if t == DT_UNKNOWN or (t == DT_LNK and followlinks) then dir = is_dir(full) end
        names[#names + 1] = name
        dirs[name] = dir
      end
    end
    C.closedir(d)
    table.sort(names)
    return names, dirs
  end

  local function ext_set(extensions)
    if extensions == nil then return nil end
    local set = {}
    for k, v in pairs(extensions) do
      local e = type(k) == 'number' and v or k
      e = e:lower()
      if e:sub(1, 1) ~= '.' then e = '.' .. e end
      set[e] = true
    end
    return set
  end

  -- get_files(path, {extensions=, recurse=true, folders=, followlinks=true}):
  -- files under path (hidden ones skipped), each directory's files sorted
  -- by name before its subdirectories; `folders` limits the first level.
  function data.get_files(path, opts)
    opts = opts or {}
    if type(path) ~= 'string' then error('get_files: path must be a string', 2) end
    path = strip(path)
    local exts = ext_set(opts.extensions)
    local recurse = opts.recurse ~= false
    local followlinks = opts.followlinks ~= false
    local folders
    if opts.folders then
      folders = {}
      local fl = type(opts.folders) == 'string' and { opts.folders } or opts.folders
      for _, f in ipairs(fl) do folders[f] = true end
    end
    local out = {}
    local function walk(p, depth)
      local names, dirs = list_dir(p, followlinks)
      local sub = {}
      for _, name in ipairs(names) do
        if name:sub(1, 1) ~= '.' then
          if dirs[name] then
            if recurse and (depth > 0 or not folders or folders[name]) then sub[#sub + 1] = name end
          elseif not (folders and depth == 0 and not folders['.']) then
            if not exts or exts[data.path_suffix(name)] then out[#out + 1] = p .. '/' .. name end
          end
        end
      end
      for _, name in ipairs(sub) do walk(p .. '/' .. name, depth + 1) end
    end
    walk(path, 0)
    return out
  end

  data.image_extensions = { '.bmp', '.gif', '.jpe', '.jpeg', '.jpg', '.pbm', '.pgm', '.png',
    '.pnm', '.ppm', '.tga', '.tif', '.tiff', '.webp' }

  function data.get_image_files(path, opts)
    opts = opts or {}
    local o = { extensions = data.image_extensions, recurse = opts.recurse, folders = opts.folders,
      followlinks = opts.followlinks }
    return data.get_files(path, o)
  end

  -- FileGetter(suf='', {extensions=, recurse=true, folders=}): a getter
  -- listing the files of path .. suf.
  function data.FileGetter(suf, opts)
    if type(suf) == 'table' then suf, opts = '', suf end
    return function(path) return data.get_files(path .. (suf or ''), opts) end
  end
  function data.ImageGetter(suf, opts)
    if type(suf) == 'table' then suf, opts = '', suf end
    return function(path) return data.get_image_files(path .. (suf or ''), opts) end
  end

  -- ---- regular expressions (PCRE2) -----------------------------------------

  local pcre
  local function load_pcre()
    if pcre ~= nil then return pcre end
    pcall(ffi.cdef, [[
typedef struct pcre2_real_code_8 pcre2_code_8;
typedef struct pcre2_real_match_data_8 pcre2_match_data_8;
pcre2_code_8 *pcre2_compile_8(const unsigned char *pattern, size_t length, uint32_t options,
                              int *errorcode, size_t *erroroffset, void *ccontext);
void pcre2_code_free_8(pcre2_code_8 *code);
pcre2_match_data_8 *pcre2_match_data_create_from_pattern_8(const pcre2_code_8 *code, void *gcontext);
void pcre2_match_data_free_8(pcre2_match_data_8 *match_data);
int pcre2_match_8(const pcre2_code_8 *code, const unsigned char *subject, size_t length,
                  size_t startoffset, uint32_t options, pcre2_match_data_8 *match_data, void *mcontext);
size_t *pcre2_get_ovector_pointer_8(pcre2_match_data_8 *match_data);
int pcre2_get_error_message_8(int errorcode, unsigned char *buffer, size_t bufflen);
]])
    for _, name in ipairs { 'pcre2-8', 'libpcre2-8.so.0' } do
      local ok, lib = pcall(ffi.load, name)
      if ok then pcre = lib; return pcre end
    end
    pcre = false
    return pcre
  end

  local ANCHORED, UTF = 0x80000000, 0x00080000
  local UNSET = ffi.cast('size_t', -1)

  -- data.regex(pattern) -> object with :search(s) and :match(s) returning
  -- the captured groups (or the whole match when there are none), or nil.
  function data.regex(pattern)
    local lib = load_pcre()
    if not lib then error('regex: libpcre2-8 is not available (Debian package libpcre2-8-0)', 2) end
    local err, off = ffi.new('int[1]'), ffi.new('size_t[1]')
    local code = lib.pcre2_compile_8(pattern, #pattern, UTF, err, off, nil)
    if code == nil then
      local buf = ffi.new('unsigned char[256]')
      lib.pcre2_get_error_message_8(err[0], buf, 256)
      error(fmt('regex: bad pattern %q at offset %d: %s', pattern, tonumber(off[0]), ffi.string(buf)), 2)
    end
    code = ffi.gc(code, lib.pcre2_code_free_8)
    local md = ffi.gc(lib.pcre2_match_data_create_from_pattern_8(code, nil), lib.pcre2_match_data_free_8)
    local function run(s, anchored)
      local rc = lib.pcre2_match_8(code, s, #s, 0, anchored and ANCHORED or 0, md, nil)
      if rc < 0 then return nil end
      local ov = lib.pcre2_get_ovector_pointer_8(md)
      if rc == 1 then return s:sub(tonumber(ov[0]) + 1, tonumber(ov[1])) end
      local groups = {}
      for g = 1, rc - 1 do
        local a, b = ov[2 * g], ov[2 * g + 1]
        groups[g] = a ~= UNSET and s:sub(tonumber(a) + 1, tonumber(b)) or false
      end
      return unpack(groups)
    end
    return {
      pattern = pattern,
      search = function(_, s) return run(s, false) end,
      match = function(_, s) return run(s, true) end,
    }
  end
end
