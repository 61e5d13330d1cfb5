-- bench/loader.lua — the C loader against PyTorch's DataLoader on the same
-- JPEG folder (Imagenette-like: 10 classes, 300 train images each, ~160x200,
-- written once by tools/gen_images.lua): RandomResizedCrop 128, flip, to
-- float, normalise (on the loader's workers, as PyTorch's workers run
-- ToTensor + Normalize); bs 64; 0, 1, 2 workers. Also the decode-only ceiling
-- of one core (TurboJPEG on the same files, see decode_rate). Prints a
-- markdown table. OpenMP is held to one thread: the loader's workers are the
-- parallelism.
--   fastlua bench/loader.lua [dir] [reps]
local ffi = require 'ffi'
local fc = require 'fastc'
fc.set_num_threads(1)
local cl = require 'fastc.data.cloader'
local timer = dofile('bench/timer.lua')

local root = arg and arg[1] or '/tmp/fastc_bench_imagenette'
local reps = tonumber(arg and arg[2]) or 3
local WORKERS = { 0, 1, 2 }

if not io.open(root .. '/train/tench/tench_00300.jpg') then
  io.stderr:write('bench/loader: writing the image folder into ', root, ' (once)\n')
  dofile('tools/gen_images.lua') { dir = root, train = 300, valid = 50, classes = 10, seed = 1 }
end

