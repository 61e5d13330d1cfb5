# bench/amp.py — the PyTorch half of bench/amp.lua: one Adam training step of
# the benchmark MLP and CNN (bench/models.py) in float32 and under
# torch.autocast('cpu', dtype=torch.bfloat16); prints "name seconds" (medians;
# process CPU time with a third argument `cpu`).
import sys
import time
import torch
import timer
import torch.nn.functional as F
from models import MODELS


threads, reps = int(sys.argv[1]), int(sys.argv[2])
clock = time.process_time if sys.argv[3:4] == ['cpu'] else time.perf_counter
torch.set_num_threads(threads)


def median(fn, reps, warmup=3):
    return timer.median(fn, reps, warmup, clock)


def step_fn(name, autocast):
    torch.manual_seed(0)
    model = MODELS[name]()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.randn(128, 1, 28, 28), torch.randint(0, 10, (128,))

    def step():
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


for name in ('mlp', 'cnn'):
    print(name + '_fp32', median(step_fn(name, False), reps))
    print(name + '_bf16', median(step_fn(name, True), reps))
