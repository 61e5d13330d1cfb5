# bench/sgemm.py — torch.matmul GFLOP/s on the square float32 sizes of
# bench/sgemm.c (which runs this with /usr/bin/python3 and reads "N GFLOP/s"
# lines): 2 threads like fastc, 3 warm-ups, median of the timed runs.
import time
import torch

torch.set_num_threads(2)
torch.manual_seed(0)
for n in (256, 1024, 2048):
    a, b = torch.randn(n, n), torch.randn(n, n)
    reps = 61 if n <= 256 else 21 if n <= 1024 else 9
    for _ in range(3):
        torch.matmul(a, b)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.matmul(a, b)
        times.append(time.perf_counter() - t0)
    times.sort()
    print(n, 2.0 * n ** 3 / times[reps // 2] / 1e9, flush=True)
