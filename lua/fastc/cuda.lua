-- lua/fastc/cuda.lua — fc.cuda: whether the GPU plugin loaded (and why not),
-- devices, synchronisation and the caching allocator's statistics; and
-- fc.backends.allow_tf32. Tensors move with t:cuda(), t:to('cuda:1'),
-- t:cpu(), and modules with model:cuda() (nn.Module:to).
--
-- Device numbers are the N of 'cuda:N' (0 is the first GPU, as everywhere
-- in CUDA); they name devices, they do not index a Lua sequence.
return function(fc, Tensor, H)
  local ffi = require 'ffi'
  local C = H.C
  local cuda = {}

  -- nil: every device (synchronize, empty_cache) or cuda:0 (memory_stats).
  local function device_number(d, default)
    if d == nil then return default end
    if type(d) == 'number' and d >= 0 and d == math.floor(d) then return d end
    local n = type(d) == 'string' and d:match('^cuda:(%d+)$')
    if n then return tonumber(n) end
    H.raise(string.format('cuda: expected a device number or "cuda:N", got %s', tostring(d)))
  end

  function cuda.is_available() return C.fc_cuda_is_available() ~= 0 end

  -- The reason CUDA cannot be used, or nil when it can.
  function cuda.why_unavailable()
    local why = ffi.string(C.fc_cuda_why_unavailable())
    return why ~= '' and why or nil
  end

  function cuda.device_count() return tonumber(C.fc_cuda_device_count()) end

  -- Runtime, cuBLAS and cuDNN versions and the devices, in one line (or the reason).
  function cuda.info() return ffi.string(C.fc_cuda_info()) end

  -- Waits for the work queued on a device (all devices by default).
  function cuda.synchronize(device)
    H.check(C.fc_cuda_synchronize(device_number(device, -1)))
  end

  local STAT_FIELDS = { 'allocated_bytes', 'peak_allocated_bytes', 'reserved_bytes',
    'peak_reserved_bytes', 'cached_bytes', 'num_allocs', 'num_frees', 'num_cache_hits',
    'num_device_mallocs', 'num_device_frees', 'num_oom_retries' }
  local stats_buf = ffi.new('fc_cuda_mem_stats')

  -- The caching allocator's counts for a device (cuda:0 by default) as a
  -- table of numbers: bytes held by tensors, reserved from the driver, cached.
  function cuda.memory_stats(device)
    H.check(C.fc_cuda_memory_stats(device_number(device, 0), stats_buf))
    local out = {}
    for _, k in ipairs(STAT_FIELDS) do out[k] = tonumber(stats_buf[k]) end
    return out
  end

  function cuda.memory_allocated(device) return cuda.memory_stats(device).allocated_bytes end
  function cuda.memory_reserved(device) return cuda.memory_stats(device).reserved_bytes end

  -- Gives cached blocks back to the driver; a no-op without CUDA.
  function cuda.empty_cache(device)
    H.check(C.fc_cuda_empty_cache(device_number(device, -1)))
  end

  -- TF32 tensor cores for float32 matmuls (on by default). With a flag it
  -- sets the switch; it always returns the setting in force before the call.
  function cuda.allow_tf32(flag)
    local before = C.fc_cuda_allow_tf32() ~= 0
    if flag ~= nil then C.fc_cuda_set_allow_tf32(flag and 1 or 0) end
    return before
  end

  fc.cuda = cuda
  fc.backends = fc.backends or {}
  fc.backends.allow_tf32 = cuda.allow_tf32
end