local items, labels = {}, {}
local classes = {}
for line in io.popen("ls -d '" .. root .. "'/train/*/"):lines() do classes[#classes + 1] = line end
table.sort(classes)
for k, cdir in ipairs(classes) do
  local files = {}
  for f in io.popen("ls '" .. cdir .. "'"):lines() do files[#files + 1] = cdir .. f end
  table.sort(files)
  for _, f in ipairs(files) do items[#items + 1] = f; labels[#labels + 1] = k end
end


local function median(xs)
  table.sort(xs)
  return xs[math.ceil(#xs / 2)]
end

local function loader_rate(workers)
  local l = cl.new { items = items, labels = fc.tensor(labels), bs = 64, shuffle = true, seed = 1,
    num_workers = workers, prefetch = 2 * math.max(workers, 1),
    normalize = { mean = { 0.485, 0.456, 0.406 }, std = { 0.229, 0.224, 0.225 } },
    pipeline = { { 'random_resized_crop', size = { 128, 128 } }, { 'flip', p = 0.5 } } }
  local rates, per_cpu = {}, {}
  for e = 0, reps do -- epoch 0 warms the page cache
    local n, t0, c0 = 0, timer.now(), os.clock()
    for xb in l:epoch(e) do n = n + xb:size(1) end
    if e > 0 then
      rates[#rates + 1] = n / (timer.now() - t0)
      per_cpu[#per_cpu + 1] = n / (os.clock() - c0) -- os.clock: CPU time of all threads
    end
  end
  l:close()
  return median(rates), median(per_cpu)
end

-- The decode-only ceiling of one core, measured apart from fastc: the same
-- files, already in memory, through TurboJPEG into one reused buffer, at the
-- DCT scale the loader would pick for the whole image (the smallest keeping
-- the output size; 1/1 for every file here, as for every crop the loader
-- plans on them: no crop side reaches 2 x 128). Nothing else: no crop,
-- resize, layout change, float conversion or batching. Also the same with
-- the file read (open/read/close) each time.
ffi.cdef [[
  void *tjInitDecompress(void);
  int tjDestroy(void *h);
  int tjDecompressHeader3(void *h, const unsigned char *buf, unsigned long n, int *w, int *ht, int *subsamp, int *cs);
  int tjDecompress2(void *h, const unsigned char *buf, unsigned long n, unsigned char *dst, int w, int pitch, int ht,
                    int pf, int flags);
  int open(const char *path, int flags, ...);
  long read(int fd, void *buf, unsigned long n);
  int close(int fd);
]]
local tj = ffi.load('turbojpeg')

local function decode_rate()
  local n = math.min(#items, 1000)
  local files, sizes = {}, {}
  for i = 1, n do
    local f = assert(io.open(items[i], 'rb'))
    files[i] = f:read('*a')
    sizes[i] = #files[i]
    f:close()
  end
  local h = tj.tjInitDecompress()
  local w, ht, ss, cs = ffi.new('int[1]'), ffi.new('int[1]'), ffi.new('int[1]'), ffi.new('int[1]')
  local px = ffi.new('unsigned char[?]', 4096 * 4096 * 3)
  local fbuf = ffi.new('unsigned char[?]', 16777216)
  local denoms = {}
  local function one(buf, size)
    assert(tj.tjDecompressHeader3(h, buf, size, w, ht, ss, cs) == 0)
    local denom = 1 -- largest 1/2, 1/4, 1/8 keeping the 128 output (cloader's pick_denom)
    while denom < 8 and math.min(w[0], ht[0]) / (denom * 2) >= 128 do denom = denom * 2 end
    denoms[denom] = (denoms[denom] or 0) + 1
    local sw, sh = math.ceil(w[0] / denom), math.ceil(ht[0] / denom)
    assert(tj.tjDecompress2(h, buf, size, px, sw, 0, sh, 0, 0) == 0) -- TJPF_RGB, default (accurate) DCT
  end
  local rates, per_cpu, rates_read, per_cpu_read = {}, {}, {}, {}
  for r = 1, reps do
    local t0, c0 = timer.now(), os.clock()
    for i = 1, n do one(files[i], sizes[i]) end
    rates[r], per_cpu[r] = n / (timer.now() - t0), n / (os.clock() - c0)
    t0, c0 = timer.now(), os.clock()
    for i = 1, n do
      local fd = ffi.C.open(items[i], 0)
      local got = tonumber(ffi.C.read(fd, fbuf, 16777216))
      ffi.C.close(fd)
      one(fbuf, got)
    end
    rates_read[r], per_cpu_read[r] = n / (timer.now() - t0), n / (os.clock() - c0)
  end
  tj.tjDestroy(h)
  local scales = {}
  for d, k in pairs(denoms) do scales[#scales + 1] = string.format('1/%d: %d', d, k / (2 * reps)) end
  return median(rates), median(per_cpu), median(rates_read), median(per_cpu_read), table.concat(scales, ', ')
end

-- `fastlua bench/loader.lua DIR REPS --ceiling`: only the decode ceiling, one
-- line of numbers (for running several at once).
if arg and arg[3] == '--ceiling' then
  local a, b, c, d = decode_rate()
  print(a, b, c, d)
  return
end

-- The ceiling of two cores measured, not assumed: two decode-only processes
-- at once (on a machine whose cores share caches or are busy, two decoders
-- get less than twice one).
local function decode_rate_2()
  local cmd = string.format("build/fastlua bench/loader.lua '%s' %d --ceiling", root, reps)
  local p1, p2 = io.popen(cmd), io.popen(cmd)
  local a1, b1 = p1:read('*n', '*n')
  local a2, b2 = p2:read('*n', '*n')
  p1:close()
  p2:close()
  if not (a1 and a2) then return nil end
  return a1 + a2, (b1 + b2) / 2
end

-- For each worker count in turn: the decode ceiling of the cores it uses
-- (one, or two processes at once for 2 workers), fastc, then PyTorch, so
-- that on a shared machine all three see about the same load.
local cores = 2
local ours, ours_cpu, torch, ceil, ceil_cpu = {}, {}, {}, {}, {}
local ceiling, ceiling_cpu, with_read, with_read_cpu, scales, ceiling2, ceiling2_cpu
for _, w in ipairs(WORKERS) do
  if w >= cores then
    ceiling2, ceiling2_cpu = decode_rate_2()
    ceil[w], ceil_cpu[w] = ceiling2, ceiling2_cpu
  end
  if not ceil[w] then
    ceiling, ceiling_cpu, with_read, with_read_cpu, scales = decode_rate()
    ceil[w], ceil_cpu[w] = ceiling, ceiling_cpu
  end
  ours[w], ours_cpu[w] = loader_rate(w)
  for k, v in pairs(timer.torch('bench/loader.py', "'" .. root .. "' " .. reps .. ' ' .. w) or {}) do torch[k] = v end
end

local function fmt(x, f) return x and string.format(f, x) or 'n/a' end
print(string.format('%d images (%d classes) in %s; RandomResizedCrop 128 + flip + to float + normalise, bs 64; median of %d epochs.',
  #items, #classes, root, reps))
print('')
print('| workers | fastc images/s | PyTorch images/s | fastc / PyTorch | fastc images per CPU-second | PyTorch images per CPU-second | fastc / PyTorch per CPU-second | decode ceiling of the cores used, images/s (per CPU-second) | fastc / that ceiling | fastc per CPU-second / ceiling\'s |')
print('|---|---|---|---|---|---|---|---|---|---|')
for _, w in ipairs(WORKERS) do
  local t, tc = torch['workers_' .. w], torch['cpu_workers_' .. w]
  print(string.format('| %d | %.0f | %s | %s | %.0f | %s | %s | %s (%s) | %s | %s |', w, ours[w], fmt(t, '%.0f'),
    fmt(t and ours[w] / t, '%.2f'), ours_cpu[w], fmt(tc, '%.0f'), fmt(tc and ours_cpu[w] / tc, '%.2f'),
    fmt(ceil[w], '%.0f'), fmt(ceil_cpu[w], '%.0f'), fmt(ceil[w] and ours[w] / ceil[w], '%.2f'),
    fmt(ceil_cpu[w] and ours_cpu[w] / ceil_cpu[w], '%.2f')))
end
print('')
print(string.format('Decode-only ceiling, one core, last measured (TurboJPEG from memory, DCT scale %s files): %.0f images/s, ' ..
  '%.0f per CPU-second; with the file read: %.0f images/s, %.0f per CPU-second. Two cores (two such processes ' ..
  'at once): %s images/s, %s per CPU-second%s.', scales, ceiling, ceiling_cpu, with_read, with_read_cpu,
  fmt(ceiling2, '%.0f'), fmt(ceiling2_cpu, '%.0f'),
  torch.pil_decode and string.format('; PIL (read + decode) %.0f images/s, %.0f per CPU-second', torch.pil_decode,
  torch.pil_decode_cpu) or ''))
print('CPU-second columns count every thread (fastc) or process (PyTorch: main and workers) of the run, so other')
print('jobs on the machine bend them less than wall-clock rates; the last one is the loader\'s whole cost per image')
print('(read, decode, crop, resize, flip, normalise, collate, queue) against decoding alone, the ceiling measured just')
print('before the row: on idle cores, the fraction of the decode ceiling x cores.')
