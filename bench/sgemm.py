# bench/sgemm.py — torch.matmul GFLOP/s on the sizes of bench/sgemm.c.
import time
import torch

torch.set_num_threads(2)
for n in (256, 1024, 2048):
    a, b = torch.randn(n, n), torch.randn(n, n)
    reps = 51 if n <= 256 else 15 if n <= 1024 else 7
    for _ in range(2):
        a @ b
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    times.sort()
    print(n, 2.0 * n ** 3 / times[reps // 2] / 1e9)
