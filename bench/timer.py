# bench/timer.py — the Python benchmarks' timing (bench/timer.lua is the Lua
# side's): the median of reps calls after warmup calls, so one slow call
# from a busy machine does not move the figure.
import time


def median(fn, reps=31, warmup=3, clock=time.perf_counter):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    times.sort()
    return times[(reps - 1) // 2]
