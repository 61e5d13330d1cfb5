# bench/pool.py — the PyTorch half of bench/pool.lua; prints "name seconds".
import sys
import time
import torch
from timer import median
import torch.nn.functional as F

torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
torch.manual_seed(0)
x = torch.randn(128, 64, 14, 14)
xg = x.clone().requires_grad_()


def fwd_bwd(f):
    g = torch.ones_like(f(x))

    def run():
        xg.grad = None
        f(xg).backward(g)
    return run


with torch.no_grad():
    print("max2x2", median(lambda: F.max_pool2d(x, 2)))
    print("max3x3s2p1", median(lambda: F.max_pool2d(x, 3, 2, 1)))
    print("avg2x2", median(lambda: F.avg_pool2d(x, 2)))
    print("avg3x3s1p1", median(lambda: F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)))
    print("global_avg", median(lambda: F.adaptive_avg_pool2d(x, 1)))
    print("global_max", median(lambda: F.adaptive_max_pool2d(x, 1)))
    print("adaptive_avg5", median(lambda: F.adaptive_avg_pool2d(x, 5)))
print("max2x2_fwd_bwd", median(fwd_bwd(lambda t: F.max_pool2d(t, 2))))
print("max3x3s2p1_fwd_bwd", median(fwd_bwd(lambda t: F.max_pool2d(t, 3, 2, 1))))
print("avg3x3s1p1_fwd_bwd", median(fwd_bwd(lambda t: F.avg_pool2d(t, 3, 1, 1))))
print("global_avg_fwd_bwd", median(fwd_bwd(lambda t: F.adaptive_avg_pool2d(t, 1))))
