# bench/ops.py — the PyTorch half of bench/ops.lua; prints "name seconds".
import time
import torch
from timer import median

torch.set_num_threads(2)
N = 16 * 1024 * 1024
a, b, c = torch.randn(N), torch.randn(N), torch.randn(N)


print("add_16M", median(lambda: a + b, 21))
print("chain_16M", median(lambda: (a * b + c).relu(), 21))
print("sum_16M", median(lambda: a.sum(), 21))
x, y = torch.ones(1), torch.ones(1)
CALLS = 200000


def tiny():
    for _ in range(CALLS):
        x + y


print("tiny_add", median(tiny, 5, 1) / CALLS)
