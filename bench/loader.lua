-- bench/loader.lua — the C loader against PyTorch's DataLoader on the same
-- JPEG folder (Imagenette-like: 10 classes, 300 train images each, ~160x200,
-- written once by tools/gen_images.lua): RandomResizedCrop 128, flip, to
-- float, normalise (on the loader's workers, as PyTorch's workers run
-- ToTensor + Normalize); bs 64; 0, 1, 2 workers. Also the decode-only ceiling
-- of one core (libjpeg-turbo, full size). Prints a markdown table. OpenMP is
-- held to one thread: the loader's workers are the parallelism.
--   fastlua bench/loader.lua [dir] [reps]
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

local function decode_rate()
  local n = math.min(#items, 1000)
  local rates, per_cpu = {}, {}
  for r = 1, reps do
    local t0, c0 = timer.now(), os.clock()
    for i = 1, n do cl.decode(items[i]) end
    rates[r] = n / (timer.now() - t0)
    per_cpu[r] = n / (os.clock() - c0)
  end
  return median(rates), median(per_cpu)
end

local ceiling, ceiling_cpu = decode_rate()
local ours, ours_cpu = {}, {}
for _, w in ipairs(WORKERS) do ours[w], ours_cpu[w] = loader_rate(w) end
local torch = timer.torch('bench/loader.py', "'" .. root .. "' " .. reps .. ' ' .. table.concat(WORKERS, ',')) or {}

local cores = 2
print(string.format('%d images (%d classes) in %s; RandomResizedCrop 128 + flip + to float + normalise, bs 64; median of %d epochs.',
  #items, #classes, root, reps))
print('')
print('| workers | fastc images/s | PyTorch images/s | fastc / PyTorch | fastc / (decode ceiling x cores used) | fastc images per CPU-second / ceiling\'s |')
print('|---|---|---|---|---|---|')
for _, w in ipairs(WORKERS) do
  local t = torch['workers_' .. w]
  print(string.format('| %d | %.0f | %s | %s | %.2f | %.2f |', w, ours[w], t and string.format('%.0f', t) or 'n/a',
    t and string.format('%.2f', ours[w] / t) or 'n/a', ours[w] / (ceiling * math.min(math.max(w, 1), cores)),
    ours_cpu[w] / ceiling_cpu))
end
print('')
print(string.format('Decode-only ceiling, one core: libjpeg-turbo (fastc decode, full size) %.0f images/s ' ..
  '(%.0f per CPU-second)%s.', ceiling, ceiling_cpu,
  torch.pil_decode and string.format('; PIL %.0f images/s', torch.pil_decode) or ''))
print('The last column is wall-clock free: the loader\'s whole cost per image (decode, crop, resize, flip,')
print('normalise, collate, queue) against decoding alone; on idle cores it is the fraction of decode ceiling x cores.')
