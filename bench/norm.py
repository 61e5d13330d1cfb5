# bench/norm.py — the PyTorch half of bench/norm.lua; prints "name seconds".
import sys
import time
import torch
import timer
import torch.nn.functional as F

torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
clock = time.process_time if sys.argv[2:3] == ["cpu"] else time.perf_counter
torch.manual_seed(0)
C = 64
x = torch.randn(128, C, 14, 14, requires_grad=True)
g = torch.randn(128, C, 14, 14)
w, b = torch.ones(C, requires_grad=True), torch.zeros(C, requires_grad=True)
rm, rv = torch.zeros(C), torch.ones(C)


def median(fn, reps, warmup=3):
    return timer.median(fn, reps, warmup, clock)


def step():
    x.grad = w.grad = b.grad = None
    F.batch_norm(x, rm, rv, w, b, training=True).backward(g)


def forward(training, relu=False):
    def run():
        with torch.no_grad():
            y = F.batch_norm(x, rm, rv, w, b, training=training)
            if relu:
                y = F.relu(y)
    return run


print("bn_train_fwd_bwd", median(step, 21))
print("bn_train_fwd", median(forward(True), 21))
print("bn_eval_fwd", median(forward(False), 21))
print("bn_relu_eval_fwd", median(forward(False, True), 21))
