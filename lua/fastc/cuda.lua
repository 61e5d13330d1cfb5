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

  -- ---- streams and events ------------------------------------------------------
  -- fc.cuda.Stream(device) queues work apart from the default stream;
  -- fc.cuda.stream(s, fn) runs fn with s as this thread's stream for its
  -- device. fc.cuda.Event{enable_timing=true} marks a point in a stream:
  -- e:record(s), e:synchronize(), s:wait_event(e), e0:elapsed_time(e1) (ms).
  local class = fc.class or require 'fastc.class'

  local function raise_last() H.check(-1) end

  local Stream = class('Stream')
  cuda.Stream = Stream
  function Stream:init(device)
    local d = device_number(device, 0)
    local p = C.fc_cuda_stream_new(d)
    if p == nil then raise_last() end
    self.p, self.device = ffi.gc(p, C.fc_cuda_stream_free), 'cuda:' .. d
  end
  function Stream:synchronize() H.check(C.fc_cuda_stream_synchronize(self.p)) end
  function Stream:query()
    local r = C.fc_cuda_stream_query(self.p)
    H.check(r)
    return r == 1
  end
  function Stream:wait_event(e)
    H.check(C.fc_cuda_stream_wait_event(C.fc_cuda_stream_device(self.p), self.p, e.p))
  end
  function Stream:record_event(e)
    e = e or cuda.Event()
    e:record(self)
    return e
  end
  Stream.__tostring = function(self) return 'Stream(' .. self.device .. ')' end

  -- The stream this thread uses on a device (cuda:0 by default); nil: the default stream.
  local current = {}
  function cuda.current_stream(device)
    return current[device_number(device, 0)]
  end

  local function pack(...) return { n = select('#', ...), ... } end

  -- Runs fn(...) with s as this thread's stream for s's device, then puts
  -- the previous one back (also when fn raises); returns fn's results.
  function cuda.stream(s, fn, ...)
    local d = tonumber(C.fc_cuda_stream_device(s.p))
    local before = current[d]
    H.check(C.fc_cuda_set_stream(d, s.p))
    current[d] = s
    local res = pack(pcall(fn, ...))
    current[d] = before
    H.check(C.fc_cuda_set_stream(d, before and before.p or nil))
    if not res[1] then error(res[2], 0) end
    return unpack(res, 2, res.n)
  end

  local Event = class('Event')
  cuda.Event = Event
  function Event:init(opts)
    opts = opts or {}
    local d = device_number(opts.device, 0)
    local p = C.fc_cuda_event_new(d, opts.enable_timing and 1 or 0)
    if p == nil then raise_last() end
    self.p, self.device = ffi.gc(p, C.fc_cuda_event_free), 'cuda:' .. d
  end
  function Event:record(stream) H.check(C.fc_cuda_event_record(self.p, stream and stream.p or nil)); return self end
  function Event:synchronize() H.check(C.fc_cuda_event_synchronize(self.p)) end
  function Event:query()
    local r = C.fc_cuda_event_query(self.p)
    H.check(r)
    return r == 1
  end
  -- Milliseconds from this event to `later` (both recorded, both timing).
  function Event:elapsed_time(later)
    local ms = C.fc_cuda_event_elapsed_ms(self.p, later.p)
    if ms < 0 then raise_last() end
    return tonumber(ms)
  end

  -- ---- pinned host memory ---------------------------------------------------------
  -- t:pin_memory(): a CPU copy in page-locked memory, whose copies to a GPU
  -- are queued without waiting (leave it unchanged until they are done).
  function Tensor.pin_memory(t) return H.wrap(C.fc_pin_memory(t.p)) end
  function Tensor.is_pinned(t) return C.fc_is_pinned(t.p) ~= 0 end

  fc.cuda = cuda
  fc.backends = fc.backends or {}
  fc.backends.allow_tf32 = cuda.allow_tf32
end
