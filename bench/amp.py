# bench/amp.py — the PyTorch half of bench/amp.lua: one Adam training step of
# the benchmark MLP and CNN (bench/train_cpu.py's models) in float32 and under
# torch.autocast('cpu', dtype=torch.bfloat16); prints "name seconds" (medians;
# process CPU time with a third argument `cpu`).
import sys
import time
import torch
import timer
import torch.nn as nn
import torch.nn.functional as F


def conv_bn(cin, cout, stride):  # as in bench/train_cpu.py (which runs on import)
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


MODELS = {
    'mlp': lambda: nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10)),
    'cnn': lambda: nn.Sequential(conv_bn(1, 16, 2), conv_bn(16, 32, 2), conv_bn(32, 64, 2), conv_bn(64, 128, 2),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10)),
}

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
