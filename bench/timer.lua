-- bench/timer.lua — wall-clock timing for the Lua benchmarks.
local ffi = require 'ffi'
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clk, bench_timespec *ts);
]]
local ts = ffi.new('bench_timespec')
local M = {}

function M.now()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

-- Times this process's CPU seconds (all threads) instead of wall-clock
-- seconds, for figures that should not move when other jobs share the machine.
function M.use_cpu_clock()
  M.now = function()
    ffi.C.clock_gettime(2, ts) -- CLOCK_PROCESS_CPUTIME_ID
    return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
  end
end

-- Median seconds per call of fn over `reps` timed runs after `warmup` runs.
function M.median(fn, reps, warmup)
  for _ = 1, warmup or 3 do fn() end
  local times = {}
  for i = 1, reps do
    local t0 = M.now()
    fn()
    times[i] = M.now() - t0
  end
  table.sort(times)
  return times[math.ceil(reps / 2)]
end

-- Runs a Python benchmark with the system interpreter that has torch; nil
-- when torch is not there. Each output line "name value" becomes a field.
function M.torch(script, args)
  local ok = os.execute('/usr/bin/python3 -c "import torch" >/dev/null 2>&1')
  if ok ~= 0 and ok ~= true then return nil end
  local p = io.popen('/usr/bin/python3 ' .. script .. ' ' .. (args or '') .. ' 2>/dev/null')
  local out = {}
  for line in p:lines() do
    local k, v = line:match('^(%S+)%s+(%S+)$')
    if k then out[k] = tonumber(v) end
  end
  p:close()
  return out
end

return M
